"""``/api/v1/sites/{site_id}/indicators``, ``…/budgets``, ``…/events``: every KPI with its
target, status, explanation and trend; budgets with their burn-down; early-warning events."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request

from carbonflow.domain.calendar import month_bounds, period_of, periods_before
from carbonflow.domain.indicators.formulas import energy_total_of
from carbonflow.domain.indicators.kpis import BUDGET_COMPONENT
from carbonflow.domain.inventory.energy_totals import LABELS as ENERGY_TOTAL_LABELS
from carbonflow.storage import db
from carbonflow.storage import indicators as indicators_db
from carbonflow.storage.reference import ReferenceDataError
from services.api.deps import ConnDep, ContextDep, PageDep, RegistrySite, SiteScope
from services.api.pagination import fetch_size, page_items
from services.api.periods import EARLIEST, LATEST, RangeError, as_site_time, checked_range
from services.api.problems import ApiProblemError, not_found, responses
from services.api.reads import NotFound, flows, indicators_for_period
from services.api.routers.carbon import IdQuery, site_timezone, visible_org
from services.api.schemas_carbon import (
    BudgetOut,
    BudgetsOut,
    BurnDownPointOut,
    CoverageOut,
    EnergyTotalOut,
    EventOut,
    EventPage,
    IndicatorOut,
    IndicatorsOut,
    ReasonOut,
    TargetOut,
    TrendPointOut,
)

router = APIRouter(
    prefix="/api/v1/sites/{site_id}",
    tags=["indicators"],
    responses=responses(401, 403, 404, 422, 429, 500),
)

MAX_TREND = 24  # previous periods one request may ask for
# An arbitrary range is computed on request from the stored totals: bounded like a ledger year.
MAX_RANGE = timedelta(days=400)
DEFAULT_RANGE = timedelta(days=30)
SLOT = timedelta(minutes=15)


def _org_out(org_id: str) -> str | None:
    return org_id or None


_COVERAGE_FIELDS = (
    "label", "local_start", "local_end", "in_progress", "share", "days_with_data",
    "measured_share", "estimated_share", "gap_filled_share",
)  # fmt: skip


def _coverage_out(stored: dict[str, Any] | None) -> tuple[CoverageOut | None, ReasonOut | None]:
    """The ``coverage`` column (or :func:`indicators_db.coverage_json`) as the response's."""
    if not stored:
        return None, None
    coverage = None
    if "share" in stored:
        coverage = CoverageOut.model_validate({k: stored[k] for k in _COVERAGE_FIELDS})
    reason = None
    if "reason_en" in stored:
        reason = ReasonOut(en=stored["reason_en"], zh=stored["reason_zh"])
    return coverage, reason


def _energy_total(indicator: str) -> EnergyTotalOut | None:
    which = energy_total_of(indicator)
    if which is None:
        return None
    zh, en = ENERGY_TOTAL_LABELS[which]
    return EnergyTotalOut(id=which.value, label_zh=zh, label_en=en)


def _indicator_out(row: indicators_db.IndicatorRow, trend: list[TrendPointOut]) -> IndicatorOut:
    target = None
    if row.target_threshold is not None and row.target_comparator is not None:
        target = TargetOut(
            threshold=row.target_threshold,
            comparator=row.target_comparator,
            unit=row.target_unit or row.unit,
            basis=row.target_basis,
            source=row.target_source,
        )
    coverage, reason = _coverage_out(row.coverage)
    return IndicatorOut(
        site_id=row.site_id,
        org_id=_org_out(row.org_id),
        indicator=row.indicator,
        energy_total=_energy_total(row.indicator),
        grain=row.grain,
        period_start=row.period_start,
        period_end=row.period_end,
        value=row.value,
        unit=row.unit,
        numerator=row.numerator,
        denominator=row.denominator,
        undefined_reason=row.undefined_reason,
        basis=row.basis,
        target=target,
        status=row.status,
        explanation=row.explanation,
        completeness=row.completeness,
        coverage=coverage,
        reason=reason,
        trend=trend,
    )


def _visible(
    rows: list[indicators_db.IndicatorRow], site: SiteScope
) -> list[indicators_db.IndicatorRow]:
    """An enterprise sees its organisation's indicators, not the whole site's."""
    return rows if site.org_id is None else [r for r in rows if r.org_id == site.org_id]


def checked_day(day: date) -> date:
    """``day`` if a period containing it can be named (1970 … 2199), else 422."""
    if not EARLIEST.date() <= day < LATEST.date() - timedelta(days=366):
        raise ApiProblemError(422, "period must lie between 1970 and 2199")
    return day


@router.get(
    "/indicators",
    response_model=IndicatorsOut,
    summary="Every indicator of a stored day, month or year with target, status and trend",
)
def stored_indicators(
    *,
    site: RegistrySite,
    conn: ConnDep,
    grain: Annotated[Literal["day", "month", "year"], Query()] = "month",
    period: Annotated[
        date | None,
        Query(
            description="a day inside the period (site-local); default: the newest stored",
            examples=["2025-05-01"],
        ),
    ] = None,
    org_id: Annotated[
        IdQuery, Query(description="only this organisation's (without it: site and all)")
    ] = None,
    indicator: Annotated[
        str | None, Query(min_length=1, max_length=64, pattern=r"^[a-z0-9_]+$")
    ] = None,
    trend: Annotated[
        int, Query(ge=0, le=MAX_TREND, description="previous periods in each trend")
    ] = 3,
) -> IndicatorsOut:
    tz = site_timezone(conn, site)
    org = visible_org(conn, site, org_id)
    if period is None:
        latest = indicators_db.latest_indicator_period(conn, site.site_id, grain, org_id=org)
        if latest is None:
            return IndicatorsOut(
                site_id=site.site_id, timezone=tz, grain=grain, period_start=None,
                period_end=None, items=[],
            )  # fmt: skip
        period = latest.astimezone(ZoneInfo(tz)).date()
    start, end = period_of(grain, checked_day(period), tz)
    rows = _visible(
        indicators_db.indicator_rows(conn, [site.site_id], grain, start, end, org_id=org,
                            indicator=indicator),
        site,
    )  # fmt: skip
    history: dict[tuple[str, str], list[TrendPointOut]] = {}
    if trend > 0:
        earlier = periods_before(grain, start, trend, tz)
        for r in _visible(
            indicators_db.indicator_rows(conn, [site.site_id], grain, earlier, start, org_id=org,
                                indicator=indicator),
            site,
        ):  # fmt: skip
            history.setdefault((r.org_id, r.indicator), []).append(
                TrendPointOut(
                    period_start=r.period_start, value=r.value, unit=r.unit, status=r.status
                )
            )
    items = [_indicator_out(r, history.get((r.org_id, r.indicator), [])) for r in rows]
    return IndicatorsOut(
        site_id=site.site_id, timezone=tz, grain=grain, period_start=start, period_end=end,
        items=items,
    )  # fmt: skip


@router.get(
    "/indicators/range",
    response_model=IndicatorsOut,
    summary="Every indicator for any range (e.g. a rolling 12 months), computed on request",
    responses=responses(409),
)
def range_indicators(  # noqa: C901 — request checks of a range, one per refusal
    *,
    site: RegistrySite,
    conn: ConnDep,
    ctx: ContextDep,
    start: Annotated[
        datetime | None,
        Query(
            description="15-min aligned (RFC 3339; without an offset: site-local); "
            "default: end − 30 days",
            examples=["2025-05-01T00:00:00+08:00"],
        ),
    ] = None,
    end: Annotated[
        datetime | None,
        Query(
            description="exclusive, 15-min aligned; default: now, on the 15-min grid",
            examples=["2025-06-01T00:00:00+08:00"],
        ),
    ] = None,
    org_id: Annotated[IdQuery, Query(description="only this organisation's")] = None,
) -> IndicatorsOut:
    tz = site_timezone(conn, site)
    org = visible_org(conn, site, org_id)
    if end is None:
        now = ctx.wall_clock()
        end = now - (now - EARLIEST) % SLOT
    try:
        if start is None:
            start = as_site_time(end, tz) - DEFAULT_RANGE
        lo, hi = checked_range(start, end, tz)
    except OverflowError:
        raise ApiProblemError(422, "end must lie between 1970 and 2200") from None
    except RangeError as exc:
        raise ApiProblemError(422, str(exc)) from None
    if (lo - EARLIEST) % SLOT or (hi - EARLIEST) % SLOT:
        raise ApiProblemError(422, "start and end must be on the 15-min grid")
    if hi - lo > MAX_RANGE:
        raise ApiProblemError(422, f"at most {MAX_RANGE.days} days per request")
    try:
        outcomes = indicators_for_period(db.psycopg_of(conn), site.site_id, lo, hi)
    except NotFound:
        raise not_found(f"site {site.site_id!r} not found") from None
    except ReferenceDataError as exc:
        # The calc service stores the factor library when it starts; until then nothing can
        # be computed (stored results need no library: /indicators works).
        raise ApiProblemError(409, f"indicators cannot be computed yet: {exc}") from None
    items = []
    for o in outcomes:
        if org is not None and o.org_id != org:
            continue
        r = o.result
        t = r.target
        coverage, reason = _coverage_out(indicators_db.coverage_json(o.coverage, r.reason))
        items.append(
            IndicatorOut(
                site_id=site.site_id,
                org_id=_org_out(o.org_id),
                indicator=o.indicator,
                energy_total=_energy_total(o.indicator),
                grain="range",
                period_start=lo,
                period_end=hi,
                value=r.value.value,
                unit=r.value.unit,
                numerator=r.value.numerator,
                denominator=r.value.denominator,
                undefined_reason=r.value.undefined_reason,
                basis=o.basis,
                target=None if t is None else TargetOut(
                    threshold=t.threshold, comparator=t.comparator.value, unit=t.unit,
                    basis=t.basis, source="; ".join(row.source for row in t.rows),
                ),
                status=r.status.value,
                explanation=r.explanation,
                completeness=0.0 if coverage is None else coverage.share,
                coverage=coverage, reason=reason,
                trend=[],
            )
        )  # fmt: skip
    return IndicatorsOut(
        site_id=site.site_id, timezone=tz, grain="range", period_start=lo, period_end=hi,
        items=items,
    )  # fmt: skip


def _burn_down(
    raw: db.Conn, site_id: str, tz: str, rows: list[dict[str, Any]]
) -> dict[tuple[str, int, str], list[BurnDownPointOut]]:
    """Per (org, year, quantity): cumulative consumption at each local month end up to the
    budget's as_of, from each month's flow graph (what the calc service attributes)."""
    out: dict[tuple[str, int, str], list[BurnDownPointOut]] = {}
    for year in sorted({int(r["year"]) for r in rows}):
        of_year = [r for r in rows if r["year"] == year]
        as_of = max(r["as_of"] for r in of_year)
        month = month_bounds(date(year, 1, 1), tz)
        running: dict[tuple[str, str], float] = {}
        while month[0] < as_of and month[0].astimezone(ZoneInfo(tz)).year == year:
            graph = flows(raw, site_id, month[0], month[1])
            for r in of_year:
                key = (r["org_id"], r["quantity"])
                vector = graph.orgs.get(r["org_id"])
                used = 0.0 if vector is None else vector.component(BUDGET_COMPONENT[r["quantity"]])
                running[key] = running.get(key, 0.0) + used
                out.setdefault((r["org_id"], year, r["quantity"]), []).append(
                    BurnDownPointOut(period_end=month[1], consumed=running[key])
                )
            month = month_bounds(month[1].astimezone(ZoneInfo(tz)).date(), tz)
    return out


@router.get("/budgets", response_model=BudgetsOut, summary="Energy and CO2 budgets of a year")
def list_budgets(
    *,
    site: RegistrySite,
    conn: ConnDep,
    year: Annotated[int | None, Query(ge=1970, le=2199, description="default: every year")] = None,
    org_id: Annotated[IdQuery, Query(description="only this organisation's")] = None,
    burn_down: Annotated[
        bool, Query(description="add the cumulative consumption at the end of each month")
    ] = False,
) -> BudgetsOut:
    org = visible_org(conn, site, org_id)
    raw = db.psycopg_of(conn)
    rows = [
        r
        for r in indicators_db.budgets(raw, site.site_id, year)
        if org is None or r["org_id"] == org
    ]
    curves: dict[tuple[str, int, str], list[BurnDownPointOut]] = {}
    if burn_down and rows:
        tz = site_timezone(conn, site)
        try:
            curves = _burn_down(raw, site.site_id, tz, rows)
        except ReferenceDataError as exc:
            raise ApiProblemError(409, f"burn-down cannot be computed yet: {exc}") from None
    items = [
        BudgetOut(
            site_id=site.site_id, org_id=_org_out(r["org_id"]), year=r["year"],
            quantity=r["quantity"], unit=r["unit"], budget=r["budget"], consumed=r["consumed"],
            remaining=r["remaining"], elapsed_fraction=r["elapsed_fraction"],
            used_fraction=r["used_fraction"], projected_total=r["projected_total"],
            projected_overrun=r["projected_overrun"],
            projected_exhaustion=r["projected_exhaustion"], status=r["status"],
            explanation=r["explanation"], as_of=r["as_of"],
            burn_down=curves.get((r["org_id"], r["year"], r["quantity"])) if burn_down else None,
        )
        for r in rows
    ]  # fmt: skip
    return BudgetsOut(site_id=site.site_id, items=items)


@router.get("/events", response_model=EventPage, summary="Early-warning events, newest first")
def list_events(
    *,
    site: RegistrySite,
    conn: ConnDep,
    page: PageDep,
    request: Request,
    kind: Annotated[Literal["indicator", "budget", "data"] | None, Query()] = None,
    status: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=32,
            pattern=r"^[a-z_]+$",
            description="on_track, at_risk, off_track …",
        ),
    ] = None,
    org_id: Annotated[IdQuery, Query(description="only this organisation's")] = None,
) -> EventPage:
    org = visible_org(conn, site, org_id)
    rows = indicators_db.list_events(
        conn,
        site.site_id,
        org_id=site.org_id,
        where=indicators_db.EventFilter(kind=kind, status=status, of_org=org),
        limit=fetch_size(page),
        offset=page.offset,
    )

    def out(r: indicators_db.EventRow) -> EventOut:
        return EventOut(
            event_id=r.event_id, site_id=r.site_id, org_id=_org_out(r.org_id),
            kind=r.kind,
            subject=r.subject, grain=r.grain, period_start=r.period_start, status=r.status,
            previous_status=r.previous_status, value=r.value, threshold=r.threshold,
            unit=r.unit, message=r.message, raised_at=r.raised_at,
        )  # fmt: skip

    items, links = page_items(rows, page, request, out)
    return EventPage(items=items, limit=page.limit, offset=page.offset, links=links)

"""``/api/v1/aggregates/…``: figures across the sites a key sees — carbon totals per site and
organisation, indicator compliance, data completeness per organisation.

Made for regulators (every request is audited by the middleware); admins see every site,
operators their sites. An enterprise key is refused (403): these are cross-organisation views,
and its own organisation's figures are on the site routes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import date, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from carbonflow.domain.calendar import day_range, first_of_month, period_of
from carbonflow.domain.inventory.balance import settle_period
from carbonflow.domain.inventory.lines import InventoryLine, period_totals
from carbonflow.domain.readings.quality import data_completeness
from carbonflow.storage import carbon as carbon_db
from carbonflow.storage import db, indicators, intervals, registry
from services.api.access import Principal, Role
from services.api.context import ApiContext
from services.api.deps import SITE_ID_PATTERN, ConnDep, ContextDep, PrincipalDep
from services.api.periods import EARLIEST, LATEST
from services.api.problems import ApiProblemError, forbidden, not_found, responses
from services.api.routers.indicators import checked_day
from services.api.schemas_carbon import (
    AggregateCompletenessOut,
    AggregateComplianceOut,
    AggregateTotalsOut,
    ComplianceItemOut,
    OrgCompletenessOut,
    OrgTotalsOut,
    SiteComplianceOut,
    SiteTotalsOut,
    TotalsOut,
)

router = APIRouter(
    prefix="/api/v1/aggregates",
    tags=["regulator"],
    responses=responses(401, 403, 404, 422, 429, 500),
)

# One request covers at most this many days (a year and a leap day, with room for a fiscal
# year that does not start on 1 January).
MAX_DAYS = 400

SiteQuery = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=64,
        pattern=SITE_ID_PATTERN,
        description="only this site (default: every site the key sees)",
    ),
]
StartDay = Annotated[
    date | None,
    Query(
        description="first local day included; default: the first of the current month",
        examples=["2025-05-01"],
    ),
]
EndDay = Annotated[
    date | None,
    Query(
        description="local day after the last one (exclusive); default: tomorrow",
        examples=["2025-06-01"],
    ),
]


def totals_of(rows: Sequence[InventoryLine]) -> TotalsOut:
    """Period totals of settled inventory rows in both scope-2 views (:func:`period_totals`)."""
    return TotalsOut(**asdict(period_totals(rows)))


def _sites(conn: ConnDep, principal: Principal, site_id: str | None) -> list[registry.SiteInfo]:
    if principal.role is Role.ENTERPRISE:
        raise forbidden("cross-organisation aggregates are not for an enterprise key")
    if site_id is not None:
        if not principal.sees_site(site_id):
            raise not_found(f"site {site_id!r} not found")
        found = registry.sites_info(conn, frozenset({site_id}))
        if not found:
            raise not_found(f"site {site_id!r} not found")
        return found
    return registry.sites_info(conn, principal.site_ids)


def _days(ctx: ApiContext, start: date | None, end: date | None) -> tuple[date, date]:
    """The days asked for, by default the current month to date (UTC calendar)."""
    today = ctx.wall_clock().date()
    start = first_of_month(today) if start is None else start
    end = today + timedelta(days=1) if end is None else end
    _checked_days(start, end)
    return start, end


def _checked_days(start: date, end: date) -> None:
    if not (EARLIEST.date() <= start and end < LATEST.date() - timedelta(days=366)):
        raise ApiProblemError(422, "start and end must lie between 1970 and 2199")
    if end <= start:
        raise ApiProblemError(422, "end must be after start")
    if (end - start).days > MAX_DAYS:
        raise ApiProblemError(422, f"at most {MAX_DAYS} days per request")


@router.get(
    "/totals",
    response_model=AggregateTotalsOut,
    summary="Energy and carbon totals per site and organisation for a period",
)
def aggregate_totals(
    *,
    principal: PrincipalDep,
    conn: ConnDep,
    ctx: ContextDep,
    start: StartDay = None,
    end: EndDay = None,
    site_id: SiteQuery = None,
) -> AggregateTotalsOut:
    start, end = _days(ctx, start, end)
    sites = _sites(conn, principal, site_id)
    names = registry.organisation_names(conn, [s.site_id for s in sites])
    raw = db.psycopg_of(conn)
    out: list[SiteTotalsOut] = []
    every: list[InventoryLine] = []
    for s in sites:
        lo, hi = day_range(start, end, s.timezone)
        rows, surplus = settle_period(carbon_db.carbon_totals(raw, s.site_id, lo, hi, s.timezone))
        every += rows
        by_org: dict[str, list[InventoryLine]] = {}
        for r in rows:
            by_org.setdefault(r.org_id, []).append(r)
        out.append(
            SiteTotalsOut(
                site_id=s.site_id,
                name=s.name,
                kind=s.kind,
                timezone=s.timezone,
                period_start=lo,
                period_end=hi,
                surplus_export_mwh=surplus,
                totals=totals_of(rows),
                organisations=[
                    OrgTotalsOut(
                        org_id=org or None,
                        name=names.get((s.site_id, org)),
                        totals=totals_of(org_rows),
                    )
                    for org, org_rows in sorted(by_org.items())
                ],
            )
        )
    return AggregateTotalsOut(start=start, end=end, sites=out, totals=totals_of(every))


@router.get(
    "/compliance",
    response_model=AggregateComplianceOut,
    summary="Status of every indicator per site and organisation for a day, month or year",
)
def aggregate_compliance(
    *,
    principal: PrincipalDep,
    conn: ConnDep,
    ctx: ContextDep,
    period: Annotated[
        date | None,
        Query(
            description="a day inside the period (site-local); default: today",
            examples=["2025-05-01"],
        ),
    ] = None,
    grain: Annotated[Literal["day", "month", "year"], Query()] = "month",
    site_id: SiteQuery = None,
) -> AggregateComplianceOut:
    period = checked_day(ctx.wall_clock().date() if period is None else period)
    sites = _sites(conn, principal, site_id)
    out: list[SiteComplianceOut] = []
    overall: dict[str, int] = {}
    for s in sites:
        lo, hi = period_of(grain, period, s.timezone)
        rows = indicators.indicator_rows(conn, [s.site_id], grain, lo, hi, org_id=None)
        counts: dict[str, int] = {}
        for r in rows:
            counts[r.status] = counts.get(r.status, 0) + 1
            overall[r.status] = overall.get(r.status, 0) + 1
        out.append(
            SiteComplianceOut(
                site_id=s.site_id,
                period_start=lo,
                period_end=hi,
                status_counts=counts,
                items=[
                    ComplianceItemOut(
                        org_id=r.org_id or None,
                        indicator=r.indicator,
                        value=r.value,
                        unit=r.unit,
                        status=r.status,
                        target_threshold=r.target_threshold,
                        target_unit=r.target_unit,
                        explanation=r.explanation,
                    )
                    for r in rows
                ],
            )
        )
    return AggregateComplianceOut(grain=grain, period=period, status_counts=overall, sites=out)


@router.get(
    "/completeness",
    response_model=AggregateCompletenessOut,
    summary="Completeness of the metered data per organisation for a period",
)
def aggregate_completeness(
    *,
    principal: PrincipalDep,
    conn: ConnDep,
    ctx: ContextDep,
    start: StartDay = None,
    end: EndDay = None,
    site_id: SiteQuery = None,
) -> AggregateCompletenessOut:
    start, end = _days(ctx, start, end)
    sites = _sites(conn, principal, site_id)
    names = registry.organisation_names(conn, [s.site_id for s in sites])
    raw = db.psycopg_of(conn)
    items: list[OrgCompletenessOut] = []
    for s in sites:
        lo, hi = day_range(start, end, s.timezone)
        metrics = intervals.quantity_metrics(conn, s.site_id)
        pks = sorted({m.device_pk for m in metrics})
        stored = intervals.device_totals(raw, pks, lo, hi, s.timezone)
        by_org: dict[str, list[intervals.DeviceTotal | None]] = {}
        for m in metrics:
            by_org.setdefault(m.org_id or "", []).append(stored.get((m.device_pk, m.metric_id)))
        for org, found in sorted(by_org.items()):
            items.append(
                OrgCompletenessOut(
                    site_id=s.site_id,
                    org_id=org or None,
                    name=names.get((s.site_id, org)),
                    **asdict(data_completeness(found)),
                )
            )
    return AggregateCompletenessOut(start=start, end=end, items=items)

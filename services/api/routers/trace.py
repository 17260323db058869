"""Traceability: from a ledger line or an indicator value to its devices, readings, factors and
the calc that produced it, in one request (``carbonflow/domain/ledger/trace.py``).

- ``GET /api/v1/sites/{site_id}/ledgers/{month}/lines/{line_id}/trace`` — a line of the site's
  own ledger; ``GET …/organisations/{org_id}/ledgers/{month}/lines/{line_id}/trace`` — of one
  organisation's. Access as the month's ledger (``ledgers.py``): an enterprise key its own
  organisation's only (another's: 404; the site's own ledger: 403).
- ``GET /api/v1/sites/{site_id}/indicators/{indicator}/trace?grain=…&period=…&org_id=…`` — a
  stored indicator value; an enterprise key its own organisation's (like ``/indicators``).

The trace is of the current computation (what the month's draft shows), read with the ledger's
own queries; a closed month names its latest revision.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from fastapi import APIRouter, Path, Query

from carbonflow.domain.calendar import period_of
from carbonflow.domain.ledger import trace as domain
from carbonflow.domain.ledger.trace import LINE_ID_PATTERN
from carbonflow.storage import db, registry
from carbonflow.storage import indicators as indicators_db
from carbonflow.storage import ledgers as store
from carbonflow.storage import trace as trace_db
from carbonflow.storage.reference import ReferenceDataError
from services.api.deps import ConnDep, RegistrySite
from services.api.problems import ApiProblemError, not_found, responses
from services.api.reads import NotFound, ledger_inputs
from services.api.routers.carbon import IdQuery, site_timezone, visible_org
from services.api.routers.indicators import checked_day
from services.api.routers.ledgers import (
    ORG_PREFIX,
    SITE_PREFIX,
    LedgerScope,
    MonthPath,
    OrgRead,
    SiteRead,
    month_bounds,
)
from services.api.schemas_trace import (
    GwpOut,
    IndicatorCalcOut,
    IndicatorInputsOut,
    IndicatorTraceOut,
    LedgerRefOut,
    LineCalcOut,
    LineTraceOut,
    ReadingsOut,
    TraceDeviceOut,
)

router = APIRouter(tags=["trace"], responses=responses(401, 403, 404, 422, 429, 500))

LineIdPath = Annotated[
    str,
    Path(
        pattern=LINE_ID_PATTERN,
        max_length=140,
        description="a ledger line: <category>.<carrier>.<scope>",
        examples=["purchased_electricity.electricity.scope_2"],
    ),
]
IndicatorPath = Annotated[
    str,
    Path(
        pattern=r"^[a-z0-9_][a-z0-9_.\-]{0,95}$",
        description="an indicator id (as /indicators lists it)",
        examples=["co2_per_energy"],
    ),
]


def _devices(rows: list[dict[str, Any]], names: dict[str, str]) -> list[TraceDeviceOut]:
    return [
        TraceDeviceOut.model_validate({**r, "name": names.get(str(r["device_id"]))}) for r in rows
    ]


def _year_fingerprint(state: trace_db.CalcState, start: datetime, tz: str) -> str | None:
    return state.factor_fingerprints.get(str(start.astimezone(ZoneInfo(tz)).year))


def _line_trace(scope: LedgerScope, month: str, line_id: str, conn: sa.Connection) -> LineTraceOut:
    site = registry.ledger_site(conn, scope.site_id)
    if site is None:
        raise not_found(f"site {scope.site_id!r} not found")
    first, start, end = month_bounds(month, site.timezone)
    missing = not_found(f"the {month} ledger has no line {line_id!r}")
    if site.results_through is None:
        raise missing
    raw = db.psycopg_utc(conn)
    try:
        inputs = ledger_inputs(raw, scope.site_id, start, end, org_id=scope.org_id)
    except ReferenceDataError as exc:
        raise ApiProblemError(409, f"the ledger cannot be computed yet: {exc}") from None
    traced = domain.trace_line(inputs, line_id)
    if traced is None:
        raise missing
    computation = trace_db.line_computation(
        raw, scope.site_id, start, end, category=traced["category"], carrier=traced["carrier"],
        scope=traced["scope"], org_id=scope.org_id,
    )  # fmt: skip
    state = trace_db.calc_state(raw, scope.site_id)
    latest = store.latest_revision(conn, scope.site_id, scope.stored_org, first)
    return LineTraceOut(
        site_id=scope.site_id,
        org_id=scope.org_id,
        month=month,
        timezone=site.timezone,
        period_start=start,
        period_end=end,
        line_id=line_id,
        category=traced["category"],
        carrier=traced["carrier"],
        scope=traced["scope"],
        line=traced["line"],
        devices=_devices(traced["devices"], trace_db.device_names(raw, scope.site_id)),
        readings=ReadingsOut.model_validate(traced["readings"]),
        factors=traced["factors"],
        factor_set_ids=traced["factor_set_ids"],
        gwp=[GwpOut.model_validate(g) for g in traced["gwp"]],
        emissions=traced["emissions"],
        calc=LineCalcOut(
            carbon_rows=computation.rows,
            first_computed_at=computation.first_computed_at,
            last_computed_at=computation.last_computed_at,
            factor_set_ids=list(computation.factor_set_ids),
            site_document_sha256=state.site_document_sha256,
            factor_fingerprint=_year_fingerprint(state, start, site.timezone),
            results_through=state.results_through,
        ),
        ledger=LedgerRefOut(
            status="closed" if latest is not None else "draft",
            latest_revision=None if latest is None else latest.revision,
            href=scope.path(month),
        ),
    )


_LINE_SUMMARY = "Trace a ledger line: devices, readings, factors, GWP, calc"


@router.get(SITE_PREFIX + "/lines/{line_id}/trace", response_model=LineTraceOut,
            responses=responses(409), summary=_LINE_SUMMARY)  # fmt: skip
def site_line_trace(
    scope: SiteRead, month: MonthPath, line_id: LineIdPath, conn: ConnDep
) -> LineTraceOut:
    return _line_trace(scope, month, line_id, conn)


@router.get(ORG_PREFIX + "/lines/{line_id}/trace", response_model=LineTraceOut,
            responses=responses(409), summary=_LINE_SUMMARY)  # fmt: skip
def org_line_trace(
    scope: OrgRead, month: MonthPath, line_id: LineIdPath, conn: ConnDep
) -> LineTraceOut:
    return _line_trace(scope, month, line_id, conn)


@router.get(
    "/api/v1/sites/{site_id}/indicators/{indicator}/trace",
    response_model=IndicatorTraceOut,
    responses=responses(409),
    summary="Trace a stored indicator value: devices, readings, factors, GWP, calc",
)
def indicator_trace(
    *,
    site: RegistrySite,
    conn: ConnDep,
    indicator: IndicatorPath,
    grain: Annotated[Literal["day", "month", "year"], Query()] = "month",
    period: Annotated[
        date | None,
        Query(
            description="a day inside the period (site-local); default: the newest stored",
            examples=["2025-05-01"],
        ),
    ] = None,
    org_id: Annotated[
        IdQuery, Query(description="the organisation's indicator (without it: the site's)")
    ] = None,
) -> IndicatorTraceOut:
    tz = site_timezone(conn, site)
    org = visible_org(conn, site, org_id)
    stored_org = org or ""
    if period is None:
        latest = indicators_db.latest_indicator_period(conn, site.site_id, grain, org_id=org)
        period = None if latest is None else latest.astimezone(ZoneInfo(tz)).date()
    if period is None:
        raise not_found(f"no stored {grain} value of {indicator!r}")
    start, end = period_of(grain, checked_day(period), tz)
    rows = [
        r
        for r in indicators_db.indicator_rows(
            conn, [site.site_id], grain, start, end, org_id=stored_org, indicator=indicator
        )
        if r.period_start == start
    ]
    if not rows:
        raise not_found(f"no stored {grain} value of {indicator!r} for the period of {period}")
    row = rows[0]
    wanted = domain.indicator_inputs(indicator)
    raw = db.psycopg_utc(conn)
    try:
        inputs = ledger_inputs(raw, site.site_id, start, end, org_id=org, roles=wanted.roles)
    except NotFound:
        raise not_found(f"site {site.site_id!r} not found") from None
    except ReferenceDataError as exc:
        raise ApiProblemError(409, f"the inputs cannot be read yet: {exc}") from None
    traced = domain.trace_indicator(inputs, indicator)
    state = trace_db.calc_state(raw, site.site_id)
    month = start.astimezone(ZoneInfo(tz)).strftime("%Y-%m")
    base = f"/api/v1/sites/{site.site_id}" + (f"/organisations/{org}" if org else "")
    hrefs = (
        [f"{base}/ledgers/{month}/lines/{line}/trace" for line in traced["lines"]]
        if grain == "month"
        else []
    )
    return IndicatorTraceOut(
        site_id=site.site_id,
        org_id=org,
        indicator=indicator,
        grain=grain,
        timezone=tz,
        period_start=start,
        period_end=end,
        value=row.value,
        unit=row.unit,
        numerator=row.numerator,
        denominator=row.denominator,
        basis=row.basis,
        status=row.status,
        completeness=row.completeness,
        inputs=IndicatorInputsOut(
            inventory=traced["inventory"],
            roles=traced["roles"],
            lines=traced["lines"],
            line_hrefs=hrefs,
        ),
        devices=_devices(traced["devices"], trace_db.device_names(raw, site.site_id)),
        readings=ReadingsOut.model_validate(traced["readings"]),
        factors=traced["factors"],
        gwp=[GwpOut.model_validate(g) for g in traced["gwp"]],
        energy_tce=traced["energy_tce"],
        calc=IndicatorCalcOut(
            computed_at=trace_db.indicator_computed_at(
                raw, site.site_id, stored_org, grain, start, indicator
            ),
            factor_set_ids=traced["factor_set_ids"],
            site_document_sha256=state.site_document_sha256,
            factor_fingerprint=_year_fingerprint(state, start, tz),
            results_through=state.results_through,
        ),
    )

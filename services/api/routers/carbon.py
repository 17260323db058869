"""``/api/v1/sites/{site_id}/carbon/series`` and ``…/devices/{device_id}/energy``: the calc
service's energy and carbon results as time series, each value with its unit and quality."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query

from carbonflow.domain import calendar
from carbonflow.domain.inventory.lines import Category, Scope
from carbonflow.domain.site.model import Carrier
from carbonflow.storage import carbon as carbon_db
from carbonflow.storage import intervals as intervals_db
from carbonflow.storage import registry
from services.api.context import ApiContext
from services.api.deps import ConnDep, ContextDep, RegistrySite, SiteScope, id_path
from services.api.periods import RangeError, as_site_time, checked_range, points_in
from services.api.problems import ApiProblemError, not_found, responses
from services.api.schemas_carbon import (
    ActivityOut,
    CarbonPointOut,
    CarbonSeriesOut,
    DeviceEnergyOut,
    DeviceMetricSeriesOut,
    DevicePointOut,
)

router = APIRouter(
    prefix="/api/v1/sites/{site_id}",
    tags=["carbon"],
    responses=responses(401, 403, 404, 422, 429, 500),
)

# Points one request may return (per metric for a device): a 31-day month of 15-min values
# (2 976) fits, a year of hours (8 760) does not — ask for days or page by range.
MAX_POINTS = 3000

Grain = Literal["15min", "hour", "day", "month"]
DeviceIdPath = Annotated[str, id_path("device", "grid-line-1")]
StartQuery = Annotated[
    datetime | None,
    Query(
        description="first period start included (RFC 3339; without an offset: site-local); "
        "default: end − 1 day (15min, hour), 31 days (day) or 366 days (month)",
        examples=["2025-03-01T00:00:00+08:00"],
    ),
]
EndQuery = Annotated[
    datetime | None,
    Query(
        description="periods starting before this (exclusive; without offset: site-local); "
        "default: now",
        examples=["2025-03-02T00:00:00+08:00"],
    ),
]
# The range a dashboard gets without naming one, by grain.
DEFAULT_SPAN = {
    "15min": timedelta(days=1),
    "hour": timedelta(days=1),
    "day": timedelta(days=31),
    "month": timedelta(days=366),
}
GrainQuery = Annotated[Grain, Query(description="15min, hour, day or month (site-local)")]
IdQuery = Annotated[str | None, Query(min_length=1, max_length=64, pattern=r"^[a-z0-9_-]+$")]


def checked_series_range(
    ctx: ApiContext, tz: str, grain: str, start: datetime | None, end: datetime | None
) -> tuple[datetime, datetime]:
    """[start, end) in UTC, or 422: empty, reversed, out of range or too many points."""
    try:
        if end is None:
            end = ctx.wall_clock()
        if start is None:
            start = as_site_time(end, tz) - DEFAULT_SPAN[grain]
        lo, hi = checked_range(start, end, tz)
    except OverflowError:
        raise ApiProblemError(422, "end must lie between 1970 and 2200") from None
    except RangeError as exc:
        raise ApiProblemError(422, str(exc)) from None
    points = points_in(grain, lo, hi, tz)
    if points > MAX_POINTS:
        raise ApiProblemError(
            422,
            f"{points} periods of {grain} in the range: at most {MAX_POINTS} per request "
            "(choose a coarser grain or a shorter range)",
        )
    return lo, hi


def period_end(grain: str, start: datetime, tz: str) -> datetime:
    """End of the period of ``grain`` starting at ``start`` (local calendar for day, month)."""
    if grain == "15min":
        return start + timedelta(minutes=15)
    if grain == "hour":
        return start + timedelta(hours=1)
    local = start.astimezone(ZoneInfo(tz)).date()
    nxt = local + timedelta(days=1) if grain == "day" else calendar.next_month(local)
    return calendar.local_start(nxt, tz).astimezone(start.tzinfo)


def site_timezone(conn: ConnDep, site: SiteScope) -> str:
    tz = registry.site_timezone(conn, site.site_id)
    if tz is None:  # removed between the access check and now
        raise not_found(f"site {site.site_id!r} not found")
    return tz


def visible_org(conn: ConnDep, site: SiteScope, org_id: str | None) -> str | None:
    """The organisation a query is restricted to: the key's own for an enterprise (another
    organisation's id is 404, like every id the key may not see), else the one asked for."""
    if org_id is None:
        return site.org_id
    if site.org_id is not None and org_id != site.org_id:
        raise not_found(f"organisation {org_id!r} not found at site {site.site_id!r}")
    if not registry.organisation_exists(conn, site.site_id, org_id):
        raise not_found(f"organisation {org_id!r} not found at site {site.site_id!r}")
    return org_id


@router.get(
    "/carbon/series",
    response_model=CarbonSeriesOut,
    summary="Energy, tce and carbon of a site per 15 min, hour, day or month",
)
def carbon_series(
    *,
    site: RegistrySite,
    conn: ConnDep,
    ctx: ContextDep,
    start: StartQuery = None,
    end: EndQuery = None,
    grain: GrainQuery = "hour",
    basis: Annotated[
        Literal["location", "market"],
        Query(description="scope-2 electricity: grid average, or contracts and residual mix"),
    ] = "location",
    org_id: Annotated[IdQuery, Query(description="only this organisation's rows")] = None,
    node_id: Annotated[IdQuery, Query(description="only rows booked at this node")] = None,
    carrier: Annotated[Carrier | None, Query()] = None,
    scope: Annotated[Scope | None, Query()] = None,
    category: Annotated[Category | None, Query()] = None,
) -> CarbonSeriesOut:
    tz = site_timezone(conn, site)
    lo, hi = checked_series_range(ctx, tz, grain, start, end)
    org = visible_org(conn, site, org_id)
    if (
        node_id is not None
        and registry.get_node(conn, site.site_id, node_id, org_id=site.org_id) is None
    ):
        raise not_found(f"node {node_id!r} not found at site {site.site_id!r}")
    where = carbon_db.SeriesFilter(
        org_id=org,
        node_id=node_id,
        carrier=carrier.value if carrier else None,
        scope=scope.value if scope else None,
        category=category.value if category else None,
    )
    rows = carbon_db.carbon_series(conn, site.site_id, grain, lo, hi, basis=basis, where=where)
    activity: dict[datetime, list[ActivityOut]] = {}
    for a in carbon_db.activity_series(conn, site.site_id, grain, lo, hi, where=where):
        activity.setdefault(a.period_start, []).append(
            ActivityOut(carrier=a.carrier, activity=a.activity, unit=a.unit)
        )
    points = [
        CarbonPointOut(
            period_start=r.period_start,
            period_end=period_end(grain, r.period_start, tz),
            energy_tce=r.energy_tce,
            zero_carbon_tce=r.zero_carbon_tce,
            tco2e=r.tco2e,
            co2_t=r.co2_t,
            ch4_t=r.ch4_t,
            scope1_tco2e=r.scope1_tco2e,
            scope2_tco2e=r.scope2_tco2e,
            activity=activity.get(r.period_start, []),
            quality=r.quality,
            completeness=r.completeness,
            source_rows=r.rows,
        )
        for r in rows
    ]
    names = ("energy_tce", "zero_carbon_tce", "tco2e", "co2_t", "ch4_t", "scope1_tco2e",
             "scope2_tco2e")  # fmt: skip
    totals = {n: math.fsum(getattr(p, n) for p in points) for n in names}
    return CarbonSeriesOut(
        site_id=site.site_id,
        timezone=tz,
        grain=grain,
        basis=basis,
        start=lo,
        end=hi,
        org_id=org,
        node_id=node_id,
        carrier=where.carrier,
        scope=where.scope,
        category=where.category,
        points=points,
        totals=totals,
    )


@router.get(
    "/devices/{device_id}/energy",
    response_model=DeviceEnergyOut,
    summary="Interval quantities of a device's counter and interval metrics",
)
def device_energy(
    *,
    site: RegistrySite,
    device_id: DeviceIdPath,
    conn: ConnDep,
    ctx: ContextDep,
    start: StartQuery = None,
    end: EndQuery = None,
    grain: GrainQuery = "hour",
    metric: Annotated[
        str | None,
        Query(min_length=1, max_length=64, pattern=r"^[a-z0-9_]+$", description="one metric"),
    ] = None,
) -> DeviceEnergyOut:
    tz = site_timezone(conn, site)
    lo, hi = checked_series_range(ctx, tz, grain, start, end)
    pk = registry.device_pk(conn, site.site_id, device_id, org_id=site.org_id)
    if pk is None:
        raise not_found(f"device {device_id!r} not found at site {site.site_id!r}")
    by_metric: dict[str, DeviceMetricSeriesOut] = {}
    for r in intervals_db.device_series(conn, pk, grain, lo, hi, metric=metric):
        series = by_metric.setdefault(
            r.metric, DeviceMetricSeriesOut(metric=r.metric, unit=r.unit, points=[])
        )
        series.points.append(
            DevicePointOut(
                period_start=r.period_start,
                period_end=period_end(grain, r.period_start, tz),
                quantity=r.quantity,
                unit=r.unit,
                quality=r.quality,
                completeness=r.completeness,
                late=r.late,
                intervals=r.intervals,
            )
        )
    return DeviceEnergyOut(
        site_id=site.site_id,
        device_id=device_id,
        timezone=tz,
        grain=grain,
        start=lo,
        end=hi,
        metrics=list(by_metric.values()),
    )

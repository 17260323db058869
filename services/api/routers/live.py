"""``/api/v1/sites/{site_id}/live``: latest readings with their age, site power now, methane
rates now, and a server-sent-events stream of the snapshot."""

from __future__ import annotations

import functools
import json
import logging
import math
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Annotated

import anyio
import sqlalchemy as sa
from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from carbonflow.domain.factors.library import default_library
from carbonflow.domain.factors.targets import default_targets
from carbonflow.domain.indicators import live
from carbonflow.domain.inventory.methane import MethaneParameters, methane_parameters
from carbonflow.domain.site.model import MetricKind
from carbonflow.storage import readings as readings_db
from services.api.deps import ID_PATTERN, ConnDep, ContextDep, LiveSite, PageDep, SiteScope
from services.api.pagination import fetch_size, page_items
from services.api.problems import ApiProblemError, not_found, problem_body, responses
from services.api.schemas import (
    DeviceFreshnessOut,
    ElectricityNowOut,
    FreshnessOut,
    LatestReadingOut,
    LatestReadingPage,
    LiveSnapshotOut,
    MethaneFlowOut,
    MethaneHourOut,
    MethaneNowOut,
    MethaneTargetOut,
    PowerGroupOut,
    PowerNowOut,
)

log = logging.getLogger(__name__)

router = APIRouter(
    prefix="/api/v1/sites/{site_id}/live",
    tags=["live"],
    responses=responses(401, 403, 404, 422, 429, 500),
)

# Device metrics a snapshot looks at, at most (a site this large pages /live/readings instead).
SNAPSHOT_MAX_DEVICE_METRICS = 50_000
EVENT_STREAM = "text/event-stream"
# One server-sent event, as its fields (https://html.spec.whatwg.org/#server-sent-events).
SSE_EVENT_SCHEMA = {
    "type": "object",
    "properties": {
        "event": {"type": "string", "enum": ["snapshot", "error"]},
        "id": {"type": "string", "description": "1, 2, … within one stream"},
        "data": {
            "type": "string",
            "description": "JSON: a LiveSnapshotOut (snapshot) or a Problem (error)",
        },
        "retry": {"type": "integer", "description": "reconnection delay [ms]"},
    },
}


def _all_latest(
    conn: sa.Connection, site: SiteScope, metrics: Sequence[str] | None
) -> list[live.LatestValue]:
    return readings_db.latest_values(
        conn, site.site_id, org_id=site.org_id, limit=SNAPSHOT_MAX_DEVICE_METRICS, metrics=metrics
    )


def _power_groups(groups: Sequence[live.PowerGroup]) -> list[PowerGroupOut]:
    return [
        PowerGroupOut(
            carrier=g.carrier,
            role=g.role,
            power_kw=g.power_kw,
            devices=g.devices,
            devices_reporting=g.devices_reporting,
            stale_device_ids=list(g.stale_device_ids),
            newest_ts=g.newest_ts,
            oldest_fresh_ts=g.oldest_fresh_ts,
        )
        for g in groups
    ]


def _pct(fraction: float | None) -> float | None:
    return None if fraction is None else 100.0 * fraction


def _targets(indicator: str) -> list[MethaneTargetOut]:
    return [
        MethaneTargetOut(
            year=t.year,
            comparator=t.comparator.value,
            threshold_pct=100.0 * t.threshold,
            source=t.source,
        )
        for t in default_targets().targets
        if t.indicator == indicator and t.unit == "fraction"
    ]


def _methane_hour(
    methane: live.MethaneNow, params: MethaneParameters | None
) -> MethaneHourOut | None:
    if params is None:
        return None
    hour = live.methane_hour(methane, params)
    return MethaneHourOut(
        **{k: v for k, v in asdict(hour).items() if k != "gwp"},
        utilisation_rate_pct=_pct(methane.utilisation_rate),
        drainage_rate_pct=_pct(methane.drainage_rate),
        gwp_tco2e_per_tch4=hour.gwp,
    )


@functools.cache
def methane_params() -> MethaneParameters:
    """The package library's methane parameters (7.17 t/10⁴ Nm³, flare 0.98, use 0.99, GWP set
    SAR as the Chinese guideline), read once: the live panel's rates, not the inventory's."""
    return methane_parameters(default_library())


def _methane_out(
    site_id: str,
    now: datetime,
    stale_after_s: float,
    methane: live.MethaneNow,
    values: Sequence[live.LatestValue] = (),
    params: MethaneParameters | None = None,
) -> MethaneNowOut:
    roles = {r.value for r in live.METHANE_ROLES}
    newest = max((v.ts for v in values if v.role in roles and v.ts is not None), default=None)
    return MethaneNowOut(
        data_as_of=newest,
        data_age_s=None if newest is None else live.age_s(newest, now),
        hour=_methane_hour(methane, params),
        utilisation_targets=_targets("methane_utilisation_rate"),
        drainage_targets=_targets("methane_drainage_rate"),
        site_id=site_id,
        as_of=now,
        stale_after_s=stale_after_s,
        drained_ch4_nm3_min=methane.drained_ch4_nm3_min,
        utilised_ch4_nm3_min=methane.utilised_ch4_nm3_min,
        flared_ch4_nm3_min=methane.flared_ch4_nm3_min,
        vented_ch4_nm3_min=methane.vented_ch4_nm3_min,
        ventilation_ch4_nm3_min=methane.ventilation_ch4_nm3_min,
        utilisation_rate=methane.utilisation_rate,
        drainage_rate=methane.drainage_rate,
        flows=[
            MethaneFlowOut(
                role=f.role,
                ch4_flow_nm3_min=f.ch4_flow_nm3_min,
                gas_flow_nm3_min=f.gas_flow_nm3_min,
                devices=f.devices,
                devices_reporting=f.devices_reporting,
                unmeasured_device_ids=list(f.unmeasured_device_ids),
            )
            for f in methane.flows
        ],
    )


def snapshot(
    conn: sa.Connection, site: SiteScope, now: datetime, stale_after_s: float
) -> LiveSnapshotOut:
    """Power, methane and freshness of the site from one query over its device metrics."""
    values = _all_latest(conn, site, None)
    methane = live.methane_now(values, now, stale_after_s)
    fresh = live.freshness(values, now, stale_after_s)
    devices = live.device_freshness(values, now, stale_after_s)
    groups = live.power_now(values, now, stale_after_s)
    electricity = live.electricity_now(groups)
    share = electricity.renewable_share
    return LiveSnapshotOut(
        site_id=site.site_id,
        as_of=now,
        data_as_of=fresh.newest_ts,
        data_age_s=None if fresh.newest_ts is None else live.age_s(fresh.newest_ts, now),
        state=live.site_state(devices).value,
        stale_after_s=stale_after_s,
        power=_power_groups(groups),
        electricity=ElectricityNowOut(
            power_in_kw=electricity.power_in_kw,
            renewable_kw=electricity.renewable_kw,
            grid_import_kw=electricity.grid_import_kw,
            grid_export_kw=electricity.grid_export_kw,
            net_export_kw=electricity.net_export_kw,
            renewable_share_pct=_pct(share),
        ),
        # Field by field: ``asdict`` deep-copies every value (≈ 45 % of a 1 000-device
        # snapshot's route time went to copying datetimes).
        devices=[
            DeviceFreshnessOut(
                device_id=d.device_id,
                newest_ts=d.newest_ts,
                age_s=d.age_s,
                stale_after_s=d.stale_after_s,
                stale=d.stale,
            )
            for d in devices
        ],
        methane=None
        if methane is None
        else _methane_out(site.site_id, now, stale_after_s, methane, values, methane_params()),
        freshness=FreshnessOut(
            device_metrics=fresh.device_metrics,
            fresh=fresh.fresh,
            stale=fresh.stale,
            never_reported=fresh.never_reported,
            newest_ts=fresh.newest_ts,
        ),
    )


@router.get("", response_model=LiveSnapshotOut, summary="Live snapshot: power, methane, freshness")
def get_snapshot(site: LiveSite, conn: ConnDep, ctx: ContextDep) -> LiveSnapshotOut:
    return snapshot(conn, site, ctx.wall_clock(), ctx.settings.live_stale_s)


@router.get(
    "/readings",
    response_model=LatestReadingPage,
    summary="Latest reading of each device metric, with its age",
)
def latest_readings(
    *,
    site: LiveSite,
    conn: ConnDep,
    ctx: ContextDep,
    page: PageDep,
    request: Request,
    device_id: Annotated[
        str | None, Query(max_length=64, pattern=ID_PATTERN, description="only this device")
    ] = None,
    metric: Annotated[str | None, Query(max_length=64, description="only this metric")] = None,
    metric_kind: Annotated[MetricKind | None, Query(description="only this kind")] = None,
) -> LatestReadingPage:
    now = ctx.wall_clock()
    rows = readings_db.latest_readings(
        conn,
        site.site_id,
        org_id=site.org_id,
        limit=fetch_size(page),
        offset=page.offset,
        device_id=device_id,
        metrics=None if metric is None else [metric],
        metric_kind=metric_kind.value if metric_kind else None,
    )

    def out(row: readings_db.LatestReadingRow) -> LatestReadingOut:
        raw = row.value
        value = None if raw is None else live.true_value(row.metric, raw, row.multiplier)
        return LatestReadingOut(
            device_id=row.device_id,
            metric=row.metric,
            unit=row.unit,
            metric_kind=row.metric_kind,
            ts=row.ts,
            age_s=None if row.ts is None else live.age_s(row.ts, now),
            value=value,
            raw_value=raw,
            multiplier=live.applied_multiplier(row.metric, row.multiplier),
            received_at=row.received_at,
        )

    items, links = page_items(rows, page, request, out)
    return LatestReadingPage(items=items, limit=page.limit, offset=page.offset, links=links)


@router.get("/power", response_model=PowerNowOut, summary="Site power now by carrier and role")
def power_now(site: LiveSite, conn: ConnDep, ctx: ContextDep) -> PowerNowOut:
    now, stale = ctx.wall_clock(), ctx.settings.live_stale_s
    values = _all_latest(conn, site, [live.POWER_METRIC])
    return PowerNowOut(
        site_id=site.site_id,
        as_of=now,
        stale_after_s=stale,
        groups=_power_groups(live.power_now(values, now, stale)),
    )


@router.get(
    "/methane",
    response_model=MethaneNowOut,
    summary="Coal-mine methane drained, utilised, flared, vented now (pure CH4)",
)
def methane_now(site: LiveSite, conn: ConnDep, ctx: ContextDep) -> MethaneNowOut:
    now, stale = ctx.wall_clock(), ctx.settings.live_stale_s
    values = _all_latest(conn, site, live.LIVE_METRICS)
    methane = live.methane_now(values, now, stale)
    if methane is None:
        raise not_found(f"site {site.site_id!r} has no methane devices this key may see")
    return _methane_out(site.site_id, now, stale, methane, values, methane_params())


@router.get(
    "/stream",
    summary="Server-sent events: the live snapshot every few seconds",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "`event: snapshot` with a LiveSnapshotOut as `data`, every "
            "CARBONFLOW_API_STREAM_INTERVAL_S seconds, until CARBONFLOW_API_STREAM_MAX_S or the "
            "client disconnects; `event: error` with a problem as `data` ends it early",
            "content": {EVENT_STREAM: {"schema": SSE_EVENT_SCHEMA}},
        },
        **responses(503),
    },
)
async def stream(site: LiveSite, ctx: ContextDep) -> StreamingResponse:
    settings = ctx.settings
    if ctx.open_streams >= settings.stream_max_open:
        raise ApiProblemError(
            503,
            f"{ctx.open_streams} live streams are open, the most this server allows; "
            "poll /live instead or retry later",
            headers={"Retry-After": str(math.ceil(settings.stream_interval_s))},
        )
    events = max(1, math.ceil(settings.stream_max_s / settings.stream_interval_s))

    def one() -> LiveSnapshotOut:
        with ctx.engine.connect() as conn:
            return snapshot(conn, site, ctx.wall_clock(), settings.live_stale_s)

    async def body() -> AsyncIterator[str]:
        ctx.open_streams += 1
        ctx.metrics.live_streams.set(ctx.open_streams)
        try:
            yield f"retry: {math.ceil(settings.stream_interval_s * 1000)}\n\n"
            for number in range(1, events + 1):
                try:
                    data = await anyio.to_thread.run_sync(one)
                except Exception:
                    log.exception("live stream of %s failed", site.site_id)
                    problem = problem_body(
                        503, "the live snapshot could not be read", instance=None
                    )
                    yield f"event: error\ndata: {json.dumps(problem)}\n\n"
                    return
                yield f"event: snapshot\nid: {number}\ndata: {data.model_dump_json()}\n\n"
                if number < events:
                    await ctx.stream_sleep(settings.stream_interval_s)
        finally:
            ctx.open_streams -= 1
            ctx.metrics.live_streams.set(ctx.open_streams)

    return StreamingResponse(
        body(),
        media_type=EVENT_STREAM,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )

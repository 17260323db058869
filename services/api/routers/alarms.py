"""``/api/v1/sites/{site_id}/alarms``: a site's alarms (open → acknowledged → resolved, with
who and when), acknowledgement and resolution by a person, the notifications' deliveries, and
the site's alarm configuration. Operators and admins acknowledge; regulators read; enterprise
keys see no alarms (they are the site's, not one organisation's). docs/alarms.md."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from pydantic import ValidationError

from carbonflow.domain.alarms.config import AlarmConfig
from carbonflow.domain.alarms.lifecycle import TransitionError, acknowledge, resolve
from carbonflow.domain.alarms.model import Alarm, State
from carbonflow.storage import alarms as alarms_db
from services.api.access import Action
from services.api.deps import ConnDep, ContextDep, PageDep, SiteScope, site_access
from services.api.pagination import fetch_size, page_items
from services.api.problems import ApiProblemError, not_found, responses
from services.api.schemas_alarms import (
    AlarmConfigOut,
    AlarmOut,
    AlarmPage,
    DeliveryOut,
    DeliveryPage,
)

router = APIRouter(
    prefix="/api/v1/sites/{site_id}/alarms",
    tags=["alarms"],
    responses=responses(401, 403, 404, 422, 429, 500),
)

AlarmReadSite = Annotated[SiteScope, Depends(site_access(Action.READ_ALARMS))]
AlarmAckSite = Annotated[SiteScope, Depends(site_access(Action.ACK_ALARMS))]
AlarmConfigSite = Annotated[SiteScope, Depends(site_access(Action.CONFIGURE_ALARMS))]
AlarmIdPath = Annotated[int, Path(ge=1, le=2**62, description="the alarm's id")]


def alarm_out(a: Alarm) -> AlarmOut:
    return AlarmOut(
        alarm_id=a.alarm_id, site_id=a.site_id, rule_id=a.rule_id, source=a.source.value,
        subject=a.subject, severity=a.severity.value, state=a.state.value,
        opened_at=a.opened_at, last_seen_at=a.last_seen_at, message_en=a.message_en,
        message_zh=a.message_zh, value=a.value, threshold=a.threshold, unit=a.unit,
        acknowledged_at=a.acknowledged_at, acknowledged_by=a.acknowledged_by,
        resolved_at=a.resolved_at, resolved_by=a.resolved_by,
        last_notified_at=a.last_notified_at, notifications=a.notifications,
        escalated_at=a.escalated_at,
    )  # fmt: skip


@router.get("", response_model=AlarmPage, summary="A site's alarms, unresolved first, newest first")
def list_alarms(
    site: AlarmReadSite,
    conn: ConnDep,
    page: PageDep,
    request: Request,
    state: Annotated[list[State] | None, Query(description="only these states")] = None,
) -> AlarmPage:
    rows = alarms_db.list_alarms(
        conn, site.site_id, states=state, limit=fetch_size(page), offset=page.offset
    )
    items, links = page_items(rows, page, request, alarm_out)
    return AlarmPage(items=items, limit=page.limit, offset=page.offset, links=links)


def _transition(
    conn: ConnDep, ctx: ContextDep, site: SiteScope, alarm_id: int, *, ack: bool
) -> AlarmOut:
    held = alarms_db.get_alarm(conn, site.site_id, alarm_id, lock=True)
    if held is None:
        raise not_found(f"no alarm {alarm_id} at site {site.site_id!r}")
    who, now = site.principal.key_id, ctx.wall_clock()
    try:
        changed = acknowledge(held, who, now) if ack else resolve(held, who, now)
    except TransitionError as exc:
        raise ApiProblemError(409, str(exc)) from None
    if changed != held:
        alarms_db.store_transition(conn, changed)
        conn.commit()
    return alarm_out(changed)


@router.post(
    "/{alarm_id}/acknowledge",
    response_model=AlarmOut,
    summary="Acknowledge an alarm: no more repeats; it resolves when its condition clears",
    responses=responses(409),
)
def acknowledge_alarm(
    site: AlarmAckSite, conn: ConnDep, ctx: ContextDep, alarm_id: AlarmIdPath
) -> AlarmOut:
    return _transition(conn, ctx, site, alarm_id, ack=True)


@router.post(
    "/{alarm_id}/resolve",
    response_model=AlarmOut,
    summary="Resolve an alarm by hand (it opens again if its condition still holds)",
)
def resolve_alarm(
    site: AlarmAckSite, conn: ConnDep, ctx: ContextDep, alarm_id: AlarmIdPath
) -> AlarmOut:
    return _transition(conn, ctx, site, alarm_id, ack=False)


def _delivery_out(d: alarms_db.Delivery) -> DeliveryOut:
    return DeliveryOut(
        delivery_id=d.delivery_id, site_id=d.site_id, rule_id=d.rule_id,
        alarm_ids=list(d.alarm_ids), channel=d.channel, escalation=d.escalation,
        status=d.status, attempts=d.attempts, last_error=d.last_error,
        created_at=d.created_at, next_attempt_at=d.next_attempt_at, sent_at=d.sent_at,
    )  # fmt: skip


@router.get(
    "/deliveries",
    response_model=DeliveryPage,
    summary="Notifications sent, being retried or given up, newest first",
)
def list_deliveries(
    site: AlarmReadSite,
    conn: ConnDep,
    page: PageDep,
    request: Request,
    failed: Annotated[bool, Query(description="only failed deliveries")] = False,
) -> DeliveryPage:
    rows = alarms_db.list_deliveries(
        conn, site.site_id, limit=fetch_size(page), offset=page.offset, failed_only=failed
    )
    items, links = page_items(rows, page, request, _delivery_out)
    return DeliveryPage(items=items, limit=page.limit, offset=page.offset, links=links)


@router.get("/config", response_model=AlarmConfigOut, summary="The site's alarm configuration")
def get_config(site: AlarmConfigSite, conn: ConnDep) -> AlarmConfigOut:
    row = alarms_db.get_config(conn, site.site_id)
    if row is None:
        return AlarmConfigOut(
            site_id=site.site_id,
            document=AlarmConfig().model_dump(mode="json"),
            updated_at=None,
            updated_by=None,
        )
    return AlarmConfigOut(
        site_id=row.site_id,
        document=dict(row.document),
        updated_at=row.updated_at,
        updated_by=row.updated_by,
    )


@router.put(
    "/config",
    response_model=AlarmConfigOut,
    summary="Replace the site's alarm configuration (admin); the notify service reads it",
    responses=responses(400),
)
def put_config(
    site: AlarmConfigSite,
    conn: ConnDep,
    ctx: ContextDep,
    document: Annotated[dict[str, Any], Body(description="an alarm configuration")],
) -> AlarmConfigOut:
    try:
        config = AlarmConfig.model_validate(document)
    except ValidationError as exc:
        raise ApiProblemError(422, f"invalid alarm configuration: {exc.errors()[:3]}") from None
    stored = config.model_dump(mode="json")
    now = ctx.wall_clock()
    alarms_db.put_config(conn, site.site_id, stored, now, site.principal.key_id)
    conn.commit()
    return AlarmConfigOut(
        site_id=site.site_id, document=stored, updated_at=now, updated_by=site.principal.key_id
    )

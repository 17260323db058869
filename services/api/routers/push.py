"""``/api/v1/push/status``: what the push service has sent to the authorities, per destination
(docs/push.md). Read-only, for admin, operator and regulator keys; a site-bound key sees the
destinations of its sites. Enterprise keys may not: a destination reports a whole site.

``/api/v1/sites/{site_id}/push/energy-batches``: the energy online monitoring batches of a site
with their quality checks; admins and operators release a held (or refused) batch to be sent, or
withdraw it, with a note — audited. Regulators read."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field

from carbonflow.storage import energy_outbox as energy_db
from carbonflow.storage import push as push_db
from services.api.access import Action, Role
from services.api.audit import audit_write
from services.api.deps import ConnDep, ContextDep, PrincipalDep, SiteScope, site_access
from services.api.problems import ApiProblemError, forbidden, not_found, responses

router = APIRouter(prefix="/api/v1/push", tags=["push"], responses=responses(401, 403, 429, 500))


class PushDestinationOut(BaseModel):
    destination: str = Field(description="the destination's name in the push profile")
    site_id: str
    pending_packets: int = Field(description="packets not yet answered [packets]")
    acked_packets: int = Field(description="packets the platform answered [packets]")
    oldest_pending_data_time: datetime | None = Field(
        description="DataTime (period start) of the oldest unanswered packet"
    )
    last_acked_at: datetime | None
    last_sent_at: datetime | None
    last_error: str | None = Field(description="why the oldest pending packet went unanswered")
    next_period_start: dict[str, datetime] = Field(
        description="per data command (CN), the next period to be queued"
    )


class EnergyDestinationOut(BaseModel):
    destination: str = Field(description="the destination's name in the push profile")
    site_id: str
    batches: dict[str, int] = Field(
        description="batches per state: held, pending, sent, refused, withdrawn [batches]"
    )
    oldest_pending_period_start: datetime | None
    last_sent_at: datetime | None = Field(description="the platform's last acceptance")
    last_error: str | None = Field(description="the latest error of a pending or refused batch")


class PushStatusOut(BaseModel):
    items: list[PushDestinationOut]
    energy: list[EnergyDestinationOut] = Field(
        description="energy online monitoring destinations (docs/push.md §3)"
    )


@router.get(
    "/status",
    response_model=PushStatusOut,
    summary="Push to the authorities: backlog, answers and errors per destination",
)
def push_status(principal: PrincipalDep, conn: ConnDep) -> PushStatusOut:
    if principal.role is Role.ENTERPRISE:
        raise forbidden("an enterprise key may not read the push status / 企业密钥无权查看推送状态")
    rows = push_db.push_status(conn, principal.site_ids)
    return PushStatusOut(
        items=[
            PushDestinationOut(
                destination=r.destination,
                site_id=r.site_id,
                pending_packets=r.pending,
                acked_packets=r.acked,
                oldest_pending_data_time=r.oldest_pending,
                last_acked_at=r.last_acked_at,
                last_sent_at=r.last_sent_at,
                last_error=r.last_error,
                next_period_start=r.next_starts,
            )
            for r in rows
        ],
        energy=[
            EnergyDestinationOut(
                destination=e.destination,
                site_id=e.site_id,
                batches=e.counts,
                oldest_pending_period_start=e.oldest_pending,
                last_sent_at=e.last_sent_at,
                last_error=e.last_error,
            )
            for e in energy_db.energy_status(conn, principal.site_ids)
        ],
    )


# --- energy online monitoring: batches and their review -----------------------------------

CHECK_UNITS = {"completeness": "1", "consistency": "1", "period_start": "s"}
"""The unit of each quality rule's measured value and limit (fractions, seconds)."""


class EnergyCheckOut(BaseModel):
    rule: str = Field(description="completeness | consistency | period_start")
    item: str = Field(description="the source checked, or * for the whole batch")
    value: float | None = Field(description="the measured figure [unit]")
    limit: float = Field(description="the rule's limit [unit]")
    unit: str = Field(description="1 (a fraction) or s")
    passed: bool
    text: str = Field(description="the finding in English and Chinese")


class EnergyBatchOut(BaseModel):
    batch_id: int = Field(description="the outbox id")
    destination: str
    site_id: str
    grain: str = Field(description="15min | day | month")
    period_start: datetime
    version: int
    state: str = Field(description="held | pending | sent | refused | withdrawn")
    reasons: list[str] = Field(description="why it is held (failed checks), English and Chinese")
    checks: list[EnergyCheckOut]
    attempts: int = Field(description="POSTs so far [requests]")
    http_status: int | None = Field(description="the platform's last HTTP status")
    last_error: str | None
    created_at: datetime
    last_sent_at: datetime | None
    sent_at: datetime | None = Field(description="when the platform accepted it")
    reviewed_by: str | None = Field(description="the key that released or withdrew it")
    reviewed_at: datetime | None
    review_note: str | None
    body: dict[str, object] = Field(description="the JSON POSTed (docs/push.md §3)")


class EnergyBatchPage(BaseModel):
    items: list[EnergyBatchOut]


class ReviewIn(BaseModel):
    note: str = Field(min_length=1, max_length=1000, description="why, for the record")


def batch_out(row: energy_db.BatchRow) -> EnergyBatchOut:
    try:
        body = json.loads(row.body)
    except ValueError:
        body = {}
    return EnergyBatchOut(
        batch_id=row.outbox_id, destination=row.destination, site_id=row.site_id,
        grain=row.grain, period_start=row.period_start, version=row.version, state=row.state,
        reasons=list(row.reasons),
        checks=[
            EnergyCheckOut(**{**c, "unit": CHECK_UNITS.get(str(c.get("rule")), "1")})
            for c in row.checks
        ],
        attempts=row.attempts, http_status=row.http_status, last_error=row.last_error,
        created_at=row.created_at, last_sent_at=row.last_sent_at, sent_at=row.sent_at,
        reviewed_by=row.reviewed_by, reviewed_at=row.reviewed_at, review_note=row.review_note,
        body=body if isinstance(body, dict) else {},
    )  # fmt: skip


PushReadSite = Annotated[SiteScope, Depends(site_access(Action.READ_PUSH))]
PushReviewSite = Annotated[SiteScope, Depends(site_access(Action.REVIEW_PUSH))]
BatchIdPath = Annotated[int, Path(ge=1, le=2**62, description="the batch's outbox id")]
site_router = APIRouter(
    prefix="/api/v1/sites/{site_id}/push/energy-batches",
    tags=["push"],
    responses=responses(401, 403, 404, 422, 429, 500),
)


@site_router.get(
    "",
    response_model=EnergyBatchPage,
    summary="Energy online monitoring batches of a site, newest first (held ones to review)",
)
def list_energy_batches(
    site: PushReadSite,
    conn: ConnDep,
    state: Annotated[
        Literal["held", "pending", "sent", "refused", "withdrawn"] | None,
        Query(description="only batches in this state"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> EnergyBatchPage:
    rows = energy_db.batches(conn, frozenset({site.site_id}), state=state, limit=limit)
    return EnergyBatchPage(items=[batch_out(r) for r in rows])


def _review(
    conn: ConnDep,
    ctx: ContextDep,
    site: SiteScope,
    request: Request,
    batch_id: int,
    note: str,
    new_state: str,
) -> EnergyBatchOut:
    row = energy_db.batch(conn, batch_id)
    if row is None or row.site_id != site.site_id:
        raise not_found(f"no energy batch {batch_id} at site {site.site_id!r}")
    changed = energy_db.review(
        conn, batch_id, new_state, site.principal.key_id, note, ctx.wall_clock()
    )
    if changed is None:
        raise ApiProblemError(
            409,
            f"batch {batch_id} is {row.state}: only a held or refused batch is reviewed / "
            f"批次 {batch_id} 状态为 {row.state}，仅暂扣或被拒批次可复核",
        )
    audit_write(conn, ctx, site.principal, request, 200)
    conn.commit()
    return batch_out(changed)


@site_router.post(
    "/{batch_id}/release",
    response_model=EnergyBatchOut,
    summary="Release a held or refused batch: the push service sends it as it is",
    responses=responses(400, 409),
)
def release_energy_batch(
    site: PushReviewSite,
    conn: ConnDep,
    ctx: ContextDep,
    request: Request,
    batch_id: BatchIdPath,
    review: ReviewIn,
) -> EnergyBatchOut:
    return _review(conn, ctx, site, request, batch_id, review.note, "pending")


@site_router.post(
    "/{batch_id}/withdraw",
    response_model=EnergyBatchOut,
    summary="Withdraw a held or refused batch: it is never sent",
    responses=responses(400, 409),
)
def withdraw_energy_batch(
    site: PushReviewSite,
    conn: ConnDep,
    ctx: ContextDep,
    request: Request,
    batch_id: BatchIdPath,
    review: ReviewIn,
) -> EnergyBatchOut:
    return _review(conn, ctx, site, request, batch_id, review.note, "withdrawn")

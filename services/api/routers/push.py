"""``/api/v1/push/status``: what the push service has sent to the authorities, per destination
(docs/push.md). Read-only, for admin, operator and regulator keys; a site-bound key sees the
destinations of its sites. Enterprise keys may not: a destination reports a whole site."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from carbonflow.storage import push as push_db
from services.api.access import Role
from services.api.deps import ConnDep, PrincipalDep
from services.api.problems import forbidden, responses

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


class PushStatusOut(BaseModel):
    items: list[PushDestinationOut]


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
        ]
    )

"""``/api/v1/sites/{site_id}/rejections``: readings ingest refused, with the stated reason."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import AwareDatetime

from carbonflow.domain.readings.contract import Reason
from carbonflow.domain.units import UnitError, metric_unit
from carbonflow.storage import readings as readings_db
from services.api.access import Action
from services.api.deps import ID_PATTERN, ConnDep, PageDep, PrincipalDep, RejectionsSite
from services.api.pagination import fetch_size, page_items
from services.api.problems import ApiProblemError, forbidden, responses
from services.api.schemas import (
    RejectionCountOut,
    RejectionOut,
    RejectionPage,
    RejectionSummaryOut,
)


@dataclass(frozen=True, slots=True)
class Received:
    """When rejections were received: [since, until), either end open."""

    since: datetime | None
    until: datetime | None


def _received(
    since: Annotated[
        AwareDatetime | None, Query(description="received at or after (RFC 3339 with offset)")
    ] = None,
    until: Annotated[AwareDatetime | None, Query(description="received before")] = None,
) -> Received:
    if since is not None and until is not None and until < since:
        raise ApiProblemError(422, "until is before since")
    return Received(since, until)


ReceivedDep = Annotated[Received, Depends(_received)]


router = APIRouter(
    prefix="/api/v1/sites/{site_id}/rejections",
    tags=["rejections"],
    responses=responses(401, 403, 404, 422, 429, 500),
)


def _unit(metric: str | None) -> str | None:
    if metric is None:
        return None
    try:
        return metric_unit(metric).symbol
    except UnitError:  # the metric name was part of what was wrong
        return None


def rejection_out(row: readings_db.StoredRejection) -> RejectionOut:
    return RejectionOut(
        rejection_id=row.rejection_id,
        received_at=row.received_at,
        last_seen_at=row.last_seen_at,
        reason=row.reason,
        detail=row.detail,
        topic=row.topic,
        device_id=row.device_id,
        metric=row.metric,
        reading_ts=row.reading_ts,
        value=row.value,
        unit=_unit(row.metric),
        payload_excerpt=row.payload_excerpt,
        payload_bytes=row.payload_bytes,
    )


@router.get("", response_model=RejectionPage, summary="Rejected readings of a site, newest first")
def list_rejections(
    *,
    site: RejectionsSite,
    conn: ConnDep,
    page: PageDep,
    request: Request,
    reason: Annotated[Reason | None, Query(description="only this reason")] = None,
    device_id: Annotated[
        str | None, Query(max_length=64, pattern=ID_PATTERN, description="only this device")
    ] = None,
    metric: Annotated[str | None, Query(max_length=64, description="only this metric")] = None,
    received: ReceivedDep,
) -> RejectionPage:
    rows = readings_db.list_rejections(
        conn,
        site.site_id,
        limit=fetch_size(page),
        offset=page.offset,
        where=readings_db.RejectionFilter(
            reason=reason.value if reason else None,
            device_id=device_id,
            metric=metric,
            since=received.since,
            until=received.until,
        ),
    )
    items, links = page_items(rows, page, request, rejection_out)
    return RejectionPage(items=items, limit=page.limit, offset=page.offset, links=links)


summary_router = APIRouter(
    prefix="/api/v1/rejections",
    tags=["rejections"],
    responses=responses(401, 403, 422, 429, 500),
)
MAX_GROUPS = 1000


@summary_router.get(
    "/unassigned",
    response_model=RejectionPage,
    summary="Rejected readings of no known site (admin), newest first",
    description=(
        "What came on topics no site was recognised in (`unknown_topic`, `unknown_site`, "
        "`wrong_site` …), with the payload excerpt: for an integrator wiring devices."
    ),
)
def list_unassigned(
    *,
    principal: PrincipalDep,
    conn: ConnDep,
    page: PageDep,
    request: Request,
    reason: Annotated[Reason | None, Query(description="only this reason")] = None,
    received: ReceivedDep,
) -> RejectionPage:
    if principal.site_ids is not None:
        raise forbidden(f"a {principal.role.value} key sees its sites' rejections only")
    rows = readings_db.list_rejections(
        conn,
        None,
        limit=fetch_size(page),
        offset=page.offset,
        where=readings_db.RejectionFilter(
            reason=reason.value if reason else None, since=received.since, until=received.until
        ),
    )
    items, links = page_items(rows, page, request, rejection_out)
    return RejectionPage(items=items, limit=page.limit, offset=page.offset, links=links)


@summary_router.get(
    "/summary",
    response_model=RejectionSummaryOut,
    summary="Rejected readings counted per site, reason and device, most first",
    description=(
        "Over the key's sites; an admin key also sees what came on topics no site was "
        "recognised in (`unknown_topic`, `unknown_site`), grouped by topic. At most "
        f"{MAX_GROUPS} groups."
    ),
)
def rejection_summary(
    *,
    principal: PrincipalDep,
    conn: ConnDep,
    received: ReceivedDep,
) -> RejectionSummaryOut:
    if not principal.may(Action.READ_REJECTIONS):
        raise forbidden(f"a {principal.role.value} key may not read rejections")
    sites = None if principal.site_ids is None else sorted(principal.site_ids)
    rows = readings_db.rejection_counts(
        conn, site_ids=sites, since=received.since, until=received.until, limit=MAX_GROUPS + 1
    )
    shown = rows[:MAX_GROUPS]
    return RejectionSummaryOut(
        since=received.since,
        until=received.until,
        total_rejections=sum(r.rejections for r in shown),
        truncated=len(rows) > MAX_GROUPS,
        groups=[
            RejectionCountOut(
                site_id=r.site_id, reason=r.reason, device_id=r.device_id, topic=r.topic,
                rejections=r.rejections, first_received_at=r.first_received_at,
                last_seen_at=r.last_seen_at,
            )
            for r in shown
        ],
    )  # fmt: skip

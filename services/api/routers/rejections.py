"""``/api/v1/sites/{site_id}/rejections``: readings ingest refused, with the stated reason."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import AwareDatetime

from carbonflow.domain.readings.contract import Reason
from carbonflow.domain.units import UnitError, metric_unit
from carbonflow.storage import readings as readings_db
from services.api.deps import ID_PATTERN, ConnDep, PageDep, RejectionsSite
from services.api.pagination import fetch_size, page_items
from services.api.problems import ApiProblemError, responses
from services.api.schemas import RejectionOut, RejectionPage

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
    since: Annotated[
        AwareDatetime | None, Query(description="received at or after (RFC 3339 with offset)")
    ] = None,
    until: Annotated[AwareDatetime | None, Query(description="received before")] = None,
) -> RejectionPage:
    if since is not None and until is not None and until < since:
        raise ApiProblemError(422, "until is before since")
    rows = readings_db.list_rejections(
        conn,
        site.site_id,
        limit=fetch_size(page),
        offset=page.offset,
        where=readings_db.RejectionFilter(
            reason=reason.value if reason else None,
            device_id=device_id,
            metric=metric,
            since=since,
            until=until,
        ),
    )
    items, links = page_items(rows, page, request, rejection_out)
    return RejectionPage(items=items, limit=page.limit, offset=page.offset, links=links)

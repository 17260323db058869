"""``/api/v1/sites/{site_id}/devices``: meters and instruments with their metrics and units."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request

from carbonflow.domain.site.model import Carrier, DeviceKind, Role
from carbonflow.storage import registry as registry_db
from services.api.deps import ConnDep, PageDep, RegistrySite, id_path
from services.api.pagination import fetch_size, page_items
from services.api.problems import not_found, responses
from services.api.schemas import DeviceOut, DevicePage, MetricOut

router = APIRouter(
    prefix="/api/v1/sites/{site_id}/devices",
    tags=["registry"],
    responses=responses(401, 403, 404, 422, 429, 500),
)

DeviceIdPath = Annotated[str, id_path("device", "drainage-high")]


def device_out(row: registry_db.DeviceRow) -> DeviceOut:
    return DeviceOut(
        site_id=row.site_id,
        device_id=row.device_id,
        name=row.name,
        kind=row.kind,
        carrier=row.carrier,
        role=row.role,
        node_id=row.node_id,
        org_id=row.org_id,
        multiplier=row.multiplier,
        counter_modulus=row.counter_modulus,
        active=row.active,
        metrics=[
            MetricOut(name=m.name, unit=m.unit, kind=m.kind, rated_max=m.rated_max)
            for m in row.metrics
        ],
    )


@router.get("", response_model=DevicePage, summary="Devices of a site")
def list_devices(
    *,
    site: RegistrySite,
    conn: ConnDep,
    page: PageDep,
    request: Request,
    org_id: Annotated[
        str | None, Query(max_length=64, description="only this organisation's")
    ] = None,
    node_id: Annotated[str | None, Query(max_length=64, description="only at this node")] = None,
    kind: Annotated[DeviceKind | None, Query()] = None,
    carrier: Annotated[Carrier | None, Query()] = None,
    role: Annotated[Role | None, Query()] = None,
    status: Annotated[
        Literal["active", "inactive", "all"],
        Query(
            description="active devices (default), inactive ones (no longer in the site "
            "file), or all"
        ),
    ] = "active",
) -> DevicePage:
    rows = registry_db.list_devices(
        conn,
        site.site_id,
        org_id=site.org_id,
        limit=fetch_size(page),
        offset=page.offset,
        where=registry_db.DeviceFilter(
            of_org=org_id,
            node_id=node_id,
            kind=kind.value if kind else None,
            carrier=carrier.value if carrier else None,
            role=role.value if role else None,
            active={"active": True, "inactive": False, "all": None}[status],
        ),
    )
    items, links = page_items(rows, page, request, device_out)
    return DevicePage(items=items, limit=page.limit, offset=page.offset, links=links)


@router.get("/{device_id}", response_model=DeviceOut, summary="One device")
def get_device(site: RegistrySite, device_id: DeviceIdPath, conn: ConnDep) -> DeviceOut:
    row = registry_db.get_device(conn, site.site_id, device_id, org_id=site.org_id)
    if row is None:
        raise not_found(f"device {device_id!r} not found at site {site.site_id!r}")
    return device_out(row)

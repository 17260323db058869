"""``/api/v1/sites``: the parks, mines and enterprises this key may see."""

from __future__ import annotations

from fastapi import APIRouter, Request

from carbonflow.storage import registry as registry_db
from services.api.access import Action
from services.api.deps import ConnDep, PageDep, PrincipalDep, RegistrySite
from services.api.pagination import fetch_size, page_items
from services.api.problems import forbidden, not_found, responses
from services.api.schemas import SiteOut, SitePage

router = APIRouter(prefix="/api/v1/sites", tags=["registry"], responses=responses(401, 429, 500))


def site_out(row: registry_db.SiteRow) -> SiteOut:
    return SiteOut(
        site_id=row.site_id,
        name=row.name,
        name_zh=row.name_zh,
        kind=row.kind,
        timezone=row.timezone,
        province=row.province,
        grid_region=row.grid_region,
        latitude_deg=row.latitude_deg,
        longitude_deg=row.longitude_deg,
        baseline_year=row.baseline_year,
        loaded_at=row.loaded_at,
        organisation_count=row.organisations,
        node_count=row.nodes,
        device_count=row.devices,
    )


@router.get(
    "",
    response_model=SitePage,
    summary="Sites this key may see",
    responses=responses(403, 422),
)
def list_sites(principal: PrincipalDep, conn: ConnDep, page: PageDep, request: Request) -> SitePage:
    if not principal.may(Action.READ_REGISTRY):
        raise forbidden(f"a {principal.role.value} key may not read the registry")
    rows = registry_db.list_sites(
        conn,
        site_ids=principal.site_ids,
        org_id=principal.org_scope,
        limit=fetch_size(page),
        offset=page.offset,
    )
    items, links = page_items(rows, page, request, site_out)
    return SitePage(items=items, limit=page.limit, offset=page.offset, links=links)


@router.get(
    "/{site_id}",
    response_model=SiteOut,
    summary="One site",
    responses=responses(403, 404, 422),
)
def get_site(site: RegistrySite, conn: ConnDep) -> SiteOut:
    row = registry_db.get_site(conn, site.site_id, org_id=site.org_id)
    if row is None:  # deleted since the access check
        raise not_found(f"site {site.site_id!r} not found")
    return site_out(row)

"""``/api/v1/sites/{site_id}/organisations``: enterprises of a park, the company of a mine."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request

from carbonflow.storage import registry as registry_db
from services.api.deps import ConnDep, PageDep, RegistrySite, id_path
from services.api.pagination import fetch_size, page_items
from services.api.problems import not_found, responses
from services.api.schemas import OrganisationOut, OrganisationPage

router = APIRouter(
    prefix="/api/v1/sites/{site_id}/organisations",
    tags=["registry"],
    responses=responses(401, 403, 404, 422, 429, 500),
)

OrgIdPath = Annotated[str, id_path("organisation", "cathode-plant")]


def organisation_out(row: registry_db.OrganisationRow) -> OrganisationOut:
    return OrganisationOut(
        site_id=row.site_id,
        org_id=row.org_id,
        name=row.name,
        name_zh=row.name_zh,
        industry=row.industry,
    )


@router.get("", response_model=OrganisationPage, summary="Organisations of a site")
def list_organisations(
    site: RegistrySite, conn: ConnDep, page: PageDep, request: Request
) -> OrganisationPage:
    rows = registry_db.list_organisations(
        conn, site.site_id, org_id=site.org_id, limit=fetch_size(page), offset=page.offset
    )
    items, links = page_items(rows, page, request, organisation_out)
    return OrganisationPage(items=items, limit=page.limit, offset=page.offset, links=links)


@router.get("/{org_id}", response_model=OrganisationOut, summary="One organisation")
def get_organisation(site: RegistrySite, org_id: OrgIdPath, conn: ConnDep) -> OrganisationOut:
    row = registry_db.get_organisation(conn, site.site_id, org_id, org_id=site.org_id)
    if row is None:
        raise not_found(f"organisation {org_id!r} not found at site {site.site_id!r}")
    return organisation_out(row)

"""``/api/v1/sites/{site_id}/nodes``: process units, buildings and utilities of the flow graph."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from carbonflow.domain.site.model import NodeKind
from carbonflow.storage import registry as registry_db
from services.api.deps import ConnDep, PageDep, RegistrySite, id_path
from services.api.pagination import fetch_size, page_items
from services.api.problems import not_found, responses
from services.api.schemas import NodeOut, NodePage

router = APIRouter(
    prefix="/api/v1/sites/{site_id}/nodes",
    tags=["registry"],
    responses=responses(401, 403, 404, 422, 429, 500),
)

NodeIdPath = Annotated[str, id_path("node", "gas-drainage-station")]


def node_out(row: registry_db.NodeRow) -> NodeOut:
    return NodeOut(
        site_id=row.site_id,
        node_id=row.node_id,
        name=row.name,
        name_zh=row.name_zh,
        kind=row.kind,
        org_id=row.org_id,
        production_system=row.production_system,
    )


@router.get("", response_model=NodePage, summary="Nodes of a site")
def list_nodes(
    *,
    site: RegistrySite,
    conn: ConnDep,
    page: PageDep,
    request: Request,
    org_id: Annotated[
        str | None, Query(max_length=64, description="only this organisation's")
    ] = None,
    kind: Annotated[NodeKind | None, Query(description="only nodes of this kind")] = None,
) -> NodePage:
    rows = registry_db.list_nodes(
        conn,
        site.site_id,
        org_id=site.org_id,
        limit=fetch_size(page),
        offset=page.offset,
        of_org=org_id,
        kind=kind.value if kind else None,
    )
    items, links = page_items(rows, page, request, node_out)
    return NodePage(items=items, limit=page.limit, offset=page.offset, links=links)


@router.get("/{node_id}", response_model=NodeOut, summary="One node")
def get_node(site: RegistrySite, node_id: NodeIdPath, conn: ConnDep) -> NodeOut:
    row = registry_db.get_node(conn, site.site_id, node_id, org_id=site.org_id)
    if row is None:
        raise not_found(f"node {node_id!r} not found at site {site.site_id!r}")
    return node_out(row)

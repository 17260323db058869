"""``/api/v1/factor-sets/{id}`` (the factors behind a result row) and ``/api/v1/factors`` (the
factor library, read-only): where every figure's factors come from."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request

from carbonflow.storage import carbon as carbon_db
from carbonflow.storage import db, reference
from services.api.deps import ConnDep, PageDep, PrincipalDep
from services.api.pagination import fetch_size, page_items
from services.api.problems import not_found, responses
from services.api.schemas_carbon import (
    FactorRecordOut,
    FactorSetOut,
    FactorValueOut,
    FactorValuePage,
)

router = APIRouter(prefix="/api/v1", tags=["factors"], responses=responses(401, 404, 422, 429, 500))

# calc_factor_set ids are PostgreSQL integers.
MAX_INT4 = 2**31 - 1
# Free-text filters: no control characters (PostgreSQL text cannot hold NUL).
PRINTABLE = r"^[^\x00-\x1f\x7f]+$"


@router.get(
    "/factor-sets/{factor_set_id}",
    response_model=FactorSetOut,
    summary="The factors behind a carbon result row (its factor_set_id)",
)
def get_factor_set(
    *,
    principal: PrincipalDep,
    conn: ConnDep,
    factor_set_id: Annotated[
        int, Path(ge=1, le=MAX_INT4, description="factor_set_id of a result row", examples=[1])
    ],
) -> FactorSetOut:
    # A set exists for a key only when a row it may see uses it: ids must not reveal what other
    # sites or organisations are computed with.
    visible = carbon_db.factor_set_visible(
        conn, factor_set_id, site_ids=principal.site_ids, org_id=principal.org_scope
    )
    records = carbon_db.factor_set(db.psycopg_of(conn), factor_set_id) if visible else []
    if not records:
        raise not_found(f"factor set {factor_set_id} not found")
    return FactorSetOut(
        factor_set_id=factor_set_id,
        factors=[FactorRecordOut.model_validate(r) for r in records],
    )


@router.get("/factors", response_model=FactorValuePage, summary="The factor library")
def list_factors(
    *,
    _principal: PrincipalDep,
    conn: ConnDep,
    page: PageDep,
    request: Request,
    key: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=200,
            pattern=PRINTABLE,
            description="factor keys starting with this",
            examples=["electricity."],
        ),
    ] = None,
    file: Annotated[str | None, Query(min_length=1, max_length=200, pattern=PRINTABLE)] = None,
    version: Annotated[str | None, Query(min_length=1, max_length=200, pattern=PRINTABLE)] = None,
    confidence: Annotated[Literal["A", "B+", "B", "U"] | None, Query()] = None,
    status: Annotated[
        Literal["current", "all"],
        Query(description="current file versions only (default), or superseded ones too"),
    ] = "current",
) -> FactorValuePage:
    rows = reference.list_factor_values(
        conn,
        where=reference.FactorFilter(
            key_prefix=key,
            file_name=file,
            version=version,
            confidence=confidence,
            current_only=status == "current",
        ),
        limit=fetch_size(page),
        offset=page.offset,
    )

    def out(r: reference.FactorValueRow) -> FactorValueOut:
        return FactorValueOut(
            factor_key=r.factor_key,
            value=r.value,
            unit=r.unit,
            confidence=r.confidence,
            data_year=r.data_year,
            valid_from=r.valid_from,
            valid_to=r.valid_to,
            source_id=r.source_id,
            source=r.source,
            note=r.note,
            file_name=r.file_name,
            version=r.version,
            current=r.superseded_at is None,
        )

    items, links = page_items(rows, page, request, out)
    return FactorValuePage(items=items, limit=page.limit, offset=page.offset, links=links)

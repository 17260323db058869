"""``/api/v1/sites/{site_id}/green-instruments``: the green-power register (market-based inputs).

Contracts (绿电交易), direct supply (绿电直连) and certificates (绿证) with their evidence,
validity, volume and the volume claimed for a period. The calc service reads the same table
(``green_instrument``, revision 0002) and recomputes the affected years when an entry changes.
An admin writes for any organisation of the site (or none: the site itself); an enterprise key
writes only its own organisation's entries; operators and regulators read. Every write is
recorded in the audit log in the same transaction.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from carbonflow.storage import reference, registry
from carbonflow.storage.access import AuditEntry, write_audit
from services.api.access import Role
from services.api.deps import (
    ConnDep,
    ContextDep,
    GreenReadSite,
    GreenWriteSite,
    PageDep,
    SiteScope,
)
from services.api.pagination import fetch_size, page_items
from services.api.problems import ApiProblemError, forbidden, not_found, responses
from services.api.schemas import (
    GreenInstrumentIn,
    GreenInstrumentOut,
    GreenInstrumentPage,
    InstrumentKind,
)

router = APIRouter(
    prefix="/api/v1/sites/{site_id}/green-instruments",
    tags=["green power"],
    responses=responses(401, 403, 404, 422, 429, 500),
)

# Evidence numbers: certificate batches, contract numbers; no spaces or slashes.
INSTRUMENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
InstrumentIdPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=128,
        pattern=INSTRUMENT_ID_PATTERN,
        description="the instrument's id at the site, e.g. its contract or certificate number",
        examples=["GEC-2026-NM-000123"],
    ),
]


def instrument_out(row: reference.GreenInstrumentRow) -> GreenInstrumentOut:
    return GreenInstrumentOut(
        site_id=row.site_id,
        instrument_id=row.instrument_id,
        kind=row.kind,
        org_id=row.org_id,
        evidence=row.evidence,
        certificates=row.certificates,
        volume_mwh=row.volume_mwh,
        valid_from=row.valid_from,
        valid_to=row.valid_to,
        claimed_mwh=row.claimed_mwh,
        claim_start=row.claim_start,
        claim_end=row.claim_end,
        created_at=row.created_at,
        updated_at=row.updated_at,
        serial_first=row.serial_first,
        serial_last=row.serial_last,
    )


@router.get("", response_model=GreenInstrumentPage, summary="Green-power register of a site")
def list_instruments(
    *,
    site: GreenReadSite,
    conn: ConnDep,
    page: PageDep,
    request: Request,
    kind: Annotated[InstrumentKind | None, Query(description="only this kind")] = None,
    valid_on: Annotated[
        date | None, Query(description="only instruments valid on this day")
    ] = None,
) -> GreenInstrumentPage:
    rows = reference.list_green_instruments(
        conn,
        site.site_id,
        org_id=site.org_id,
        limit=fetch_size(page),
        offset=page.offset,
        kind=kind,
        valid_on=valid_on,
    )
    items, links = page_items(rows, page, request, instrument_out)
    return GreenInstrumentPage(items=items, limit=page.limit, offset=page.offset, links=links)


@router.get("/{instrument_id}", response_model=GreenInstrumentOut, summary="One instrument")
def get_instrument(
    site: GreenReadSite, instrument_id: InstrumentIdPath, conn: ConnDep
) -> GreenInstrumentOut:
    row = reference.get_green_instrument(conn, site.site_id, instrument_id, org_id=site.org_id)
    if row is None:
        raise not_found(f"green instrument {instrument_id!r} not found at site {site.site_id!r}")
    return instrument_out(row)


def _owner(site: SiteScope, body: GreenInstrumentIn) -> str | None:
    """The organisation the entry is written for: an enterprise writes for its own only."""
    principal = site.principal
    if principal.role is Role.ENTERPRISE:
        if body.org_id is not None and body.org_id != principal.org_id:
            raise forbidden(
                f"an enterprise key registers instruments for its own organisation "
                f"({principal.org_id}) only"
            )
        return principal.org_id
    return body.org_id


def _audit(ctx: ContextDep, site: SiteScope, request: Request, status: int) -> AuditEntry:
    client = request.client
    return AuditEntry(
        at=ctx.wall_clock(),
        key_id=site.principal.key_id,
        role=site.principal.role.value,
        method=request.method,
        route=router.prefix + "/{instrument_id}",
        path=request.url.path,
        path_params={k: str(v) for k, v in request.path_params.items()},
        query={k: request.query_params.getlist(k) for k in request.query_params},
        status=status,
        client=client.host if client else None,
    )


@router.put(
    "/{instrument_id}",
    response_model=GreenInstrumentOut,
    summary="Register or replace an instrument (admin; enterprise for its own organisation)",
    responses={
        201: {"model": GreenInstrumentOut, "description": "Created"},
        **responses(400, 409),
    },
)
def put_instrument(
    *,
    site: GreenWriteSite,
    instrument_id: InstrumentIdPath,
    body: GreenInstrumentIn,
    conn: ConnDep,
    ctx: ContextDep,
    request: Request,
    response: Response,
) -> GreenInstrumentOut:
    owner = _owner(site, body)
    if owner is not None and not registry.organisation_exists(conn, site.site_id, owner):
        raise ApiProblemError(
            422, f"organisation {owner!r} is not registered at site {site.site_id!r}"
        )
    values = reference.GreenInstrumentValues(
        org_id=owner,
        kind=body.kind,
        evidence=body.evidence,
        certificates=body.certificates,
        volume_mwh=body.volume_mwh,
        valid_from=body.valid_from,
        valid_to=body.valid_to,
        claimed_mwh=body.claimed_mwh,
        claim_start=body.claim_start,
        claim_end=body.claim_end,
        serial_first=body.serial_first,
        serial_last=body.serial_last,
    )
    try:
        row, created = reference.put_green_instrument(
            conn, site.site_id, instrument_id, values, org_id=site.org_id
        )
    except reference.InstrumentOwnedElsewhere:
        raise ApiProblemError(
            409,
            f"instrument {instrument_id!r} is already registered at site {site.site_id!r} by "
            "another party; one piece of evidence is claimed once",
        ) from None
    except reference.SerialRangeTaken as taken:
        raise ApiProblemError(
            409,
            f"certificate serials {body.serial_first}–{body.serial_last} overlap a batch already "
            f"registered: {taken}; each certificate is registered once on the platform",
        ) from None
    response.status_code = 201 if created else 200
    write_audit(conn, _audit(ctx, site, request, response.status_code))
    conn.commit()
    return instrument_out(row)


@router.delete(
    "/{instrument_id}",
    status_code=204,
    summary="Remove an instrument (admin; enterprise for its own organisation)",
)
def delete_instrument(
    *,
    site: GreenWriteSite,
    instrument_id: InstrumentIdPath,
    conn: ConnDep,
    ctx: ContextDep,
    request: Request,
) -> Response:
    if not reference.delete_green_instrument(conn, site.site_id, instrument_id, org_id=site.org_id):
        raise not_found(f"green instrument {instrument_id!r} not found at site {site.site_id!r}")
    write_audit(conn, _audit(ctx, site, request, 204))
    conn.commit()
    return Response(status_code=204)

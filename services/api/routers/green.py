"""``/api/v1/sites/{site_id}/green-instruments``: the green-power register (market-based inputs).

Contracts (绿电交易), direct supply (绿电直连) and certificates (绿证) with their evidence,
validity, volume and the volume claimed for a period. The calc service reads the same table
(``green_instrument``, revision 0002) and recomputes the affected years when an entry changes.
Every entry has one holder (docs/green.md, "Batches"): an admin names an organisation of the
site (or the park's common account, the ``common`` organisation of the site file's
``attribution``); without one, the site's only organisation holds it, and on a site of several
organisations the entry is refused (422). An enterprise key writes only its own organisation's
entries; operators and regulators read. Every write is
recorded in the audit log in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from fastapi import APIRouter, Path, Query, Request, Response

from carbonflow.domain import calendar
from carbonflow.domain.inventory.certificates import (
    Batch,
    ClaimRequest,
    Refusal,
    batch_status,
    check_cancel,
    check_claim,
    check_transfer,
    check_withdraw,
    claimed_mwh,
    expires_on,
    unclaimed_mwh,
)
from carbonflow.storage import certificates as certificates_db
from carbonflow.storage import reference, registry
from carbonflow.storage.access import AuditEntry, write_audit
from services.api.access import Role
from services.api.audit import audit_write
from services.api.context import ApiContext
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
    MAX_SERIAL,
    GreenClaimIn,
    GreenClaimOut,
    GreenClaimPage,
    GreenInstrumentIn,
    GreenInstrumentOut,
    GreenInstrumentPage,
    GreenTransferIn,
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


def instrument_out(
    row: reference.GreenInstrumentRow,
    claims: Sequence[certificates_db.ClaimRow],
    today: date,
) -> GreenInstrumentOut:
    """The entry as served; a register batch adds its state on ``today`` (site-local)."""
    state: dict[str, Any] = {}
    if row.production_month is not None:
        batch = Batch(
            row.kind, row.volume_mwh, row.production_month, row.serial_first, row.serial_last,
            row.cancelled_at is not None,
        )  # fmt: skip
        active = [c.claim() for c in claims]
        claimed = claimed_mwh(active)
        state = {
            "production_month": f"{row.production_month:%Y-%m}",
            "status": batch_status(batch, active, today).value,
            "expires_on": expires_on(row.production_month),
            "register_claimed_mwh": claimed,
            "held_mwh": 0.0 if batch.cancelled else unclaimed_mwh(batch, active),
        }
    return GreenInstrumentOut(
        **state,
        source_project=row.source_project,
        tradable=row.tradable,
        evidence_sha256=row.evidence_sha256,
        cancelled_at=row.cancelled_at,
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
    ctx: ContextDep,
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
    today = _today(conn, ctx, site.site_id)
    claims = certificates_db.claims_by_batch(
        conn, site.site_id, [r.instrument_id for r in rows if r.production_month is not None]
    )
    items, links = page_items(
        rows, page, request, lambda r: instrument_out(r, claims.get(r.instrument_id, []), today)
    )
    return GreenInstrumentPage(items=items, limit=page.limit, offset=page.offset, links=links)


@router.get("/{instrument_id}", response_model=GreenInstrumentOut, summary="One instrument")
def get_instrument(
    site: GreenReadSite, instrument_id: InstrumentIdPath, conn: ConnDep, ctx: ContextDep
) -> GreenInstrumentOut:
    return _instrument(conn, ctx, site, instrument_id)


def _instrument(
    conn: sa.Connection, ctx: ApiContext, site: SiteScope, instrument_id: str
) -> GreenInstrumentOut:
    row = reference.get_green_instrument(conn, site.site_id, instrument_id, org_id=site.org_id)
    if row is None:
        raise _missing(site, instrument_id)
    claims = certificates_db.claims_of(conn, site.site_id, instrument_id, active_only=True)
    return instrument_out(row, claims, _today(conn, ctx, site.site_id))


def _missing(site: SiteScope, instrument_id: str) -> ApiProblemError:
    return not_found(
        f"green instrument {instrument_id!r} not found at site {site.site_id!r} / "
        f"站点 {site.site_id!r} 无绿色电力凭证 {instrument_id!r}"
    )


def _today(conn: sa.Connection, ctx: ApiContext, site_id: str) -> date:
    """Today in the site's time zone (expiry is a date function of it)."""
    tz = registry.site_timezone(conn, site_id) or "UTC"
    return ctx.wall_clock().astimezone(ZoneInfo(tz)).date()


def _owner(conn: sa.Connection, site: SiteScope, body: GreenInstrumentIn) -> str | None:
    """The organisation the entry is written for (its holder): an enterprise writes for its own
    only; an admin names one, or the site's only organisation holds it (422 on a site of several
    organisations: nothing is held site-wide)."""
    principal = site.principal
    if principal.role is Role.ENTERPRISE:
        if body.org_id is not None and body.org_id != principal.org_id:
            raise forbidden(
                f"an enterprise key registers instruments for its own organisation "
                f"({principal.org_id}) only"
            )
        return principal.org_id
    if body.org_id is not None:
        return body.org_id
    orgs = registry.organisation_ids(conn, site.site_id)
    if len(orgs) > 1:
        raise ApiProblemError(
            422,
            f"site {site.site_id!r} has several organisations: give the instrument's holder "
            "(org_id), an organisation of the site or the park's common account; an instrument "
            "covers its holder's share only, never the whole site / "
            f"站点 {site.site_id!r} 有多个组织：须指定凭证持有者（org_id，站点内的组织或"
            "园区公共账户）；凭证只抵扣持有者自身的份额，不抵扣全站",
        )
    return orgs[0] if orgs else None


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
    owner = _owner(conn, site, body)
    if owner is not None and not registry.organisation_exists(conn, site.site_id, owner):
        raise ApiProblemError(
            422,
            f"organisation {owner!r} is not registered at site {site.site_id!r} / "
            f"组织 {owner!r} 未在站点 {site.site_id!r} 登记",
        )
    if body.production_month is not None and owner is None:
        raise ApiProblemError(
            422,
            "a register batch (production_month) needs its holder organisation: give org_id / "
            "登记批次须指定持有组织（org_id）",
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
        production_month=_first_day(body.production_month),
        source_project=body.source_project,
        tradable=body.tradable,
        evidence_sha256=body.evidence_sha256,
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
            f"registered: {taken}; each certificate is registered once on the platform / "
            f"证书序号与已登记批次重叠（站点 {taken.site_id!r}，批次 {taken.instrument_id!r}）；"
            "每张证书在平台上只能登记一次",
        ) from None
    except reference.BatchLocked:
        raise _locked(instrument_id) from None
    response.status_code = 201 if created else 200
    write_audit(conn, _audit(ctx, site, request, response.status_code))
    conn.commit()
    return instrument_out(row, [], _today(conn, ctx, site.site_id))


def _locked(instrument_id: str) -> ApiProblemError:
    return ApiProblemError(
        409,
        f"batch {instrument_id!r} is cancelled or has active claims: it cannot be replaced or "
        f"removed (withdraw its claims first; a cancelled batch is final) / 批次 "
        f"{instrument_id!r} 已注销或有有效申领，不能替换或删除（请先撤回申领；注销不可恢复）",
    )


def _first_day(month: str | None) -> date | None:
    return None if month is None else date(int(month[:4]), int(month[5:7]), 1)


@router.delete(
    "/{instrument_id}",
    status_code=204,
    summary="Remove an instrument (admin; enterprise for its own organisation)",
    responses=responses(409),
)
def delete_instrument(
    *,
    site: GreenWriteSite,
    instrument_id: InstrumentIdPath,
    conn: ConnDep,
    ctx: ContextDep,
    request: Request,
) -> Response:
    try:
        deleted = reference.delete_green_instrument(
            conn, site.site_id, instrument_id, org_id=site.org_id
        )
    except reference.BatchLocked:
        raise _locked(instrument_id) from None
    if not deleted:
        raise _missing(site, instrument_id)
    write_audit(conn, _audit(ctx, site, request, 204))
    conn.commit()
    return Response(status_code=204)


# --- the certificate register: claims, withdrawal, cancellation (docs/green.md) ---------------

ClaimIdPath = Annotated[int, Path(ge=1, le=MAX_SERIAL, description="the claim's number")]


def claim_out(row: certificates_db.ClaimRow) -> GreenClaimOut:
    return GreenClaimOut(
        claim_id=row.claim_id,
        site_id=row.site_id,
        instrument_id=row.instrument_id,
        org_id=row.org_id,
        month=f"{row.month:%Y-%m}",
        mwh=row.mwh,
        serial_first=row.serial_first,
        serial_last=row.serial_last,
        state="active" if row.withdrawn_at is None else "withdrawn",
        claimed_at=row.claimed_at,
        claimed_by=row.claimed_by,
        withdrawn_at=row.withdrawn_at,
        withdrawn_by=row.withdrawn_by,
    )


def _register_batch(
    conn: sa.Connection, site: SiteScope, instrument_id: str
) -> tuple[certificates_db.BatchRow, Batch, str]:
    """The batch the caller may see, as a register batch with its holder (else 404 / 409)."""
    row = certificates_db.get_batch(conn, site.site_id, instrument_id, org_id=site.org_id)
    if row is None:
        raise _missing(site, instrument_id)
    batch = row.batch()
    if batch is None or row.org_id is None:
        raise ApiProblemError(
            409,
            f"instrument {instrument_id!r} is a period instrument (no production month, or no "
            "holder): it is applied by its claim period, not by claims / 该凭证为按期间使用的"
            "凭证（无生产月份或持有者），不能申领",
        )
    return row, batch, row.org_id


@router.get(
    "/{instrument_id}/claims",
    response_model=GreenClaimPage,
    summary="Claims of a register batch, active and withdrawn",
)
def list_claims(
    *,
    site: GreenReadSite,
    instrument_id: InstrumentIdPath,
    conn: ConnDep,
    page: PageDep,
    request: Request,
) -> GreenClaimPage:
    if certificates_db.get_batch(conn, site.site_id, instrument_id, org_id=site.org_id) is None:
        raise _missing(site, instrument_id)
    rows = certificates_db.claims_of(conn, site.site_id, instrument_id)
    window = rows[page.offset : page.offset + fetch_size(page)]
    items, links = page_items(window, page, request, claim_out)
    return GreenClaimPage(items=items, limit=page.limit, offset=page.offset, links=links)


@router.post(
    "/{instrument_id}/claims",
    status_code=201,
    response_model=GreenClaimOut,
    summary="Claim (part of) a batch for the holder's own consumption of one month",
    responses=responses(400, 409),
)
def post_claim(
    *,
    site: GreenWriteSite,
    instrument_id: InstrumentIdPath,
    body: GreenClaimIn,
    conn: ConnDep,
    ctx: ContextDep,
    request: Request,
) -> GreenClaimOut:
    certificates_db.lock_register(conn)
    _row, batch, holder = _register_batch(conn, site, instrument_id)
    tz = registry.site_timezone(conn, site.site_id) or "UTC"
    first = _first_day(body.month)
    assert first is not None
    start, end = calendar.month_bounds(first, tz)
    claims = certificates_db.claims_of(conn, site.site_id, instrument_id, active_only=True)
    wanted = check_claim(
        batch,
        [c.claim() for c in claims],
        ClaimRequest(first, body.mwh, body.serial_first, body.serial_last),
        today=_today(conn, ctx, site.site_id),
        consumption_mwh=certificates_db.holder_consumption_mwh(
            conn, site.site_id, holder, start, end
        ),
        holder_claimed_mwh=certificates_db.holder_claimed_mwh(conn, holder, first),
        ledger_closed=certificates_db.ledger_closed(conn, site.site_id, holder, first),
    )
    if isinstance(wanted, Refusal):
        raise ApiProblemError(wanted.status, wanted.detail)
    row = certificates_db.insert_claim(
        conn, site.site_id, instrument_id, holder, wanted, at=ctx.wall_clock(),
        by=site.principal.key_id,
    )  # fmt: skip
    audit_write(conn, ctx, site.principal, request, 201)
    conn.commit()
    return claim_out(row)


@router.post(
    "/{instrument_id}/claims/{claim_id}/withdraw",
    response_model=GreenClaimOut,
    summary="Withdraw a claim while its month's ledger is open (its volume is held again)",
    responses=responses(409),
)
def withdraw_claim(
    *,
    site: GreenWriteSite,
    instrument_id: InstrumentIdPath,
    claim_id: ClaimIdPath,
    conn: ConnDep,
    ctx: ContextDep,
    request: Request,
) -> GreenClaimOut:
    certificates_db.lock_register(conn)
    _register_batch(conn, site, instrument_id)
    row = certificates_db.get_claim(conn, site.site_id, instrument_id, claim_id)
    if row is None:
        raise not_found(f"claim {claim_id} of {instrument_id!r} not found / 未找到申领 {claim_id}")
    if row.withdrawn_at is not None:
        raise ApiProblemError(
            409, f"claim {claim_id} is already withdrawn / 申领 {claim_id} 已撤回"
        )
    refusal = check_withdraw(
        ledger_closed=certificates_db.ledger_closed(conn, site.site_id, row.org_id, row.month),
        month=row.month,
    )
    if refusal is not None:
        raise ApiProblemError(refusal.status, refusal.detail)
    out = certificates_db.withdraw_claim(conn, row, at=ctx.wall_clock(), by=site.principal.key_id)
    audit_write(conn, ctx, site.principal, request, 200)
    conn.commit()
    return claim_out(out)


@router.post(
    "/{instrument_id}/cancel",
    response_model=GreenInstrumentOut,
    summary="Cancel a held batch (final; nothing of it may be claimed)",
    responses=responses(409),
)
def cancel_batch(
    *,
    site: GreenWriteSite,
    instrument_id: InstrumentIdPath,
    conn: ConnDep,
    ctx: ContextDep,
    request: Request,
) -> GreenInstrumentOut:
    certificates_db.lock_register(conn)
    _row, batch, _holder = _register_batch(conn, site, instrument_id)
    claims = certificates_db.claims_of(conn, site.site_id, instrument_id, active_only=True)
    refusal = check_cancel(batch, [c.claim() for c in claims])
    if refusal is not None:
        raise ApiProblemError(refusal.status, refusal.detail)
    certificates_db.cancel_batch(conn, site.site_id, instrument_id, at=ctx.wall_clock())
    audit_write(conn, ctx, site.principal, request, 200)
    out = _instrument(conn, ctx, site, instrument_id)
    conn.commit()
    return out


@router.post(
    "/{instrument_id}/transfer",
    response_model=GreenInstrumentOut,
    summary="Transfer a whole tradable, held batch to another organisation of the site",
    responses=responses(400, 409),
)
def transfer_batch(
    *,
    site: GreenWriteSite,
    instrument_id: InstrumentIdPath,
    body: GreenTransferIn,
    conn: ConnDep,
    ctx: ContextDep,
    request: Request,
) -> GreenInstrumentOut:
    """An enterprise transfers only batches it holds (others: 404); the batch must be tradable
    and held with nothing claimed (409); the receiver must be another organisation of the site
    (422). Audited. Calc is unaffected: only claims enter the market-based figures."""
    certificates_db.lock_register(conn)
    row, batch, holder = _register_batch(conn, site, instrument_id)
    if not registry.organisation_exists(conn, site.site_id, body.to_org_id):
        raise ApiProblemError(
            422,
            f"unknown organisation {body.to_org_id!r} at site {site.site_id!r} / "
            f"站点 {site.site_id!r} 无企业 {body.to_org_id!r}",
        )
    claims = certificates_db.claims_of(conn, site.site_id, instrument_id, active_only=True)
    refusal = check_transfer(
        batch, [c.claim() for c in claims], tradable=row.tradable, holder=holder,
        to_org=body.to_org_id, today=_today(conn, ctx, site.site_id),
    )  # fmt: skip
    if refusal is not None:
        raise ApiProblemError(refusal.status, refusal.detail)
    certificates_db.transfer_batch(
        conn, site.site_id, instrument_id, body.to_org_id, at=ctx.wall_clock()
    )
    audit_write(conn, ctx, site.principal, request, 200)
    # the caller may no longer see the batch (an enterprise gave it away): read it unfiltered
    out = reference.get_green_instrument(conn, site.site_id, instrument_id, org_id=None)
    assert out is not None
    result = instrument_out(out, [], _today(conn, ctx, site.site_id))
    conn.commit()
    return result

"""``/api/v1/keys``: API keys by API (admin only) — create (the token shown once), list, read,
rotate (a new secret, same key id and scope), revoke. Every write is audited in its own
transaction. Keys are never deleted: a revoked key stays listed so the audit log can name it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Path, Request

from carbonflow.storage.access import (
    KeyGrantError,
    KeySummary,
    create_key,
    get_key,
    list_keys,
    revoke_key,
    rotate_key,
)
from services.api.access import Action, Principal, Role, grant_problems
from services.api.audit import audit_write
from services.api.deps import ConnDep, ContextDep, PrincipalDep
from services.api.problems import ApiProblemError, forbidden, not_found, responses
from services.api.schemas_admin import KeyCreatedOut, KeyIn, KeyOut, KeyPage, KeyRotateIn
from services.api.tokens import new_key

router = APIRouter(prefix="/api/v1/keys", tags=["access"], responses=responses(401, 403, 429, 500))

KeyIdPath = Annotated[
    str, Path(pattern=r"^[0-9a-f]{12}$", description="key id", examples=["3f9c0a1b2c4d"])
]


def _key_admin(principal: PrincipalDep) -> Principal:
    if not principal.may(Action.MANAGE_KEYS):
        raise forbidden(f"a {principal.role.value} key may not manage API keys")
    return principal


KeyAdmin = Annotated[Principal, Depends(_key_admin)]


def key_out(row: KeySummary, now: datetime) -> KeyOut:
    state = "active"
    if row.revoked_at is not None:
        state = "revoked"
    elif row.expires_at is not None and row.expires_at <= now:
        state = "expired"
    return KeyOut(
        key_id=row.key_id,
        role=row.role,
        label=row.label,
        site_ids=None if row.role == Role.ADMIN.value else list(row.site_ids),
        org_id=row.org_id,
        requests_per_minute=row.requests_per_minute,
        state=state,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


def _found(conn: sa.Connection, key_id: str) -> KeySummary:
    row = get_key(conn, key_id)
    if row is None:
        raise not_found(f"API key {key_id!r} not found")
    return row


@router.get("", response_model=KeyPage, summary="All API keys, revoked ones too (admin)")
def list_all(_admin: KeyAdmin, conn: ConnDep, ctx: ContextDep) -> KeyPage:
    now = ctx.wall_clock()
    return KeyPage(items=[key_out(k, now) for k in list_keys(conn)])


@router.get(
    "/{key_id}", response_model=KeyOut, summary="One API key (admin)", responses=responses(404, 422)
)
def get_one(_admin: KeyAdmin, key_id: KeyIdPath, conn: ConnDep, ctx: ContextDep) -> KeyOut:
    return key_out(_found(conn, key_id), ctx.wall_clock())


@router.post(
    "",
    status_code=201,
    response_model=KeyCreatedOut,
    summary="Create an API key; its token is in this answer only (admin)",
    responses=responses(400, 422),
)
def create(
    admin: KeyAdmin, body: KeyIn, conn: ConnDep, ctx: ContextDep, request: Request
) -> KeyCreatedOut:
    now = ctx.wall_clock()
    problems = grant_problems(Role(body.role), body.site_ids, body.org_id)
    if body.expires_at is not None and body.expires_at <= now:
        problems.append("expires_at must be in the future")
    if problems:
        raise ApiProblemError(422, "; ".join(problems))
    key = new_key()
    try:
        create_key(
            conn,
            key_id=key.key_id,
            secret_sha256=key.secret_sha256,
            role=body.role,
            label=body.label.strip(),
            site_ids=body.site_ids,
            org_id=body.org_id,
            requests_per_minute=body.requests_per_minute,
            expires_at=body.expires_at,
        )
    except KeyGrantError as exc:
        conn.rollback()
        raise ApiProblemError(422, str(exc)) from None
    audit_write(conn, ctx, admin, request, 201)
    conn.commit()
    return KeyCreatedOut(key=key_out(_found(conn, key.key_id), now), token=key.token)


@router.post(
    "/{key_id}/rotate",
    response_model=KeyCreatedOut,
    summary="A new secret for a key (same id, scope and label); the old token stops working",
    responses=responses(400, 404, 422),
)
def rotate(
    admin: KeyAdmin,
    key_id: KeyIdPath,
    conn: ConnDep,
    ctx: ContextDep,
    request: Request,
    body: KeyRotateIn | None = None,
) -> KeyCreatedOut:
    now = ctx.wall_clock()
    expires = body.expires_at if body is not None else None
    if expires is not None and expires <= now:
        raise ApiProblemError(422, "expires_at must be in the future")
    fresh = new_key(key_id)
    if not rotate_key(conn, key_id, secret_sha256=fresh.secret_sha256, expires_at=expires):
        raise not_found(f"no active API key {key_id!r}")
    audit_write(conn, ctx, admin, request, 200)
    conn.commit()
    ctx.authenticator.forget(key_id)
    return KeyCreatedOut(key=key_out(_found(conn, key_id), now), token=fresh.token)


@router.post(
    "/{key_id}/revoke",
    response_model=KeyOut,
    summary="Revoke a key (other API processes drop it within CARBONFLOW_API_KEY_CACHE_S)",
    responses=responses(404, 409, 422),
)
def revoke(
    admin: KeyAdmin, key_id: KeyIdPath, conn: ConnDep, ctx: ContextDep, request: Request
) -> KeyOut:
    if not revoke_key(conn, key_id):
        _found(conn, key_id)  # 404 when there is no such key at all
        raise ApiProblemError(409, f"API key {key_id!r} is already revoked")
    audit_write(conn, ctx, admin, request, 200)
    conn.commit()
    ctx.authenticator.forget(key_id)
    return key_out(_found(conn, key_id), ctx.wall_clock())

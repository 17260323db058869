"""SQL for API access: keys (stored as the SHA-256 of the token), their sites, the audit log.

The token format and hashing live in ``services/api/tokens.py``; this module only stores and
reads what it is given. A key is never deleted, only revoked, so the audit log can always name it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from carbonflow.storage.schema import api_audit, api_key, api_key_site, organisation, site


class KeyGrantError(ValueError):
    """A key that cannot be created as asked: unknown site or organisation, wrong shape."""


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A usable key as authentication needs it (never revoked or expired when returned)."""

    key_id: str
    secret_sha256: str
    role: str
    org_id: str | None
    label: str
    requests_per_minute: int | None
    site_ids: frozenset[str]
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class KeySummary:
    key_id: str
    role: str
    org_id: str | None
    label: str
    site_ids: tuple[str, ...]
    requests_per_minute: int | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: datetime
    key_id: str
    role: str
    method: str
    route: str  # the route template, e.g. /api/v1/sites/{site_id}; "unmatched" for none
    path: str
    path_params: Mapping[str, str]
    query: Mapping[str, list[str]]
    status: int
    client: str | None


def create_key(  # noqa: PLR0913 — keyword-only: the columns of one key
    conn: sa.Connection,
    *,
    key_id: str,
    secret_sha256: str,
    role: str,
    label: str,
    site_ids: Sequence[str] = (),
    org_id: str | None = None,
    requests_per_minute: int | None = None,
    expires_at: datetime | None = None,
) -> None:
    """Insert a key and its sites; checks that every site (and the organisation) exists.

    The caller commits. Role rules (an enterprise key: one site and its organisation; an admin
    key: no sites) are checked by the caller's domain code and again by the table's CHECKs.
    """
    known = set(
        conn.execute(sa.select(site.c.site_id).where(site.c.site_id.in_(list(site_ids)))).scalars()
    )
    missing = sorted(set(site_ids) - known)
    if missing:
        raise KeyGrantError(f"unknown site(s): {', '.join(missing)}")
    if org_id is not None:
        found = conn.execute(
            sa.select(organisation.c.org_id).where(
                organisation.c.site_id.in_(list(site_ids)), organisation.c.org_id == org_id
            )
        ).first()
        if found is None:
            raise KeyGrantError(
                f"organisation {org_id!r} is not registered at {', '.join(site_ids)}"
            )
    conn.execute(
        sa.insert(api_key).values(
            key_id=key_id,
            secret_sha256=secret_sha256,
            role=role,
            org_id=org_id,
            label=label,
            requests_per_minute=requests_per_minute,
            expires_at=expires_at,
        )
    )
    if site_ids:
        conn.execute(
            sa.insert(api_key_site), [{"key_id": key_id, "site_id": s} for s in sorted(site_ids)]
        )


def revoke_key(conn: sa.Connection, key_id: str) -> bool:
    """Revoke a key now; ``False`` when there is no such key or it was already revoked."""
    result = conn.execute(
        sa.update(api_key)
        .where(api_key.c.key_id == key_id, api_key.c.revoked_at.is_(None))
        .values(revoked_at=sa.func.now())
        .returning(api_key.c.key_id)
    )
    return result.first() is not None


def rotate_key(
    conn: sa.Connection, key_id: str, *, secret_sha256: str, expires_at: datetime | None
) -> bool:
    """Give an active key a new secret (the old token stops working) and, when given, a new
    expiry; ``False`` when there is no such active key. The caller commits."""
    values: dict[str, Any] = {"secret_sha256": secret_sha256}
    if expires_at is not None:
        values["expires_at"] = expires_at
    result = conn.execute(
        sa.update(api_key)
        .where(api_key.c.key_id == key_id, api_key.c.revoked_at.is_(None))
        .values(**values)
        .returning(api_key.c.key_id)
    )
    return result.first() is not None


def get_key(conn: sa.Connection, key_id: str) -> KeySummary | None:
    """One key as :func:`list_keys` lists it."""
    found = list_keys(conn, key_id=key_id)
    return found[0] if found else None


def list_keys(conn: sa.Connection, *, key_id: str | None = None) -> list[KeySummary]:
    sites: sa.ColumnElement[Any] = sa.literal_column(
        "coalesce(array_agg(api_key_site.site_id ORDER BY api_key_site.site_id) "
        "FILTER (WHERE api_key_site.site_id IS NOT NULL), '{}')"
    )
    query = (
        sa.select(
            api_key.c.key_id,
            api_key.c.role,
            api_key.c.org_id,
            api_key.c.label,
            sites,
            api_key.c.requests_per_minute,
            api_key.c.created_at,
            api_key.c.expires_at,
            api_key.c.revoked_at,
            api_key.c.last_used_at,
        )
        .select_from(api_key.outerjoin(api_key_site, api_key_site.c.key_id == api_key.c.key_id))
        .group_by(api_key.c.key_id)
        .order_by(api_key.c.created_at, api_key.c.key_id)
    )
    if key_id is not None:
        query = query.where(api_key.c.key_id == key_id)
    return [
        KeySummary(r[0], r[1], r[2], r[3], tuple(r[4]), r[5], r[6], r[7], r[8], r[9])
        for r in conn.execute(query)
    ]


_LOOKUP = sa.text(
    """
    WITH touched AS (
        UPDATE api_key SET last_used_at = now()
        WHERE key_id = :key_id AND revoked_at IS NULL
          AND (expires_at IS NULL OR expires_at > now())
        RETURNING key_id, secret_sha256, role, org_id, label, requests_per_minute, expires_at
    )
    SELECT t.key_id, t.secret_sha256, t.role, t.org_id, t.label, t.requests_per_minute,
           t.expires_at,
           coalesce(array_agg(s.site_id) FILTER (WHERE s.site_id IS NOT NULL), '{}') AS sites
    FROM touched t LEFT JOIN api_key_site s ON s.key_id = t.key_id
    GROUP BY t.key_id, t.secret_sha256, t.role, t.org_id, t.label, t.requests_per_minute,
             t.expires_at
    """
)


def lookup_key(conn: sa.Connection, key_id: str) -> KeyRecord | None:
    """The usable key ``key_id`` (not revoked, not expired), marking it used; the caller commits."""
    row = conn.execute(_LOOKUP, {"key_id": key_id}).first()
    if row is None:
        return None
    return KeyRecord(
        key_id=row.key_id,
        secret_sha256=row.secret_sha256,
        role=row.role,
        org_id=row.org_id,
        label=row.label,
        requests_per_minute=row.requests_per_minute,
        site_ids=frozenset(row.sites),
        expires_at=row.expires_at,
    )


def write_audit(conn: sa.Connection, entry: AuditEntry) -> None:
    """Append one audit row; the caller commits."""
    conn.execute(
        pg.insert(api_audit).values(
            at=entry.at,
            key_id=entry.key_id,
            role=entry.role,
            method=entry.method,
            route=entry.route,
            path=entry.path,
            path_params=dict(entry.path_params),
            query={k: list(v) for k, v in entry.query.items()},
            status=entry.status,
            client=entry.client,
        )
    )


def audit_entries(
    conn: sa.Connection, *, key_id: str | None = None, limit: int = 100
) -> list[AuditEntry]:
    """The newest audit rows first (all keys, or one)."""
    query = sa.select(api_audit).order_by(api_audit.c.at.desc(), api_audit.c.audit_id.desc())
    if key_id is not None:
        query = query.where(api_audit.c.key_id == key_id)
    rows: list[Any] = list(conn.execute(query.limit(limit)))
    return [
        AuditEntry(
            at=r.at,
            key_id=r.key_id,
            role=r.role,
            method=r.method,
            route=r.route,
            path=r.path,
            path_params=r.path_params,
            query=r.query,
            status=r.status,
            client=r.client,
        )
        for r in rows
    ]

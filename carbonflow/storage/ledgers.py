"""SQL for monthly ledgers: closed revisions (write-once) in ``ledger_revision``. What a draft
reads besides the calc results is elsewhere: the site (``registry.ledger_site``) and the month's
green-power claims (``carbon.month_claims``).

A revision's document is stored as the exact bytes served (canonical JSON text), with the
SHA-256 of those bytes and of its accounting content; ``org_id`` '' is the site's own ledger.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from carbonflow.storage.schema import (
    ledger_revision,
)

SITE_LEDGER = ""  # org_id of a site's own ledger


class RevisionExists(Exception):  # noqa: N818 — a condition the API maps to 409
    """Another request stored this revision number first."""


@dataclass(frozen=True, slots=True)
class RevisionRow:
    site_id: str
    org_id: str
    month: date
    revision: int
    document: str
    document_sha256: str
    content_sha256: str
    reason: str | None
    created_by: str
    created_at: datetime


_COLUMNS = (
    ledger_revision.c.site_id,
    ledger_revision.c.org_id,
    ledger_revision.c.month,
    ledger_revision.c.revision,
    ledger_revision.c.document,
    ledger_revision.c.document_sha256,
    ledger_revision.c.content_sha256,
    ledger_revision.c.reason,
    ledger_revision.c.created_by,
    ledger_revision.c.created_at,
)


def _where(site_id: str, org_id: str, month: date) -> sa.ColumnElement[bool]:
    r = ledger_revision.c
    return sa.and_(r.site_id == site_id, r.org_id == org_id, r.month == month)


def revisions(conn: sa.Connection, site_id: str, org_id: str, month: date) -> list[RevisionRow]:
    """Every revision of the month's ledger, oldest first."""
    query = (
        sa.select(*_COLUMNS)
        .where(_where(site_id, org_id, month))
        .order_by(ledger_revision.c.revision)
    )
    return [RevisionRow(**r._asdict()) for r in conn.execute(query)]


def get_revision(
    conn: sa.Connection, site_id: str, org_id: str, month: date, revision: int
) -> RevisionRow | None:
    query = sa.select(*_COLUMNS).where(
        _where(site_id, org_id, month), ledger_revision.c.revision == revision
    )
    row = conn.execute(query).first()
    return None if row is None else RevisionRow(**row._asdict())


def latest_revision(
    conn: sa.Connection, site_id: str, org_id: str, month: date
) -> RevisionRow | None:
    query = (
        sa.select(*_COLUMNS)
        .where(_where(site_id, org_id, month))
        .order_by(ledger_revision.c.revision.desc())
        .limit(1)
    )
    row = conn.execute(query).first()
    return None if row is None else RevisionRow(**row._asdict())


def latest_revisions(
    conn: sa.Connection, site_ids: Sequence[str], months: Sequence[date]
) -> dict[tuple[str, str, date], RevisionRow]:
    """The newest revision of every ledger of these sites and months, by (site, org, month)."""
    if not site_ids or not months:
        return {}
    r = ledger_revision.c
    query = (
        sa.select(*_COLUMNS)
        .ext(pg.distinct_on(r.site_id, r.org_id, r.month))
        .where(r.site_id.in_(site_ids), r.month.in_(months))
        .order_by(r.site_id, r.org_id, r.month, r.revision.desc())
    )
    rows = [RevisionRow(**row._asdict()) for row in conn.execute(query)]
    return {(row.site_id, row.org_id, row.month): row for row in rows}


def insert_revision(conn: sa.Connection, row: RevisionRow) -> None:
    """Store a new revision; :class:`RevisionExists` if its number is taken (a race)."""
    statement = (
        pg.insert(ledger_revision)
        .values(
            site_id=row.site_id,
            org_id=row.org_id,
            month=row.month,
            revision=row.revision,
            document=row.document,
            document_sha256=row.document_sha256,
            content_sha256=row.content_sha256,
            reason=row.reason,
            created_by=row.created_by,
            created_at=row.created_at,
        )
        .on_conflict_do_nothing()
        .returning(ledger_revision.c.revision)
    )
    if conn.execute(statement).first() is None:
        raise RevisionExists(f"revision {row.revision} of {row.site_id}/{row.org_id} exists")

"""SQL for monthly ledgers: closed revisions (write-once), and the inputs a draft adds to
``services.api.reads.ledger_inputs`` (site time zone, calc watermark, green-power claims).

A revision's document is stored as the exact bytes served (canonical JSON text), with the
SHA-256 of those bytes and of its accounting content; ``org_id`` '' is the site's own ledger.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from carbonflow.storage.schema import (
    calc_green_claim,
    calc_site_state,
    green_instrument,
    ledger_revision,
    organisation,
    site,
)

SITE_LEDGER = ""  # org_id of a site's own ledger


class RevisionExists(Exception):  # noqa: N818 — a condition the API maps to 409
    """Another request stored this revision number first."""


@dataclass(frozen=True, slots=True)
class LedgerSite:
    site_id: str
    name: str
    timezone: str
    results_through: datetime | None
    last_received_at: datetime | None


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


@dataclass(frozen=True, slots=True)
class ClaimRow:
    instrument_id: str
    kind: str
    accepted: bool
    offered_mwh: float
    applied_mwh: float
    unused_mwh: float
    reason: str


def psycopg_utc(conn: sa.Connection) -> psycopg.Connection[Any]:
    """The request's connection as psycopg, in a UTC session for this transaction (the calc
    read side expects one); ``SET LOCAL`` ends with the transaction, the pool stays clean."""
    conn.execute(sa.text("SET LOCAL TIME ZONE 'UTC'"))
    driver = conn.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    return driver


def ledger_site(conn: sa.Connection, site_id: str) -> LedgerSite | None:
    s, st = site, calc_site_state
    row = conn.execute(
        sa.select(s.c.site_id, s.c.name, s.c.timezone, st.c.results_through, st.c.last_received_at)
        .select_from(s.outerjoin(st, st.c.site_id == s.c.site_id))
        .where(s.c.site_id == site_id)
    ).first()
    return None if row is None else LedgerSite(*row)


def organisation_ids(conn: sa.Connection, site_id: str) -> list[str]:
    query = (
        sa.select(organisation.c.org_id)
        .where(organisation.c.site_id == site_id)
        .order_by(organisation.c.org_id)
    )
    return [str(r[0]) for r in conn.execute(query)]


def month_claims(
    conn: sa.Connection, site_id: str, month_start: datetime, org_id: str | None
) -> list[ClaimRow]:
    """The green-power claims of the month; of one organisation's instruments if ``org_id``."""
    c, g = calc_green_claim, green_instrument
    query = (
        sa.select(
            c.c.instrument_id,
            c.c.kind,
            c.c.accepted,
            c.c.offered_mwh,
            c.c.applied_mwh,
            c.c.unused_mwh,
            c.c.reason,
        )
        .select_from(
            c.outerjoin(
                g, sa.and_(g.c.site_id == c.c.site_id, g.c.instrument_id == c.c.instrument_id)
            )
        )
        .where(c.c.site_id == site_id, c.c.month_start == month_start)
        .order_by(c.c.instrument_id)
    )
    if org_id is not None:
        query = query.where(g.c.org_id == org_id)
    return [ClaimRow(*r) for r in conn.execute(query)]


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

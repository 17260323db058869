"""Site document revisions (``site_revision``): every change of a site document, write-once.

:func:`carbonflow.storage.registry_load.write_site` appends a revision whenever it changes a
site (by file, CLI or API), in the same transaction as the registry rows, which are derived
from the newest revision. A revision keeps the normalised document, who wrote it and why, its
source and the diff against the revision before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa

from carbonflow.domain.document_diff import document_diff
from carbonflow.storage.schema import site, site_revision

Source = Literal["file", "api", "demo", "migration"]


@dataclass(frozen=True, slots=True)
class Authorship:
    """Who changes a site document, why, and through what."""

    author: str
    reason: str
    source: Source = "file"


@dataclass(frozen=True, slots=True)
class RevisionRow:
    site_id: str
    revision: int
    document: dict[str, Any]
    document_sha256: str
    author: str
    reason: str
    source: str
    diff: list[dict[str, Any]]
    created_at: datetime


_COLUMNS = (
    site_revision.c.site_id,
    site_revision.c.revision,
    site_revision.c.document,
    site_revision.c.document_sha256,
    site_revision.c.author,
    site_revision.c.reason,
    site_revision.c.source,
    site_revision.c.diff,
    site_revision.c.created_at,
)


def _row(r: Any) -> RevisionRow:
    return RevisionRow(
        r.site_id,
        r.revision,
        dict(r.document),
        r.document_sha256,
        r.author,
        r.reason,
        r.source,
        list(r.diff),
        r.created_at,
    )


def latest_revision(conn: sa.Connection, site_id: str) -> RevisionRow | None:
    query = (
        sa.select(*_COLUMNS)
        .where(site_revision.c.site_id == site_id)
        .order_by(site_revision.c.revision.desc())
        .limit(1)
    )
    found = conn.execute(query).first()
    return None if found is None else _row(found)


def lock_site(conn: sa.Connection, site_id: str) -> bool:
    """Lock the site's registry row until the transaction ends (one writer at a time); ``False``
    when the site is not registered."""
    query = sa.select(site.c.site_id).where(site.c.site_id == site_id).with_for_update()
    return conn.execute(query).first() is not None


def list_revisions(conn: sa.Connection, site_id: str) -> list[RevisionRow]:
    """Every revision of a site, newest first."""
    query = (
        sa.select(*_COLUMNS)
        .where(site_revision.c.site_id == site_id)
        .order_by(site_revision.c.revision.desc())
    )
    return [_row(r) for r in conn.execute(query)]


def get_revision(conn: sa.Connection, site_id: str, revision: int) -> RevisionRow | None:
    query = sa.select(*_COLUMNS).where(
        site_revision.c.site_id == site_id, site_revision.c.revision == revision
    )
    found = conn.execute(query).first()
    return None if found is None else _row(found)


def append_revision(
    conn: sa.Connection,
    site_id: str,
    document: dict[str, Any],
    document_sha256: str,
    by: Authorship,
) -> int:
    """Store the next revision of ``site_id`` with its diff against the newest; its number.

    The caller holds the site's row lock (the registry write does), so numbers do not race.
    """
    previous = latest_revision(conn, site_id)
    number = 1 if previous is None else previous.revision + 1
    # the first revision has nothing before it: no diff
    diff = document_diff(previous.document, document) if previous else []
    conn.execute(
        sa.insert(site_revision).values(
            site_id=site_id,
            revision=number,
            document=document,
            document_sha256=document_sha256,
            author=by.author,
            reason=by.reason,
            source=by.source,
            diff=[c.record() for c in diff],
        )
    )
    return number

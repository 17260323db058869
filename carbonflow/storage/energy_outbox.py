"""Energy online monitoring batches: ``energy_outbox`` (docs/push.md §3).

A batch enters as the bytes to POST, in the transaction that moves its destination's cursor
(``push_cursor``, stream ``energy:<grain>``) past its period. A batch whose quality checks pass
is ``pending`` until the platform accepts it (``sent``) or refuses it (``refused``, the answer
kept); one that fails a check is ``held`` with its reasons. A reviewer releases a held or
refused batch (→ ``pending``) or withdraws it (→ ``withdrawn``, never sent), with a note.
Nothing deletes a batch.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from carbonflow.storage.push import set_cursor

STATES = ("held", "pending", "sent", "refused", "withdrawn")
REVIEWABLE = frozenset({"held", "refused"})
"""States a reviewer may release or withdraw."""


def stream(grain: str) -> str:
    """The cursor name of an energy grain (cursors are shared with the HJ 212 data commands)."""
    return f"energy:{grain}"


@dataclass(frozen=True, slots=True)
class NewBatch:
    grain: str
    period_start: datetime
    body: bytes
    values_digest: str
    checks: list[dict[str, Any]]
    reasons: list[str]
    version: int = 1

    @property
    def state(self) -> str:
        return "held" if self.reasons else "pending"


@dataclass(frozen=True, slots=True)
class BatchRow:
    outbox_id: int
    destination: str
    site_id: str
    grain: str
    period_start: datetime
    version: int
    body: bytes
    values_digest: str
    checks: list[dict[str, Any]]
    reasons: list[str]
    state: str
    attempts: int
    created_at: datetime
    last_sent_at: datetime | None
    sent_at: datetime | None
    http_status: int | None
    last_error: str | None
    reviewed_by: str | None
    reviewed_at: datetime | None
    review_note: str | None


_COLUMNS = ", ".join(f.name for f in fields(BatchRow))


def _row(r: sa.Row[Any]) -> BatchRow:
    return BatchRow(**{**r._asdict(), "body": bytes(r.body)})


def enqueue(
    conn: sa.Connection,
    destination: str,
    site_id: str,
    grain: str,
    batches: Sequence[NewBatch],
    next_period: datetime,
    now: datetime,
) -> int:
    """Queue ``batches`` (one already queued at its version is kept as it was) and move the
    cursor of (destination, grain) to ``next_period``. Returns how many were new."""
    added = 0
    for b in batches:
        added += conn.execute(
            sa.text(
                "INSERT INTO energy_outbox (destination, site_id, grain, period_start, version, "
                "body, values_digest, checks, reasons, state, created_at) "
                "VALUES (:d, :s, :g, :t, :v, :body, :dg, CAST(:checks AS jsonb), "
                "CAST(:reasons AS jsonb), :state, :now) "
                "ON CONFLICT ON CONSTRAINT energy_outbox_key DO NOTHING"
            ),
            {
                "d": destination,
                "s": site_id,
                "g": grain,
                "t": b.period_start,
                "v": b.version,
                "body": b.body,
                "dg": b.values_digest,
                "checks": json.dumps(b.checks, ensure_ascii=False),
                "reasons": json.dumps(b.reasons, ensure_ascii=False),
                "state": b.state,
                "now": now,
            },
        ).rowcount
    set_cursor(conn, destination, stream(grain), next_period, now)
    return added


def latest_versions(
    conn: sa.Connection, destination: str, grain: str, start: datetime, end: datetime
) -> dict[datetime, tuple[int, str]]:
    """Per queued period start in [start, end): its latest version and values digest."""
    rows = conn.execute(
        sa.text(
            "SELECT DISTINCT ON (period_start) period_start, version, values_digest "
            "FROM energy_outbox WHERE destination = :d AND grain = :g "
            "AND period_start >= :a AND period_start < :b "
            "ORDER BY period_start, version DESC"
        ),
        {"d": destination, "g": grain, "a": start, "b": end},
    )
    return {r.period_start: (r.version, r.values_digest) for r in rows}


def sendable(conn: sa.Connection, destination: str, limit: int) -> list[BatchRow]:
    """The oldest ``limit`` pending batches of ``destination``, in the order queued."""
    rows = conn.execute(
        sa.text(
            f"SELECT {_COLUMNS} FROM energy_outbox WHERE destination = :d AND state = 'pending' "
            "ORDER BY outbox_id LIMIT :n"
        ),
        {"d": destination, "n": limit},
    )
    return [_row(r) for r in rows]


def record_attempt(
    conn: sa.Connection,
    outbox_id: int,
    now: datetime,
    *,
    state: str,
    http_status: int | None,
    error: str | None,
) -> None:
    """One POST of ``outbox_id`` and its outcome: ``sent``, ``refused`` or still ``pending``."""
    conn.execute(
        sa.text(
            "UPDATE energy_outbox SET attempts = attempts + 1, last_sent_at = :now, "
            "state = :state, http_status = coalesce(:status, http_status), last_error = :e, "
            "sent_at = CASE WHEN :state = 'sent' THEN :now ELSE sent_at END "
            "WHERE outbox_id = :i AND state = 'pending'"
        ),
        {"i": outbox_id, "now": now, "state": state, "status": http_status, "e": error},
    )


def batches(
    conn: sa.Connection,
    site_ids: frozenset[str] | None,
    *,
    state: str | None,
    limit: int,
) -> list[BatchRow]:
    """The newest ``limit`` batches of ``site_ids`` (None: all), of ``state`` if given."""
    rows = conn.execute(
        sa.text(
            f"SELECT {_COLUMNS} FROM energy_outbox "
            "WHERE (CAST(:all AS boolean) OR site_id = ANY(:sites)) "
            "AND (CAST(:state AS text) IS NULL OR state = :state) "
            "ORDER BY outbox_id DESC LIMIT :n"
        ),
        {"all": site_ids is None, "sites": sorted(site_ids or ()), "state": state, "n": limit},
    )
    return [_row(r) for r in rows]


def batch(conn: sa.Connection, outbox_id: int) -> BatchRow | None:
    r = conn.execute(
        sa.text(f"SELECT {_COLUMNS} FROM energy_outbox WHERE outbox_id = :i"), {"i": outbox_id}
    ).first()
    return None if r is None else _row(r)


def review(
    conn: sa.Connection, outbox_id: int, new_state: str, by: str, note: str, now: datetime
) -> BatchRow | None:
    """Release (``pending``) or withdraw (``withdrawn``) a held or refused batch; the row after,
    or None when it was not reviewable (any more: the row lock makes two reviewers take turns)."""
    r = conn.execute(
        sa.text(
            "UPDATE energy_outbox SET state = :s, reviewed_by = :by, reviewed_at = :now, "
            "review_note = :note WHERE outbox_id = :i AND state IN ('held', 'refused') "
            f"RETURNING {_COLUMNS}"
        ),
        {"i": outbox_id, "s": new_state, "by": by, "note": note, "now": now},
    ).first()
    return None if r is None else _row(r)


@dataclass(frozen=True, slots=True)
class EnergyStatus:
    destination: str
    site_id: str
    counts: dict[str, int]
    oldest_pending: datetime | None
    last_sent_at: datetime | None
    last_error: str | None


def energy_status(conn: sa.Connection, site_ids: frozenset[str] | None) -> list[EnergyStatus]:
    """Per destination: batches per state, the oldest pending period, the last success and
    the latest error."""
    rows = conn.execute(
        sa.text(
            "SELECT destination, min(site_id) AS site_id, "
            "jsonb_object_agg(state, n) AS counts, min(oldest) AS oldest, "
            "max(last_sent) AS last_sent, "
            "(array_agg(err ORDER BY at DESC NULLS LAST) FILTER (WHERE err IS NOT NULL))[1] AS err "
            "FROM (SELECT destination, min(site_id) AS site_id, state, count(*) AS n, "
            "  min(period_start) FILTER (WHERE state = 'pending') AS oldest, "
            "  max(sent_at) AS last_sent, max(last_sent_at) AS at, "
            "  (array_agg(last_error ORDER BY last_sent_at DESC NULLS LAST) "
            "   FILTER (WHERE last_error IS NOT NULL AND state IN ('pending', 'refused')))[1] "
            "   AS err "
            "  FROM energy_outbox WHERE CAST(:all AS boolean) OR site_id = ANY(:sites) "
            "  GROUP BY destination, state) per_state "
            "GROUP BY destination ORDER BY destination"
        ),
        {"all": site_ids is None, "sites": sorted(site_ids or ())},
    )
    return [
        EnergyStatus(
            r.destination,
            r.site_id,
            {s: int(r.counts.get(s, 0)) for s in STATES},
            r.oldest,
            r.last_sent,
            r.err,
        )
        for r in rows
    ]

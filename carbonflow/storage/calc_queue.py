"""The calc service's work queue: dirty device-hours (written by ingest), recompute requests,
per-site state and the per-site advisory lock (tables ``dirty_hour``, ``calc_request``,
``calc_site_state``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from carbonflow.storage.db import Conn, connect
from carbonflow.storage.timescale import UNLIMITED_DECOMPRESSION

# Advisory-lock namespace of the calc service (first key of the two-int form): one lock per site,
# so two calc instances never process the same site at once but may share the sites.
CALC_LOCK_NAMESPACE = 0x63_66_63_6C  # "cfcl"


def open_session(database_url: str) -> Conn:
    """The calc service's long-lived connection: a UTC session (the calc reads and writes
    timestamps in UTC) that may rewrite compressed TimescaleDB chunks of any size, without JIT,
    its set-up committed.

    JIT off: the planner's cost estimates of the calc's per-key statements grow with the
    stored history (the per-key row estimates are fractions of the table), so past
    ``jit_above_cost`` and ``jit_optimize_above_cost`` each of them paid LLVM compilation for
    a few milliseconds of work — the delete before the 15-min COPY of a recompute chunk grew
    from ≈ 0.02 s to ≈ 0.8 s a chunk between the first and the last quarter of a recompute of
    60 days (docs/performance.md, "JIT")."""
    conn = connect(database_url)
    conn.execute("SET TIME ZONE 'UTC'")
    conn.execute("SET jit = off")
    conn.execute(UNLIMITED_DECOMPRESSION)
    conn.commit()
    return conn


def try_lock_site(conn: Conn, site_id: str) -> bool:
    """Transaction-level advisory lock of one site; False when another instance holds it."""
    row = conn.execute(
        "SELECT pg_try_advisory_xact_lock(%s, hashtext(%s))", (CALC_LOCK_NAMESPACE, site_id)
    ).fetchone()
    return bool(row and row[0])


@dataclass(frozen=True, slots=True)
class DirtyHour:
    device_pk: int
    hour_start: datetime
    marked_at: datetime


def dirty_hours(conn: Conn, limit: int) -> dict[str, list[DirtyHour]]:
    """Up to ``limit`` dirty device-hours, by site.

    No ORDER BY: a sort of a large backlog (a year of 1 000 devices is 8.8 M hours) would cost
    every cycle; heap order is roughly the order hours were marked, and every row is reached.
    """
    rows = conn.execute(
        "SELECT d.site_id, h.device_pk, h.hour_start, h.marked_at FROM dirty_hour h "
        "JOIN device d ON d.device_pk = h.device_pk LIMIT %s",
        (limit,),
    ).fetchall()
    out: dict[str, list[DirtyHour]] = {}
    for site_id, pk, hour, marked in rows:
        out.setdefault(str(site_id), []).append(DirtyHour(int(pk), hour, marked))
    return out


def count_dirty_hours(conn: Conn) -> int:
    row = conn.execute("SELECT count(*) FROM dirty_hour").fetchone()
    return int(row[0]) if row else 0


def delete_dirty_hours(conn: Conn, hours: Sequence[DirtyHour]) -> int:
    """Delete the rows read, only where ``marked_at`` is unchanged: a concurrent ingest that
    re-marked an hour keeps it dirty for the next cycle."""
    if not hours:
        return 0
    cur = conn.execute(
        "DELETE FROM dirty_hour h USING unnest(%s::int[], %s::timestamptz[], %s::timestamptz[]) "
        "AS w(pk, hour, marked) "
        "WHERE h.device_pk = w.pk AND h.hour_start = w.hour AND h.marked_at = w.marked",
        (
            [h.device_pk for h in hours],
            [h.hour_start for h in hours],
            [h.marked_at for h in hours],
        ),
    )
    return cur.rowcount


@dataclass(frozen=True, slots=True)
class Request:
    request_id: int
    site_id: str
    device_pk: int | None
    layer: str  # intervals | carbon
    range_start: datetime
    range_end: datetime
    cursor: datetime
    reason: str


def add_request(
    conn: Conn,
    site_id: str,
    layer: str,
    range_start: datetime,
    range_end: datetime,
    *,
    reason: str,
    device_pk: int | None = None,
) -> int:
    row = conn.execute(
        "INSERT INTO calc_request (site_id, device_pk, layer, range_start, range_end, cursor, "
        "reason) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING request_id",
        (site_id, device_pk, layer, range_start, range_end, range_start, reason),
    ).fetchone()
    assert row is not None
    return int(row[0])


def open_requests(conn: Conn) -> dict[str, list[Request]]:
    rows = conn.execute(
        "SELECT request_id, site_id, device_pk, layer, range_start, range_end, cursor, reason "
        "FROM calc_request WHERE done_at IS NULL ORDER BY request_id"
    ).fetchall()
    out: dict[str, list[Request]] = {}
    for r in rows:
        out.setdefault(str(r[1]), []).append(Request(*r))
    return out


def count_open_requests(conn: Conn) -> int:
    row = conn.execute("SELECT count(*) FROM calc_request WHERE done_at IS NULL").fetchone()
    return int(row[0]) if row else 0


def advance_request(conn: Conn, request_id: int, cursor: datetime, done: bool) -> None:
    conn.execute(
        "UPDATE calc_request SET cursor = %s, done_at = CASE WHEN %s THEN now() END "
        "WHERE request_id = %s",
        (cursor, done, request_id),
    )


@dataclass(frozen=True, slots=True)
class SiteState:
    site_id: str
    document_sha256: str
    device_config: dict[str, Any]
    factor_sets: dict[str, str]
    results_through: datetime | None
    last_received_at: datetime | None


def site_states(conn: Conn) -> dict[str, SiteState]:
    rows = conn.execute(
        "SELECT site_id, document_sha256, device_config, factor_sets, results_through, "
        "last_received_at FROM calc_site_state"
    ).fetchall()
    return {
        str(r[0]): SiteState(str(r[0]), str(r[1]), dict(r[2]), dict(r[3]), r[4], r[5]) for r in rows
    }


def save_site_state(
    conn: Conn,
    site_id: str,
    *,
    document_sha256: str | None = None,
    device_config: Mapping[str, Any] | None = None,
    factor_sets: Mapping[str, str] | None = None,
    results_through: datetime | None = None,
    last_received_at: datetime | None = None,
) -> None:
    """Create or update the state; ``None`` leaves a field as it is; watermarks only advance."""
    conn.execute(
        "INSERT INTO calc_site_state (site_id, document_sha256, device_config, factor_sets, "
        "results_through, last_received_at) VALUES (%(s)s, coalesce(%(d)s, ''), "
        "coalesce(%(c)s, '{}'::jsonb), coalesce(%(f)s, '{}'::jsonb), %(r)s, %(l)s) "
        "ON CONFLICT (site_id) DO UPDATE SET "
        "document_sha256 = coalesce(%(d)s, calc_site_state.document_sha256), "
        "device_config = coalesce(%(c)s, calc_site_state.device_config), "
        "factor_sets = calc_site_state.factor_sets || coalesce(%(f)s, '{}'::jsonb), "
        "results_through = greatest(calc_site_state.results_through, %(r)s), "
        "last_received_at = greatest(calc_site_state.last_received_at, %(l)s), "
        "updated_at = now()",
        {
            "s": site_id,
            "d": document_sha256,
            "c": None if device_config is None else Jsonb(dict(device_config)),
            "f": None if factor_sets is None else Jsonb(dict(factor_sets)),
            "r": results_through,
            "l": last_received_at,
        },
    )


def years_with_results(conn: Conn, site_id: str, tz: str) -> list[tuple[int, datetime, datetime]]:
    """(local year, first month start, end of last month) of the site's carbon results."""
    rows = conn.execute(
        "SELECT extract(year FROM period_start AT TIME ZONE %(tz)s)::int AS y, "
        "min(period_start), max(((period_start AT TIME ZONE %(tz)s) + INTERVAL '1 month') "
        "AT TIME ZONE %(tz)s) FROM calc_carbon_rollup WHERE site_id = %(s)s AND grain = 'month' "
        "GROUP BY y ORDER BY y",
        {"s": site_id, "tz": tz},
    ).fetchall()
    return [(int(y), a, b) for y, a, b in rows]


@dataclass(frozen=True, slots=True)
class SiteQueueStatus:
    site_id: str
    results_through: datetime | None
    last_received_at: datetime | None
    open_requests: int


def queue_status(conn: Conn) -> tuple[int, list[SiteQueueStatus]]:
    """Dirty device-hours waiting, and each site's progress (``carbonflow calc status``)."""
    dirty = count_dirty_hours(conn)
    rows = conn.execute(
        "SELECT s.site_id, s.results_through, s.last_received_at, "
        "(SELECT count(*) FROM calc_request r WHERE r.site_id = s.site_id "
        " AND r.done_at IS NULL) FROM calc_site_state s ORDER BY s.site_id"
    ).fetchall()
    return dirty, [SiteQueueStatus(str(r[0]), r[1], r[2], int(r[3])) for r in rows]

"""Raw readings and their quarantine: ``reading``, ``rejected_reading``, ``meter_serial`` (ingest's
batch writes, which mark ``dirty_hour`` in the same transaction; the calc service's reading windows;
the API's latest values and rejection listings).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
import sqlalchemy as sa

from carbonflow.domain.indicators.live import LatestValue
from carbonflow.storage import copy_arrays
from carbonflow.storage.db import Conn, connect, make_row, psycopg_of
from carbonflow.storage.registry import RegistrySnapshot, load_registry, org_filter
from carbonflow.storage.schema import (
    device,
    device_metric,
    metric,
    reading,
    rejected_reading,
)


@dataclass(frozen=True, slots=True)
class LatestReadingRow:
    device_id: str
    device_kind: str
    carrier: str
    role: str
    org_id: str | None
    multiplier: float
    metric: str
    unit: str
    metric_kind: str
    ts: datetime | None  # None: the metric never reported
    value: float | None  # as stored: canonical unit, before the multiplier
    received_at: datetime | None
    # The device's declared reporting period (``attributes.sim.publish_interval_s``) [s], if any.
    report_interval_s: float | None = None


def latest_readings(
    conn: sa.Connection,
    site_id: str,
    *,
    org_id: str | None,
    limit: int,
    offset: int,
    device_id: str | None = None,
    metrics: Sequence[str] | None = None,
    metric_kind: str | None = None,
) -> list[LatestReadingRow]:
    """The newest reading of each (active device, metric) of a site, by device and metric.

    The page of device metrics is chosen first, then one backward index scan of the
    ``reading`` primary key (device_pk, metric_id, ts) per device metric finds its newest row:
    the cost grows with the page, not with the history.
    """
    page = (
        sa.select(
            device.c.device_pk,
            device_metric.c.metric_id,
            device.c.device_id,
            device.c.kind.label("device_kind"),
            device.c.carrier,
            device.c.role,
            device.c.org_id,
            device.c.multiplier,
            metric.c.name.label("metric"),
            metric.c.unit,
            device_metric.c.kind.label("metric_kind"),
            device.c.attributes["sim"]["publish_interval_s"].as_float().label("report_interval_s"),
        )
        .join(device_metric, device_metric.c.device_pk == device.c.device_pk)
        .join(metric, metric.c.metric_id == device_metric.c.metric_id)
        .where(device.c.site_id == site_id, device.c.active, org_filter(device.c.org_id, org_id))
    )
    if device_id is not None:
        page = page.where(device.c.device_id == device_id)
    if metrics is not None:
        page = page.where(metric.c.name.in_(list(metrics)))
    if metric_kind is not None:
        page = page.where(device_metric.c.kind == metric_kind)
    chosen = (
        page.order_by(device.c.device_id, metric.c.name).limit(limit).offset(offset).subquery("p")
    )
    newest = (
        sa.select(reading.c.ts, reading.c.value, reading.c.received_at)
        .where(reading.c.device_pk == chosen.c.device_pk, reading.c.metric_id == chosen.c.metric_id)
        .order_by(reading.c.ts.desc())
        .limit(1)
        .lateral("newest")
    )
    query = (
        sa.select(
            chosen.c.device_id,
            chosen.c.device_kind,
            chosen.c.carrier,
            chosen.c.role,
            chosen.c.org_id,
            chosen.c.multiplier,
            chosen.c.metric,
            chosen.c.unit,
            chosen.c.metric_kind,
            newest.c.ts,
            newest.c.value,
            newest.c.received_at,
            chosen.c.report_interval_s,
        )
        .select_from(chosen.outerjoin(newest, sa.true()))
        .order_by(chosen.c.device_id, chosen.c.metric)
    )
    return [make_row(LatestReadingRow, r) for r in conn.execute(query).all()]


# :func:`latest_readings`' query with the columns of a :class:`LatestValue` only (``filters``:
# the organisation's devices, some metrics).
_LATEST_VALUES = """
SELECT p.device_id, p.carrier, p.role, p.metric, n.ts, n.value, p.multiplier, p.report_interval_s
FROM (
    SELECT d.device_pk, dm.metric_id, d.device_id, d.carrier, d.role, m.name AS metric,
        d.multiplier, CAST(d.attributes['sim'] ->> 'publish_interval_s' AS FLOAT)
            AS report_interval_s
    FROM device d
    JOIN device_metric dm ON dm.device_pk = d.device_pk
    JOIN metric m ON m.metric_id = dm.metric_id
    WHERE d.site_id = %(site)s AND d.active{filters}
    ORDER BY d.device_id, m.name
    LIMIT %(limit)s
) p
LEFT JOIN LATERAL (
    SELECT r.ts, r.value FROM reading r
    WHERE r.device_pk = p.device_pk AND r.metric_id = p.metric_id
    ORDER BY r.ts DESC
    LIMIT 1
) n ON true
ORDER BY p.device_id, p.metric
"""


def latest_values(
    conn: sa.Connection,
    site_id: str,
    *,
    org_id: str | None,
    limit: int,
    metrics: Sequence[str] | None = None,
) -> list[LatestValue]:
    """The newest reading of the site's device metrics (at most ``limit``, by device and
    metric, as :func:`latest_readings`) as the domain's :class:`LatestValue`: what live figures
    and alarm rules are computed from.

    Only the columns a :class:`LatestValue` holds are read, straight from the driver, each row
    becoming one object: a 1 000-device snapshot reads ≈ 2 000 rows, and the listing's extra
    columns and its two intermediate objects per row (a SQLAlchemy row, a
    :class:`LatestReadingRow`) were a third of the request (docs/performance.md).
    """
    filters = ""
    params: dict[str, Any] = {"site": site_id, "limit": limit}
    if org_id is not None:
        filters += " AND d.org_id = %(org)s"
        params["org"] = org_id
    if metrics is not None:
        filters += " AND m.name = ANY(%(metrics)s)"
        params["metrics"] = list(metrics)
    with psycopg_of(conn).cursor() as cur:
        rows = cur.execute(_LATEST_VALUES.format(filters=filters), params).fetchall()
    return [LatestValue(*r) for r in rows]


def newest_reading_ts(conn: sa.Connection, site_id: str, *, org_id: str | None) -> datetime | None:
    """The newest reading of any active device metric of the site (of ``org_id``'s devices
    when given): one backward index scan per device metric, as :func:`latest_readings`."""
    pairs = (
        sa.select(device.c.device_pk, device_metric.c.metric_id)
        .join(device_metric, device_metric.c.device_pk == device.c.device_pk)
        .where(device.c.site_id == site_id, device.c.active, org_filter(device.c.org_id, org_id))
        .subquery("p")
    )
    newest = (
        sa.select(reading.c.ts)
        .where(reading.c.device_pk == pairs.c.device_pk, reading.c.metric_id == pairs.c.metric_id)
        .order_by(reading.c.ts.desc())
        .limit(1)
        .lateral("newest")
    )
    query = sa.select(sa.func.max(newest.c.ts)).select_from(pairs.join(newest, sa.true()))
    value: datetime | None = conn.execute(query).scalar()
    return value


@dataclass(frozen=True, slots=True)
class StoredRejection:
    rejection_id: int
    received_at: datetime
    last_seen_at: datetime
    reason: str
    detail: str
    topic: str
    site_id: str | None
    device_id: str | None
    metric: str | None
    reading_ts: datetime | None
    value: float | None
    payload_excerpt: str
    payload_bytes: int


@dataclass(frozen=True, slots=True)
class RejectionFilter:
    reason: str | None = None
    device_id: str | None = None
    metric: str | None = None
    since: datetime | None = None  # received_at >= since
    until: datetime | None = None  # received_at < until


def list_rejections(
    conn: sa.Connection,
    site_id: str | None,
    *,
    limit: int,
    offset: int,
    where: RejectionFilter = RejectionFilter(),
) -> list[StoredRejection]:
    """A site's rejected readings, newest first (``site_id`` None: those of no known site)."""
    r = rejected_reading
    query = sa.select(
        r.c.rejection_id,
        r.c.received_at,
        r.c.last_seen_at,
        r.c.reason,
        r.c.detail,
        r.c.topic,
        r.c.site_id,
        r.c.device_id,
        r.c.metric,
        r.c.reading_ts,
        r.c.value,
        r.c.payload_excerpt,
        r.c.payload_bytes,
    ).where(r.c.site_id.is_(None) if site_id is None else r.c.site_id == site_id)
    if where.reason is not None:
        query = query.where(r.c.reason == where.reason)
    if where.device_id is not None:
        query = query.where(r.c.device_id == where.device_id)
    if where.metric is not None:
        query = query.where(r.c.metric == where.metric)
    if where.since is not None:
        query = query.where(r.c.received_at >= where.since)
    if where.until is not None:
        query = query.where(r.c.received_at < where.until)
    query = (
        query.order_by(r.c.received_at.desc(), r.c.rejection_id.desc()).limit(limit).offset(offset)
    )
    return [make_row(StoredRejection, row) for row in conn.execute(query)]


@dataclass(frozen=True, slots=True)
class RejectionCount:
    site_id: str | None  # None: no site was recognised (unknown_topic, unknown_site)
    reason: str
    device_id: str | None
    topic: str | None  # where no device was recognised: the topic it came on
    rejections: int
    first_received_at: datetime
    last_seen_at: datetime


def rejection_counts(
    conn: sa.Connection,
    *,
    site_ids: Sequence[str] | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
) -> list[RejectionCount]:
    """Rejected readings counted per site, reason and device (per topic where no device was
    recognised), most first. ``site_ids`` None: every site and the rows of no site."""
    r = rejected_reading
    topic = sa.case((r.c.device_id.is_(None), r.c.topic), else_=sa.null()).label("topic")
    query = sa.select(
        r.c.site_id,
        r.c.reason,
        r.c.device_id,
        topic,
        sa.func.count(),
        sa.func.min(r.c.received_at),
        sa.func.max(r.c.last_seen_at),
    ).group_by(r.c.site_id, r.c.reason, r.c.device_id, topic)
    if site_ids is not None:
        query = query.where(r.c.site_id.in_(list(site_ids)))
    if since is not None:
        query = query.where(r.c.received_at >= since)
    if until is not None:
        query = query.where(r.c.received_at < until)
    query = query.order_by(
        sa.func.count().desc(), r.c.site_id.nulls_first(), r.c.reason, r.c.device_id, topic
    ).limit(limit)
    return [make_row(RejectionCount, row) for row in conn.execute(query)]


def reading_span(conn: Conn, device_pks: Sequence[int]) -> tuple[datetime | None, datetime | None]:
    """First and last reading time of the devices (for whole-history recomputation)."""
    if not device_pks:
        return None, None
    row = conn.execute(
        "SELECT min(ts), max(ts) FROM reading WHERE device_pk = ANY(%s)", (list(device_pks),)
    ).fetchone()
    return (row[0], row[1]) if row else (None, None)


@dataclass(frozen=True, slots=True)
class WindowBounds:
    device_pk: int
    metric_id: int
    previous: datetime | None  # last reading before the window
    first: datetime | None  # first reading inside
    last: datetime | None  # last reading inside
    following: datetime | None  # first reading at or after the window's end
    # One reading further out on each side: a counter drop is judged by the reading after it
    # (look-ahead, ``counters.resolve_drop``), so a new reading can change the pair before the
    # previous one, and a skipped reading joins the pairs around it.
    before_previous: datetime | None = None
    after_following: datetime | None = None


def window_bounds(
    conn: Conn, windows: Sequence[tuple[int, int, datetime, datetime]]
) -> list[WindowBounds]:
    """For each (device, metric, start, end): the readings that bound the affected time."""
    if not windows:
        return []
    rows = conn.execute(
        "SELECT w.pk, w.mid, "
        " (SELECT max(ts) FROM reading r WHERE r.device_pk = w.pk AND r.metric_id = w.mid "
        "   AND r.ts < w.a), "
        " (SELECT min(ts) FROM reading r WHERE r.device_pk = w.pk AND r.metric_id = w.mid "
        "   AND r.ts >= w.a AND r.ts < w.b), "
        " (SELECT max(ts) FROM reading r WHERE r.device_pk = w.pk AND r.metric_id = w.mid "
        "   AND r.ts >= w.a AND r.ts < w.b), "
        " (SELECT min(ts) FROM reading r WHERE r.device_pk = w.pk AND r.metric_id = w.mid "
        "   AND r.ts >= w.b), "
        " (SELECT ts FROM reading r WHERE r.device_pk = w.pk AND r.metric_id = w.mid "
        "   AND r.ts < w.a ORDER BY ts DESC LIMIT 1 OFFSET 1), "
        " (SELECT ts FROM reading r WHERE r.device_pk = w.pk AND r.metric_id = w.mid "
        "   AND r.ts >= w.b ORDER BY ts LIMIT 1 OFFSET 1) "
        "FROM unnest(%s::int[], %s::int2[], %s::timestamptz[], %s::timestamptz[]) "
        "WITH ORDINALITY AS w(pk, mid, a, b, i) ORDER BY w.i",
        window_columns(windows),
    ).fetchall()
    return [WindowBounds(int(r[0]), int(r[1]), r[2], r[3], r[4], r[5], r[6], r[7]) for r in rows]


ReadingTuple = tuple[datetime, float, datetime]  # (ts, value, received_at)

#: The readings of each window w (numbered w.i from 1) in [w.lo, w.hi), plus the one before and
#: the one after: ``FROM … r``, with the windows as the four arrays of :func:`window_columns`.
_WINDOW_READINGS = (
    "FROM unnest(%s::int[], %s::int2[], %s::timestamptz[], %s::timestamptz[]) "
    "WITH ORDINALITY AS w(pk, mid, lo, hi, i) "
    "CROSS JOIN LATERAL ("
    " (SELECT ts, value, received_at FROM reading WHERE device_pk = w.pk "
    "   AND metric_id = w.mid AND ts < w.lo ORDER BY ts DESC LIMIT 1)"
    " UNION ALL"
    " (SELECT ts, value, received_at FROM reading WHERE device_pk = w.pk "
    "   AND metric_id = w.mid AND ts >= w.lo AND ts < w.hi)"
    " UNION ALL"
    " (SELECT ts, value, received_at FROM reading WHERE device_pk = w.pk "
    "   AND metric_id = w.mid AND ts >= w.hi ORDER BY ts LIMIT 1)"
    ") r"
)


def window_columns(
    windows: Sequence[tuple[int, int, datetime, datetime]],
) -> tuple[list[int], list[int], list[datetime], list[datetime]]:
    """(device, metric, start, end) windows as four column arrays, for ``unnest``."""
    return (
        [w[0] for w in windows],
        [w[1] for w in windows],
        [w[2] for w in windows],
        [w[3] for w in windows],
    )


def readings_with_context(
    conn: Conn, windows: Sequence[tuple[int, int, datetime, datetime]]
) -> list[list[ReadingTuple]]:
    """Per (device, metric, lo, hi): readings in [lo, hi) plus the one before and the one after."""
    if not windows:
        return []
    out: list[list[ReadingTuple]] = [[] for _ in windows]
    rows = conn.execute(
        f"SELECT w.i, r.ts, r.value, r.received_at {_WINDOW_READINGS} ORDER BY w.i, r.ts",
        window_columns(windows),
    )
    for i, ts, value, received in rows:
        out[int(i) - 1].append((ts, float(value), received))
    return out


@dataclass(frozen=True)
class ReadingArrays:
    """One window's readings: times and ``received_at`` [µs since the Unix epoch], values."""

    ts_us: npt.NDArray[np.int64]
    value: npt.NDArray[np.float64]
    received_us: npt.NDArray[np.int64]


def readings_arrays(
    conn: Conn, windows: Sequence[tuple[int, int, datetime, datetime]]
) -> list[ReadingArrays]:
    """:func:`readings_with_context` as arrays: one row per window whose columns are the
    binary values of its readings (``timestamptz_send``, ``float8send``) concatenated in time
    order, read by numpy (for bulk recomputation: no Python object per reading)."""
    if not windows:
        return []
    rows = conn.execute(
        "SELECT w.i, string_agg(timestamptz_send(r.ts), ''::bytea ORDER BY r.ts), "
        " string_agg(float8send(r.value), ''::bytea ORDER BY r.ts), "
        " string_agg(timestamptz_send(r.received_at), ''::bytea ORDER BY r.ts) "
        f"{_WINDOW_READINGS} GROUP BY w.i",
        window_columns(windows),
        binary=True,
    ).fetchall()
    empty = ReadingArrays(
        np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64), np.zeros(0, dtype=np.int64)
    )
    out = [empty] * len(windows)
    for i, ts, value, received in rows:
        out[int(i) - 1] = ReadingArrays(
            np.frombuffer(ts, dtype=">i8").astype(np.int64) + copy_arrays.PG_EPOCH_US,
            np.frombuffer(value, dtype=">f8").astype(np.float64),
            np.frombuffer(received, dtype=">i8").astype(np.int64) + copy_arrays.PG_EPOCH_US,
        )
    return out


def serial_spans(
    conn: Conn, device_pks: Sequence[int]
) -> dict[int, list[tuple[str, datetime, datetime]]]:
    if not device_pks:
        return {}
    rows = conn.execute(
        "SELECT device_pk, serial, first_ts, last_ts FROM meter_serial "
        "WHERE device_pk = ANY(%s) ORDER BY device_pk, first_ts",
        (list(device_pks),),
    ).fetchall()
    out: dict[int, list[tuple[str, datetime, datetime]]] = {}
    for pk, serial, first, last in rows:
        out.setdefault(int(pk), []).append((str(serial), first, last))
    return out


# (device_pk, metric_id, ts, value, seq, received_at)
ReadingRow = tuple[int, int, datetime, float, int | None, datetime]


@dataclass(frozen=True, slots=True)
class RejectionRow:
    received_at: datetime
    reason: str
    detail: str
    topic: str
    site_id: str | None
    device_id: str | None
    metric: str | None
    reading_ts: datetime | None
    value: float | None
    payload_excerpt: str
    payload_bytes: int
    payload_sha256: str

    def dedup_key(self) -> str:
        """Identical rejected content on the same topic is one row: redelivery stays idempotent."""
        parts = (
            self.topic,
            self.payload_sha256,
            self.reason,
            self.device_id or "",
            self.metric or "",
            self.reading_ts.isoformat() if self.reading_ts else "",
        )
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


@dataclass(slots=True)
class StoreResult:
    staged: int = 0
    inserted: int = 0
    conflicts: list[ReadingRow] = field(default_factory=list)
    rejections_written: int = 0


def latest_counter_values(
    conn: psycopg.Connection[Any], keys: Sequence[tuple[int, int]]
) -> dict[tuple[int, int], tuple[datetime, float]]:
    """The newest stored (ts, value) for each (device_pk, metric_id) that has one."""
    if not keys:
        return {}
    rows = conn.execute(
        """
        SELECT k.device_pk, k.metric_id, r.ts, r.value
        FROM unnest(%s::int[], %s::int2[]) AS k(device_pk, metric_id)
        CROSS JOIN LATERAL (
            SELECT ts, value FROM reading
            WHERE reading.device_pk = k.device_pk AND reading.metric_id = k.metric_id
            ORDER BY ts DESC LIMIT 1
        ) r
        """,
        ([k[0] for k in keys], [k[1] for k in keys]),
    ).fetchall()
    return {(pk, mid): (ts, value) for pk, mid, ts, value in rows}


_STAGE_DDL = """
CREATE TEMP TABLE IF NOT EXISTS reading_stage (
    device_pk integer NOT NULL,
    metric_id smallint NOT NULL,
    ts timestamptz NOT NULL,
    value double precision NOT NULL,
    seq bigint,
    received_at timestamptz NOT NULL
) ON COMMIT DELETE ROWS
"""


_MOVE_TEMPLATE = """
WITH ins AS (
    INSERT INTO reading (device_pk, metric_id, ts, value, seq, received_at)
    SELECT device_pk, metric_id, ts, value, seq, received_at FROM reading_stage
    ON CONFLICT (device_pk, metric_id, ts) DO NOTHING
    RETURNING device_pk, metric_id, ts
), dirty AS (
    INSERT INTO dirty_hour (device_pk, hour_start)
    SELECT DISTINCT device_pk, date_trunc('hour', ts, 'UTC') FROM ins
    ON CONFLICT (device_pk, hour_start) DO UPDATE SET marked_at = clock_timestamp()
){origin}
SELECT count(*) FROM ins
"""
_MOVE = _MOVE_TEMPLATE.format(origin="")
# An import's readings also name their import (``reading_origin``), in the same statement.
_MOVE_IMPORTED = _MOVE_TEMPLATE.format(
    origin=""", origin AS (
    INSERT INTO reading_origin (device_pk, metric_id, ts, import_id)
    SELECT device_pk, metric_id, ts, %(import_id)s FROM ins
)"""
)


_CONFLICTS = """
SELECT s.device_pk, s.metric_id, s.ts, s.value, s.seq, s.received_at
FROM reading_stage s
JOIN reading r ON r.device_pk = s.device_pk AND r.metric_id = s.metric_id AND r.ts = s.ts
WHERE r.value <> s.value
"""


_INSERT_REJECTION = """
INSERT INTO rejected_reading (received_at, last_seen_at, reason, detail, topic, site_id,
    device_id, metric, reading_ts, value, payload_excerpt, payload_bytes, dedup_key)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (dedup_key) DO UPDATE
SET last_seen_at = GREATEST(rejected_reading.last_seen_at, excluded.last_seen_at)
"""


_UPSERT_SERIAL = """
INSERT INTO meter_serial (device_pk, serial, first_ts, last_ts) VALUES (%s, %s, %s, %s)
ON CONFLICT (device_pk, serial) DO UPDATE
SET first_ts = LEAST(meter_serial.first_ts, excluded.first_ts),
    last_ts = GREATEST(meter_serial.last_ts, excluded.last_ts)
"""


_MARK_DIRTY = """
INSERT INTO dirty_hour (device_pk, hour_start)
SELECT * FROM unnest(%s::int[], %s::timestamptz[])
ON CONFLICT (device_pk, hour_start) DO UPDATE SET marked_at = clock_timestamp()
"""


def _copy_rows(cur: psycopg.Cursor[Any], table: str, rows: Sequence[ReadingRow]) -> None:
    with cur.copy(
        f"COPY {table} (device_pk, metric_id, ts, value, seq, received_at)"
        " FROM STDIN (FORMAT BINARY)"
    ) as copy:
        copy.set_types(["int4", "int2", "timestamptz", "float8", "int8", "timestamptz"])
        for row in rows:
            copy.write_row(row)


def _copied_straight(cur: psycopg.Cursor[Any], rows: Sequence[ReadingRow]) -> bool:
    """COPY straight into ``reading`` with the rows' dirty hours; False, and nothing written,
    if a key is already stored."""
    # An explicit savepoint, not conn.transaction(): that would commit on its own when the
    # connection has no transaction open yet, and the batch is one transaction.
    cur.execute("SAVEPOINT direct_copy")
    try:
        _copy_rows(cur, "reading", rows)
    except psycopg.errors.UniqueViolation:
        cur.execute("ROLLBACK TO SAVEPOINT direct_copy")
        return False
    hours = _dirty_hours(rows)
    cur.execute(_MARK_DIRTY, ([h[0] for h in hours], [h[1] for h in hours]))
    return True


def _dirty_hours(rows: Sequence[ReadingRow]) -> list[tuple[int, datetime]]:
    """The (device, UTC hour) of each row, once each: what the calc service must recompute."""
    hours = {(row[0], int(row[2].timestamp()) // 3600) for row in rows}
    return sorted((pk, datetime.fromtimestamp(hour * 3600, UTC)) for pk, hour in hours)


def _move(import_id: int | None) -> tuple[str, dict[str, int] | None]:
    """The statement moving staged rows into ``reading`` (marking their import, if any)."""
    return (_MOVE, None) if import_id is None else (_MOVE_IMPORTED, {"import_id": import_id})


class BatchStore:
    """Stores batches over one long-lived connection; reconnects after a failure."""

    def __init__(self, database_url: str) -> None:
        self._url = database_url
        self._conn: psycopg.Connection[Any] | None = None

    def connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self.close()
            conn = connect(self._url)
            conn.execute("SET TIME ZONE 'UTC'")
            conn.execute(_STAGE_DDL)
            conn.commit()
            self._conn = conn
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def registry(self) -> RegistrySnapshot:
        conn = self.connection()
        try:
            return load_registry(conn)
        finally:
            conn.rollback()

    def latest_counter_values(
        self, keys: Sequence[tuple[int, int]]
    ) -> dict[tuple[int, int], tuple[datetime, float]]:
        conn = self.connection()
        try:
            return latest_counter_values(conn, keys)
        finally:
            conn.rollback()

    @staticmethod
    def _store_rows(
        cur: psycopg.Cursor[Any],
        rows: Sequence[ReadingRow],
        result: StoreResult,
        import_id: int | None,
    ) -> None:
        """Rows into ``reading`` and their hours into ``dirty_hour``.

        First straight into the table with COPY, the fastest way PostgreSQL takes rows; if any
        key is already stored (a redelivered message, a repeated reading) that attempt is rolled
        back to its savepoint and the rows go through the staging table, which skips keys
        already stored and reports those stored with another value (``duplicate_conflict``).
        Imported rows always take the staging path: it also records each stored row's import.
        """
        if import_id is None and _copied_straight(cur, rows):
            result.inserted = len(rows)
            return
        _copy_rows(cur, "reading_stage", rows)
        cur.execute(*_move(import_id))
        fetched = cur.fetchone()
        result.inserted = int(fetched[0]) if fetched else 0
        if result.inserted < result.staged:
            cur.execute(_CONFLICTS)
            result.conflicts = list(cur.fetchall())

    def store(
        self,
        rows: Sequence[ReadingRow],
        rejections: Iterable[RejectionRow],
        serials: Iterable[tuple[int, str, datetime, datetime]],
        conflict_rejections: Any = None,
        import_id: int | None = None,
    ) -> StoreResult:
        """Store one batch in one transaction.

        ``conflict_rejections(conflicts) -> Iterable[RejectionRow]`` turns readings whose key is
        already stored with a different value into rejections, written in the same transaction.
        ``import_id``: the rows come from that ``reading_import``; each stored one is marked so.
        """
        conn = self.connection()
        result = StoreResult(staged=len(rows))
        try:
            with conn.cursor() as cur:
                if rows:
                    self._store_rows(cur, rows, result, import_id)
                all_rejections = list(rejections)
                if result.conflicts and conflict_rejections is not None:
                    all_rejections.extend(conflict_rejections(result.conflicts))
                if all_rejections:
                    cur.executemany(
                        _INSERT_REJECTION,
                        [
                            (
                                r.received_at,
                                r.received_at,
                                r.reason,
                                r.detail,
                                r.topic,
                                r.site_id,
                                r.device_id,
                                r.metric,
                                r.reading_ts,
                                r.value,
                                r.payload_excerpt,
                                r.payload_bytes,
                                r.dedup_key(),
                            )
                            for r in all_rejections
                        ],
                    )
                result.rejections_written = len(all_rejections)
                serial_rows = list(serials)
                if serial_rows:
                    cur.executemany(_UPSERT_SERIAL, serial_rows)
            conn.commit()
        except BaseException:
            if not conn.closed:
                try:
                    conn.rollback()
                except psycopg.Error:
                    self.close()
            raise
        return result


def site_first_reading(conn: sa.Connection, site_id: str) -> datetime | None:
    """The time of the site's first stored reading (when it was onboarded), or None.

    One index probe per (device, metric): the readings key leads with them, so the first
    reading of each is the first index entry, however long the history.
    """
    row = conn.execute(
        sa.text(
            """
            SELECT min(first.ts)
            FROM device d
            JOIN device_metric dm ON dm.device_pk = d.device_pk
            CROSS JOIN LATERAL (
                SELECT ts FROM reading r
                WHERE r.device_pk = dm.device_pk AND r.metric_id = dm.metric_id
                ORDER BY ts LIMIT 1
            ) first
            WHERE d.site_id = :site
            """
        ),
        {"site": site_id},
    ).first()
    return None if row is None else row[0]


@dataclass(frozen=True, slots=True)
class RegisterBounds:
    """A counter's register around a period: the last reading at or before its start (else the
    first inside it) and the last reading before its end, with their times [metric unit, raw]."""

    opening: float | None
    opening_ts: datetime | None
    closing: float | None
    closing_ts: datetime | None
    readings: int  # readings in [start, end)
    first_ts: datetime | None  # first reading in [start, end)
    last_ts: datetime | None  # last reading in [start, end)


def register_bounds(
    conn: Conn, keys: Sequence[tuple[int, int]], start: datetime, end: datetime
) -> dict[tuple[int, int], RegisterBounds]:
    """Opening and closing register readings and the count of readings of each (device_pk,
    metric_id) over [start, end) (ledger device lines, traceability)."""
    if not keys:
        return {}
    rows = conn.execute(
        "SELECT k.pk, k.mid, o.value, o.ts, f.value, f.ts, c.value, c.ts, n.cnt, n.lo, n.hi "
        "FROM unnest(%(pks)s::int[], %(mids)s::smallint[]) AS k(pk, mid) "
        "LEFT JOIN LATERAL (SELECT value, ts FROM reading r WHERE r.device_pk = k.pk "
        " AND r.metric_id = k.mid AND r.ts <= %(s)s ORDER BY ts DESC LIMIT 1) o ON true "
        "LEFT JOIN LATERAL (SELECT value, ts FROM reading r WHERE r.device_pk = k.pk "
        " AND r.metric_id = k.mid AND r.ts >= %(s)s AND r.ts < %(e)s ORDER BY ts LIMIT 1) f "
        " ON true "
        "LEFT JOIN LATERAL (SELECT value, ts FROM reading r WHERE r.device_pk = k.pk "
        " AND r.metric_id = k.mid AND r.ts >= %(s)s AND r.ts <= %(e)s ORDER BY ts DESC LIMIT 1) c "
        " ON true "
        "LEFT JOIN LATERAL (SELECT count(*) AS cnt, min(ts) AS lo, max(ts) AS hi FROM reading r "
        " WHERE r.device_pk = k.pk AND r.metric_id = k.mid AND r.ts >= %(s)s AND r.ts < %(e)s) n "
        " ON true",
        {"pks": [k[0] for k in keys], "mids": [k[1] for k in keys], "s": start, "e": end},
    ).fetchall()
    out = {}
    for pk, mid, o_v, o_ts, f_v, f_ts, c_v, c_ts, cnt, lo, hi in rows:
        opening, opening_ts = (o_v, o_ts) if o_ts is not None else (f_v, f_ts)
        out[(int(pk), int(mid))] = RegisterBounds(
            opening, opening_ts, c_v, c_ts, int(cnt or 0), lo, hi
        )
    return out

"""SQL for the ingest service: the registry snapshot it validates against, the last counter
values it checks new readings against, and the one transaction that stores a batch.

A batch is stored with COPY into a per-connection staging table, then moved into ``reading``
with ``ON CONFLICT DO NOTHING``: the same (device, metric, ts) delivered twice is one row. In the
same transaction it records rejected readings, meter serials seen and the hours that changed
(``dirty_hour``, for the calc service). Nothing is acknowledged to the broker before it commits.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

import psycopg

from carbonflow.storage.db import connect

# (device_pk, metric_id, ts, value, seq, received_at)
ReadingRow = tuple[int, int, datetime, float, int | None, datetime]


@dataclass(frozen=True, slots=True)
class MetricInfo:
    metric_id: int
    name: str
    unit: str
    kind: str  # counter | interval | gauge


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    device_pk: int
    site_id: str
    device_id: str
    active: bool
    counter_modulus: float | None
    metrics: MappingProxyType[str, MetricInfo]


@dataclass(frozen=True, slots=True)
class RegistrySnapshot:
    sites: frozenset[str]
    devices: MappingProxyType[tuple[str, str], DeviceInfo]
    # device id -> the sites that have a device of that id (for wrong_site)
    device_sites: MappingProxyType[str, tuple[str, ...]]
    by_pk: MappingProxyType[int, DeviceInfo]

    @staticmethod
    def empty() -> RegistrySnapshot:
        return RegistrySnapshot(
            frozenset(), MappingProxyType({}), MappingProxyType({}), MappingProxyType({})
        )


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


def load_registry(conn: psycopg.Connection[Any]) -> RegistrySnapshot:
    sites = frozenset(r[0] for r in conn.execute("SELECT site_id FROM site"))
    rows = conn.execute(
        """
        SELECT d.device_pk, d.site_id, d.device_id, d.active, d.counter_modulus,
               m.metric_id, m.name, m.unit, dm.kind
        FROM device d
        LEFT JOIN device_metric dm ON dm.device_pk = d.device_pk
        LEFT JOIN metric m ON m.metric_id = dm.metric_id
        ORDER BY d.device_pk
        """
    ).fetchall()
    metrics: dict[int, dict[str, MetricInfo]] = {}
    heads: dict[int, tuple[str, str, bool, float | None]] = {}
    for pk, site_id, device_id, active, modulus, metric_id, name, unit, kind in rows:
        heads[pk] = (site_id, device_id, active, modulus)
        bucket = metrics.setdefault(pk, {})
        if metric_id is not None:
            bucket[name] = MetricInfo(metric_id, name, unit, kind)
    devices: dict[tuple[str, str], DeviceInfo] = {}
    device_sites: dict[str, list[str]] = {}
    for pk, (site_id, device_id, active, modulus) in heads.items():
        info = DeviceInfo(pk, site_id, device_id, active, modulus, MappingProxyType(metrics[pk]))
        devices[(site_id, device_id)] = info
        device_sites.setdefault(device_id, []).append(site_id)
    return RegistrySnapshot(
        sites=sites,
        devices=MappingProxyType(devices),
        device_sites=MappingProxyType({k: tuple(v) for k, v in device_sites.items()}),
        by_pk=MappingProxyType({d.device_pk: d for d in devices.values()}),
    )


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

_MOVE = """
WITH ins AS (
    INSERT INTO reading (device_pk, metric_id, ts, value, seq, received_at)
    SELECT device_pk, metric_id, ts, value, seq, received_at FROM reading_stage
    ON CONFLICT (device_pk, metric_id, ts) DO NOTHING
    RETURNING device_pk, ts
), dirty AS (
    INSERT INTO dirty_hour (device_pk, hour_start)
    SELECT DISTINCT device_pk, date_trunc('hour', ts, 'UTC') FROM ins
    ON CONFLICT (device_pk, hour_start) DO UPDATE SET marked_at = clock_timestamp()
)
SELECT count(*) FROM ins
"""

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

    def store(
        self,
        rows: Sequence[ReadingRow],
        rejections: Iterable[RejectionRow],
        serials: Iterable[tuple[int, str, datetime, datetime]],
        conflict_rejections: Any = None,
    ) -> StoreResult:
        """Store one batch in one transaction.

        ``conflict_rejections(conflicts) -> Iterable[RejectionRow]`` turns readings whose key is
        already stored with a different value into rejections, written in the same transaction.
        """
        conn = self.connection()
        result = StoreResult(staged=len(rows))
        try:
            with conn.cursor() as cur:
                if rows:
                    with cur.copy(
                        "COPY reading_stage (device_pk, metric_id, ts, value, seq, received_at)"
                        " FROM STDIN (FORMAT BINARY)"
                    ) as copy:
                        copy.set_types(
                            ["int4", "int2", "timestamptz", "float8", "int8", "timestamptz"]
                        )
                        for row in rows:
                            copy.write_row(row)
                    cur.execute(_MOVE)
                    fetched = cur.fetchone()
                    result.inserted = int(fetched[0]) if fetched else 0
                    if result.inserted < result.staged:
                        cur.execute(_CONFLICTS)
                        result.conflicts = list(cur.fetchall())
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

"""SQL of the calc service: its inputs (registry, readings, dirty hours, requests) and its results
(intervals, carbon, rollups, indicators, budgets, events, state), plus the query functions the
API layer calls (time series, period totals, indicators, ledger inputs).

psycopg 3 throughout (the calc service's hot path is bulk reads and COPY writes). Connections
are opened by the caller and set to UTC. Every write happens in the caller's transaction.

**Determinism.** Rollups sum ``float8`` values as ``numeric`` (exact addition, independent of
row order), so results do not depend on the physical layout (hypertable chunks or a plain heap)
nor on the order rows were written: the same readings give the same figures on plain
PostgreSQL and on TimescaleDB. Periods are ``date_trunc(…, ts, site time zone)`` of core
PostgreSQL; no TimescaleDB function is used.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg.types.json import Jsonb

from carbonflow.domain.site.plan import (
    DevicePlan,
    MetricPlan,
    SitePlan,
    parse_document,
    report_period_of,
)

Conn = psycopg.Connection[Any]

# Advisory-lock namespace of the calc service (first key of the two-int form): one lock per site,
# so two calc instances never process the same site at once but may share the sites.
CALC_LOCK_NAMESPACE = 0x63_66_63_6C  # "cfcl"
GRAINS = ("hour", "day", "month")
SLOT = timedelta(minutes=15)


# --- registry ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SiteRow:
    site_id: str
    kind: str
    province: str
    grid_region: str
    timezone: str
    document: Mapping[str, Any]
    document_sha256: str


@dataclass(frozen=True, slots=True)
class DeviceRow:
    device_pk: int
    site_id: str
    device_id: str
    carrier: str
    role: str
    node_id: str | None
    org_id: str | None
    multiplier: float
    modulus: float | None
    active: bool
    attributes: Mapping[str, Any]
    metrics: tuple[tuple[int, str, str, str], ...]  # (metric_id, name, kind, unit)


def load_sites(conn: Conn, site_id: str | None = None) -> list[SiteRow]:
    """Every site, or the one asked for (an empty list when it does not exist)."""
    rows = conn.execute(
        "SELECT site_id, kind, province, grid_region, timezone, document, document_sha256 "
        "FROM site WHERE %(site)s::text IS NULL OR site_id = %(site)s ORDER BY site_id",
        {"site": site_id},
    ).fetchall()
    return [SiteRow(*r) for r in rows]


def site_version(conn: Conn, site_id: str) -> tuple[str, datetime] | None:
    """(document SHA-256, loaded_at) of a site: the registry loader rewrites the site's devices
    in the same transaction as these two, so together they identify its plan's inputs."""
    row = conn.execute(
        "SELECT document_sha256, loaded_at FROM site WHERE site_id = %s", (site_id,)
    ).fetchone()
    return None if row is None else (str(row[0]), row[1])


def load_devices(conn: Conn, site_id: str | None = None) -> list[DeviceRow]:
    """Every device with its metrics, or those of one site."""
    rows = conn.execute(
        "SELECT d.device_pk, d.site_id, d.device_id, d.carrier, d.role, d.node_id, d.org_id, "
        "d.multiplier, d.counter_modulus, d.active, d.attributes, "
        "m.metric_id, m.name, dm.kind, m.unit "
        "FROM device d LEFT JOIN device_metric dm ON dm.device_pk = d.device_pk "
        "LEFT JOIN metric m ON m.metric_id = dm.metric_id "
        "WHERE %(site)s::text IS NULL OR d.site_id = %(site)s ORDER BY d.device_pk, m.name",
        {"site": site_id},
    ).fetchall()
    heads: dict[int, tuple[Any, ...]] = {}
    metrics: dict[int, list[tuple[int, str, str, str]]] = {}
    for r in rows:
        heads[r[0]] = r[:11]
        if r[11] is not None:
            metrics.setdefault(r[0], []).append((int(r[11]), str(r[12]), str(r[13]), str(r[14])))
    return [
        DeviceRow(*head, metrics=tuple(metrics.get(pk, ())))  # type: ignore[misc]
        for pk, head in heads.items()
    ]


def try_lock_site(conn: Conn, site_id: str) -> bool:
    """Transaction-level advisory lock of one site; False when another instance holds it."""
    row = conn.execute(
        "SELECT pg_try_advisory_xact_lock(%s, hashtext(%s))", (CALC_LOCK_NAMESPACE, site_id)
    ).fetchone()
    return bool(row and row[0])


# --- dirty hours and requests ------------------------------------------------------------------


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


def advance_request(conn: Conn, request_id: int, cursor: datetime, done: bool) -> None:
    conn.execute(
        "UPDATE calc_request SET cursor = %s, done_at = CASE WHEN %s THEN now() END "
        "WHERE request_id = %s",
        (cursor, done, request_id),
    )


def reading_span(conn: Conn, device_pks: Sequence[int]) -> tuple[datetime | None, datetime | None]:
    """First and last reading time of the devices (for whole-history recomputation)."""
    if not device_pks:
        return None, None
    row = conn.execute(
        "SELECT min(ts), max(ts) FROM reading WHERE device_pk = ANY(%s)", (list(device_pks),)
    ).fetchone()
    return (row[0], row[1]) if row else (None, None)


# --- readings ----------------------------------------------------------------------------------


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
        (
            [w[0] for w in windows],
            [w[1] for w in windows],
            [w[2] for w in windows],
            [w[3] for w in windows],
        ),
    ).fetchall()
    return [WindowBounds(int(r[0]), int(r[1]), r[2], r[3], r[4], r[5], r[6], r[7]) for r in rows]


ReadingTuple = tuple[datetime, float, datetime]  # (ts, value, received_at)


def readings_with_context(
    conn: Conn, windows: Sequence[tuple[int, int, datetime, datetime]]
) -> list[list[ReadingTuple]]:
    """Per (device, metric, lo, hi): readings in [lo, hi) plus the one before and the one after."""
    if not windows:
        return []
    out: list[list[ReadingTuple]] = [[] for _ in windows]
    rows = conn.execute(
        "SELECT w.i, r.ts, r.value, r.received_at "
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
        ") r ORDER BY w.i, r.ts",
        (
            [w[0] for w in windows],
            [w[1] for w in windows],
            [w[2] for w in windows],
            [w[3] for w in windows],
        ),
    )
    for i, ts, value, received in rows:
        out[int(i) - 1].append((ts, float(value), received))
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


# --- interval results --------------------------------------------------------------------------

IntervalTuple = tuple[datetime, float, str, float, bool]  # start, quantity, quality, compl., late


def replace_intervals(
    conn: Conn,
    results: Sequence[tuple[int, int, datetime, datetime, Sequence[IntervalTuple]]],
    computed_at: datetime,
) -> int:
    """Replace the rows of each (device, metric) in [start, end) by the given ones."""
    if not results:
        return 0
    conn.execute(
        "DELETE FROM calc_interval c USING unnest(%s::int[], %s::int2[], %s::timestamptz[], "
        "%s::timestamptz[]) AS w(pk, mid, lo, hi) WHERE c.device_pk = w.pk "
        "AND c.metric_id = w.mid AND c.start_ts >= w.lo AND c.start_ts < w.hi",
        (
            [r[0] for r in results],
            [r[1] for r in results],
            [r[2] for r in results],
            [r[3] for r in results],
        ),
    )
    written = 0
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY calc_interval (device_pk, metric_id, start_ts, quantity, quality, "
            "completeness, late, computed_at) FROM STDIN (FORMAT BINARY)"
        ) as copy,
    ):
        copy.set_types(
            ["int4", "int2", "timestamptz", "float8", "text", "float8", "bool", "timestamptz"]
        )
        for pk, mid, _lo, _hi, rows in results:
            for start, quantity, quality, completeness, late in rows:
                copy.write_row((pk, mid, start, quantity, quality, completeness, late, computed_at))
                written += 1
    return written


@dataclass(frozen=True, slots=True)
class StoredInterval:
    device_pk: int
    metric_id: int
    start: datetime
    quantity: float
    quality: str
    completeness: float
    late: bool


def intervals_in(
    conn: Conn, device_pks: Sequence[int], start: datetime, end: datetime
) -> list[StoredInterval]:
    if not device_pks:
        return []
    rows = conn.execute(
        "SELECT device_pk, metric_id, start_ts, quantity, quality, completeness, late "
        "FROM calc_interval WHERE device_pk = ANY(%s) AND start_ts >= %s AND start_ts < %s",
        (list(device_pks), start, end),
    ).fetchall()
    return [StoredInterval(*r) for r in rows]


def last_interval_end(conn: Conn, device_pks: Sequence[int], start: datetime) -> datetime | None:
    """End of the newest interval at or after ``start`` of any of the devices."""
    if not device_pks:
        return None
    row = conn.execute(
        "SELECT max(start_ts) FROM calc_interval WHERE device_pk = ANY(%s) AND start_ts >= %s",
        (list(device_pks), start),
    ).fetchone()
    return None if row is None or row[0] is None else row[0] + SLOT


# --- carbon results ----------------------------------------------------------------------------


class FactorSets:
    """calc_factor_set ids by content. Ids found in a transaction are cached only once the
    caller reports it committed (:meth:`commit`), so a rollback never leaves a dangling id."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self._pending: dict[str, int] = {}

    def id_for(self, conn: Conn, records: Sequence[Mapping[str, Any]]) -> int:
        text = json.dumps(list(records), sort_keys=True, default=str, ensure_ascii=False)
        sha = hashlib.sha256(text.encode()).hexdigest()
        found = self._ids.get(sha) or self._pending.get(sha)
        if found is not None:
            return found
        row = conn.execute(
            "INSERT INTO calc_factor_set (sha256, factors) VALUES (%s, %s) "
            "ON CONFLICT (sha256) DO NOTHING RETURNING factor_set_id",
            (sha, Jsonb(list(records))),
        ).fetchone()
        if row is None:
            row = conn.execute(
                "SELECT factor_set_id FROM calc_factor_set WHERE sha256 = %s", (sha,)
            ).fetchone()
        assert row is not None
        self._pending[sha] = int(row[0])
        return int(row[0])

    def commit(self) -> None:
        self._ids.update(self._pending)
        self._pending.clear()

    def rollback(self) -> None:
        self._pending.clear()


# (org, node, carrier, category, basis, gas, scope, activity, activity_unit, energy_tce,
#  zero_carbon_tce, gas_t, tco2e, factor_key, factor_version, factor_value, factor_unit,
#  factor_set_id, quality, completeness)
CarbonTuple = tuple[Any, ...]


def replace_carbon(
    conn: Conn,
    site_id: str,
    start: datetime,
    end: datetime,
    rows: Iterable[tuple[datetime, CarbonTuple]],
    *,
    computed_at: datetime,
) -> int:
    conn.execute(
        "DELETE FROM calc_carbon WHERE site_id = %s AND start_ts >= %s AND start_ts < %s",
        (site_id, start, end),
    )
    written = 0
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY calc_carbon (site_id, start_ts, org_id, node_id, carrier, category, basis, "
            "gas, scope, activity, activity_unit, energy_tce, zero_carbon_tce, gas_t, tco2e, "
            "factor_key, factor_version, factor_value, factor_unit, factor_set_id, quality, "
            "completeness, computed_at) FROM STDIN (FORMAT BINARY)"
        ) as copy,
    ):
        copy.set_types(
            ["text", "timestamptz", "text", "text", "text", "text", "text", "text", "text",
             "float8", "text", "float8", "float8", "float8", "float8", "text", "text", "float8",
             "text", "int4", "text", "float8", "timestamptz"]
        )  # fmt: skip
        for slot_start, row in rows:
            copy.write_row((site_id, slot_start, *row, computed_at))
            written += 1
    return written


def covered_before(conn: Conn, site_id: str, month_start: datetime, before: datetime) -> float:
    """Green-pool MWh matched in the month before ``before`` (market green rows, signed)."""
    row = conn.execute(
        "SELECT coalesce(sum(activity::numeric), 0)::float8 FROM calc_carbon "
        "WHERE site_id = %s AND start_ts >= %s AND start_ts < %s "
        "AND category = 'green_electricity' AND basis = 'market'",
        (site_id, month_start, before),
    ).fetchone()
    return float(row[0]) if row else 0.0


def net_import_before(conn: Conn, site_id: str, month_start: datetime, before: datetime) -> float:
    """The month's signed net grid import before ``before`` [MWh] (location rows)."""
    row = conn.execute(
        "SELECT coalesce(sum(activity::numeric), 0)::float8 FROM calc_carbon "
        "WHERE site_id = %s AND start_ts >= %s AND start_ts < %s "
        "AND category = 'purchased_electricity' AND basis = 'location'",
        (site_id, month_start, before),
    ).fetchone()
    return float(row[0]) if row else 0.0


def last_carbon_end(conn: Conn, site_id: str, start: datetime, end: datetime) -> datetime | None:
    row = conn.execute(
        "SELECT max(start_ts) FROM calc_carbon WHERE site_id = %s AND start_ts >= %s "
        "AND start_ts < %s",
        (site_id, start, end),
    ).fetchone()
    return None if row is None or row[0] is None else row[0] + SLOT


def replace_green_claims(
    conn: Conn,
    site_id: str,
    month_start: datetime,
    claims: Sequence[tuple[str, str, bool, float, float, float, str]],
    computed_at: datetime,
) -> None:
    conn.execute(
        "DELETE FROM calc_green_claim WHERE site_id = %s AND month_start = %s",
        (site_id, month_start),
    )
    if claims:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO calc_green_claim (site_id, month_start, instrument_id, kind, "
                "accepted, offered_mwh, applied_mwh, unused_mwh, reason, computed_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [(site_id, month_start, *c, computed_at) for c in claims],
            )


# --- rollups -----------------------------------------------------------------------------------

_QUALITY = (
    "CASE WHEN bool_and(quality = 'measured') THEN 'measured' "
    "WHEN bool_and(quality = 'missing') THEN 'missing' ELSE 'estimated' END"
)
# 15-min intervals in one period [p, p + 1 grain) in the site's zone (DST-safe).
_EXPECTED = (
    "(extract(epoch FROM ((({p} AT TIME ZONE %(tz)s) + INTERVAL '1 {grain}') AT TIME ZONE %(tz)s)"
    " - {p}) / 900.0)"
)


def _period_bounds(
    conn: Conn, start: datetime, end: datetime, tz: str
) -> dict[str, tuple[datetime, datetime]]:
    """For each grain, the periods [first, last + 1 grain) touching [start, end) in ``tz``."""
    row = conn.execute(
        "SELECT date_trunc('hour', %(s)s::timestamptz, %(tz)s), "
        " date_trunc('hour', %(e)s::timestamptz - INTERVAL '1 microsecond', %(tz)s) "
        "   + INTERVAL '1 hour', "
        " date_trunc('day', %(s)s::timestamptz, %(tz)s), "
        " ((date_trunc('day', %(e)s::timestamptz - INTERVAL '1 microsecond', %(tz)s) "
        "   AT TIME ZONE %(tz)s) + INTERVAL '1 day') AT TIME ZONE %(tz)s, "
        " date_trunc('month', %(s)s::timestamptz, %(tz)s), "
        " ((date_trunc('month', %(e)s::timestamptz - INTERVAL '1 microsecond', %(tz)s) "
        "   AT TIME ZONE %(tz)s) + INTERVAL '1 month') AT TIME ZONE %(tz)s",
        {"s": start, "e": end, "tz": tz},
    ).fetchone()
    assert row is not None
    return {"hour": (row[0], row[1]), "day": (row[2], row[3]), "month": (row[4], row[5])}


def rollup_intervals(
    conn: Conn, device_pks: Sequence[int], start: datetime, end: datetime, tz: str
) -> None:
    """Recompute the hour, day and month rows of the devices touching [start, end)."""
    if not device_pks:
        return
    bounds = _period_bounds(conn, start, end, tz)
    previous = "hour"
    for grain in GRAINS:
        lo, hi = bounds[grain]
        params = {"pks": list(device_pks), "g": grain, "lo": lo, "hi": hi, "tz": tz}
        conn.execute(
            "DELETE FROM calc_interval_rollup WHERE device_pk = ANY(%(pks)s) AND grain = %(g)s "
            "AND period_start >= %(lo)s AND period_start < %(hi)s",
            params,
        )
        if grain == "hour":
            period = "date_trunc('hour', start_ts, %(tz)s)"
            source = "calc_interval WHERE start_ts >= %(lo)s AND start_ts < %(hi)s"
            completeness = "sum(completeness::numeric)"
            count = "count(*)"
        else:
            period = f"date_trunc('{grain}', period_start, %(tz)s)"
            source = (
                f"calc_interval_rollup WHERE grain = '{previous}' "
                "AND period_start >= %(lo)s AND period_start < %(hi)s"
            )
            completeness = (
                f"sum((completeness * {_EXPECTED.format(p='period_start', grain=previous)})"
                "::numeric)"
            )
            count = "sum(intervals)"
        conn.execute(
            "INSERT INTO calc_interval_rollup (device_pk, metric_id, grain, period_start, "
            "quantity, quality, completeness, late, intervals, computed_at) "
            f"SELECT device_pk, metric_id, %(g)s, {period}, sum(quantity::numeric)::float8, "
            f"{_QUALITY}, ({completeness} / {_EXPECTED.format(p=period, grain=grain)})::float8, "
            f"bool_or(late), {count}, now() FROM {source} AND device_pk = ANY(%(pks)s) "
            f"GROUP BY device_pk, metric_id, {period}",
            params,
        )
        previous = grain


_CARBON_KEY = "org_id, node_id, carrier, category, basis, gas"
_CARBON_SUMS = (
    "max(scope), sum(activity::numeric)::float8, max(activity_unit), "
    "sum(energy_tce::numeric)::float8, sum(zero_carbon_tce::numeric)::float8, "
    "sum(gas_t::numeric)::float8, sum(tco2e::numeric)::float8, max(factor_key), "
    "max(factor_version), max(factor_value), max(factor_unit), max(factor_set_id), "
)


def rollup_carbon(conn: Conn, site_id: str, start: datetime, end: datetime, tz: str) -> None:
    """Recompute the site's hour, day and month carbon rows touching [start, end)."""
    bounds = _period_bounds(conn, start, end, tz)
    previous = "hour"
    for grain in GRAINS:
        lo, hi = bounds[grain]
        conn.execute(
            "DELETE FROM calc_carbon_rollup WHERE site_id = %(s)s AND grain = %(g)s "
            "AND period_start >= %(lo)s AND period_start < %(hi)s",
            {"s": site_id, "g": grain, "lo": lo, "hi": hi},
        )
        if grain == "hour":
            period = "date_trunc('hour', start_ts, %(tz)s)"
            source = (
                "calc_carbon WHERE site_id = %(s)s AND start_ts >= %(lo)s AND start_ts < %(hi)s"
            )
            completeness = "sum(completeness::numeric)"
        else:
            period = f"date_trunc('{grain}', period_start, %(tz)s)"
            source = (
                f"calc_carbon_rollup WHERE site_id = %(s)s AND grain = '{previous}' "
                "AND period_start >= %(lo)s AND period_start < %(hi)s"
            )
            completeness = (
                f"sum((completeness * {_EXPECTED.format(p='period_start', grain=previous)})"
                "::numeric)"
            )
        conn.execute(
            "INSERT INTO calc_carbon_rollup (site_id, grain, period_start, org_id, node_id, "
            "carrier, category, basis, gas, scope, activity, activity_unit, energy_tce, "
            "zero_carbon_tce, gas_t, tco2e, factor_key, factor_version, factor_value, "
            "factor_unit, factor_set_id, quality, completeness, computed_at) "
            f"SELECT %(s)s, %(g)s, {period}, {_CARBON_KEY}, {_CARBON_SUMS}{_QUALITY}, "
            f"({completeness} / {_EXPECTED.format(p=period, grain=grain)})::float8, now() "
            f"FROM {source} GROUP BY {period}, {_CARBON_KEY}",
            {"s": site_id, "g": grain, "lo": lo, "hi": hi, "tz": tz},
        )
        previous = grain


def periods_touching(
    conn: Conn, start: datetime, end: datetime, tz: str
) -> dict[str, list[tuple[datetime, datetime]]]:
    """The local days, months and years touching [start, end): [(period_start, period_end)]."""
    rows = conn.execute(
        "SELECT g, p, ((p AT TIME ZONE %(tz)s) + ('1 ' || g)::interval) AT TIME ZONE %(tz)s "
        "FROM unnest(ARRAY['day', 'month', 'year']) AS g, LATERAL generate_series("
        " date_trunc(g, %(s)s::timestamptz, %(tz)s) AT TIME ZONE %(tz)s,"
        " date_trunc(g, %(e)s::timestamptz - INTERVAL '1 microsecond', %(tz)s) AT TIME ZONE %(tz)s,"
        " ('1 ' || g)::interval) AS local_p, LATERAL (SELECT local_p AT TIME ZONE %(tz)s AS p) x "
        "ORDER BY g, p",
        {"s": start, "e": end, "tz": tz},
    ).fetchall()
    out: dict[str, list[tuple[datetime, datetime]]] = {"day": [], "month": [], "year": []}
    for grain, p, q in rows:
        out[str(grain)].append((p, q))
    return out


# --- period queries (also for the API) ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CarbonTotal:
    """A carbon row summed over a period."""

    org_id: str
    node_id: str
    carrier: str
    category: str
    basis: str
    gas: str
    scope: str
    activity: float
    activity_unit: str
    energy_tce: float
    zero_carbon_tce: float
    gas_t: float
    tco2e: float
    factor_key: str | None
    factor_version: str | None
    factor_value: float | None
    factor_unit: str | None
    factor_set_id: int | None
    quality: str
    completeness: float


def local_tiles(start: datetime, end: datetime, tz: str) -> list[tuple[str, datetime, datetime]]:
    """[start, end) covered by the coarsest whole local months, days, hours, then 15-min."""
    zone = ZoneInfo(tz)
    out: list[tuple[str, datetime, datetime]] = []
    cursor = start.astimezone(UTC)
    end = end.astimezone(UTC)
    while cursor < end:
        local = cursor.astimezone(zone)
        chosen: tuple[str, datetime, datetime] | None = None
        midnight = local.hour == 0 and local.minute == 0 and local.second == 0
        candidates: list[tuple[str, bool, datetime]] = []
        if midnight and local.microsecond == 0:
            month_next = (local.replace(day=1) + timedelta(days=32)).replace(day=1)
            candidates.append(("month", local.day == 1, month_next))
            day_next = (local + timedelta(days=1)).replace(hour=0, minute=0)
            candidates.append(
                ("day", True, datetime(day_next.year, day_next.month, day_next.day, tzinfo=zone))
            )
        if local.minute == 0 and local.second == 0 and local.microsecond == 0:
            candidates.append(("hour", True, cursor + timedelta(hours=1)))
        for grain, aligned, boundary in candidates:
            if grain == "month":
                boundary = datetime(boundary.year, boundary.month, 1, tzinfo=zone)  # noqa: PLW2901
            nxt_utc = boundary.astimezone(UTC)
            if aligned and nxt_utc <= end:
                chosen = (grain, cursor, nxt_utc)
                break
        if chosen is None:
            chosen = ("slot", cursor, min(end, cursor + SLOT))
        out.append(chosen)
        cursor = chosen[2]
    return out


def _merge_tiles(tiles: list[tuple[str, datetime, datetime]]) -> dict[str, list[datetime]]:
    by_grain: dict[str, list[datetime]] = {}
    for grain, lo, _hi in tiles:
        by_grain.setdefault(grain, []).append(lo)
    return by_grain


def carbon_totals(
    conn: Conn, site_id: str, start: datetime, end: datetime, tz: str
) -> list[CarbonTotal]:
    """The site's carbon rows summed over [start, end) (aligned to 15 min), by row key."""
    tiles = _merge_tiles(local_tiles(start, end, tz))
    parts: list[str] = []
    params: dict[str, Any] = {"s": site_id}
    for grain, starts in tiles.items():
        params[f"p_{grain}"] = starts
        if grain == "slot":
            parts.append(
                "SELECT * , 1.0::float8 AS w FROM (SELECT org_id, node_id, carrier, category, "
                "basis, gas, scope, activity, activity_unit, energy_tce, zero_carbon_tce, gas_t, "
                "tco2e, factor_key, factor_version, factor_value, factor_unit, factor_set_id, "
                "quality, completeness, 1.0::float8 AS slots FROM calc_carbon "
                f"WHERE site_id = %(s)s AND start_ts = ANY(%(p_{grain})s)) x"
            )
        else:
            parts.append(
                "SELECT *, 1.0::float8 AS w FROM (SELECT org_id, node_id, carrier, category, "
                "basis, gas, scope, activity, activity_unit, energy_tce, zero_carbon_tce, gas_t, "
                "tco2e, factor_key, factor_version, factor_value, factor_unit, factor_set_id, "
                "quality, completeness, "
                f"{_EXPECTED.format(p='period_start', grain=grain)}::float8 AS slots "
                f"FROM calc_carbon_rollup WHERE site_id = %(s)s AND grain = '{grain}' "
                f"AND period_start = ANY(%(p_{grain})s)) x"
            )
    if not parts:
        return []
    params["tz"] = tz
    total_slots = (end - start) / SLOT
    rows = conn.execute(
        f"SELECT {_CARBON_KEY}, {_CARBON_SUMS}{_QUALITY}, "
        "(sum((completeness * slots)::numeric) / %(n)s)::float8 "
        f"FROM ({' UNION ALL '.join(parts)}) u GROUP BY {_CARBON_KEY} ORDER BY {_CARBON_KEY}",
        {**params, "n": total_slots},
    ).fetchall()
    return [CarbonTotal(*r) for r in rows]


@dataclass(frozen=True, slots=True)
class DeviceTotal:
    device_pk: int
    metric_id: int
    quantity: float
    quality: str
    completeness: float
    late: bool


def device_totals(
    conn: Conn, device_pks: Sequence[int], start: datetime, end: datetime, tz: str
) -> dict[tuple[int, int], DeviceTotal]:
    """Quantities of the devices' metrics over [start, end) (aligned to 15 min)."""
    if not device_pks:
        return {}
    tiles = _merge_tiles(local_tiles(start, end, tz))
    parts: list[str] = []
    params: dict[str, Any] = {"pks": list(device_pks), "tz": tz, "n": (end - start) / SLOT}
    for grain, starts in tiles.items():
        params[f"p_{grain}"] = starts
        if grain == "slot":
            parts.append(
                "SELECT device_pk, metric_id, quantity, quality, completeness, late, "
                "1.0::float8 AS slots FROM calc_interval WHERE device_pk = ANY(%(pks)s) "
                f"AND start_ts = ANY(%(p_{grain})s)"
            )
        else:
            parts.append(
                "SELECT device_pk, metric_id, quantity, quality, completeness, late, "
                f"{_EXPECTED.format(p='period_start', grain=grain)}::float8 AS slots "
                "FROM calc_interval_rollup WHERE device_pk = ANY(%(pks)s) "
                f"AND grain = '{grain}' AND period_start = ANY(%(p_{grain})s)"
            )
    rows = conn.execute(
        "SELECT device_pk, metric_id, sum(quantity::numeric)::float8, "
        f"{_QUALITY}, (sum((completeness * slots)::numeric) / %(n)s)::float8, bool_or(late) "
        f"FROM ({' UNION ALL '.join(parts)}) u GROUP BY device_pk, metric_id",
        params,
    ).fetchall()
    return {(int(r[0]), int(r[1])): DeviceTotal(int(r[0]), int(r[1]), *r[2:]) for r in rows}


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    period_start: datetime
    energy_tce: float
    zero_carbon_tce: float
    tco2e_location: float
    tco2e_market: float
    co2_t_location: float
    scope1_tco2e: float
    scope2_location_tco2e: float
    scope2_market_tco2e: float
    completeness: float


def site_series(
    conn: Conn,
    site_id: str,
    grain: str,
    start: datetime,
    end: datetime,
    *,
    org_id: str | None = None,
) -> list[SeriesPoint]:
    """Energy and carbon time series of a site (or of the rows booked at one organisation),
    by ``grain``: ``15min`` | ``hour`` | ``day`` | ``month``."""
    if grain == "15min":
        source = "calc_carbon WHERE site_id = %(s)s AND start_ts >= %(a)s AND start_ts < %(b)s"
        ts = "start_ts"
    elif grain in GRAINS:
        source = (
            "calc_carbon_rollup WHERE site_id = %(s)s AND grain = %(g)s "
            "AND period_start >= %(a)s AND period_start < %(b)s"
        )
        ts = "period_start"
    else:
        raise ValueError(f"grain must be 15min, hour, day or month, not {grain!r}")
    org_filter = "" if org_id is None else " AND org_id = %(o)s"
    rows = conn.execute(
        f"SELECT {ts}, "
        "sum(energy_tce::numeric)::float8, sum(zero_carbon_tce::numeric)::float8, "
        "coalesce(sum(tco2e::numeric) FILTER (WHERE basis <> 'market'), 0)::float8, "
        "coalesce(sum(tco2e::numeric) FILTER (WHERE basis <> 'location'), 0)::float8, "
        "coalesce(sum(gas_t::numeric) FILTER (WHERE basis <> 'market' AND gas = 'CO2'), 0)"
        "::float8, "
        "coalesce(sum(tco2e::numeric) FILTER (WHERE scope = 'scope_1'), 0)::float8, "
        "coalesce(sum(tco2e::numeric) FILTER (WHERE scope = 'scope_2' AND basis <> 'market'),"
        " 0)::float8, "
        "coalesce(sum(tco2e::numeric) FILTER (WHERE scope = 'scope_2' AND basis <> 'location'),"
        " 0)::float8, avg(completeness)::float8 "
        f"FROM {source}{org_filter} GROUP BY {ts} ORDER BY {ts}",
        {"s": site_id, "g": grain, "a": start, "b": end, "o": org_id},
    ).fetchall()
    return [SeriesPoint(*r) for r in rows]


# --- indicators, budgets, events, state --------------------------------------------------------


def upsert_indicators(conn: Conn, rows: Sequence[tuple[Any, ...]], computed_at: datetime) -> None:
    """rows: (site, org, grain, period_start, indicator, period_end, value, unit, numerator,
    denominator, undefined_reason, basis, threshold, comparator, target_unit, target_basis,
    target_source, status, explanation, completeness)."""
    if not rows:
        return
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO calc_indicator (site_id, org_id, grain, period_start, indicator, "
            "period_end, value, unit, numerator, denominator, undefined_reason, basis, "
            "target_threshold, target_comparator, target_unit, target_basis, target_source, "
            "status, explanation, completeness, computed_at) VALUES (%s, %s, %s, %s, %s, %s, "
            "%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (site_id, org_id, grain, period_start, indicator) DO UPDATE SET "
            "period_end = excluded.period_end, value = excluded.value, unit = excluded.unit, "
            "numerator = excluded.numerator, denominator = excluded.denominator, "
            "undefined_reason = excluded.undefined_reason, basis = excluded.basis, "
            "target_threshold = excluded.target_threshold, "
            "target_comparator = excluded.target_comparator, "
            "target_unit = excluded.target_unit, target_basis = excluded.target_basis, "
            "target_source = excluded.target_source, status = excluded.status, "
            "explanation = excluded.explanation, completeness = excluded.completeness, "
            "computed_at = excluded.computed_at",
            [(*r, computed_at) for r in rows],
        )


def indicator_statuses(
    conn: Conn, site_id: str, grain: str, period_starts: Sequence[datetime]
) -> dict[tuple[str, datetime, str], str]:
    """(org, period_start, indicator) → stored status."""
    rows = conn.execute(
        "SELECT org_id, period_start, indicator, status FROM calc_indicator "
        "WHERE site_id = %s AND grain = %s AND period_start = ANY(%s)",
        (site_id, grain, list(period_starts)),
    ).fetchall()
    return {(str(o), p, str(i)): str(s) for o, p, i, s in rows}


def upsert_budgets(conn: Conn, rows: Sequence[tuple[Any, ...]], computed_at: datetime) -> None:
    if not rows:
        return
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO calc_budget (site_id, org_id, year, quantity, unit, budget, consumed, "
            "remaining, elapsed_fraction, used_fraction, projected_total, projected_overrun, "
            "projected_exhaustion, status, explanation, as_of, computed_at) VALUES (%s, %s, %s, "
            "%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (site_id, org_id, year, quantity) DO UPDATE SET unit = excluded.unit, "
            "budget = excluded.budget, consumed = excluded.consumed, "
            "remaining = excluded.remaining, elapsed_fraction = excluded.elapsed_fraction, "
            "used_fraction = excluded.used_fraction, projected_total = excluded.projected_total, "
            "projected_overrun = excluded.projected_overrun, "
            "projected_exhaustion = excluded.projected_exhaustion, status = excluded.status, "
            "explanation = excluded.explanation, as_of = excluded.as_of, "
            "computed_at = excluded.computed_at",
            [(*r, computed_at) for r in rows],
        )


def budget_statuses(conn: Conn, site_id: str, year: int) -> dict[tuple[str, str], str]:
    rows = conn.execute(
        "SELECT org_id, quantity, status FROM calc_budget WHERE site_id = %s AND year = %s",
        (site_id, year),
    ).fetchall()
    return {(str(o), str(q)): str(s) for o, q, s in rows}


def insert_events(conn: Conn, events: Sequence[tuple[Any, ...]]) -> int:
    """events: (site, org, kind, subject, grain, period_start, status, previous_status, value,
    threshold, message, raised_at, dedup_key); an event already raised is not raised again."""
    if not events:
        return 0
    inserted = 0
    with conn.cursor() as cur:
        for event in events:
            cur.execute(
                "INSERT INTO calc_event (site_id, org_id, kind, subject, grain, period_start, "
                "status, previous_status, value, threshold, message, raised_at, dedup_key) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (dedup_key) DO NOTHING",
                event,
            )
            inserted += cur.rowcount
    return inserted


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


# --- read-side helpers for the API ---------------------------------------------------------------


def indicators(
    conn: Conn,
    site_id: str,
    *,
    grain: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    org_id: str | None = None,
) -> list[dict[str, Any]]:
    """Stored indicator results, with the target and status, newest period first."""
    cur = conn.cursor(row_factory=psycopg.rows.dict_row)
    rows = cur.execute(
        "SELECT * FROM calc_indicator WHERE site_id = %(s)s "
        "AND (%(g)s::text IS NULL OR grain = %(g)s) "
        "AND (%(a)s::timestamptz IS NULL OR period_start >= %(a)s) "
        "AND (%(b)s::timestamptz IS NULL OR period_start < %(b)s) "
        "AND (%(o)s::text IS NULL OR org_id = %(o)s) "
        "ORDER BY period_start DESC, org_id, indicator",
        {"s": site_id, "g": grain, "a": start, "b": end, "o": org_id},
    ).fetchall()
    return list(rows)


def budgets(conn: Conn, site_id: str, year: int | None = None) -> list[dict[str, Any]]:
    cur = conn.cursor(row_factory=psycopg.rows.dict_row)
    return list(
        cur.execute(
            "SELECT * FROM calc_budget WHERE site_id = %(s)s "
            "AND (%(y)s::int IS NULL OR year = %(y)s) ORDER BY year, org_id, quantity",
            {"s": site_id, "y": year},
        ).fetchall()
    )


def events(conn: Conn, site_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    cur = conn.cursor(row_factory=psycopg.rows.dict_row)
    return list(
        cur.execute(
            "SELECT * FROM calc_event WHERE (%(s)s::text IS NULL OR site_id = %(s)s) "
            "ORDER BY event_id DESC LIMIT %(n)s",
            {"s": site_id, "n": limit},
        ).fetchall()
    )


def factor_set(conn: Conn, factor_set_id: int) -> list[dict[str, Any]]:
    """The full records of the factors behind a carbon row (key, version, source, selection)."""
    row = conn.execute(
        "SELECT factors FROM calc_factor_set WHERE factor_set_id = %s", (factor_set_id,)
    ).fetchone()
    return [] if row is None else list(row[0])


def build_plan(site: SiteRow, devices: Sequence[DeviceRow], default_period: timedelta) -> SitePlan:
    doc, problem = parse_document(site.document)
    plans: list[DevicePlan] = []
    for d in devices:
        product = d.attributes.get("product")
        plans.append(
            DevicePlan(
                device_pk=d.device_pk,
                device_id=d.device_id,
                role=d.role,
                carrier=d.carrier,
                node_id=d.node_id,
                org_id=d.org_id,
                multiplier=d.multiplier,
                modulus=d.modulus,
                active=d.active,
                metrics=tuple(
                    MetricPlan(mid, name, kind, unit) for mid, name, kind, unit in d.metrics
                ),
                product_id=str(product) if product else None,
                report_period=report_period_of(d.attributes, default_period),
            )
        )
    return SitePlan(
        site_id=site.site_id,
        kind=site.kind,
        province=site.province,
        grid_region=site.grid_region,
        timezone=site.timezone,
        devices=tuple(plans),
        document=doc,
        document_error=problem,
    )

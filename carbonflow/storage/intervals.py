"""Interval quantities per device metric: ``calc_interval`` (15-min and 1-min rows) and
``calc_interval_rollup``; device totals and series.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa

from carbonflow.domain.calendar import uncovered
from carbonflow.domain.indicators.period import DataPresence
from carbonflow.domain.readings.hour_arrays import (
    Grid,
    HourArrays,
    full_spans,
    hour_arrays,
    slots_to_ask,
)
from carbonflow.domain.readings.interval_arrays import QUALITIES, GridArrays, from_us, to_us
from carbonflow.storage import copy_arrays
from carbonflow.storage.db import Conn, execute_without
from carbonflow.storage.rollup import (
    EXPECTED_INTERVALS,
    GRAINS,
    GROUP_QUALITY,
    SLOT,
    RollupSource,
    insert_rolled_up,
    local_tiles,
    period_bounds,
    rollup_source,
    tile_runs,
)


@dataclass(frozen=True, slots=True)
class DevicePointRow:
    metric: str
    unit: str
    period_start: datetime
    quantity: float
    quality: str
    completeness: float
    late: bool
    intervals: int


def device_series(
    conn: sa.Connection,
    pk: int,
    grain: str,
    start: datetime,
    end: datetime,
    *,
    metric: str | None,
) -> list[DevicePointRow]:
    """Interval quantities of a device's counter and interval metrics (after the multiplier)."""
    if grain == "15min":
        source = (
            "SELECT metric_id, start_ts AS p, quantity, quality, completeness, late, "
            "1 AS intervals FROM calc_interval WHERE device_pk = :pk "
            "AND start_ts >= :a AND start_ts < :b"
        )
    else:
        source = (
            "SELECT metric_id, period_start AS p, quantity, quality, completeness, late, "
            "intervals FROM calc_interval_rollup WHERE device_pk = :pk AND grain = :g "
            "AND period_start >= :a AND period_start < :b"
        )
    rows = conn.execute(
        sa.text(
            "SELECT m.name, m.unit, c.p, c.quantity, c.quality, c.completeness, c.late, "
            f"c.intervals FROM ({source}) c JOIN metric m ON m.metric_id = c.metric_id "
            "WHERE CAST(:m AS text) IS NULL OR m.name = :m ORDER BY m.name, c.p"
        ),
        {"pk": pk, "g": grain, "a": start, "b": end, "m": metric},
    )
    return [DevicePointRow(*r) for r in rows]


@dataclass(frozen=True, slots=True)
class QuantityMetricRow:
    site_id: str
    device_pk: int
    metric_id: int
    device_id: str
    org_id: str | None


def quantity_metrics(conn: sa.Connection, site_id: str) -> list[QuantityMetricRow]:
    """The active devices' counter and interval metrics (what the calc service integrates)."""
    rows = conn.execute(
        sa.text(
            "SELECT d.site_id, d.device_pk, dm.metric_id, d.device_id, d.org_id FROM device d "
            "JOIN device_metric dm ON dm.device_pk = d.device_pk WHERE d.site_id = :s "
            "AND d.active AND dm.kind IN ('counter', 'interval') ORDER BY d.device_id, "
            "dm.metric_id"
        ),
        {"s": site_id},
    )
    return [QuantityMetricRow(*r) for r in rows]


IntervalTuple = tuple[datetime, float, str, float, bool]  # start, quantity, quality, compl., late


def _delete_windows(
    conn: Conn, results: Sequence[tuple[int, int, datetime, datetime, Any]]
) -> None:
    """The rows of each (device, metric, start, end) deleted, one index scan a window. Once
    ANALYZE had seen a table of 2.3 M rows, the planner hashed the windows and scanned the
    whole table for them: 1.2 to 1.9 s a recompute chunk instead of 6 to 12 ms (PostgreSQL 16,
    a month for 1 000 devices)."""
    execute_without(
        conn,
        ("hashjoin", "mergejoin"),
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


_INTERVAL_HEAD = copy_arrays.row_dtype(
    [("pk", ">i4"), ("mid", ">i2"), ("start", ">i8"), ("quantity", ">f8")]
)
# After the quality text: completeness, late, computed_at, as binary COPY fields.
_INTERVAL_TAIL = np.dtype(
    [("_len_c", ">i4"), ("c", ">f8"), ("_len_late", ">i4"), ("late", "u1"),
     ("_len_at", ">i4"), ("computed_at", ">i8")]
)  # fmt: skip


def replace_interval_arrays(
    conn: Conn,
    results: Sequence[tuple[int, int, datetime, datetime, GridArrays]],
    computed_at: datetime,
) -> int:
    """Replace the rows of each (device, metric) in [start, end) by the given ones, written by
    one binary COPY built with numpy (no Python object per row)."""
    if not results:
        return 0
    _delete_windows(conn, results)
    sizes = np.array([len(r[4]) for r in results], dtype=np.int64)
    total = int(sizes.sum())
    if total == 0:
        return 0
    head = copy_arrays.fixed_rows(_INTERVAL_HEAD, total)
    head["_n"] = 8
    head["pk"] = np.repeat(np.array([r[0] for r in results], dtype=np.int64), sizes)
    head["mid"] = np.repeat(np.array([r[1] for r in results], dtype=np.int64), sizes)
    head["start"] = np.concatenate([r[4].start_us for r in results]) - copy_arrays.PG_EPOCH_US
    head["quantity"] = np.concatenate([r[4].quantity for r in results])
    tail = np.zeros(total, dtype=_INTERVAL_TAIL)
    tail["_len_c"], tail["_len_late"], tail["_len_at"] = 8, 1, 8
    tail["c"] = np.concatenate([r[4].completeness for r in results])
    tail["late"] = np.concatenate([r[4].late for r in results])
    tail["computed_at"] = to_us(computed_at) - copy_arrays.PG_EPOCH_US
    codes = np.concatenate([r[4].quality for r in results])
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY calc_interval (device_pk, metric_id, start_ts, quantity, quality, "
            "completeness, late, computed_at) FROM STDIN (FORMAT BINARY)"
        ) as copy,
    ):
        copy.write(copy_arrays.HEADER)
        for chunk in copy_arrays.join_with_text(head, codes, QUALITIES, tail):
            copy.write(chunk)
        copy.write(copy_arrays.TRAILER)
    return total


@dataclass(frozen=True, slots=True)
class StoredInterval:
    device_pk: int
    metric_id: int
    start: datetime
    quantity: float
    quality: str
    completeness: float
    late: bool


# Rows are looked up per (device, metric) key: the primary key (device_pk, metric_id, start_ts)
# cannot bound a time range by device alone (PostgreSQL 15 has no skip scan), and asked by
# ``device_pk = ANY`` it walked every stored interval of each device: 0.85 s for two days of
# 300 devices with half a year stored, growing with the history; 0.1 s by key
# (docs/performance.md). On TimescaleDB chunk exclusion bounded it; now both are bounded.
_KEYS = "unnest(%(pks)s::int[], %(mids)s::smallint[]) AS k(pk, mid)"


def grain_is(grain: str) -> str:
    """``grain = …`` that only the primary key serves: the value of an InitPlan, which the
    planner cannot prove to lie in the predicate of the partial period index (day and month
    rows). While a recompute fills the table faster than ANALYZE follows, the newest periods lie
    past the statistics, every index looks like one row, and the planner took that index for
    per-key reads: each key's scan walked the period's rows of every device (1 000 keys × 15
    days: 1 032 ms against 5.5 ms by the primary key; at 180 days stored, ``device_totals`` of
    a month 1.6 to 6.8 s inside a run instead of 0.05 s)."""
    if grain not in GRAINS:
        raise ValueError(f"not a grain: {grain!r}")
    return f"grain = (SELECT '{grain}'::text)"


def by_key(keys: str, table: str, where: str) -> str:
    """A FROM item: the rows of ``table`` meeting ``where`` of each (device, metric) key of
    ``keys`` (a FROM item ``k`` with columns ``pk``, ``mid``), as ``t``.

    One index scan a key, forced: a LATERAL subquery with OFFSET 0 is not flattened into a
    join, which the planner may turn into a hash or merge join over a scan of every stored row
    (it did, for the hours around a grid). With ``grain_is`` for the rollup rows, that scan is
    the primary key's (docs/performance.md, "Recompute")."""
    return (
        f"{keys} CROSS JOIN LATERAL (SELECT * FROM {table} WHERE device_pk = k.pk "
        f"AND metric_id = k.mid AND {where} OFFSET 0) AS t"
    )


def _key_params(keys: Sequence[tuple[int, int]]) -> dict[str, Any]:
    return {"pks": [k[0] for k in keys], "mids": [k[1] for k in keys]}


def intervals_in(
    conn: Conn, keys: Sequence[tuple[int, int]], start: datetime, end: datetime
) -> list[StoredInterval]:
    """The 15-min rows of the (device_pk, metric_id) ``keys`` starting in [start, end)."""
    if not keys:
        return []
    rows = conn.execute(
        "SELECT t.device_pk, t.metric_id, t.start_ts, t.quantity, t.quality, t.completeness, "
        f"t.late FROM {by_key(_KEYS, 'calc_interval', 'start_ts >= %(s)s AND start_ts < %(e)s')}",
        {**_key_params(keys), "s": start, "e": end},
    ).fetchall()
    return [StoredInterval(*r) for r in rows]


def last_interval_end(
    conn: Conn, keys: Sequence[tuple[int, int]], start: datetime
) -> datetime | None:
    """End of the newest interval at or after ``start`` of any of the (device_pk, metric_id)
    ``keys``."""
    if not keys:
        return None
    row = conn.execute(
        f"SELECT max(n.start_ts) FROM {_KEYS} CROSS JOIN LATERAL (SELECT i.start_ts "
        "FROM calc_interval i WHERE i.device_pk = k.pk AND i.metric_id = k.mid "
        "AND i.start_ts >= %(s)s ORDER BY i.start_ts DESC LIMIT 1) n",
        {**_key_params(keys), "s": start},
    ).fetchone()
    return None if row is None or row[0] is None else row[0] + SLOT


#: work_mem of the rollup statements (docs/performance.md, "Recompute")
ROLLUP_WORK_MEM = "96MB"


#: (device_pk, metric_id) → ranges [first, end)
Covered = dict[tuple[int, int], list[tuple[datetime, datetime]]]


@dataclass(frozen=True)
class HourRows:
    """Hour rows of 15-min rows not written yet, the numbers :func:`rollup_intervals` would
    store (:func:`hour_rows`): binary COPY data of ``_HOUR_COLUMNS`` and, per (device, metric),
    the spans [first, end) of the 15-min rows they sum, one a grid."""

    copy_data: bytes
    covered: Covered


_HOUR_COLUMNS = (
    "device_pk, metric_id, grain, period_start, quantity, quality, completeness, late, intervals"
)
_HOUR_HEAD = copy_arrays.row_dtype(
    [("pk", ">i4"), ("mid", ">i2"), ("grain", "S4"), ("period", ">i8"), ("quantity", ">f8")]
)
_HOUR_TAIL = np.dtype(
    [("_len_c", ">i4"), ("c", ">f8"), ("_len_late", ">i4"), ("late", "u1"),
     ("_len_n", ">i4"), ("n", ">i4")]
)  # fmt: skip


def hour_rows(
    conn: Conn, results: Sequence[tuple[int, int, datetime, datetime, GridArrays]], tz: str
) -> HourRows:
    """The hour rows that the 15-min ``results`` (each replacing its grid [start, end)) will
    have once written, for the hours inside a grid (:mod:`~carbonflow.domain.readings.
    hour_arrays`): computed on arrays, with two small statements for what only the database
    says the same way as the rollup — each 15-min start's local hour, and the completeness
    (a numeric division by the hour's expected intervals). Writes nothing.

    This replaced computing them in temporary tables of a second connection (the rows copied
    in, grouped, copied out): ≈ 2 s of database CPU a cycle of 1 000 devices on a slow host,
    with both cores busy (docs/performance.md, "Recompute")."""
    grids = [Grid(to_us(lo), to_us(hi), arrays) for _pk, _mid, lo, hi, arrays in results]
    slots = slots_to_ask(grids)
    hours, spans = full_spans(hour_arrays(grids, slots, _local_hours(conn, slots, tz)))
    pks = np.array([r[0] for r in results], dtype=np.int64)[hours.grid]
    mids = np.array([r[1] for r in results], dtype=np.int64)[hours.grid]
    order = np.lexsort((hours.period_us, mids, pks))
    head = copy_arrays.fixed_rows(_HOUR_HEAD, len(hours))
    head["_n"] = 9
    head["pk"], head["mid"], head["grain"] = pks[order], mids[order], b"hour"
    head["period"] = hours.period_us[order] - copy_arrays.PG_EPOCH_US
    head["quantity"] = hours.quantity[order]
    tail = np.zeros(len(hours), dtype=_HOUR_TAIL)
    tail["_len_c"], tail["_len_late"], tail["_len_n"] = 8, 1, 4
    tail["c"] = _completeness(conn, hours, tz)[order]
    tail["late"] = hours.late[order]
    tail["n"] = hours.intervals[order]
    data = bytearray(copy_arrays.HEADER)
    for chunk in copy_arrays.join_with_text(head, hours.quality[order], QUALITIES, tail):
        data += chunk
    data += copy_arrays.TRAILER
    covered: Covered = {}
    for index, (first, end) in sorted(spans.items()):
        key = (results[index][0], results[index][1])
        covered.setdefault(key, []).append((from_us(first), from_us(end)))
    return HourRows(bytes(data), covered)


def _local_hours(conn: Conn, slots_us: npt.NDArray[np.int64], tz: str) -> npt.NDArray[np.int64]:
    """``date_trunc('hour', s, tz)`` of each 15-min start [µs], as the hour rollup groups."""
    rows = conn.execute(
        "SELECT date_trunc('hour', s, %(tz)s) FROM unnest(%(s)s::timestamptz[]) "
        "WITH ORDINALITY AS u(s, i) ORDER BY i",
        {"tz": tz, "s": [from_us(int(us)) for us in slots_us]},
    ).fetchall()
    return np.array([to_us(r[0]) for r in rows], dtype=np.int64)


def _completeness(conn: Conn, hours: HourArrays, tz: str) -> npt.NDArray[np.float64]:
    """Each hour's completeness as the hour rollup computes it: the exact sum of its rows'
    divided, as numerics, by the hour's expected intervals — asked once per distinct (sum,
    hour) (mostly the same few sums: whole hours)."""
    if len(hours) == 0:
        return np.zeros(0)
    periods, period_index = np.unique(hours.period_us, return_inverse=True)
    columns = [*hours.completeness_sum.key_columns(), period_index.reshape(-1)]
    order = np.lexsort(columns[::-1])
    changed = np.ones(len(order), dtype=np.bool_)
    changed[1:] = np.any([np.diff(c[order]) != 0 for c in columns], axis=0)
    asked = order[changed]
    distinct = np.empty(len(order), dtype=np.int64)
    distinct[order] = np.cumsum(changed) - 1
    expected = EXPECTED_INTERVALS.format(p="p.p", grain="hour")
    rows = conn.execute(
        f"SELECT (u.c::numeric / {expected})::float8 FROM unnest(%(c)s::text[], %(k)s::int[]) "
        "WITH ORDINALITY AS u(c, k, i) JOIN unnest(%(p)s::timestamptz[]) WITH ORDINALITY "
        "AS p(p, k) ON p.k = u.k ORDER BY u.i",
        {
            "c": [hours.completeness_sum.text(int(i)) for i in asked],
            "k": [int(period_index.reshape(-1)[i]) + 1 for i in asked],
            "p": [from_us(int(p)) for p in periods],
            "tz": tz,
        },
    ).fetchall()
    values = np.array([float(r[0]) for r in rows], dtype=np.float64)
    return values[distinct]


def rollup_intervals(
    conn: Conn,
    device_pks: Sequence[int],
    start: datetime,
    end: datetime,
    tz: str,
    hours: HourRows | None = None,
) -> None:
    """Recompute the hour, day and month rows of the devices touching [start, end); ``hours``:
    those of the hours it covers, computed ahead (:func:`hour_rows`)."""
    if not device_pks:
        return
    # The hour rows group up to a cycle's 15-min rows (≈ 400 000, 45 MB to sort): with the
    # default 4 MB the sort spills to disk. For the rest of the transaction only.
    conn.execute(f"SET LOCAL work_mem = '{ROLLUP_WORK_MEM}'")
    bounds = period_bounds(conn, start, end, tz)
    # Every metric id next to the devices: the primary keys (device_pk, metric_id, …) are then
    # entered by (device, metric) pair and the period bounds each scan; by device alone they
    # walk each device's whole history (no skip scan in PostgreSQL 15). The same rows either
    # way (tests/storage/test_interval_rollup.py); at 90 days stored, rollups' database CPU
    # −16 % (docs/performance.md, "Recompute").
    row = conn.execute("SELECT array_agg(metric_id) FROM metric").fetchone()
    mids = list(row[0] or []) if row else []
    keys = "device_pk = ANY(%(pks)s::int[]) AND metric_id = ANY(%(mids)s::smallint[]) AND "
    previous = "hour"
    for grain in GRAINS:
        lo, hi = bounds[grain]
        params = {"pks": list(device_pks), "mids": mids, "g": grain, "lo": lo, "hi": hi, "tz": tz}
        conn.execute(
            f"DELETE FROM calc_interval_rollup WHERE {keys}grain = %(g)s "
            "AND period_start >= %(lo)s AND period_start < %(hi)s",
            params,
        )
        src = rollup_source(grain, previous, "calc_interval", "calc_interval_rollup", keys)
        if grain == "hour" and hours is not None and hours.covered:
            src = _copy_hours(conn, src, hours, params)
        count = "count(*)" if grain == "hour" else "sum(intervals)"
        insert_rolled_up(
            conn,
            grain,
            "INSERT INTO calc_interval_rollup (device_pk, metric_id, grain, period_start, "
            "quantity, quality, completeness, late, intervals, computed_at) "
            f"SELECT device_pk, metric_id, %(g)s, {src.period}, sum(quantity::numeric)::float8, "
            f"{GROUP_QUALITY}, {src.completeness}, "
            f"bool_or(late), {count}, now() FROM {src.source} "
            f"GROUP BY device_pk, metric_id, {src.period}",
            params,
        )
        previous = grain


def _copy_hours(
    conn: Conn, src: RollupSource, hours: HourRows, params: dict[str, Any]
) -> RollupSource:
    """The hour rows computed ahead copied in; the source of the others (the rows around
    them: outside every grid's span, also between two grids of a key)."""
    with (
        conn.cursor() as cur,
        cur.copy(f"COPY calc_interval_rollup ({_HOUR_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy,
    ):
        copy.write(hours.copy_data)
    edges = [
        (pk, mid, a, b)
        for pk in params["pks"]
        for mid in params["mids"]
        for a, b in uncovered(params["lo"], params["hi"], hours.covered.get((pk, mid), []))
    ]
    params.update(
        epk=[e[0] for e in edges],
        emid=[e[1] for e in edges],
        elo=[e[2] for e in edges],
        ehi=[e[3] for e in edges],
    )
    # Entered by key and range, as the primary key allows: one bounded index scan per range.
    ranges = (
        "unnest(%(epk)s::int[], %(emid)s::smallint[], %(elo)s::timestamptz[], "
        "%(ehi)s::timestamptz[]) AS k(pk, mid, lo, hi)"
    )
    inside = "start_ts >= k.lo AND start_ts < k.hi"
    around = f"(SELECT t.* FROM {by_key(ranges, 'calc_interval', inside)}) AS around"
    return replace(src, source=around)


@dataclass(frozen=True, slots=True)
class DeviceTotal:
    device_pk: int
    metric_id: int
    quantity: float
    quality: str
    completeness: float
    late: bool


# The (device, metric) pairs with any interval in [%(s)s, %(e)s): those with a month rollup row
# for a local month touching the range (month rows are written with the 15-min rows they sum).
# Looking rows up by this full key prefix is what keeps a period's read from walking every
# stored hour of each device: without metric_id, the primary key (device_pk, metric_id, grain,
# period_start) can only be entered by device (6.6 s → 0.05 s for a day of hours of 300 devices
# with a year stored, docs/performance.md).
_KEYS_WITH_DATA = (
    "SELECT DISTINCT device_pk AS pk, metric_id AS mid FROM calc_interval_rollup "
    "WHERE grain = 'month' "
    "AND period_start >= date_trunc('month', %(s)s::timestamptz, %(tz)s) "
    "AND period_start < %(e)s AND device_pk = ANY(%(pks)s)"
)


def device_totals(
    conn: Conn, device_pks: Sequence[int], start: datetime, end: datetime, tz: str
) -> dict[tuple[int, int], DeviceTotal]:
    """Quantities of the devices' metrics over [start, end) (aligned to 15 min)."""
    if not device_pks:
        return {}
    parts: list[str] = []
    params: dict[str, Any] = {
        "pks": list(device_pks),
        "tz": tz,
        "n": (end - start) / SLOT,
        "s": start,
        "e": end,
    }
    # Whole hours, days and months are read as runs of consecutive periods, a range on the
    # primary key's last column: with the periods as ``period_start = ANY(…)`` the planner kept
    # them out of the index condition and walked every stored hour of each key (715 of 720
    # rows filtered per key at 30 days stored; 8 760 at a year), a cost that grew with the
    # history (docs/performance.md, "Recompute").
    tiles = local_tiles(start, end, tz)
    for grain, runs in tile_runs(tiles).items():
        if grain == "slot":
            params["p_slot"] = [lo for g, lo, _hi in tiles if g == "slot"]
            parts.append(
                "SELECT t.device_pk, t.metric_id, quantity, quality, completeness, late, "
                "1.0::float8 AS slots "
                f"FROM {by_key('keys k', 'calc_interval', 'start_ts = ANY(%(p_slot)s)')}"
            )
            continue
        for i, (lo, hi) in enumerate(runs):
            params[f"{grain}_lo{i}"], params[f"{grain}_hi{i}"] = lo, hi
            run = (
                f"{grain_is(grain)} AND period_start >= %({grain}_lo{i})s "
                f"AND period_start < %({grain}_hi{i})s"
            )
            parts.append(
                "SELECT t.device_pk, t.metric_id, quantity, quality, completeness, late, "
                f"{EXPECTED_INTERVALS.format(p='period_start', grain=grain)}::float8 AS slots "
                f"FROM {by_key('keys k', 'calc_interval_rollup', run)}"
            )
    rows = conn.execute(
        f"WITH keys AS MATERIALIZED ({_KEYS_WITH_DATA}) "
        "SELECT device_pk, metric_id, sum(quantity::numeric)::float8, "
        f"{GROUP_QUALITY}, (sum((completeness * slots)::numeric) / %(n)s)::float8, bool_or(late) "
        f"FROM ({' UNION ALL '.join(parts)}) u GROUP BY device_pk, metric_id",
        params,
    ).fetchall()
    return {(int(r[0]), int(r[1])): DeviceTotal(int(r[0]), int(r[1]), *r[2:]) for r in rows}


_QUARTERS = (
    "start_ts >= %(s)s AND start_ts < %(e)s AND extract(epoch FROM start_ts)::bigint %% 900 = 0"
)


def quality_counts(
    conn: Conn, keys: Sequence[tuple[int, int]], start: datetime, end: datetime
) -> dict[tuple[int, int], dict[str, tuple[int, float]]]:
    """Per (device_pk, metric_id): the 15-min intervals of [start, end) by quality, with their
    count and exact quantity sum [metric unit × multiplier]."""
    if not keys:
        return {}
    rows = conn.execute(
        "SELECT t.device_pk, t.metric_id, t.quality, count(*), sum(t.quantity::numeric)::float8 "
        f"FROM {by_key(_KEYS, 'calc_interval', _QUARTERS)} "
        "GROUP BY t.device_pk, t.metric_id, t.quality",
        {**_key_params(keys), "s": start, "e": end},
    ).fetchall()
    out: dict[tuple[int, int], dict[str, tuple[int, float]]] = {}
    for pk, mid, quality, count, total in rows:
        out.setdefault((int(pk), int(mid)), {})[str(quality)] = (int(count), float(total or 0.0))
    return out


def data_presence(
    conn: Conn, keys: Sequence[tuple[int, int]], start: datetime, end: datetime
) -> DataPresence:
    """Over the (device_pk, metric_id) ``keys`` and the local days starting in [start, end)
    (``start`` a local midnight): the days with data (a stored interval not missing) and the
    stored 15-min intervals by their device-day's quality (the day rollup)."""
    if not keys:
        return DataPresence(0, {})
    params = {
        "pks": [k[0] for k in keys], "mids": [k[1] for k in keys], "s": start, "e": end,
    }  # fmt: skip
    source = by_key(
        _KEYS,
        "calc_interval_rollup",
        f"{grain_is('day')} AND period_start >= %(s)s AND period_start < %(e)s",
    )
    days = conn.execute(
        f"SELECT count(DISTINCT t.period_start) FROM {source} WHERE t.quality <> 'missing'", params
    ).fetchone()
    rows = conn.execute(
        f"SELECT t.quality, sum(t.intervals)::bigint FROM {source} GROUP BY t.quality", params
    ).fetchall()
    return DataPresence(
        int(days[0]) if days is not None else 0, {str(q): int(n or 0) for q, n in rows}
    )

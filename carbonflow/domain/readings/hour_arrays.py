"""The hour rows of 15-min grids, on arrays, before the grids are written. Pure.

A recompute's chunk replaces grids of 15-min rows ``[lo, hi)`` per (device, metric); the hour
rows they will roll up to (``storage.intervals.rollup_intervals``) can be computed from the new
rows alone for every local hour that lies wholly inside its grid. This module computes those:
the same numbers as the rollup's SQL, which groups the 15-min rows of a (device, metric) by
``date_trunc('hour', start, zone)`` and takes

- the quantity as ``sum(quantity::numeric)::float8`` (:mod:`carbonflow.domain.decimal_sums`),
- the quality by :meth:`~carbonflow.domain.readings.quality.Quality.combine`,
- ``bool_or(late)``, ``count(*)``, and the exact sum of the completeness, which the caller
  divides by the hour's expected intervals as the SQL does (a numeric division).

The local hour of each 15-min start comes from the caller (the database's ``date_trunc``, so
that every zone rule, LMT eras included, is the database's own).

**An hour inside its grid.** ``date_trunc`` keeps the two instances of a repeated local hour
apart (Berlin's fold: two periods), but where a DST shift is not a whole hour (Lord Howe: 30
min) a local hour spans 30 to 90 minutes: every 15-min start of the hour beginning at ``p`` is
in ``[p − 1 h, p + 2 h)`` whatever the zone. An hour with ``p >= lo + 1 h`` and ``p + 2 h <=
hi`` is inside its grid; nearer the edges it is inside unless one of the twelve slots before
``lo`` or from ``hi`` on belongs to it (:func:`slots_to_ask` asks for their hours too).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from carbonflow.domain.decimal_sums import DecimalSums, group_sums
from carbonflow.domain.readings.interval_arrays import ESTIMATED, MEASURED, MISSING, GridArrays
from carbonflow.domain.readings.intervals import ACCOUNTING_INTERVAL

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

SLOT_US = ACCOUNTING_INTERVAL // timedelta(microseconds=1)
HOUR_US = 3_600_000_000
EDGE_SLOTS = 12  # slots before a grid and from its end that may share a local hour with it


@dataclass(frozen=True)
class Grid:
    """New 15-min rows replacing ``[lo_us, hi_us)`` of one (device, metric) [µs since epoch]."""

    lo_us: int
    hi_us: int
    rows: GridArrays


@dataclass(frozen=True)
class HourArrays:
    """Per hour row: the index of its grid, the local hour's start [µs], the summed quantity
    [metric unit × multiplier], quality code, the completeness summed exactly (not yet divided
    by the hour's expected intervals), late flag, 15-min rows, and the span [first, end) of
    those rows [µs]. Only hours inside their grids; sorted by grid, then hour."""

    grid: I64
    period_us: I64
    quantity: F64
    quality: npt.NDArray[np.int8]
    completeness_sum: DecimalSums
    late: npt.NDArray[np.bool_]
    intervals: I64
    first_us: I64
    end_us: I64

    def __len__(self) -> int:
        return len(self.grid)


def slots_to_ask(grids: Sequence[Grid]) -> I64:
    """The sorted 15-min starts whose local hour :func:`hour_arrays` needs: every row's and
    the :data:`EDGE_SLOTS` around each grid."""
    if not grids:
        return np.zeros(0, dtype=np.int64)
    lo = np.array([g.lo_us for g in grids], dtype=np.int64)
    hi = np.array([g.hi_us for g in grids], dtype=np.int64)
    edges = _edge_slots(lo, hi).reshape(-1)
    return np.unique(np.concatenate([*(g.rows.start_us for g in grids), edges]))


def _edge_slots(lo_us: I64, hi_us: I64) -> I64:
    """Per grid [lo, hi): the :data:`EDGE_SLOTS` starts before ``lo`` and from ``hi`` on."""
    steps = np.arange(1, EDGE_SLOTS + 1, dtype=np.int64) * SLOT_US
    edges: I64 = np.concatenate([lo_us[:, None] - steps, hi_us[:, None] + steps - SLOT_US], axis=1)
    return edges


def hour_arrays(grids: Sequence[Grid], slots_us: I64, hours_us: I64) -> HourArrays:
    """The hour rows of ``grids`` that lie wholly inside them; ``hours_us[i]`` is the local
    hour of ``slots_us[i]`` (sorted, holding :func:`slots_to_ask`)."""
    sizes = np.array([len(g.rows) for g in grids], dtype=np.int64)
    grid = np.repeat(np.arange(len(grids), dtype=np.int64), sizes)
    start = _cat([g.rows.start_us for g in grids], np.int64)
    period = hours_us[np.searchsorted(slots_us, start)]
    # Rows in time order have their hours in order (so far in every zone's history); if not,
    # sorted, stably: rows stay in time order within an hour.
    next_grid = np.diff(grid)
    ordered = bool(np.all((next_grid > 0) | ((next_grid == 0) & (np.diff(period) >= 0))))
    order = slice(None) if ordered else np.lexsort((period, grid))
    grid, start, period = grid[order], start[order], period[order]
    quantity = _cat([g.rows.quantity for g in grids], np.float64)[order]
    completeness = _cat([g.rows.completeness for g in grids], np.float64)[order]
    quality = _cat([g.rows.quality for g in grids], np.int8)[order]
    late = _cat([g.rows.late for g in grids], np.bool_)[order]
    new = np.ones(len(start), dtype=np.bool_)
    new[1:] = (grid[1:] != grid[:-1]) | (period[1:] != period[:-1])
    starts = np.flatnonzero(new)
    if len(starts) == 0:
        return _empty()
    worst = np.maximum.reduceat(quality, starts)
    best = np.minimum.reduceat(quality, starts)
    codes = np.where(
        worst == MEASURED, MEASURED, np.where(best == MISSING, MISSING, ESTIMATED)
    ).astype(np.int8)
    hours = HourArrays(
        grid=grid[starts],
        period_us=period[starts],
        quantity=group_sums(quantity, starts).floats(),
        quality=codes,
        completeness_sum=group_sums(completeness, starts, with_scale=True),
        late=np.logical_or.reduceat(late, starts),
        intervals=np.diff(np.append(starts, len(start))),
        first_us=np.minimum.reduceat(start, starts),
        end_us=np.maximum.reduceat(start, starts) + SLOT_US,
    )
    lo = np.array([g.lo_us for g in grids], dtype=np.int64)[hours.grid]
    hi = np.array([g.hi_us for g in grids], dtype=np.int64)[hours.grid]
    around = _edge_slots(lo, hi)
    shared = (hours_us[np.searchsorted(slots_us, around)] == hours.period_us[:, None]).any(1)
    deep = (hours.period_us >= lo + HOUR_US) & (hours.period_us + 2 * HOUR_US <= hi)
    return _select(hours, deep | ~shared)


def full_spans(hours: HourArrays) -> tuple[HourArrays, dict[int, tuple[int, int]]]:
    """The hours of the grids whose hours fill their span (a local hour that is not one run of
    slots, in some zone's history, leaves a grid to the rollup), and per such grid the span
    [first, end) [µs] of its hours."""
    if len(hours) == 0:
        return hours, {}
    new = np.ones(len(hours), dtype=np.bool_)
    new[1:] = hours.grid[1:] != hours.grid[:-1]
    starts = np.flatnonzero(new)
    first = np.minimum.reduceat(hours.first_us, starts)
    end = np.maximum.reduceat(hours.end_us, starts)
    full = np.add.reduceat(hours.intervals, starts) * SLOT_US == end - first
    spans = {
        int(hours.grid[s]): (int(a), int(b))
        for s, a, b, ok in zip(starts, first, end, full, strict=True)
        if ok
    }
    sizes = np.diff(np.append(starts, len(hours)))
    return _select(hours, np.repeat(full, sizes)), spans


def _select(hours: HourArrays, keep: npt.NDArray[np.bool_]) -> HourArrays:
    if keep.all():
        return hours
    index = np.flatnonzero(keep)
    return HourArrays(
        hours.grid[index], hours.period_us[index], hours.quantity[index], hours.quality[index],
        hours.completeness_sum.select(keep), hours.late[index], hours.intervals[index],
        hours.first_us[index], hours.end_us[index],
    )  # fmt: skip


def _cat(parts: list[npt.NDArray[Any]], dtype: type) -> npt.NDArray[Any]:
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype)


def _empty() -> HourArrays:
    none = np.zeros(0, dtype=np.int64)
    sums = DecimalSums(none, none, none, np.zeros(0, dtype=np.bool_), {})
    return HourArrays(
        none, none, np.zeros(0), np.zeros(0, dtype=np.int8), sums,
        np.zeros(0, dtype=np.bool_), none, none, none,
    )  # fmt: skip

"""The common case of :func:`~carbonflow.domain.readings.device_intervals.quantity_intervals` on
arrays (numpy), for the calc service's bulk recomputation. Pure.

**The plain case**: a counter metric whose readings are finite, strictly increasing in time and
never decrease in value (every step is a normal one, :class:`~.counters.CounterStep.NORMAL`),
with fewer than two serial numbers (no meter replacement). Then every pair of consecutive
readings is counted and spread linearly over the intervals it spans exactly as
:class:`~carbonflow.domain.readings.intervals._Accumulator` does it, with the same floating-point
operations in the same order:

- a pair's part of an interval is ``delta * overlap / span`` (the whole ``delta`` when the pair
  lies in one interval), and the last interval of a pair that lies wholly inside the grid gets
  the remainder ``delta − (sum of its other parts, added one by one)``;
- the parts are added to each interval's quantity one by one, pair after pair
  (``numpy.add.at`` is unbuffered and goes through its indices in order);
- coverage is integer microseconds; quality, completeness and the late flags follow the same
  rules (:meth:`~.intervals._Accumulator.intervals`, :func:`~.device_intervals.late_flags`).

Anything else (resets, rollovers, drops, replacements, interval metrics, a pair spanning more
than :data:`MAX_PAIR_INTERVALS` intervals) returns ``None``: the caller uses the object path,
which applies every rule. ``tests/domain/readings/test_interval_arrays.py`` checks that both
paths give bit-identical results.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt

from carbonflow.domain.readings.intervals import IntervalGrid, max_gap_for
from carbonflow.domain.readings.quality import Quality

#: Quality codes of :attr:`GridArrays.quality`, in the order of :data:`QUALITIES`.
QUALITIES = (Quality.MEASURED.value, Quality.ESTIMATED.value, Quality.MISSING.value)
MEASURED, ESTIMATED, MISSING = 0, 1, 2

#: A pair of readings spanning more intervals than this is left to the object path (its
#: remainder is summed interval by interval; a long outage would make that loop long).
MAX_PAIR_INTERVALS = 64

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


def to_us(ts: datetime) -> int:
    """Microseconds since the Unix epoch (UTC)."""
    return (ts - _EPOCH) // _US


def from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


@dataclass(frozen=True)
class GridArrays:
    """Per interval of a grid: start [µs since the epoch], quantity [metric unit × multiplier],
    quality code (index into :data:`QUALITIES`), completeness (0–1) and late flag."""

    start_us: I64
    quantity: F64
    quality: npt.NDArray[np.int8]
    completeness: F64
    late: npt.NDArray[np.bool_]

    def __len__(self) -> int:
        return len(self.start_us)


def plain_counter_arrays(
    ts_us: I64,
    values: F64,
    received_us: I64,
    grid: IntervalGrid,
    *,
    multiplier: float,
    report_period: timedelta,
    serial_count: int,
    late_after: timedelta,
) -> GridArrays | None:
    """The plain case (module doc) of a counter on ``grid``; None when the readings are not
    plain. ``ts_us``/``values``/``received_us``: the readings with their context, as
    :func:`~.device_intervals.quantity_intervals` takes them (``value`` before the multiplier)."""
    n = len(ts_us)
    if serial_count >= 2 or not _plain(ts_us, values):
        return None
    g0, g1 = to_us(grid.start), to_us(grid.end)
    step = grid.interval // _US
    count = grid.count
    quantity = np.zeros(count, dtype=np.float64)
    measured = np.zeros(count, dtype=np.int64)
    estimated = np.zeros(count, dtype=np.int64)
    if n >= 2:
        max_gap_us = max_gap_for(report_period) // _US
        if not _spread(
            ts_us, values, multiplier, (g0, g1, step), max_gap_us, (quantity, measured, estimated)
        ):
            return None
    starts = g0 + step * np.arange(count, dtype=np.int64)
    quality = np.full(count, ESTIMATED, dtype=np.int8)
    quality[measured >= step] = MEASURED
    quality[(measured + estimated) == 0] = MISSING
    completeness = np.minimum(measured, step) / step
    late = _late(ts_us, received_us, g0, step, count, late_after // _US)
    return GridArrays(starts, quantity, quality, completeness.astype(np.float64), late)


def _plain(ts_us: I64, values: F64) -> bool:
    if len(ts_us) == 0:
        return True
    if not bool(np.all(np.isfinite(values))):
        return False
    return bool(np.all(np.diff(ts_us) > 0)) and bool(np.all(np.diff(values) >= 0))


def _spread(
    ts_us: I64,
    values: F64,
    multiplier: float,
    grid: tuple[int, int, int],
    max_gap_us: int,
    out: tuple[F64, I64, I64],
) -> bool:
    """Every pair's delta spread over the grid (the accumulator's ``add``); False when a pair
    spans more than MAX_PAIR_INTERVALS intervals."""
    g0, g1, step = grid
    quantity, measured, estimated = out
    t0, t1 = ts_us[:-1], ts_us[1:]
    # the step's raw quantity, then × the multiplier, as the object path computes it
    delta = (values[1:] - values[:-1]) * multiplier
    gap = (t1 - t0) > max_gap_us
    a = np.maximum(t0, g0)
    b = np.minimum(t1, g1)
    inside = a < b
    t0, t1, a, b = t0[inside], t1[inside], a[inside], b[inside]
    delta, gap = delta[inside], gap[inside]
    span = t1 - t0
    first = (a - g0) // step
    last = (b - 1 - g0) // step
    length = last - first + 1
    if len(length) and int(length.max()) > MAX_PAIR_INTERVALS:
        return False
    # one row per (pair, interval), pair-major, intervals ascending
    pair = np.repeat(np.arange(len(first)), length)
    offset = np.arange(len(pair)) - np.repeat(np.cumsum(length) - length, length)
    k = first[pair] + offset
    lo = g0 + k * step
    hi = lo + step
    overlap = np.minimum(b[pair], hi) - np.maximum(a[pair], lo)
    single = length[pair] == 1
    whole = (a == t0) & (b == t1)
    parts = np.where(
        single & (overlap == span[pair]),
        delta[pair],
        delta[pair] * overlap.astype(np.float64) / span[pair].astype(np.float64),
    )
    multi = np.flatnonzero((length > 1) & whole)
    if len(multi):
        starts = (np.cumsum(length) - length)[multi]
        lengths = length[multi]
        spread = np.zeros(len(multi), dtype=np.float64)
        for j in range(int(lengths.max()) - 1):
            more = lengths > j + 1
            spread[more] += parts[starts[more] + j]
        parts[starts + lengths - 1] = delta[multi] - spread
    np.add.at(quantity, k, parts)
    est = gap[pair]
    np.add.at(measured, k[~est], overlap[~est])
    np.add.at(estimated, k[est], overlap[est])
    return True


def _late(
    ts_us: I64, received_us: I64, g0: int, step: int, count: int, late_after_us: int
) -> npt.NDArray[np.bool_]:
    """:func:`~.device_intervals.late_flags` on arrays."""
    flags = np.zeros(count, dtype=np.bool_)
    n = len(ts_us)
    if n == 0 or count == 0:
        return flags
    late = np.flatnonzero((received_us - ts_us) > late_after_us)
    if not len(late):
        return flags
    lo = ts_us[np.maximum(late - 1, 0)]
    hi = ts_us[np.minimum(late + 1, n - 1)]
    first = (lo - g0) // step
    whole, rest = np.divmod(hi - g0, step)
    last = np.where(hi > lo, np.where(rest == 0, whole - 1, whole), first)
    f = np.maximum(first, 0)
    lst = np.minimum(last, count - 1)
    keep = f <= lst
    marks = np.zeros(count + 1, dtype=np.int64)
    np.add.at(marks, f[keep], 1)
    np.add.at(marks, lst[keep] + 1, -1)
    flags[np.cumsum(marks[:-1]) > 0] = True
    return flags

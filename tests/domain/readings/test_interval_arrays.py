"""The array path (interval_arrays) gives bit-identical rows to the object path
(device_intervals.quantity_intervals) wherever it answers, and declines what it does not cover.

Hand-worked numbers first, then random series: readings on and off the grid, gaps, pairs
spanning several intervals and the grid's edges, late readings, multipliers.
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from carbonflow.domain.readings.device_intervals import StoredReading, quantity_intervals
from carbonflow.domain.readings.interval_arrays import (
    QUALITIES,
    GridArrays,
    from_us,
    plain_counter_arrays,
    to_us,
)
from carbonflow.domain.readings.intervals import IntervalGrid

T0 = datetime(2025, 3, 1, 0, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
SLOT = timedelta(minutes=15)
LATE = timedelta(minutes=15)


def _arrays(
    readings: list[StoredReading], grid: IntervalGrid, multiplier: float, period: timedelta,
    serials: int = 0,
) -> GridArrays | None:  # fmt: skip
    return plain_counter_arrays(
        np.array([to_us(r.ts) for r in readings], dtype=np.int64),
        np.array([r.value for r in readings], dtype=np.float64),
        np.array([to_us(r.received_at) for r in readings], dtype=np.int64),
        grid,
        multiplier=multiplier,
        report_period=period,
        serial_count=serials,
        late_after=LATE,
    )


def _bits(x: float) -> bytes:
    return struct.pack("<d", x)


def _same(
    readings: list[StoredReading], grid: IntervalGrid, multiplier: float, period: timedelta
) -> GridArrays:
    arrays = _arrays(readings, grid, multiplier, period)
    assert arrays is not None
    rows, _series = quantity_intervals(
        readings, grid, kind="counter", multiplier=multiplier, modulus=None,
        report_period=period, late_after=LATE,
    )  # fmt: skip
    assert len(rows) == len(arrays)
    for k, row in enumerate(rows):
        assert from_us(int(arrays.start_us[k])) == row.start
        assert _bits(float(arrays.quantity[k])) == _bits(row.quantity), (k, row)
        assert QUALITIES[int(arrays.quality[k])] == row.quality
        assert _bits(float(arrays.completeness[k])) == _bits(row.completeness)
        assert bool(arrays.late[k]) == row.late
    return arrays


def r(minutes: float, value: float, delay_min: float = 0.1) -> StoredReading:
    ts = T0 + minutes * MIN
    return StoredReading(ts, value, ts + delay_min * MIN)


def test_hand_worked_spread_gap_and_late_flags() -> None:
    # 10 kWh from 5 to 25 min: [0,15) gets 10 × 10/20 = 5, [15,30) the remainder 5. Then a
    # 40-min gap (> 2 × 10 min) to 65 min carrying 40: estimated, 10 per 10 min → [15,30) 5
    # more, [30,45) 15, [45,60) 15, [60,75) 40 − 5 − 15 − 15 = 5. The reading at 25 min
    # arrived 20 min late: the pairs around it, 5 → 65 min, are late.
    readings = [r(5, 100.0), r(25, 110.0, delay_min=20), r(65, 150.0)]
    grid = IntervalGrid(T0, T0 + 5 * SLOT, SLOT)
    arrays = _same(readings, grid, 1.0, 10 * MIN)
    assert arrays.quantity.tolist() == [5.0, 10.0, 15.0, 15.0, 5.0]
    assert [QUALITIES[q] for q in arrays.quality] == ["estimated"] * 5
    assert arrays.completeness.tolist() == [10 / 15, 10 / 15, 0.0, 0.0, 0.0]
    assert arrays.late.tolist() == [True] * 5


def test_declines_what_it_does_not_cover() -> None:
    grid = IntervalGrid(T0, T0 + 2 * SLOT, SLOT)
    period = 15 * MIN
    assert _arrays([r(0, 10.0), r(15, 9.0)], grid, 1.0, period) is None  # a drop
    assert _arrays([r(0, 10.0), r(15, float("nan"))], grid, 1.0, period) is None
    assert _arrays([r(0, 10.0), r(0, 11.0)], grid, 1.0, period) is None  # same time
    assert _arrays([r(0, 10.0), r(15, 11.0)], grid, 1.0, period, serials=2) is None
    long_gap = [r(0, 10.0), r(15 * 70, 11.0)]  # one pair over 70 intervals
    assert _arrays(long_gap, IntervalGrid(T0, T0 + 80 * SLOT, SLOT), 1.0, period) is None


def test_empty_and_single_reading_are_missing() -> None:
    grid = IntervalGrid(T0, T0 + 2 * SLOT, SLOT)
    for readings in ([], [r(3, 1.0)]):
        arrays = _same(readings, grid, 1.0, 15 * MIN)
        assert [QUALITIES[q] for q in arrays.quality] == ["missing", "missing"]


_Case = tuple[list[StoredReading], IntervalGrid, float, timedelta]


@st.composite
def _series(draw: st.DrawFn) -> _Case:
    n = draw(st.integers(0, 40))
    aligned = draw(st.booleans())
    steps_s = draw(
        st.lists(
            st.sampled_from([900, 1800, 3600 * 5])
            if aligned
            else st.integers(1, 3 * 3600).map(lambda s: s),
            min_size=n,
            max_size=n,
        )
    )
    increments = draw(
        st.lists(
            st.one_of(
                st.just(0.0),
                st.floats(0.0, 1e6, allow_nan=False),
                st.floats(0.0, 1e-3, allow_nan=False),
            ),
            min_size=n,
            max_size=n,
        )
    )
    start_s = draw(st.integers(-7200, 7200))
    micro = draw(st.integers(0, 999_999)) if not aligned else 0
    t = T0 + timedelta(seconds=start_s, microseconds=micro)
    value = draw(st.floats(0.0, 1e9, allow_nan=False))
    readings = []
    for step_s, inc in zip(steps_s, increments, strict=True):
        delay = draw(st.sampled_from([1.0, 5.0, 3600.0]))
        readings.append(StoredReading(t, value, t + timedelta(seconds=delay)))
        t += timedelta(seconds=step_s)
        value += inc
    g_from = draw(st.integers(-8, 8))
    g_len = draw(st.integers(1, 60))
    grid = IntervalGrid(T0 + g_from * SLOT, T0 + (g_from + g_len) * SLOT, SLOT)
    multiplier = draw(st.sampled_from([1.0, 1000.0, 0.1, 3.7]))
    period = draw(st.sampled_from([MIN, 15 * MIN, 3600 * timedelta(seconds=1)]))
    return readings, grid, multiplier, period


@settings(max_examples=400, deadline=None)
@given(_series())
def test_random_series_are_bit_identical(case: _Case) -> None:
    readings, grid, multiplier, period = case
    arrays = _arrays(readings, grid, multiplier, period)
    if arrays is None:  # only a pair longer than MAX_PAIR_INTERVALS is declined here
        return
    _same(readings, grid, multiplier, period)

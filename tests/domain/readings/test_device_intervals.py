"""Readings → stored interval rows: meter replacement from serials, late flags, reports.

Hand-worked numbers; the quantity arithmetic itself is the pure core's (tests/domain/
readings/test_intervals.py). Times in UTC; 15-min grid.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from carbonflow.domain.readings.device_intervals import (
    SerialSpan,
    StoredReading,
    ceil_to,
    floor_to,
    late_flags,
    quantity_intervals,
    replacements_from_serials,
    window_grid,
)
from carbonflow.domain.readings.intervals import IntervalGrid

T0 = datetime(2025, 3, 1, 0, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
SLOT = timedelta(minutes=15)


def r(minutes: float, value: float, delay_s: float = 5.0) -> StoredReading:
    ts = T0 + minutes * MIN
    return StoredReading(ts, value, ts + timedelta(seconds=delay_s))


def test_floor_and_ceil_to_the_grid() -> None:
    t = T0 + timedelta(minutes=22, seconds=30)
    assert floor_to(t, SLOT) == T0 + 15 * MIN
    assert ceil_to(t, SLOT) == T0 + 30 * MIN
    assert ceil_to(T0 + 15 * MIN, SLOT) == T0 + 15 * MIN  # on a boundary: itself
    assert window_grid(t, t, SLOT) == IntervalGrid(T0 + 15 * MIN, T0 + 30 * MIN, SLOT)


def test_a_fresh_register_after_a_meter_swap_is_counted_from_zero() -> None:
    # Old meter A: 980 at 0 min, 1 000 at 10 min (2 kWh/min); new meter B: 21 at 20 min, 41 at
    # 30 min (2 kWh/min). At those rates the 10 min between the meters hold 20 kWh; B's 21 ≤ 2 ×
    # 20, so B started at 0 right after A's last reading: its 21 kWh are spread over 10 → 20 min.
    # [0,15): 20 (A) + 21 × 5/10 = 30.5; [15,30): 21 × 5/10 + (41 − 21) = 30.5. Total 61 kWh.
    readings = [r(0, 980.0), r(10, 1_000.0), r(20, 21.0), r(30, 41.0)]
    spans = [
        SerialSpan("A", T0, T0 + 10 * MIN),
        SerialSpan("B", T0 + 20 * MIN, T0 + 30 * MIN),
    ]
    swaps, estimated, notes = replacements_from_serials(spans, readings)
    assert len(swaps) == 1 and swaps[0].old_final_value == 1_000.0
    assert swaps[0].new_initial_value == 0.0 and estimated == () and "from 0" in notes[0]
    rows, _series = quantity_intervals(
        readings, IntervalGrid(T0, T0 + 2 * SLOT, SLOT), kind="counter", multiplier=1.0,
        modulus=None, report_period=10 * MIN, serials=spans,
    )  # fmt: skip
    assert [row.quantity for row in rows] == pytest.approx([30.5, 30.5])
    assert math.fsum(row.quantity for row in rows) == pytest.approx(61.0)


def test_a_swap_to_a_register_that_does_not_start_near_zero_is_estimated() -> None:
    # B's first reading is 500 (a refurbished meter): far above the 20 kWh expected over the
    # swap at 2 kWh/min. The 10 min between the meters get the expected 20 kWh (10 on A up to
    # 15 min, 10 on B after), flagged estimated; B is counted from 500 − 10 = 490.
    # [0,15): 20 + 10 = 30; [15,30): 10 + (520 − 500) = 30.
    readings = [r(0, 980.0), r(10, 1_000.0), r(20, 500.0), r(30, 520.0)]
    spans = [SerialSpan("A", T0, T0 + 10 * MIN), SerialSpan("B", T0 + 20 * MIN, T0 + 30 * MIN)]
    swaps, estimated, notes = replacements_from_serials(spans, readings)
    assert swaps[0].old_final_value == pytest.approx(1_010.0)
    assert swaps[0].new_initial_value == pytest.approx(490.0)
    assert estimated == ((T0 + 10 * MIN, T0 + 20 * MIN),) and "estimated" in notes[0]
    rows, _ = quantity_intervals(
        readings, IntervalGrid(T0, T0 + 2 * SLOT, SLOT), kind="counter", multiplier=1.0,
        modulus=None, report_period=10 * MIN, serials=spans,
    )  # fmt: skip
    assert [row.quantity for row in rows] == pytest.approx([30.0, 30.0])
    # Each interval holds 5 of the 10 estimated minutes: completeness 1 − 5/15.
    assert [row.quality for row in rows] == ["estimated", "estimated"]
    assert [row.completeness for row in rows] == pytest.approx([2 / 3, 2 / 3])


def test_a_swap_without_rates_around_it_leaves_the_gap_missing() -> None:
    # Only one reading per meter in the window: no rate to estimate the swap with, and 500 is
    # not a fresh register (> 10 % of 1 000): the time between the meters stays missing.
    readings = [r(10, 1_000.0), r(20, 500.0)]
    spans = [SerialSpan("A", T0, T0 + 10 * MIN), SerialSpan("B", T0 + 20 * MIN, T0 + 30 * MIN)]
    swaps, estimated, notes = replacements_from_serials(spans, readings)
    assert swaps[0].old_final_value is None and swaps[0].new_initial_value == 500.0
    assert estimated == () and "missing" in notes[0]


def test_overlapping_serials_are_not_a_replacement() -> None:
    spans = [SerialSpan("A", T0, T0 + 20 * MIN), SerialSpan("B", T0 + 10 * MIN, T0 + 30 * MIN)]
    swaps, _est, notes = replacements_from_serials(spans, [r(0, 1.0), r(10, 2.0), r(20, 3.0)])
    assert swaps == () and "overlap" in notes[0]


def test_late_readings_flag_the_intervals_their_pairs_touch() -> None:
    # Readings every 10 min; the one at 20 min arrived an hour late. Its pairs span 10 → 30 min:
    # intervals [0,15) and [15,30) are late, [30,45) is not.
    readings = [r(0, 0.0), r(10, 1.0), r(20, 2.0, delay_s=3600), r(30, 3.0), r(40, 4.0)]
    starts = [T0, T0 + SLOT, T0 + 2 * SLOT]
    assert late_flags(readings, starts, SLOT, timedelta(minutes=15)) == [True, True, False]
    # Delivered within the threshold: nothing is late.
    on_time = [r(0, 0.0), r(10, 1.0), r(20, 2.0, delay_s=600), r(30, 3.0)]
    assert late_flags(on_time, starts, SLOT, timedelta(minutes=15)) == [False, False, False]


def test_interval_reports_with_a_multiplier() -> None:
    # Reports of "quantity since the previous report" every 15 min on the grid: 2.0, 3.0 t;
    # the first covers the 15 min before it. Multiplier 10 (a pulse factor): 20 t and 30 t.
    readings = [r(15, 2.0), r(30, 3.0)]
    rows, _ = quantity_intervals(
        readings, IntervalGrid(T0, T0 + 2 * SLOT, SLOT), kind="interval", multiplier=10.0,
        modulus=None, report_period=SLOT,
    )  # fmt: skip
    assert [row.quantity for row in rows] == [20.0, 30.0]
    assert [row.quality for row in rows] == ["measured", "measured"]


def test_gauges_are_refused() -> None:
    with pytest.raises(ValueError, match="gauges are not integrated"):
        quantity_intervals(
            [r(0, 1.0)], IntervalGrid(T0, T0 + SLOT, SLOT), kind="gauge", multiplier=1.0,
            modulus=None, report_period=SLOT,
        )  # fmt: skip

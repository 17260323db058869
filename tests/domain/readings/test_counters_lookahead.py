"""Ambiguous counter drops: look-ahead (counters.resolve_drop) and near-modulus wraps.

Ingest stores drops larger than a noise dip (``NOISE_DIP_FRACTION``) that are neither a reset
(to ≤ 10 % of the previous value) nor a wrap; the calc side decides with the next reading.
Readings every 15 min, a grid of 15-min intervals; quantities worked by hand in the comments.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from carbonflow.domain.readings.counters import (
    DropVerdict,
    resolve_drop,
    restart_quantity,
    rollover_plausible,
)
from carbonflow.domain.readings.intervals import (
    EventKind,
    IntervalGrid,
    IntervalSeries,
    Reading,
    counter_intervals,
)
from carbonflow.domain.readings.quality import Quality

CST = timezone(timedelta(hours=8), "CST")
T0 = datetime(2025, 3, 1, 0, 0, tzinfo=CST)
Q = timedelta(minutes=15)
ABS = 1e-9


def series(*values: float) -> list[Reading]:
    """One reading every 15 min from 00:00."""
    return [Reading(T0 + k * Q, v) for k, v in enumerate(values)]


def run(
    values: list[Reading], modulus: float | None = None, multiplier: float = 1.0
) -> IntervalSeries:
    grid = IntervalGrid(T0, T0 + (len(values) - 1) * Q, Q)
    return counter_intervals(values, grid, max_gap=2 * Q, modulus=modulus, multiplier=multiplier)


# --- the pure rules ---------------------------------------------------------------------------


def test_resolve_drop_by_the_next_reading() -> None:
    # 1010 → 600 (a 41 % drop: neither a dip nor a reset to ≤ 101).
    assert resolve_drop(1010.0, 600.0, 610.0) is DropVerdict.REBASE  # continues from 600
    assert resolve_drop(1010.0, 600.0, 600.0) is DropVerdict.REBASE  # flat after the drop
    assert resolve_drop(1010.0, 600.0, 1030.0) is DropVerdict.NOISE  # back above 1010
    assert resolve_drop(1010.0, 600.0, 1010.0) is DropVerdict.NOISE  # exactly back
    assert resolve_drop(1010.0, 600.0, 300.0) is DropVerdict.NOISE  # drops further: unconfirmed
    assert resolve_drop(1010.0, 600.0, None) is DropVerdict.UNDECIDED  # nothing after it yet
    # With a modulus of 1000: 990 → 500 → 5 continues from 990 by a wrap (990 → 5 = 15).
    assert resolve_drop(990.0, 500.0, 5.0, 1000.0) is DropVerdict.NOISE


def test_restart_quantity() -> None:
    # Expected 400 over the step: a first reading of 700 ≤ 2 × 400 = 800 restarted at 0.
    assert restart_quantity(700.0, 400.0) == (700.0, False)
    # 600 > 2 × 10: restarted from an unknown base → the expected 10, estimated.
    assert restart_quantity(600.0, 10.0) == (10.0, True)
    # No rate known: nothing can be said → 0, estimated.
    assert restart_quantity(600.0, None) == (0.0, True)


def test_rollover_plausible() -> None:
    # 980 → 10 at 1000 adds 30; the meter counts up to 30 per step: 30 ≤ 10 × 30.
    assert rollover_plausible(980.0, 10.0, 1000.0, 30.0)
    # 950 030 → 20 at 1 000 000 adds 49 990 against 10 × 30 = 300: not a wrap.
    assert not rollover_plausible(950_030.0, 20.0, 1_000_000.0, 30.0)
    # No positive rate around it: kept as a wrap.
    assert rollover_plausible(950_030.0, 20.0, 1_000_000.0, 0.0)
    assert rollover_plausible(950_030.0, 20.0, 1_000_000.0, None)


# --- in the series ----------------------------------------------------------------------------


def test_drop_continued_from_the_lower_value_is_a_new_base_nothing_lost() -> None:
    # 1000, 1010 | 600, 610, 620: the meter was replaced by one reading ~590 (unknown base).
    # 00:00–00:15: 1010 − 1000 = 10 (measured).
    # 00:15–00:30: the drop; rates around it 10 per 15 min (before) and 610 − 600 = 10 (after),
    #   expected 10; 600 > 2 × 10, so not a restart at 0: the step gets 10, estimated.
    # 00:30–00:45: 610 − 600 = 10; 00:45–01:00: 620 − 610 = 10. Total 40, never negative.
    s = run(series(1000.0, 1010.0, 600.0, 610.0, 620.0))
    got = [(round(i.quantity, 9), i.quality) for i in s.intervals]
    assert got == [
        (10.0, Quality.MEASURED),
        (10.0, Quality.ESTIMATED),
        (10.0, Quality.MEASURED),
        (10.0, Quality.MEASURED),
    ]
    assert s.intervals[1].completeness == 0.0
    assert s.count(EventKind.REBASE) == 1
    assert s.count(EventKind.BACKWARDS) == 0


def test_drop_to_a_value_the_meter_could_have_counted_is_a_restart_at_zero() -> None:
    # 1000, 1400 | 700, 1100 with the CT multiplier 2: rates 400 per step before and after,
    # expected 400; 700 ≤ 2 × 400 → the register restarted at 0 and counted 700 (measured).
    # Quantities × 2: (1400 − 1000) × 2 = 800; 700 × 2 = 1400; (1100 − 700) × 2 = 800.
    s = run(series(1000.0, 1400.0, 700.0, 1100.0), multiplier=2.0)
    assert [i.quantity for i in s.intervals] == pytest.approx([800.0, 1400.0, 800.0], abs=ABS)
    assert {i.quality for i in s.intervals} == {Quality.MEASURED}
    assert s.count(EventKind.REBASE) == 1


def test_single_low_outlier_between_consistent_readings_is_noise() -> None:
    # 1000, 1010, 600, 1030, 1040: 600 is followed by 1030 ≥ 1010, so it is an outlier and
    # skipped; 1010 → 1030 (20 over 00:15–00:45) is spread 10 + 10; 1030 → 1040 = 10.
    s = run(series(1000.0, 1010.0, 600.0, 1030.0, 1040.0))
    assert [i.quantity for i in s.intervals] == pytest.approx([10.0] * 4, abs=ABS)
    # 30 min between good readings = 2 × the period: not a gap, still measured.
    assert {i.quality for i in s.intervals} == {Quality.MEASURED}
    assert s.count(EventKind.BACKWARDS) == 1
    assert s.count(EventKind.REBASE) == 0
    assert s.total == pytest.approx(40.0, abs=ABS)  # = 1040 − 1000


def test_drop_without_a_following_reading_waits() -> None:
    # 1000, 1010, 600 (the newest reading): undecided, skipped until the next reading arrives
    # (the calc service then recomputes from the reading before the drop). Counted: 10.
    s = run(series(1000.0, 1010.0, 600.0))
    assert [i.quantity for i in s.intervals] == pytest.approx([10.0, 0.0], abs=ABS)
    backwards = [e for e in s.events if e.kind is EventKind.BACKWARDS]
    assert len(backwards) == 1 and "not yet confirmed" in backwards[0].detail


def test_two_drops_in_a_row_judged_against_the_last_good_reading() -> None:
    # 1000, 1010, 600, 300, 1030: 600 is followed by a lower 300 (unconfirmed: noise); 300 is
    # then a drop from 1010 followed by 1030 ≥ 1010 (noise). 1010 → 1030 = 20 over 00:15–01:00
    # (45 min > 2 × 15 min: a gap, 20/3 per interval, estimated). Total 40 = 1030 − 1000 + 10.
    s = run(series(1000.0, 1010.0, 600.0, 300.0, 1030.0))
    assert [i.quantity for i in s.intervals] == pytest.approx(
        [10.0, 20.0 / 3, 20.0 / 3, 20.0 / 3], abs=ABS
    )
    assert s.count(EventKind.BACKWARDS) == 2


# --- near the modulus -------------------------------------------------------------------------


def test_near_modulus_wrap_at_the_meters_rate_is_a_rollover() -> None:
    # Modulus 1000: 950, 980, 10, 40 at 30 per step. 980 → 10 wraps: 1000 − 980 + 10 = 30.
    s = run(series(950.0, 980.0, 10.0, 40.0), modulus=1000.0)
    assert [i.quantity for i in s.intervals] == pytest.approx([30.0, 30.0, 30.0], abs=ABS)
    assert s.count(EventKind.ROLLOVER) == 1


def test_near_modulus_reset_is_not_read_as_a_wrap() -> None:
    # Modulus 1 000 000: 950 000, 950 030 | 20, 50 at 30 per step. A wrap would add
    # 1 000 000 − 950 030 + 20 = 49 990 > 10 × 30 = 300: a reset near the top. Expected over
    # the step 30; 20 ≤ 2 × 30 → restarted at 0, counted 20 (measured). Total 30 + 20 + 30 = 80
    # instead of 50 010 with 49 970 phantom.
    s = run(series(950_000.0, 950_030.0, 20.0, 50.0), modulus=1_000_000.0)
    assert [i.quantity for i in s.intervals] == pytest.approx([30.0, 20.0, 30.0], abs=ABS)
    assert s.count(EventKind.ROLLOVER) == 0
    resets = [e for e in s.events if e.kind is EventKind.RESET]
    assert len(resets) == 1 and "read as a reset" in resets[0].detail


def test_near_modulus_wrap_waits_for_the_reading_after_it() -> None:
    # The same reset as above as the newest reading (950 000, 950 030 | 20): without the pair
    # after it the named rule stands — a wrap of 49 990 — until the next reading arrives and
    # the calc service recomputes the step (the previous test).
    s = run(series(950_000.0, 950_030.0, 20.0), modulus=1_000_000.0)
    assert [i.quantity for i in s.intervals] == pytest.approx([30.0, 49_990.0], abs=ABS)
    assert s.count(EventKind.ROLLOVER) == 1


def test_near_modulus_drop_to_a_high_value_stays_a_wrap() -> None:
    # Modulus 1 000 000: 950 000, 950 030 | 90 000, 90 030. A wrap would add 1 000 000 − 950 030
    # + 90 000 = 139 970, far above 10 × 30; but 90 000 is not what a register restarted at 0
    # reads after one step (> 2 × 30), and a load that ran fast inside the step would look the
    # same: the named rule stands (the documented limit — only a serial change tells).
    s = run(series(950_000.0, 950_030.0, 90_000.0, 90_030.0), modulus=1_000_000.0)
    assert [i.quantity for i in s.intervals] == pytest.approx([30.0, 139_970.0, 30.0], abs=ABS)
    assert s.count(EventKind.ROLLOVER) == 1


def test_near_modulus_drop_on_an_idle_meter_stays_a_wrap() -> None:
    # Modulus 1 000 000, a meter counting nothing before and after: 999 990, 999 990 | 5, 5.
    # No positive rate to compare with, so the named rule stands: a wrap of 1 000 000 − 999 990
    # + 5 = 15 (a reset here cannot be told from a wrap: a documented limit).
    s = run(series(999_990.0, 999_990.0, 5.0, 5.0), modulus=1_000_000.0)
    assert [i.quantity for i in s.intervals] == pytest.approx([0.0, 15.0, 0.0], abs=ABS)
    assert s.count(EventKind.ROLLOVER) == 1

"""The hour rows of 15-min grids before they are written: hand-worked hours of a UTC site, the
hours at a grid's edges left to the rollup, a grid whose hours do not fill their span.
(Bit for bit against the SQL rollup in several zones: tests/storage/test_interval_rollup.py.)"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from carbonflow.domain.readings.hour_arrays import (
    HOUR_US,
    SLOT_US,
    Grid,
    full_spans,
    hour_arrays,
    slots_to_ask,
)
from carbonflow.domain.readings.interval_arrays import ESTIMATED, MEASURED, GridArrays, to_us

T0 = to_us(datetime(2026, 3, 2, tzinfo=UTC))


def _grid(lo: int, rows: list[tuple[int, float, int, float, bool]]) -> Grid:
    """Rows (slot index from T0, quantity, quality code, completeness, late); the grid runs
    from slot ``lo`` to one past the last row."""
    return Grid(
        T0 + lo * SLOT_US,
        T0 + (rows[-1][0] + 1) * SLOT_US,
        GridArrays(
            np.array([T0 + r[0] * SLOT_US for r in rows], dtype=np.int64),
            np.array([r[1] for r in rows]),
            np.array([r[2] for r in rows], dtype=np.int8),
            np.array([r[3] for r in rows]),
            np.array([r[4] for r in rows], dtype=np.bool_),
        ),
    )


def _utc_hours(slots: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    hours: npt.NDArray[np.int64] = slots - (slots - T0) % HOUR_US
    return hours


def test_hours_inside_a_grid() -> None:
    # Grid [00:15, 03:00): the hour 00:00 shares its slot 00:00 with what lies before the grid
    # and is left to the rollup; 01:00 and 02:00 are inside.
    # 01:00: '0.1' + '0.2' + 0 + 0 = 0.3 (floats: 0.30000000000000004), all measured, 4 rows.
    # 02:00: 1 + 2 + 3 + 4 = 10, one estimated → estimated, one late → late, completeness
    #        1 + 0.5 + 1 + 1 = 3.5.
    rows = [(s, 5.0, MEASURED, 1.0, False) for s in (1, 2, 3)]
    rows += [(4, 0.1, MEASURED, 1.0, False), (5, 0.2, MEASURED, 1.0, False)]
    rows += [(6, 0.0, MEASURED, 1.0, False), (7, 0.0, MEASURED, 1.0, False)]
    rows += [(8, 1.0, MEASURED, 1.0, False), (9, 2.0, ESTIMATED, 0.5, True)]
    rows += [(10, 3.0, MEASURED, 1.0, False), (11, 4.0, MEASURED, 1.0, False)]
    grid = _grid(1, rows)
    slots = slots_to_ask([grid])
    assert slots[0] == T0 - 11 * SLOT_US and slots[-1] == T0 + 23 * SLOT_US  # 12 each side
    hours, spans = full_spans(hour_arrays([grid], slots, _utc_hours(slots)))
    assert list(hours.period_us) == [T0 + HOUR_US, T0 + 2 * HOUR_US]
    assert list(hours.quantity) == [0.3, 10.0]
    assert list(hours.quality) == [MEASURED, ESTIMATED]
    assert list(hours.late) == [False, True]
    assert list(hours.intervals) == [4, 4]
    # "%.15g" of 1.0 is "1": the sum of four is "4", not "4.0"
    assert [hours.completeness_sum.text(i) for i in range(2)] == ["4", "3.5"]
    assert spans == {0: (T0 + HOUR_US, T0 + 3 * HOUR_US)}


def test_a_grid_whose_hours_leave_gaps_is_left_to_the_rollup() -> None:
    # Grid [01:00, 03:00) without a row at 01:30: hours of 3 and 4 rows span 8 slots → not
    # full; the other grid (another key, [01:00, 02:00)) is kept.
    gappy = _grid(4, [(s, 1.0, MEASURED, 1.0, False) for s in (4, 5, 7, 8, 9, 10, 11)])
    whole = _grid(4, [(s, 1.0, MEASURED, 1.0, False) for s in (4, 5, 6, 7)])
    slots = slots_to_ask([gappy, whole])
    hours, spans = full_spans(hour_arrays([gappy, whole], slots, _utc_hours(slots)))
    assert spans == {1: (T0 + HOUR_US, T0 + 2 * HOUR_US)}
    assert list(hours.grid) == [1] and list(hours.quantity) == [4.0]


def test_a_local_hour_of_ninety_minutes() -> None:
    # A zone's clocks going back 30 min (Lord Howe): the local hour starting at 01:00 holds six
    # slots. Grid [00:00, 04:00); the hour 00:00 is at the grid's start and shares no slot
    # with what lies before it (00:00 − 15 min is hour 23:00): inside.
    def lord_howe(slots: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        hours = _utc_hours(slots)
        long = (slots >= T0 + HOUR_US) & (slots < T0 + HOUR_US + 6 * SLOT_US)
        later = slots >= T0 + HOUR_US + 6 * SLOT_US
        shifted = slots - 2 * SLOT_US - (slots - 2 * SLOT_US - T0) % HOUR_US + 2 * SLOT_US
        return np.where(long, T0 + HOUR_US, np.where(later, shifted, hours))

    grid = _grid(0, [(s, 1.0, MEASURED, 1.0, False) for s in range(16)])
    slots = slots_to_ask([grid])
    hours, spans = full_spans(hour_arrays([grid], slots, lord_howe(slots)))
    assert list(hours.intervals) == [4, 6, 4]  # 00:00, 01:00 (90 min), 02:30; 03:30 at the end
    assert list(hours.quantity) == [4.0, 6.0, 4.0]
    assert spans == {0: (T0, T0 + 3 * HOUR_US + 2 * SLOT_US)}

"""Step a: reading windows → readings → 15-min quantities → the interval rows replaced.

A window is widened to the readings around it (a new reading changes the pairs on both sides),
aligned to the accounting grid, and its grid recomputed with
:mod:`carbonflow.domain.readings.device_intervals`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

from carbonflow.domain.calendar import merge_ranges
from carbonflow.domain.readings.device_intervals import (
    SerialSpan,
    StoredReading,
    ceil_to,
    floor_to,
    quantity_intervals,
)
from carbonflow.domain.readings.interval_arrays import (
    QUALITIES,
    GridArrays,
    from_us,
    plain_counter_arrays,
    to_us,
)
from carbonflow.domain.readings.intervals import IntervalGrid
from carbonflow.domain.site.plan import DevicePlan, MetricPlan, SitePlan
from carbonflow.storage import intervals as intervals_db
from carbonflow.storage import readings as readings_db
from carbonflow.storage.db import Conn
from services.calc.context import StepContext
from services.calc.windows import SLOT, Range

#: The cycle reports the lag of this many of its newest readings (engine.CycleReport).
RECEIVED_KEPT = 1_000

#: (device_pk, metric_id) → reading windows
Windows = Mapping[tuple[int, int], Sequence[Range]]
#: (device_pk, metric_id, start, end)
_Window = tuple[int, int, datetime, datetime]


@dataclass(frozen=True)
class IntervalsDone:
    written: int  # interval rows written
    touched: dict[int, list[Range]]  # device_pk → grid ranges recomputed
    ranges: list[Range]  # all of them, merged
    received: list[datetime]  # received_at of the grids' newest RECEIVED_KEPT readings, sorted
    read_ahead: bool = False  # computed before the cycle (PreparedIntervals), not in it
    hours: intervals_db.HourRows | None = None  # their hour rows, computed ahead


@dataclass(frozen=True)
class PreparedIntervals:
    """The 15-min rows of some reading windows, computed but not written: what
    :func:`prepare_intervals` read and computed, on any connection, for :func:`write_intervals`
    to store in the site's transaction. ``windows`` and ``devices`` say what it is valid for."""

    windows: tuple[_Window, ...]  # the reading windows asked for, flattened
    devices: tuple[DevicePlan, ...]  # the site's devices it was computed with
    timezone: str  # the site's zone, of its hour rows
    late_after: timedelta
    results: list[tuple[int, int, datetime, datetime, GridArrays]]
    touched: dict[int, list[Range]]
    received: list[datetime]
    hours: intervals_db.HourRows | None = None  # the hour rows inside the grids

    def fits(self, plan: SitePlan, windows: Windows, late_after: timedelta) -> bool:
        """Whether these are the rows the given windows would now compute from the same readings
        (the caller knows whether readings changed since: ingest marks them dirty)."""
        return (
            self.late_after == late_after
            and self.windows == tuple(_flatten(windows))
            and self.devices == plan.devices
            and self.timezone == plan.timezone
        )


def recompute_intervals(
    ctx: StepContext,
    windows: Windows,
    late_after: timedelta,
    prepared: PreparedIntervals | None = None,
) -> IntervalsDone:
    """The windows' intervals replaced: from ``prepared`` where it fits, else read and computed
    now in the site's transaction."""
    if prepared is not None and prepared.fits(ctx.plan, windows, late_after):
        return replace(write_intervals(ctx, prepared), read_ahead=True)
    return write_intervals(ctx, prepare_intervals(ctx.conn, ctx.plan, windows, late_after))


def prepare_intervals(
    conn: Conn, plan: SitePlan, windows: Windows, late_after: timedelta, *, hours: bool = False
) -> PreparedIntervals:
    """Read the windows' readings and compute their grids; ``hours``: also the hour rows inside
    the grids (:func:`~carbonflow.storage.intervals.hour_rows`). Writes nothing."""
    flat = _flatten(windows)
    grids: dict[tuple[int, int], list[Range]] = {}
    for b in readings_db.window_bounds(conn, flat):
        grid = _grid_of(plan, b)
        if grid is not None:
            grids.setdefault((b.device_pk, b.metric_id), []).append(grid)
    final = _flatten(grids)
    readings = readings_db.readings_arrays(conn, final)
    spans = readings_db.serial_spans(conn, sorted({w[0] for w in final}))
    results: list[tuple[int, int, datetime, datetime, GridArrays]] = []
    touched: dict[int, list[Range]] = {}
    received: list[npt.NDArray[np.int64]] = []
    for (pk, mid, lo, hi), rows in zip(final, readings, strict=True):
        device, metric = _device_metric(plan, pk, mid)
        inside = (rows.ts_us >= to_us(lo)) & (rows.ts_us < to_us(hi))
        received.append(rows.received_us[inside])
        serials = [SerialSpan(*s) for s in spans.get(pk, [])]
        intervals = _grid_arrays(
            device, metric, rows, (lo, hi), serials=serials, late_after=late_after
        )
        results.append((pk, mid, lo, hi, intervals))
        touched.setdefault(pk, []).append((lo, hi))
    return PreparedIntervals(
        tuple(flat), plan.devices, plan.timezone, late_after, results, touched, _newest(received),
        intervals_db.hour_rows(conn, results, plan.timezone) if hours and results else None,
    )  # fmt: skip


def write_intervals(ctx: StepContext, prepared: PreparedIntervals) -> IntervalsDone:
    written = intervals_db.replace_interval_arrays(ctx.conn, prepared.results, ctx.now)
    merged = merge_ranges(r for ranges in prepared.touched.values() for r in ranges)
    return IntervalsDone(written, prepared.touched, merged, prepared.received, hours=prepared.hours)


def _newest(received: list[npt.NDArray[np.int64]]) -> list[datetime]:
    """The newest RECEIVED_KEPT ``received_at``, sorted."""
    if not received:
        return []
    every = np.concatenate(received)
    if len(every) > RECEIVED_KEPT:
        every = np.partition(every, len(every) - RECEIVED_KEPT)[-RECEIVED_KEPT:]
    return [from_us(int(us)) for us in np.sort(every)]


def _grid_arrays(
    device: DevicePlan,
    metric: MetricPlan,
    rows: readings_db.ReadingArrays,
    grid: Range,
    *,
    serials: list[SerialSpan],
    late_after: timedelta,
) -> GridArrays:
    """The grid's intervals: by the array path where it applies (plain counters), else by the
    object path, which applies every rule (interval_arrays)."""
    if metric.kind == "counter":
        plain = plain_counter_arrays(
            rows.ts_us, rows.value, rows.received_us, IntervalGrid(grid[0], grid[1], SLOT),
            multiplier=device.multiplier_for(metric), report_period=device.report_period,
            serial_count=len(serials), late_after=late_after,
        )  # fmt: skip
        if plain is not None:
            return plain
    stored = [
        StoredReading(from_us(int(t)), float(v), from_us(int(r)))
        for t, v, r in zip(rows.ts_us, rows.value, rows.received_us, strict=True)
    ]
    found = _grid_intervals(device, metric, stored, grid, serials=serials, late_after=late_after)
    codes = {q: i for i, q in enumerate(QUALITIES)}
    return GridArrays(
        np.array([to_us(i[0]) for i in found], dtype=np.int64),
        np.array([i[1] for i in found], dtype=np.float64),
        np.array([codes[i[2]] for i in found], dtype=np.int8),
        np.array([i[3] for i in found], dtype=np.float64),
        np.array([i[4] for i in found], dtype=np.bool_),
    )


def _flatten(windows: Windows) -> list[_Window]:
    return [
        (pk, mid, lo, hi)
        for (pk, mid), ranges in sorted(windows.items())
        for lo, hi in merge_ranges(ranges)
    ]


def _device_metric(plan: SitePlan, pk: int, metric_id: int) -> tuple[DevicePlan, MetricPlan]:
    device = plan.by_pk[pk]
    return device, next(m for m in device.metrics if m.metric_id == metric_id)


def _grid_of(plan: SitePlan, b: readings_db.WindowBounds) -> Range | None:
    """The grid range a window's readings decide, or None when it has no readings."""
    device, metric = _device_metric(plan, b.device_pk, b.metric_id)
    start = b.previous or b.first
    end = b.following or b.last
    if start is None or end is None:
        return None
    if metric.kind == "counter":
        # Look-ahead (intervals.counter_intervals): the reading two before can be the start of a
        # pair this window's readings decide, and one skipped reading after the window joins
        # the pairs around it.
        start = b.before_previous or start
        end = b.after_following or end
    if b.previous is None and metric.kind == "interval":
        start = start - device.report_period  # the first report covers the period before
    g0, g1 = floor_to(start, SLOT), ceil_to(end, SLOT)
    return None if g1 <= g0 else (g0, g1)


def _grid_intervals(
    device: DevicePlan,
    metric: MetricPlan,
    stored: list[StoredReading],
    grid: Range,
    *,
    serials: list[SerialSpan],
    late_after: timedelta,
) -> list[intervals_db.IntervalTuple]:
    intervals, _series = quantity_intervals(
        stored,
        IntervalGrid(grid[0], grid[1], SLOT),
        kind=metric.kind,
        multiplier=device.multiplier_for(metric),
        modulus=device.modulus,
        report_period=device.report_period,
        serials=serials,
        late_after=late_after,
    )
    return [(i.start, i.quantity, i.quality, i.completeness, i.late) for i in intervals]

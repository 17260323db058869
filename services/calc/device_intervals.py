"""Raw readings of one device metric → 15-min (accounting) or 1-min (live) quantities. Pure.

A thin layer over :mod:`carbonflow.domain.intervals` that adds what the stored readings carry
and the pure core leaves to the service:

- **meter replacement** from the serial numbers seen in telemetry (``meter_serial``):
  :func:`replacements_from_serials` (the rule below);
- **late** flags: an interval is *late* when a reading whose pairs overlap it arrived more than
  ``late_after`` after its own timestamp (``received_at − ts``). This depends only on stored
  data, so a recomputation gives the same flags as the first computation.

**Replacement rule.** Serial A is followed by serial B (sorted by first sighting). With ``a`` the
metric's last reading at or before A's last sighting and ``b`` its first reading at or after B's
first sighting:

- if ``b ≤ RESET_FRACTION × a`` the new register started fresh (≈ 0): the old meter ends at ``a``
  and the new one is counted from 0 just after it, so ``b`` is spread over the time between the
  two readings — nothing is lost, and a wide gap is flagged estimated;
- otherwise the new register started at an unknown value: the new meter is counted from ``b``
  and the time between the two readings is *missing* (the quantity in it cannot be known).
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from carbonflow.domain.counters import RESET_FRACTION
from carbonflow.domain.intervals import (
    IntervalGrid,
    IntervalQuantity,
    IntervalSeries,
    MeterReplacement,
    Reading,
    counter_intervals,
    max_gap_for,
    report_intervals,
)

# An interval whose readings arrived more than this after their timestamps is flagged late
# (one accounting interval: data that missed the interval's first computation).
DEFAULT_LATE_AFTER = timedelta(minutes=15)

_JUST_AFTER = timedelta(microseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class StoredReading:
    """A reading as stored: ``value`` before the multiplier; ``received_at`` by ingest."""

    ts: datetime
    value: float
    received_at: datetime


@dataclass(frozen=True, slots=True)
class SerialSpan:
    serial: str
    first_ts: datetime
    last_ts: datetime


@dataclass(frozen=True, slots=True)
class IntervalRow:
    """One result row of ``calc_interval`` (quantity after the multiplier)."""

    start: datetime
    quantity: float
    quality: str
    completeness: float
    late: bool


def floor_to(ts: datetime, step: timedelta) -> datetime:
    """``ts`` rounded down to a multiple of ``step`` since the Unix epoch (UTC)."""
    utc = ts.astimezone(UTC)
    return utc - (utc - _EPOCH) % step


def ceil_to(ts: datetime, step: timedelta) -> datetime:
    floor = floor_to(ts, step)
    return floor if floor == ts.astimezone(UTC) else floor + step


def replacements_from_serials(
    spans: Sequence[SerialSpan], readings: Sequence[StoredReading]
) -> tuple[tuple[MeterReplacement, ...], tuple[str, ...]]:
    """Meter replacements inside ``readings`` (module doc), and notes for the service's log."""
    ordered = sorted(spans, key=lambda s: (s.first_ts, s.serial))
    times = [r.ts for r in readings]
    out: list[MeterReplacement] = []
    notes: list[str] = []
    for old, new in itertools.pairwise(ordered):
        if new.first_ts <= old.last_ts:
            notes.append(
                f"serials {old.serial} and {new.serial} overlap in time: not a replacement"
            )
            continue
        i_old = bisect.bisect_right(times, old.last_ts) - 1
        i_new = bisect.bisect_left(times, new.first_ts)
        if i_old < 0 or i_new >= len(readings) or i_new != i_old + 1:
            continue  # the swap is not between two consecutive readings of this window
        a, b = readings[i_old], readings[i_new]
        if b.value <= RESET_FRACTION * a.value:
            out.append(MeterReplacement(a.ts + _JUST_AFTER, a.value, 0.0))
            notes.append(f"meter {old.serial} → {new.serial}: new register counted from 0")
        else:
            out.append(MeterReplacement(b.ts, None, b.value))
            notes.append(
                f"meter {old.serial} → {new.serial}: new register started at {b.value:g}; "
                "time between the meters is missing"
            )
    return tuple(out), tuple(notes)


def late_flags(
    readings: Sequence[StoredReading], starts: Sequence[datetime], step: timedelta,
    late_after: timedelta,
) -> list[bool]:  # fmt: skip
    """Per interval (given by its start), whether a late reading's pairs overlap it."""
    flags = [False] * len(starts)
    if not starts:
        return flags
    g0 = starts[0]
    n = len(starts)
    for i, r in enumerate(readings):
        if r.received_at - r.ts <= late_after:
            continue
        # The reading shapes the pairs before and after it: the span [previous, next].
        lo = readings[i - 1].ts if i > 0 else r.ts
        hi = readings[i + 1].ts if i + 1 < len(readings) else r.ts
        first = (lo - g0) // step
        if hi > lo:
            whole, rest = divmod(hi - g0, step)
            last = whole - 1 if rest == timedelta(0) else whole  # intervals starting before hi
        else:
            last = first
        for k in range(max(0, first), min(n - 1, last) + 1):
            flags[k] = True
    return flags


def quantity_intervals(
    readings: Sequence[StoredReading],
    grid: IntervalGrid,
    *,
    kind: str,
    multiplier: float,
    modulus: float | None,
    report_period: timedelta,
    serials: Sequence[SerialSpan] = (),
    late_after: timedelta = DEFAULT_LATE_AFTER,
) -> tuple[tuple[IntervalRow, ...], IntervalSeries]:
    """Quantities of a counter or interval metric on ``grid`` [metric unit × multiplier].

    ``readings`` must include the context the grid needs: every reading inside it, plus the last
    one before it and the first one after it.
    """
    plain = [Reading(r.ts, r.value) for r in readings]
    max_gap = max_gap_for(report_period)
    if kind == "counter":
        replacements, _notes = replacements_from_serials(serials, readings)
        series = counter_intervals(
            plain,
            grid,
            max_gap=max_gap,
            multiplier=multiplier,
            modulus=modulus,
            replacements=replacements,
        )
    elif kind == "interval":
        series = report_intervals(
            plain, grid, report_period=report_period, max_gap=max_gap, multiplier=multiplier
        )
    else:
        raise ValueError(f"metric kind {kind!r} has no quantities (gauges are not integrated)")
    starts = [i.start for i in series.intervals]
    if any(r.received_at - r.ts > late_after for r in readings):
        late = late_flags(readings, starts, grid.interval, late_after)
    else:
        late = [False] * len(starts)
    rows = tuple(
        IntervalRow(i.start, i.quantity, i.quality.value, i.completeness, flag)
        for i, flag in zip(series.intervals, late, strict=True)
    )
    return rows, series


def window_grid(first_ts: datetime, last_ts: datetime, step: timedelta) -> IntervalGrid | None:
    """The grid of whole intervals from the one containing ``first_ts`` to the one containing
    ``last_ts`` (exclusive when ``last_ts`` is on a boundary); None if empty."""
    start = floor_to(first_ts, step)
    end = ceil_to(last_ts, step)
    if end <= start:
        return None
    return IntervalGrid(start, end, step)


def as_rows(intervals: Sequence[IntervalQuantity]) -> tuple[IntervalRow, ...]:
    return tuple(
        IntervalRow(i.start, i.quantity, i.quality.value, i.completeness, i.late) for i in intervals
    )

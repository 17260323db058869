"""Raw readings of one device metric → 15-min (accounting) or 1-min (live) quantities. Pure.

A thin layer over :mod:`carbonflow.domain.readings.intervals` that adds what the stored readings
carry
and the pure core leaves to the service:

- **meter replacement** from the serial numbers seen in telemetry (``meter_serial``):
  :func:`replacements_from_serials` (the rule below);
- **late** flags: an interval is *late* when a reading whose pairs overlap it arrived more than
  ``late_after`` after its own timestamp (``received_at − ts``). This depends only on stored
  data, so a recomputation gives the same flags as the first computation.

**Replacement rule.** Serial A is followed by serial B (sorted by first sighting). With ``a``
the metric's last reading of A and ``b`` the first of B, and ``expected`` what the meter counts
over the time between them at the rates of the pairs around them:

- if ``b ≤ FRESH_FACTOR × expected`` the new register started at 0 right after A's last
  reading: ``b`` is counted over the time between the two readings (a new meter reads ~0);
- otherwise the new register started elsewhere (a refurbished or pre-set meter): the time
  between the meters gets ``expected`` (half on each meter) and its intervals are flagged
  *estimated*; the new meter is counted from ``b − expected/2``;
- without rates around the swap: ``b ≤ RESET_FRACTION × a`` is taken as a fresh register,
  anything else leaves the time between the meters *missing*.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from carbonflow.domain.readings.counters import FRESH_FACTOR, RESET_FRACTION, step_delta
from carbonflow.domain.readings.intervals import (
    IntervalGrid,
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


def _rate(r0: StoredReading, r1: StoredReading, modulus: float | None) -> float | None:
    """Register increase per second between two readings of one meter, if it is a valid step."""
    seconds = (r1.ts - r0.ts).total_seconds()
    if seconds <= 0:
        return None
    try:
        return step_delta(r0.value, r1.value, modulus) / seconds
    except ValueError:
        return None


def replacements_from_serials(
    spans: Sequence[SerialSpan],
    readings: Sequence[StoredReading],
    modulus: float | None = None,
) -> tuple[tuple[MeterReplacement, ...], tuple[tuple[datetime, datetime], ...], tuple[str, ...]]:
    """Meter replacements inside ``readings`` (module doc): the replacements, the spans whose
    quantity is estimated, and notes for the service's log."""
    ordered = sorted(spans, key=lambda s: (s.first_ts, s.serial))
    times = [r.ts for r in readings]
    out: list[MeterReplacement] = []
    estimated: list[tuple[datetime, datetime]] = []
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
        rates = [
            rate
            for rate in (
                _rate(readings[i_old - 1], a, modulus) if i_old >= 1 else None,
                _rate(b, readings[i_new + 1], modulus) if i_new + 1 < len(readings) else None,
            )
            if rate is not None
        ]
        expected = math.fsum(rates) / len(rates) * (b.ts - a.ts).total_seconds() if rates else None
        fresh = (
            b.value <= FRESH_FACTOR * expected
            if expected is not None
            else b.value <= RESET_FRACTION * a.value
        )
        if fresh:
            out.append(MeterReplacement(a.ts + _JUST_AFTER, a.value, 0.0))
            notes.append(f"meter {old.serial} → {new.serial}: new register counted from 0")
        elif expected is not None:
            tail = expected / 2
            head = min(expected / 2, b.value)
            middle = a.ts + (b.ts - a.ts) / 2
            out.append(MeterReplacement(middle, a.value + tail, b.value - head))
            estimated.append((a.ts, b.ts))
            notes.append(
                f"meter {old.serial} → {new.serial}: new register started at about "
                f"{b.value - head:g}; the time between the meters is estimated from the rates "
                "around it"
            )
        else:
            out.append(MeterReplacement(b.ts, None, b.value))
            notes.append(
                f"meter {old.serial} → {new.serial}: new register started at {b.value:g}; "
                "time between the meters is missing"
            )
    return tuple(out), tuple(estimated), tuple(notes)


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
    estimated: tuple[tuple[datetime, datetime], ...] = ()
    if kind == "counter":
        replacements, estimated, _notes = replacements_from_serials(serials, readings, modulus)
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
    if estimated:
        rows = tuple(_downgrade(row, grid.interval, estimated) for row in rows)
    return rows, series


def _downgrade(
    row: IntervalRow, step: timedelta, spans: Sequence[tuple[datetime, datetime]]
) -> IntervalRow:
    """An interval overlapping a span whose quantity was estimated: estimated, and its
    completeness reduced by the overlap."""
    overlap = timedelta(0)
    for lo, hi in spans:
        a, b = max(lo, row.start), min(hi, row.start + step)
        if b > a:
            overlap += b - a
    if overlap == timedelta(0) or row.quality == "missing":
        return row
    completeness = max(0.0, row.completeness - overlap / step)
    return IntervalRow(row.start, row.quantity, "estimated", completeness, row.late)


def window_grid(first_ts: datetime, last_ts: datetime, step: timedelta) -> IntervalGrid | None:
    """The grid of whole intervals from the one containing ``first_ts`` to the one containing
    ``last_ts`` (exclusive when ``last_ts`` is on a boundary); None if empty."""
    start = floor_to(first_ts, step)
    end = ceil_to(last_ts, step)
    if end <= start:
        return None
    return IntervalGrid(start, end, step)

"""Raw readings of one device metric → quantities per fixed interval (ACCOUNTING.md §1). Pure.

Three kinds of metric (``device_metric.kind``):

- **counter** — a cumulative register (kWh, Nm³, GJ, t). :func:`counter_intervals` takes the
  difference of consecutive readings through the named rule of
  :mod:`carbonflow.domain.readings.counters` (normal step, rollover at the declared modulus, reset
  near zero; a *backwards* reading is noise and is skipped, so the quantity is counted from the
  last good reading) and spreads each difference linearly in time over the intervals the pair
  spans. A drop larger than a noise dip that is neither is judged by the next reading
  (:func:`counters.resolve_drop`): continued from the lower value it is a new base (the step's
  quantity: the new value if the meter could have counted it from 0, else what the neighbouring
  rates give, estimated); back at the old level it was an outlier. A wrap at the modulus far beyond
  the meter's rate, to a value a register restarted at 0 would read, is a reset near the top
  (:func:`counters.rollover_plausible`).
- **interval** — each report is the quantity since the previous report
  (:func:`report_intervals`), spread the same way over (previous report, this report].
- **gauge** — an instantaneous value (kW, %, W/m²). :func:`gauge_intervals` gives the time-weighted
  mean per interval for live views; a gauge is never integrated into ledgers when a counter
  exists for the same flow.

**Quality and completeness.** A pair of consecutive readings further apart than ``max_gap`` is a
gap: its quantity is still spread linearly over the gap (nothing is lost), but the time it covers
counts as *estimated*, not measured. Per interval:

- ``completeness`` = time covered by measured pairs ÷ interval length (0–1);
- ``quality`` = ``measured`` when completeness is 1, ``missing`` when no pair touches the interval
  at all (quantity 0: before the first reading, after the last, or between an old meter's last
  reading and a replacement whose final value is unknown), else ``estimated`` (partly covered,
  or covered by a gap's spread);
- ``late`` is left ``False`` for the calc service to set.

**Meter replacement** events split the series: the old meter counts up to its final value at the
replacement time (if known), the new meter from its initial value. Readings at or after the
replacement time belong to the new meter.

Pass the last reading before the grid's start and the first after its end, so the boundary
intervals receive their share. Timestamps must be timezone-aware and strictly increasing.
Arithmetic is O(readings + intervals) with integer microseconds for time, so coverage is exact.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum

from carbonflow.domain.readings.counters import (
    CounterStep,
    DropVerdict,
    classify_step,
    is_noise_dip,
    resolve_drop,
    restart_quantity,
    rollover_plausible,
    step_delta,
)
from carbonflow.domain.readings.quality import Quality

ACCOUNTING_INTERVAL = timedelta(minutes=15)  # the accounting grain of ledgers
LIVE_INTERVAL = timedelta(minutes=1)  # the grain of live views

# Default gap threshold: a pair of readings further apart than GAP_FACTOR × the device's expected
# reporting period is a gap (one lost report is tolerated as measured, two are not).
GAP_FACTOR = 2

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


class EventKind(StrEnum):
    RESET = "reset"  # register restarted near zero; the new value is counted
    ROLLOVER = "rollover"  # register wrapped at its modulus
    BACKWARDS = "backwards"  # dip or unconfirmed drop: reading skipped as noise
    REBASE = "rebase"  # larger drop the next reading continues from: a reset to an unknown base
    GAP = "gap"  # pair further apart than max_gap: quantity spread, flagged estimated
    METER_REPLACEMENT = "meter_replacement"
    NEGATIVE = "negative"  # an interval-kind report below zero: skipped


@dataclass(frozen=True, slots=True)
class Reading:
    """One raw reading: ``value`` in the metric's unit, before or after the multiplier."""

    ts: datetime
    value: float


@dataclass(frozen=True, slots=True)
class MeterReplacement:
    """A meter swap at ``ts``: the old register's last value (if read) and the new one's first."""

    ts: datetime
    old_final_value: float | None
    new_initial_value: float


@dataclass(frozen=True, slots=True)
class IntervalGrid:
    """Fixed intervals [start, end) of length ``interval``; start and end timezone-aware."""

    start: datetime
    end: datetime
    interval: timedelta = ACCOUNTING_INTERVAL

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("interval grid bounds must be timezone-aware")
        if self.interval <= timedelta(0):
            raise ValueError(f"interval must be positive, got {self.interval}")
        if self.end <= self.start:
            raise ValueError(f"grid end {self.end} is not after its start {self.start}")
        if self._length % self.interval:
            raise ValueError(
                f"grid {self.start}..{self.end} is not a whole number of {self.interval} intervals"
            )

    @property
    def _length(self) -> timedelta:
        # Absolute time: subtracting two datetimes of the same zone would give wall-clock time.
        return self.end.astimezone(UTC) - self.start.astimezone(UTC)

    @property
    def count(self) -> int:
        return self._length // self.interval

    def starts(self) -> list[datetime]:
        """Interval starts in the start's time zone (computed in UTC, so DST-safe)."""
        tz = self.start.tzinfo
        if isinstance(tz, timezone):  # fixed offset: wall-clock and absolute arithmetic agree
            return [self.start + k * self.interval for k in range(self.count + 1)]
        start_utc = self.start.astimezone(UTC)
        return [(start_utc + k * self.interval).astimezone(tz) for k in range(self.count + 1)]


@dataclass(frozen=True, slots=True)
class IntervalQuantity:
    """Quantity [metric unit × multiplier] attributed to [start, end)."""

    start: datetime
    end: datetime
    quantity: float
    quality: Quality
    completeness: float  # measured fraction of the interval, 0–1
    late: bool = False  # set by the calc service when readings arrived after a first computation


@dataclass(frozen=True, slots=True)
class GaugeInterval:
    """Time-weighted mean of a gauge over the covered part of [start, end); ``None`` if none."""

    start: datetime
    end: datetime
    mean: float | None
    quality: Quality
    completeness: float


@dataclass(frozen=True, slots=True)
class SeriesEvent:
    """Something the rules did to the series, for the service to log once per device."""

    ts: datetime
    kind: EventKind
    previous: float | None
    value: float | None
    detail: str


@dataclass(frozen=True, slots=True)
class IntervalSeries:
    intervals: tuple[IntervalQuantity, ...]
    events: tuple[SeriesEvent, ...]

    @property
    def total(self) -> float:
        """Sum of interval quantities (math.fsum)."""
        return math.fsum(i.quantity for i in self.intervals)

    @property
    def completeness(self) -> float:
        """Mean completeness over all intervals (0–1)."""
        if not self.intervals:
            return 0.0
        return math.fsum(i.completeness for i in self.intervals) / len(self.intervals)

    def count(self, kind: EventKind) -> int:
        return sum(1 for e in self.events if e.kind is kind)


def max_gap_for(report_period: timedelta) -> timedelta:
    """The default gap threshold for a device reporting every ``report_period``."""
    return GAP_FACTOR * report_period


def _us(ts: datetime) -> int:
    return (ts - _EPOCH) // _US


def _check_reading(previous_us: int | None, reading: Reading, t_us: int) -> None:
    if previous_us is not None and t_us <= previous_us:
        raise ValueError(f"readings must be strictly increasing in time; {reading.ts} is not")
    if not math.isfinite(reading.value):
        raise ValueError(f"reading at {reading.ts} is not a finite number: {reading.value}")


class _Accumulator:
    """Per-interval quantity and measured / estimated coverage [µs] on a grid."""

    def __init__(self, grid: IntervalGrid) -> None:
        self.grid = grid
        self.g0 = _us(grid.start)
        self.g1 = _us(grid.end)
        self.step = grid.interval // _US
        n = grid.count
        self.quantity = [0.0] * n
        self.measured = [0] * n
        self.estimated = [0] * n

    def add(self, t0: int, t1: int, quantity: float, estimated: bool) -> None:
        """Spread ``quantity`` linearly over [t0, t1) µs; t0 < t1."""
        g0, step = self.g0, self.step
        a = t0 if t0 > g0 else g0
        b = t1 if t1 < self.g1 else self.g1
        if a >= b:
            return
        span = t1 - t0
        coverage = self.estimated if estimated else self.measured
        first = (a - g0) // step
        last = (b - 1 - g0) // step
        if first == last:
            overlap = b - a
            self.quantity[first] += quantity if overlap == span else quantity * overlap / span
            coverage[first] += overlap
            return
        whole_span_inside = a == t0 and b == t1
        spread = 0.0
        for k in range(first, last + 1):
            lo = g0 + k * step
            hi = lo + step
            overlap = (b if b < hi else hi) - (a if a > lo else lo)
            if k == last and whole_span_inside:
                part = quantity - spread  # the remainder: the span's parts add up to quantity
            else:
                part = quantity * overlap / span
                spread += part
            self.quantity[k] += part
            coverage[k] += overlap

    def add_point(self, t: int, quantity: float) -> None:
        """A quantity at one instant (no duration): added to the interval containing ``t``."""
        if self.g0 <= t < self.g1:
            self.quantity[(t - self.g0) // self.step] += quantity

    def intervals(self) -> tuple[IntervalQuantity, ...]:
        starts = self.grid.starts()
        step = self.step
        out: list[IntervalQuantity] = []
        for k, quantity in enumerate(self.quantity):
            measured = self.measured[k]
            if measured + self.estimated[k] == 0:
                quality = Quality.MISSING
            elif measured >= step:
                quality = Quality.MEASURED
            else:
                quality = Quality.ESTIMATED
            out.append(
                IntervalQuantity(
                    start=starts[k],
                    end=starts[k + 1],
                    quantity=quantity,
                    quality=quality,
                    completeness=min(measured, step) / step,
                )
            )
        return tuple(out)


def counter_intervals(  # noqa: C901, PLR0915 — the counter rule's cases in one place; split behind its property test
    readings: Sequence[Reading],
    grid: IntervalGrid,
    *,
    max_gap: timedelta,
    multiplier: float = 1.0,
    modulus: float | None = None,
    replacements: Iterable[MeterReplacement] = (),
) -> IntervalSeries:
    """Interval quantities from a cumulative counter [register unit × multiplier].

    ``readings`` are raw register values (before the CT/PT ``multiplier``); ``modulus`` is the
    register's declared maximum in the same raw unit. Each valid step (counters.step_delta) times
    the multiplier is spread over the time between the two readings.
    """
    acc = _Accumulator(grid)
    events: list[SeriesEvent] = []
    max_gap_us = max_gap // _US
    swaps = sorted(replacements, key=lambda r: r.ts)
    swap_us = [_us(r.ts) for r in swaps]
    series = list(readings)
    next_swap = 0
    last_value: float | None = None
    last_us = 0
    last_rate: float | None = None  # register units per µs of the last counted pair
    previous_us: int | None = None

    def expected_over(
        t1: int, value: float, following: tuple[int, float] | None
    ) -> tuple[float | None, float | None, bool]:
        """What the meter counts from the last good reading to t1 at the neighbouring pairs'
        rates: (mean rate, faster rate) × time [register unit], None without a rate; and
        whether the pair after it gave a rate."""
        rates = [] if last_rate is None else [last_rate]
        ahead = False
        if following is not None:
            t2, v2 = following
            if t2 > t1 and classify_step(value, v2, modulus) is CounterStep.NORMAL:
                rates.append((v2 - value) / (t2 - t1))
                ahead = True
        if not rates:
            return None, None, ahead
        span = t1 - last_us
        return math.fsum(rates) / len(rates) * span, max(rates) * span, ahead

    def count_step(t1: int, value: float, ts: datetime, k: int | None) -> bool:
        """Count the step from the last good reading to (t1, value) — ``series[k]``, or a swap's
        final value (``k`` None) — False if it was noise."""
        nonlocal last_rate
        assert last_value is not None
        step = classify_step(last_value, value, modulus)
        estimated = False
        # Only drops look ahead (the common step does not pay for it).
        following = (
            None if k is None or step is CounterStep.NORMAL or step is CounterStep.RESET
            else following_of(k)
        )  # fmt: skip
        if step is CounterStep.BACKWARDS:
            verdict = (
                DropVerdict.NOISE
                if is_noise_dip(last_value, value, modulus)
                else resolve_drop(
                    last_value, value, None if following is None else following[1], modulus
                )
            )
            if verdict is not DropVerdict.REBASE:
                detail = {
                    DropVerdict.NOISE: "reading skipped as noise",
                    DropVerdict.UNDECIDED: "drop not yet confirmed by a later reading: skipped",
                }[verdict]
                events.append(SeriesEvent(ts, EventKind.BACKWARDS, last_value, value, detail))
                return False
            expected, _fastest, _ahead = expected_over(t1, value, following)
            raw, estimated = restart_quantity(value, expected)
            events.append(
                SeriesEvent(
                    ts, EventKind.REBASE, last_value, value,
                    "drop confirmed by the next reading: counted from the new base"
                    + (", the step's quantity estimated" if estimated else ", restarted at 0"),
                )
            )  # fmt: skip
        elif step is CounterStep.ROLLOVER:
            assert modulus is not None
            expected, fastest, ahead = expected_over(t1, value, following)
            # A reset near the top only when the readings after it are known and the new value
            # is what a register restarted at 0 counts: a fast wrap stays a wrap.
            if (
                not ahead
                or rollover_plausible(last_value, value, modulus, fastest)
                or restart_quantity(value, expected)[1]
            ):
                raw = step_delta(last_value, value, modulus)
                events.append(
                    SeriesEvent(ts, EventKind.ROLLOVER, last_value, value, f"wrapped at {modulus}")
                )
            else:
                raw = value
                events.append(
                    SeriesEvent(
                        ts, EventKind.RESET, last_value, value,
                        f"a wrap at {modulus} would add {modulus - last_value + value:g}, far "
                        "more than the meter's rate allows: read as a reset near the top",
                    )
                )  # fmt: skip
        else:
            raw = step_delta(last_value, value, modulus)
            if step is CounterStep.RESET:
                events.append(SeriesEvent(ts, EventKind.RESET, last_value, value, "counted from 0"))
        delta = raw * multiplier
        if t1 == last_us:
            acc.add_point(t1, delta)
            return True
        last_rate = raw / (t1 - last_us)
        gap = t1 - last_us > max_gap_us
        if gap:
            events.append(
                SeriesEvent(
                    ts,
                    EventKind.GAP,
                    last_value,
                    value,
                    f"{timedelta(microseconds=t1 - last_us)} since the last good reading: "
                    "quantity spread, flagged estimated",
                )
            )
        acc.add(last_us, t1, delta, gap or estimated)
        return True

    def replace_meter(index: int) -> None:
        nonlocal last_value, last_us, last_rate
        swap, t_swap = swaps[index], swap_us[index]
        if last_value is not None and swap.old_final_value is not None:
            count_step(t_swap, swap.old_final_value, swap.ts, None)
        detail = (
            "old meter's final value unknown: time since its last reading is missing"
            if swap.old_final_value is None
            else "series split"
        )
        events.append(
            SeriesEvent(
                swap.ts,
                EventKind.METER_REPLACEMENT,
                swap.old_final_value,
                swap.new_initial_value,
                detail,
            )
        )
        last_value, last_us, last_rate = swap.new_initial_value, t_swap, None

    def following_of(k: int) -> tuple[int, float] | None:
        """The reading after ``series[k]`` on the same meter (no swap before it)."""
        if k + 1 >= len(series):
            return None
        t_next = _us(series[k + 1].ts)
        if next_swap < len(swaps) and swap_us[next_swap] <= t_next:
            return None
        return t_next, series[k + 1].value

    for k, reading in enumerate(series):
        t = _us(reading.ts)
        _check_reading(previous_us, reading, t)
        previous_us = t
        while next_swap < len(swaps) and swap_us[next_swap] <= t:
            replace_meter(next_swap)
            next_swap += 1
        if last_value is None:
            last_value, last_us = reading.value, t
            continue
        if count_step(t, reading.value, reading.ts, k):
            last_value, last_us = reading.value, t
    while next_swap < len(swaps):
        replace_meter(next_swap)
        next_swap += 1
    return IntervalSeries(acc.intervals(), tuple(events))


def report_intervals(
    readings: Sequence[Reading],
    grid: IntervalGrid,
    *,
    report_period: timedelta,
    max_gap: timedelta | None = None,
    multiplier: float = 1.0,
) -> IntervalSeries:
    """Interval quantities from reports of "quantity since the previous report".

    Each report's value × ``multiplier`` is spread over (previous report, this report]; the first
    report covers the ``report_period`` before it. A report further than ``max_gap`` (default
    GAP_FACTOR × report_period) after the previous one is spread over the whole gap and flagged
    estimated. A negative report is skipped (event ``negative``) and its period stays uncovered.
    """
    acc = _Accumulator(grid)
    events: list[SeriesEvent] = []
    max_gap_us = (max_gap if max_gap is not None else max_gap_for(report_period)) // _US
    period_us = report_period // _US
    previous_us: int | None = None
    for reading in readings:
        t = _us(reading.ts)
        _check_reading(previous_us, reading, t)
        t0 = previous_us if previous_us is not None else t - period_us
        previous_us = t
        if reading.value < 0:
            events.append(
                SeriesEvent(reading.ts, EventKind.NEGATIVE, None, reading.value, "report skipped")
            )
            continue
        gap = t - t0 > max_gap_us
        if gap:
            events.append(
                SeriesEvent(
                    reading.ts,
                    EventKind.GAP,
                    None,
                    reading.value,
                    f"{timedelta(microseconds=t - t0)} since the previous report: "
                    "quantity spread, flagged estimated",
                )
            )
        acc.add(t0, t, reading.value * multiplier, gap)
    return IntervalSeries(acc.intervals(), tuple(events))


def gauge_intervals(
    readings: Sequence[Reading],
    grid: IntervalGrid,
    *,
    max_gap: timedelta,
    multiplier: float = 1.0,
) -> tuple[GaugeInterval, ...]:
    """Time-weighted mean of a gauge per interval [metric unit × multiplier], for live views.

    Between two readings at most ``max_gap`` apart the value is interpolated linearly; a longer
    pair is not interpolated (its time is uncovered). Completeness = covered time ÷ interval.
    """
    g0 = _us(grid.start)
    g1 = _us(grid.end)
    step = grid.interval // _US
    n = grid.count
    integral = [0.0] * n  # value × µs
    covered = [0] * n
    max_gap_us = max_gap // _US
    previous: tuple[int, float] | None = None
    for reading in readings:
        t1 = _us(reading.ts)
        _check_reading(previous[0] if previous else None, reading, t1)
        v1 = reading.value * multiplier
        if previous is not None:
            t0, v0 = previous
            a, b = max(t0, g0), min(t1, g1)
            if t1 - t0 <= max_gap_us and a < b:
                slope = (v1 - v0) / (t1 - t0)
                for k in range((a - g0) // step, (b - 1 - g0) // step + 1):
                    lo = max(a, g0 + k * step)
                    hi = min(b, g0 + (k + 1) * step)
                    v_lo = v0 + slope * (lo - t0)
                    v_hi = v0 + slope * (hi - t0)
                    integral[k] += (v_lo + v_hi) / 2 * (hi - lo)
                    covered[k] += hi - lo
        previous = (t1, v1)
    starts = grid.starts()
    out: list[GaugeInterval] = []
    for k in range(n):
        cov = covered[k]
        if cov == 0:
            quality = Quality.MISSING
        elif cov >= step:
            quality = Quality.MEASURED
        else:
            quality = Quality.ESTIMATED
        out.append(
            GaugeInterval(
                start=starts[k],
                end=starts[k + 1],
                mean=integral[k] / cov if cov else None,
                quality=quality,
                completeness=min(cov, step) / step,
            )
        )
    return tuple(out)


def rollup(intervals: Sequence[IntervalQuantity], factor: int) -> tuple[IntervalQuantity, ...]:
    """Consecutive groups of ``factor`` intervals merged (e.g. 4 × 15 min → 1 h).

    Quantity: sum (fsum). Completeness: mean. Quality: :meth:`Quality.combine`. Late: if any is.
    """
    if factor < 1 or len(intervals) % factor:
        raise ValueError(f"cannot roll {len(intervals)} intervals up by {factor}")
    out: list[IntervalQuantity] = []
    for i in range(0, len(intervals), factor):
        group = intervals[i : i + factor]
        out.append(
            IntervalQuantity(
                start=group[0].start,
                end=group[-1].end,
                quantity=math.fsum(g.quantity for g in group),
                quality=Quality.combine(g.quality for g in group),
                completeness=math.fsum(g.completeness for g in group) / factor,
                late=any(g.late for g in group),
            )
        )
    return tuple(out)

"""Meters: true quantities → the readings a device would publish, and counter faults — pure.

A cumulative register stores the quantity **before** the device's CT/PT multiplier
(``register += true quantity ÷ multiplier``) and wraps at the ``counter_modulus``. Gauges whose
dimension the multiplier scales (power, flow) are published divided by it too; concentrations,
temperatures and irradiance are published as they are (``multiplier_applies``). Interval metrics
report the quantity of the step, divided by the multiplier.

Registers are published with enough decimals that one digit of the last place is worth at most
0.01 of the metric's unit after the multiplier (``2 + ⌈log10 multiplier⌉`` decimals).

**Counter faults** (the registers change, the truth does not):

- *reset*: right after a reading is taken the registers clear to 0 — so the next reading counts
  the whole step and nothing is lost to the platform;
- *replacement*: right after a reading a new meter takes over, with a new serial and small
  starting registers (≤ 1 % of the old values, as a new meter reads near zero);
- *rollover*: the registers start close to the modulus and wrap during the run.

A reset or a replacement is only injected while every register of the device holds at least
``RESET_SAFETY`` × the largest quantity it could count during the longest delivery disruption
the run can produce (gaps, late and reordered messages): then the first reading the ingest
counter guard compares with a pre-reset value is always below ``RESET_FRACTION`` of it, so the
guard classifies the drop as a reset (``carbonflow.domain.readings.counters``), never as running
backwards; and never while a register is above ``ROLLOVER_HIGH_FRACTION`` of its modulus,
where the counter rule would read the drop as a rollover and count phantom energy. Natural and
injected rollovers are recorded as events too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from carbonflow.domain.readings.counters import ROLLOVER_HIGH_FRACTION
from carbonflow.domain.site.model import Device, MetricKind, multiplier_applies
from simulators.faultspec import FaultSpec
from simulators.plant import (
    DeviceTruth,
    mean_hourly_quantity,
    rated_hourly_quantity,
)
from simulators.randomness import FloatArray, per_step_probability, stable_fraction

# A register must hold this many times the largest quantity of a disruption before it resets.
RESET_SAFETY = 20.0
# Initial registers: this many hours of the device's mean quantity (uniform), i.e. months to
# years of service; capped at INITIAL_MAX_MODULUS_FRACTION of the modulus.
INITIAL_HOURS = (1000.0, 20000.0)
INITIAL_MAX_MODULUS_FRACTION = 0.85
# A replacement meter starts at up to this fraction of the old register.
REPLACEMENT_START_FRACTION = 0.01
# With a rollover fault the registers start between 0.1 h and ROLLOVER_HORIZON_HOURS of mean
# quantity below the modulus (and never below 95 % of it): they wrap early in the run, at a
# point that does not depend on the run's length.
ROLLOVER_HORIZON_HOURS = 24.0
ROLLOVER_MIN_MODULUS_FRACTION = 0.95
COUNTER_DECIMALS = (2, 9)
GAUGE_DECIMALS = (3, 9)


@dataclass(frozen=True, slots=True)
class CounterEvent:
    """A change of the registers that is not a quantity: for the oracle and for tests."""

    kind: str  # reset | replacement | rollover
    device: str
    ts_s: float  # reading time: reset/replacement happened right after it; rollover before it
    before: dict[str, float]  # registers as published at ts_s (reset/replacement), or before
    after: dict[str, float]  # starting registers (reset 0, replacement), or the wrapped values
    serial_before: str | None = None
    serial_after: str | None = None

    def record(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "device": self.device,
            "before": self.before,
            "after": self.after,
        }
        if self.serial_after is not None:
            out["serial_before"] = self.serial_before
            out["serial_after"] = self.serial_after
        return out


@dataclass
class ReadingBlock:
    """Readings of one device for a chunk: reading ``j`` is taken at the end of step ``j``."""

    values: list[dict[str, float]]
    serials: list[str] | None  # per reading, when the meter sends its serial
    events: list[CounterEvent] = field(default_factory=list)


def _decimals(multiplier: float, bounds: tuple[int, int]) -> int:
    extra = math.ceil(math.log10(multiplier)) if multiplier > 1 else 0
    return max(bounds[0], min(bounds[1], bounds[0] + extra))


def synthetic_serial(site_id: str, device_id: str, generation: int = 0) -> str:
    """A stable 13-character serial for a device whose site file gives none."""
    number = int(stable_fraction(site_id, device_id, str(generation)) * 10**10)
    return f"SIM{number:010d}"


class Meter:
    """One device's meter: registers, serial, counter faults; readings chunk by chunk."""

    def __init__(
        self,
        site_id: str,
        device_id: str,
        device: Device,
        rng: np.random.Generator,
        *,
        step_s: float,
        faults: FaultSpec,
        disruption_hours: float,
        send_serial: bool,
    ) -> None:
        self.site_id = site_id
        self.device_id = device_id
        self.device = device
        self._rng = rng
        self._kind_rng = rng.spawn(1)[0]  # what happens at an event: its own stream
        self.multiplier = device.multiplier
        self.modulus = device.counter_modulus
        self.counters = [m for m, s in device.metrics.items() if s.kind is MetricKind.COUNTER]
        self.intervals = [m for m, s in device.metrics.items() if s.kind is MetricKind.INTERVAL]
        self.gauges = [m for m, s in device.metrics.items() if s.kind is MetricKind.GAUGE]
        self._gauge_scale = {
            m: 1.0 / self.multiplier if multiplier_applies(m) else 1.0 for m in self.gauges
        }
        self._counter_decimals = _decimals(self.multiplier, COUNTER_DECIMALS)
        self._gauge_decimals = {
            m: _decimals(self.multiplier if multiplier_applies(m) else 1.0, GAUGE_DECIMALS)
            for m in self.gauges
        }
        self.serial = device.serial or synthetic_serial(site_id, device_id)
        self.send_serial = send_serial
        self._generation = 0
        self._p_reset = per_step_probability(-math.log1p(-min(faults.reset, 0.999)), step_s)
        self._p_replace = per_step_probability(-math.log1p(-min(faults.replace, 0.999)), step_s)
        self._threshold = {
            m: RESET_SAFETY * disruption_hours * rated_hourly_quantity(device, m) / self.multiplier
            for m in self.counters
        }
        # Registers, raw (before the multiplier), kept below the modulus.
        self.registers: dict[str, float] = {}
        rollover = (
            self.modulus is not None
            and self.counters
            and faults.rollover > 0
            and rng.random() < faults.rollover
        )
        for m in self.counters:
            hourly = mean_hourly_quantity(device, m) / self.multiplier
            start = hourly * rng.uniform(*INITIAL_HOURS)
            if self.modulus is not None:
                start = min(start, INITIAL_MAX_MODULUS_FRACTION * self.modulus)
                if rollover:
                    ahead = hourly * rng.uniform(0.1, ROLLOVER_HORIZON_HOURS)
                    start = self.modulus - min(
                        ahead, (1.0 - ROLLOVER_MIN_MODULUS_FRACTION) * self.modulus
                    )
            self.registers[m] = start
        self.rollover_planned = bool(rollover)

    def resume(self, registers: Mapping[str, float]) -> None:
        """Go on from these registers (raw, before the multiplier) instead of the initial ones."""
        for m, value in registers.items():
            if m in self.registers:
                self.registers[m] = value % self.modulus if self.modulus is not None else value

    # --- publishing helpers ------------------------------------------------------------------

    def _published(self, raw: FloatArray) -> FloatArray:
        """Registers as displayed: wrapped at the modulus, rounded."""
        wrapped = np.mod(raw, self.modulus) if self.modulus is not None else raw
        shown = np.round(wrapped, self._counter_decimals)
        if self.modulus is not None:
            shown = np.where(shown >= self.modulus, 0.0, shown)
        return shown

    def current(self) -> dict[str, float]:
        """The registers as the next reading would show them."""
        return {m: float(self._published(np.array([self.registers[m]]))[0]) for m in self.counters}

    def first_reading(self, truth: DeviceTruth) -> dict[str, float]:
        """Reading 0, at the start: the initial registers and the first step's gauges."""
        values = self.current()
        for m in self.gauges:
            g = truth.gauges.get(m)
            if g is not None and len(g):
                values[m] = round(float(g[0]) * self._gauge_scale[m], self._gauge_decimals[m])
        return values

    # --- one chunk ---------------------------------------------------------------------------

    def block(self, truth: DeviceTruth, reading_ts_s: FloatArray) -> ReadingBlock:
        """Readings at the end of each step of the chunk (``reading_ts_s``)."""
        n = len(reading_ts_s)
        raw: dict[str, FloatArray] = {}
        for m in self.counters:
            q = truth.quantities.get(m)
            inc = (q if q is not None else np.zeros(n)) / self.multiplier
            raw[m] = self.registers[m] + np.cumsum(inc)
        final = {m: float(raw[m][-1]) for m in self.counters}
        serial_at_start = self.serial
        events, serial_changes = self._counter_faults(raw, final, reading_ts_s)
        columns: list[tuple[str, list[float]]] = []
        for m in self.counters:
            shown = self._published(raw[m])
            columns.append((m, shown.tolist()))
            if self.modulus is not None:
                events.extend(self._rollovers(m, raw[m], shown, reading_ts_s))
                self.registers[m] = final[m] % self.modulus
            else:
                self.registers[m] = final[m]
        for m in self.intervals:
            q = truth.quantities.get(m)
            quantity = q if q is not None else np.zeros(n)
            shown_q = np.round(quantity / self.multiplier, self._counter_decimals)
            columns.append((m, shown_q.tolist()))
        for m in self.gauges:
            g = truth.gauges.get(m)
            if g is not None:
                shown_g = np.round(g * self._gauge_scale[m], self._gauge_decimals[m])
                columns.append((m, shown_g.tolist()))
        names = [c[0] for c in columns]
        values = [
            dict(zip(names, row, strict=True)) for row in zip(*(c[1] for c in columns), strict=True)
        ]
        serials: list[str] | None = None
        if self.send_serial and self.counters:
            serials = [serial_at_start] * n
            for j, serial in serial_changes:
                serials[j:] = [serial] * (n - j)
        events.sort(key=lambda e: e.ts_s)
        return ReadingBlock(values, serials, events)

    def _counter_faults(
        self, raw: dict[str, FloatArray], final: dict[str, float], reading_ts_s: FloatArray
    ) -> tuple[list[CounterEvent], list[tuple[int, str]]]:
        """Resets and replacements right after readings; ``raw`` and ``final`` are updated."""
        n = len(reading_ts_s)
        events: list[CounterEvent] = []
        changes: list[tuple[int, str]] = []
        p_any = self._p_reset + self._p_replace
        if not self.counters or p_any <= 0:
            return events, changes
        draws = self._rng.random(n)  # one draw per reading: chunking changes nothing
        for j in np.flatnonzero(draws < p_any).tolist():
            before = {m: float(self._published(raw[m][j : j + 1])[0]) for m in self.counters}
            if any(before[m] < self._threshold[m] for m in self.counters):
                continue  # too close to zero: the guard could not tell a reset from noise
            if self.modulus is not None and any(
                before[m] >= ROLLOVER_HIGH_FRACTION * self.modulus for m in self.counters
            ):
                continue  # a drop from there to ~0 reads as a rollover: the truth would be lost
            replacement = bool(self._kind_rng.random() < self._p_replace / p_any)
            after: dict[str, float] = {}
            for m in self.counters:
                fraction = (
                    self._kind_rng.uniform(0.0, REPLACEMENT_START_FRACTION) if replacement else 0.0
                )
                after[m] = round(float(fraction) * before[m], self._counter_decimals)
                shift = after[m] - float(raw[m][j])
                raw[m][j + 1 :] += shift  # reading j still shows the old register
                final[m] += shift
            ts = float(reading_ts_s[j])
            if replacement:
                self._generation += 1
                old, self.serial = (
                    self.serial,
                    synthetic_serial(self.site_id, self.device_id, self._generation),
                )
                if j + 1 < n:
                    changes.append((j + 1, self.serial))
                events.append(
                    CounterEvent("replacement", self.device_id, ts, before, after, old, self.serial)
                )
            else:
                events.append(CounterEvent("reset", self.device_id, ts, before, after))
        return events, changes

    def _rollovers(
        self, metric: str, raw: FloatArray, shown: FloatArray, reading_ts_s: FloatArray
    ) -> list[CounterEvent]:
        assert self.modulus is not None
        turns = np.floor(np.concatenate([[self.registers[metric]], raw]) / self.modulus)
        out: list[CounterEvent] = []
        previous = float(self._published(np.array([self.registers[metric]]))[0])
        for j in np.flatnonzero(np.diff(turns) > 0).tolist():
            before = previous if j == 0 else float(shown[j - 1])
            out.append(
                CounterEvent(
                    "rollover",
                    self.device_id,
                    float(reading_ts_s[j]),
                    {metric: before},
                    {metric: float(shown[j])},
                )
            )
        return out

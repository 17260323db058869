"""Meters: registers before the multiplier, rollover at the modulus, resets and replacements —
and the truth recovered from the faulted readings by the platform's own interval rule."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from carbonflow.domain.readings.counters import CounterStep, classify_step
from carbonflow.domain.readings.intervals import (
    EventKind,
    IntervalGrid,
    MeterReplacement,
    Reading,
    counter_intervals,
)
from carbonflow.sites.loader import EXAMPLES, load_site_file
from simulators.assumptions import default_assumptions
from simulators.clock import make_calendar
from simulators.faultspec import FaultSpec
from simulators.meters import RESET_SAFETY, CounterEvent, Meter
from simulators.plant import SitePlant
from simulators.randomness import stream

TZ = ZoneInfo("Asia/Shanghai")
A = default_assumptions()
STEP_S = 900.0
DAYS = 20
START = datetime(2026, 11, 1, tzinfo=TZ)
FAULTS = FaultSpec(reset=0.02, replace=0.01, rollover=0.5)  # per device-hour; half start high
ROLLOVERS = FaultSpec(rollover=1.0)  # every register with a modulus starts near it


@cache
def run(device_id: str, faults: FaultSpec = FAULTS):
    """(meter, truth quantities, readings [(ts_s, values)], events) for 20 days of one device."""
    doc = load_site_file(EXAMPLES / "shanxi-mine.yaml")
    if device_id not in {d.id for d in doc.devices}:
        doc = load_site_file(EXAMPLES / "inner-mongolia-park.yaml")
    device = next(d for d in doc.devices if d.id == device_id)
    plant = SitePlant(doc, seed=3, step_s=STEP_S)
    meter = Meter(
        doc.site.id,
        device_id,
        device,
        stream(3, device_id, "meter"),
        step_s=STEP_S,
        faults=faults,
        disruption_hours=1.0,
        send_serial=True,
    )
    start = START.timestamp()
    truth: dict[str, list[float]] = {}
    readings: list[tuple[float, dict[str, float]]] = []
    events: list[CounterEvent] = []
    for day in range(DAYS):
        cal = make_calendar(start + day * 86400, 96, STEP_S, TZ, A.calendar)
        t = plant.advance(cal)[device_id]
        if day == 0:
            readings.append((start, meter.first_reading(t)))
        block = meter.block(t, cal.start_s + STEP_S)
        readings.extend(zip((cal.start_s + STEP_S).tolist(), block.values, strict=True))
        events.extend(block.events)
        for m, q in t.quantities.items():
            truth.setdefault(m, []).extend(q.tolist())
    return meter, truth, readings, events


def test_registers_count_the_truth_divided_by_the_multiplier() -> None:
    meter, truth, readings, _events = run("grid-line-1", FaultSpec())
    assert meter.multiplier == 132_000
    registers = np.array([r[1]["energy_import_kwh"] for r in readings])
    # 20 days of import at ~5 MW is ~2.4 GWh / 132,000 ≈ 18 register units: no wrap here
    assert np.all(np.diff(registers) >= 0)
    counted = (registers[-1] - registers[0]) * meter.multiplier
    assert counted == pytest.approx(sum(truth["energy_import_kwh"]), abs=1.0)  # 8 decimals
    power = np.array([r[1]["power_kw"] for r in readings[1:]])
    assert np.abs(power).max() < 60_000 / 132_000  # the gauge, before the multiplier too


@pytest.mark.parametrize(
    ("device_id", "faults"),
    [
        ("grid-line-1", FAULTS),
        ("drainage-high", FAULTS),
        ("raw-coal-scale", FAULTS),
        ("pv-roof-office", FAULTS),
        ("bess-1", FAULTS),
        ("grid-line-1", ROLLOVERS),
        ("drainage-high", ROLLOVERS),
        ("raw-coal-scale", ROLLOVERS),
    ],
)
def test_faulted_counters_still_give_the_truth_per_interval(
    device_id: str, faults: FaultSpec
) -> None:
    """Resets, replacements and rollovers change the readings; the platform's own rule
    (carbonflow.domain.readings.intervals) recovers the true 15-minute quantities from them."""
    meter, truth, readings, events = run(device_id, faults)
    kinds = {e.kind for e in events}
    if faults is ROLLOVERS:
        assert kinds == {"rollover"}
    else:
        assert kinds  # (no reset while a register sits above 90 % of its modulus)
    grid = IntervalGrid(START, START + timedelta(days=DAYS))
    for metric in meter.counters:
        replacements = [
            MeterReplacement(
                datetime.fromtimestamp(e.ts_s + 1, tz=UTC), e.before[metric], e.after[metric]
            )
            for e in events
            if e.kind == "replacement"
        ]
        series = counter_intervals(
            [Reading(datetime.fromtimestamp(ts, tz=UTC), v[metric]) for ts, v in readings],
            grid,
            max_gap=timedelta(seconds=2 * STEP_S),
            multiplier=meter.multiplier,
            modulus=meter.modulus,
            replacements=replacements,
        )
        got = np.array([i.quantity for i in series.intervals])
        want = np.array(truth[metric])
        # each reading is rounded to 0.005 of the unit after the multiplier: ≤ 0.01 per interval
        assert np.allclose(got, want, atol=0.011, rtol=1e-9), metric
        assert series.count(EventKind.BACKWARDS) == 0


def test_counters_only_drop_where_a_fault_was_injected() -> None:
    for device_id in ("grid-line-1", "drainage-high", "raw-coal-scale", "pv-roof-office"):
        meter, _truth, readings, events = run(device_id)
        drops = {
            ts
            for (_t0, before), (ts, after) in itertools.pairwise(readings)
            for m in meter.counters
            if after[m] < before[m]
        }
        injected = {e.ts_s for e in events if e.kind == "rollover"}
        # a reset or replacement right after reading j shows as a drop at reading j + 1
        injected |= {e.ts_s + STEP_S for e in events if e.kind in ("reset", "replacement")}
        assert drops <= injected, device_id
        assert drops, device_id
    all_kinds = {
        e.kind
        for device_id in ("grid-line-1", "drainage-high", "raw-coal-scale", "pv-roof-office")
        for e in run(device_id)[3]
    }
    assert all_kinds == {"reset", "replacement", "rollover"}


def test_resets_only_happen_on_registers_large_enough_for_the_guard() -> None:
    meter, _truth, readings, events = run("pv-roof-office")
    values = dict(readings)
    for e in (e for e in events if e.kind in ("reset", "replacement")):
        for m, before in e.before.items():
            assert before >= RESET_SAFETY * 1.0 * 1000  # 20 × 1 h × 1,000 kW rated
            following = values[e.ts_s + STEP_S][m]
            # the next reading, compared with the last before the reset: a reset by the rule
            assert classify_step(before, following, meter.modulus) is CounterStep.RESET
        if e.kind == "replacement":
            assert e.serial_after != e.serial_before


def test_interval_metrics_report_each_step_and_gauges_are_not_integrated() -> None:
    meter, truth, readings, _events = run("weighbridge", FaultSpec())
    assert meter.intervals == ["handled_t"] and not meter.counters
    reported = [v["handled_t"] for _ts, v in readings[1:]]
    assert reported == pytest.approx(truth["handled_t"], abs=1e-9)  # 0.02 t trucks: exact
    assert "handled_t" not in readings[0][1]  # no report before the first step


def test_a_resumed_meter_goes_on_from_the_given_registers() -> None:
    """A restarted demo hands the stored registers over; the first reading shows them."""
    doc = load_site_file(EXAMPLES / "shanxi-mine.yaml")
    device = next(d for d in doc.devices if d.counter_modulus is None and d.metrics)
    meter = Meter(
        doc.site.id,
        device.id,
        device,
        stream(3, device.id, "meter"),
        step_s=STEP_S,
        faults=FaultSpec(),
        disruption_hours=1.0,
        send_serial=True,
    )
    assert meter.counters, "the example device has counters"
    counter = meter.counters[0]
    meter.resume({counter: 12345.5, "not-a-metric": 1.0})
    assert meter.current()[counter] == 12345.5
    assert "not-a-metric" not in meter.registers

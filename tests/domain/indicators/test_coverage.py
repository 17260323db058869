"""Coverage-aware indicators: the insufficient_data rule, annualisation by days with data, one
basis for a reduction and its baseline, missing inputs, and early warnings with hysteresis
(carbonflow/domain/indicators/coverage.py, kpis.py). Numbers worked by hand in the comments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache

import pytest

from carbonflow.domain.factors import default_targets
from carbonflow.domain.factors.library import load_library, package_data_files
from carbonflow.domain.indicators.coverage import (
    MIN_COVERAGE,
    MIN_DAYS_YEAR_IN_PROGRESS,
    Coverage,
    annualise,
    coverage_share,
    inconclusive_reason,
)
from carbonflow.domain.indicators.formulas import Status
from carbonflow.domain.indicators.kpis import (
    AlertState,
    Outcome,
    PeriodInputs,
    Reading,
    alert_step,
    indicator_events,
    site_indicators,
)
from carbonflow.domain.indicators.period import DataPresence, accounting_keys, period_coverage
from carbonflow.domain.inventory.site_factors import site_factors
from carbonflow.domain.site.plan import SitePlan, flow_metric, plan_from_document
from carbonflow.sites.loader import load_site_file
from tests.support.lines import line

PARK = "carbonflow/sites/examples/inner-mongolia-park.yaml"
MINE = "carbonflow/sites/examples/shanxi-mine.yaml"
SHANGHAI = timedelta(hours=8)
T0 = datetime(2025, 12, 31, 16, tzinfo=UTC)  # 2026-01-01 00:00 in Shanghai


@cache
def park() -> SitePlan:
    return plan_from_document(load_site_file(PARK))


@cache
def mine() -> SitePlan:
    return plan_from_document(load_site_file(MINE))


def cov(share: float, days: int, *, grain: str = "year", in_progress: bool = True) -> Coverage:
    return Coverage(
        label="2026", grain=grain, local_start=T0, local_end=T0 + timedelta(days=365),
        in_progress=in_progress, share=share, days_with_data=days, measured_share=1.0,
        estimated_share=0.0, gap_filled_share=0.0,
    )  # fmt: skip


# --- the rule ------------------------------------------------------------------------------------


def test_thresholds_are_80_percent_and_30_days() -> None:
    assert (MIN_COVERAGE, MIN_DAYS_YEAR_IN_PROGRESS) == (0.80, 30)
    assert inconclusive_reason(cov(0.79, 300)) is not None
    assert inconclusive_reason(cov(0.80, 30)) is None
    reason = inconclusive_reason(cov(0.95, 29))
    assert reason is not None and "29 days" in reason.en and "29 天" in reason.zh
    # A month needs no minimum of days, only coverage; a finished year neither.
    assert inconclusive_reason(cov(0.9, 3, grain="month")) is None
    assert inconclusive_reason(cov(0.9, 29, in_progress=False)) is None
    low = inconclusive_reason(cov(0.003, 1))
    assert low is not None and "0.3%" in low.en and "覆盖率" in low.zh


def test_annualisation_by_days_with_data_not_calendar_time() -> None:
    # 12 t over 30 days with data in a 365-day year → 12 × 365 / 30 = 146 t/yr.
    assert annualise(12.0, 30, 365) == pytest.approx(146.0)
    assert annualise(12.0, 0, 365) is None
    assert annualise(12.0, 400, 365) == pytest.approx(12.0)  # never scaled down below the data


def test_coverage_counts_a_meter_without_data_as_zero() -> None:
    # Three meters: 100 %, 50 %, none → (1 + 0.5 + 0) / 3 = 0.5.
    assert coverage_share([1.0, 0.5], 3) == pytest.approx(0.5)
    assert coverage_share([], 0) == 0.0


class _Total:
    def __init__(self, completeness: float) -> None:
        self.quantity, self.quality, self.completeness = 1.0, "measured", completeness


def test_period_coverage_of_one_day_of_a_year() -> None:
    plan = park()
    keys = accounting_keys(plan)
    # Every accounting meter complete over the elapsed part [1 Jan, data end) → share 1.0;
    # 96 intervals of which 72 measured, 24 estimated → 0.75 / 0.25.
    devices = {k: _Total(1.0) for k in keys}
    c = period_coverage(
        plan, "year", (T0, T0 + timedelta(days=365)), T0 + timedelta(days=1), devices,
        DataPresence(1, {"measured": 72, "estimated": 24}),
    )  # fmt: skip
    assert (c.label, c.in_progress, c.days_with_data) == ("2026", True, 1)
    assert c.share == pytest.approx(1.0)
    assert (c.measured_share, c.estimated_share, c.gap_filled_share) == (0.75, 0.25, 0.0)
    assert c.local_start.utcoffset() == SHANGHAI
    # One day of data in a year in progress: fewer than 30 days → insufficient.
    assert inconclusive_reason(c) is not None


# --- indicators --------------------------------------------------------------------------------


def _park_inputs(coverage: Coverage | None) -> PeriodInputs:
    # 73 days of data: location-based CO2 160 t (grid 100 t + fuel 60 t), market-based
    # 60 t (green power evidenced: grid at 0), energy 100 tce of which 40 zero-carbon.
    carbon = [
        line(basis="location", gas="CO2", gas_t=100.0, tco2e=100.0, energy_tce=60.0),
        line(basis="market", gas="CO2", gas_t=0.0, tco2e=0.0, energy_tce=0.0,
             zero_carbon_tce=0.0),
        line(basis="both", gas="CO2", gas_t=60.0, tco2e=60.0, energy_tce=40.0,
             zero_carbon_tce=40.0, category="fuel_combustion", carrier="natural_gas",
             scope="scope_1"),
    ]  # fmt: skip
    return PeriodInputs(park(), 2026, 73.0, 365, carbon, {}, 1.0, coverage=coverage)


def _park_outcomes(coverage: Coverage | None) -> dict[str, Outcome]:
    plan = park()
    assert plan.document is not None
    lib = load_library(package_data_files())
    factors = site_factors(lib, province="inner_mongolia", grid_region="north", year=2026)
    out = site_indicators(
        _park_inputs(coverage), default_targets(), factors, plan.document.baseline
    )
    return {o.indicator: o for o in out}


def test_park_reduction_is_on_the_baseline_basis_and_annualised_by_days_with_data() -> None:
    # Baseline 268 000 t CO2/yr, location-based (the default). Current location CO2 160 t over
    # 73 days with data → 160 × 365 / 73 = 800 t/yr → reduction (268 000 − 800) / 268 000.
    o = _park_outcomes(cov(1.0, 73, in_progress=False))["total_co2_reduction"]
    assert o.basis == "location"
    value = o.result.value.value
    assert value == pytest.approx((268_000 - 800) / 268_000)
    assert o.result.status in {Status.ON_TRACK, Status.AT_RISK, Status.OFF_TRACK}
    assert o.coverage is not None and o.coverage.days_with_data == 73


def test_one_day_of_data_makes_every_reduction_and_intensity_insufficient() -> None:
    # The demo's situation: a year in progress, 1 day with data, coverage 0.3 %.
    out = _park_outcomes(cov(0.003, 1))
    for name in ("total_co2_reduction", "co2_per_energy", "clean_energy_share",
                 "zero_carbon_energy_share"):  # fmt: skip
        o = out[name]
        assert o.result.status is Status.INSUFFICIENT_DATA, name
        assert o.result.value.value is not None  # the value is still shown
        assert o.result.reason is not None
        assert o.coverage is not None and o.coverage.share == 0.003


def test_a_missing_production_meter_is_insufficient_never_zero() -> None:
    plan = mine()
    doc = plan.document
    assert doc is not None
    # The mine without its raw-coal production meters: kWh/t must not read 0 "on track".
    doc = doc.model_copy(update={"devices": [d for d in doc.devices if d.role != "production"]})
    plan = plan_from_document(doc)
    lib = load_library(package_data_files())
    factors = site_factors(lib, province="shanxi", grid_region="north", year=2026)
    kwh = {}
    for d in plan.devices:
        m = flow_metric(d)
        if m is not None and d.carrier == "electricity":
            kwh[(d.device_pk, m.metric_id)] = 1000.0
    inputs = PeriodInputs(plan, 2026, 31.0, 365, [], kwh, 1.0, coverage=cov(1.0, 31, grain="month"))
    out = {o.indicator: o.result for o in site_indicators(inputs, default_targets(), factors,
                                                          doc.baseline)}  # fmt: skip
    for name in ("electricity_per_raw_coal", "co2_per_raw_coal", "energy_per_raw_coal"):
        assert out[name].status is Status.INSUFFICIENT_DATA, name
        reason = out[name].reason
        assert reason is not None and "production meter" in reason.en and "原煤产量" in reason.zh


# --- events ------------------------------------------------------------------------------------

GE_HALF = 0.5  # a floor: ≥ 0.5, at risk within 10 %, cleared at ≥ 0.5 × 1.02 = 0.51


def _reading(value: float) -> Reading:
    if value >= GE_HALF:
        status = Status.ON_TRACK
    elif value >= GE_HALF * 0.9:
        status = Status.AT_RISK
    else:
        status = Status.OFF_TRACK
    return Reading(status.value, value, GE_HALF, higher_is_better=True)


def _run(values: list[float], state: AlertState | None = None) -> tuple[AlertState, list[str]]:
    """One reading per 15 min of data; the changes it makes."""
    state = state or AlertState()
    changes: list[str] = []
    for i, v in enumerate(values):
        state, change = alert_step(state, _reading(v), at=T0 + i * timedelta(minutes=15),
                                   finished=False)  # fmt: skip
        if change:
            changes.append(change)
    return state, changes


def test_a_value_oscillating_around_the_threshold_opens_and_closes_once_per_crossing() -> None:
    # 4 h flipping every 15 min: no spell at risk lasts 1 h → nothing opens.
    state, changes = _run([0.49, 0.505] * 8)
    assert changes == [] and not state.is_open
    # At risk from 00:00; at 01:00 it has held for 1 h → opens (once).
    state, changes = _run([0.45] * 6)
    assert changes == ["open"] and state.is_open and state.crossings == 1
    # Back and forth within the 2 % margin (0.505 < 0.51) for 4 h: stays open, no new event.
    state, changes = _run([0.505, 0.49] * 8, state)
    assert changes == [] and state.is_open
    # 0.52 ≥ 0.51 for 1 h (5 readings: 00:00 … 01:00) → closes once.
    state, changes = _run([0.52] * 5, state)
    assert changes == ["close"] and not state.is_open
    # A second crossing opens a second event.
    state, changes = _run([0.40] * 5, state)
    assert changes == ["open"] and state.crossings == 2


def test_insufficient_data_never_raises_and_a_finished_period_opens_at_once() -> None:
    thin = Reading(Status.INSUFFICIENT_DATA.value, 0.1, GE_HALF, higher_is_better=True)
    state, change = alert_step(AlertState(), thin, at=T0, finished=True)
    assert change is None and not state.is_open
    state, change = alert_step(AlertState(), _reading(0.3), at=T0, finished=True)
    assert change == "open"


def test_a_used_up_budget_opens_at_once_even_in_a_period_in_progress() -> None:
    # 12 tce used of 10: consumption cannot fall back, so no minimum duration applies.
    used_up = Reading(Status.OFF_TRACK.value, 12.0, 10.0, False, settled=True)
    state, change = alert_step(AlertState(), used_up, at=T0, finished=False)
    assert change == "open" and state.is_open
    # A projection over the budget (not settled) waits for 1 h of data.
    projected = Reading(Status.OFF_TRACK.value, 12.0, 10.0, False)
    assert alert_step(AlertState(), projected, at=T0, finished=False)[1] is None


def test_indicator_events_carry_the_crossing_in_their_key() -> None:
    out = _park_outcomes(cov(1.0, 73, in_progress=False))
    outcomes = list(out.values())
    first, states = indicator_events(outcomes, {}, grain="year", period_start=T0,
                                     at=T0, finished=True)  # fmt: skip
    alarming = [e for e in first if e.status in ("at_risk", "off_track")]
    assert len(first) == len(alarming)
    again, _ = indicator_events(outcomes, states, grain="year", period_start=T0,
                                at=T0, finished=True)  # fmt: skip
    assert again == []  # still open: nothing new

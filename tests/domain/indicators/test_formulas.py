"""Indicators, applicable targets, status and budgets. Tolerance 1e-12 relative unless stated."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from carbonflow.domain.factors import Comparator, default_targets
from carbonflow.domain.indicators.formulas import (
    Budget,
    Indicator,
    Status,
    applicable_target,
    budget_status,
    budgets_by_owner,
    burn_down,
    clean_energy_share,
    co2_per_raw_coal,
    electricity_per_raw_coal,
    energy_per_raw_coal,
    evaluate,
    low_carbon_vehicle_share,
    park_core_indicator,
    reduction_vs_baseline,
    status_against,
    zero_carbon_energy_share,
)
from carbonflow.domain.inventory.methane import methane_utilisation_rate

TARGETS = default_targets()
BAND = TARGETS.at_risk_band
REL = 1e-12


# --- indicator values ------------------------------------------------------------------------


def test_mine_intensities() -> None:
    # 12 000 tCO2e / 1 000 000 t = 0.012 tCO2/t
    assert co2_per_raw_coal(12_000, 1_000_000).value == pytest.approx(0.012, rel=REL)
    # 19 500 000 kWh / 1 000 000 t = 19.5 kWh/t
    assert electricity_per_raw_coal(19_500_000, 1_000_000).value == pytest.approx(19.5, rel=REL)
    # 3 000 tce / 1 000 000 t = 0.003 tce/t = 3 kgce/t
    r = energy_per_raw_coal(3_000, 1_000_000)
    assert r.value == pytest.approx(3.0, rel=REL)
    assert r.unit == "kgce/t"


def test_zero_production_is_undefined_not_a_division_error() -> None:
    r = co2_per_raw_coal(12_000, 0)
    assert r.value is None
    assert r.undefined_reason == "CO2 per tonne of raw coal: undefined, denominator is 0"
    result = evaluate(Indicator.CO2_PER_RAW_COAL, r, site_kind="mine", year=2025, targets=TARGETS)
    assert result.status is Status.INSUFFICIENT_DATA
    assert energy_per_raw_coal(5.0, 0).value is None
    reduction = reduction_vs_baseline(co2_per_raw_coal(10, 100), r)
    assert reduction.value.value is None
    assert "current value is undefined" in (reduction.value.undefined_reason or "")
    with pytest.raises(ValueError, match="negative denominator"):
        co2_per_raw_coal(1.0, -5.0)


# --- targets ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwh_per_t", "status"),
    [
        (19.5, Status.ON_TRACK),  # ≤ 20
        (20.0, Status.ON_TRACK),  # equal meets "≤"
        (21.9, Status.AT_RISK),  # misses by 1.9 ≤ 10 % × 20 = 2
        (22.5, Status.OFF_TRACK),  # misses by 2.5 > 2
    ],
)
def test_electricity_per_tonne_status_2025(kwh_per_t: float, status: Status) -> None:
    result = evaluate(
        Indicator.ELECTRICITY_PER_RAW_COAL,
        electricity_per_raw_coal(kwh_per_t * 1_000_000, 1_000_000),
        site_kind="mine",
        year=2025,
        targets=TARGETS,
    )
    assert result.status is status
    assert result.target is not None
    assert (result.target.threshold, result.target.basis) == (20, "milestone 2025")
    assert result.target.rows[0].source.startswith(
        "山西省《零碳（近零碳）产业示范区创建工作实施方案》"
    )


def test_target_between_milestones_is_interpolated() -> None:
    # mine zero-carbon share: 20 % in 2025, 50 % in 2030 → 2027: 0.20 + 0.30 × 2/5 = 0.32
    t = applicable_target(TARGETS, Indicator.ZERO_CARBON_ENERGY_SHARE, "mine", 2027)
    assert t is not None
    assert t.threshold == pytest.approx(0.32, rel=REL)
    assert t.basis == "interpolated between 2025 (0.2) and 2030 (0.5) fraction"
    assert len(t.rows) == 2


def test_target_before_the_first_and_after_the_last_milestone() -> None:
    before = applicable_target(TARGETS, Indicator.METHANE_UTILISATION_RATE, "mine", 2023)
    after = applicable_target(TARGETS, Indicator.METHANE_UTILISATION_RATE, "mine", 2033)
    assert before is not None and after is not None
    assert (before.threshold, before.basis) == (0.50, "next milestone 2025")
    assert (after.threshold, after.basis) == (0.60, "latest milestone 2030")


def test_targets_depend_on_site_kind() -> None:
    park = applicable_target(TARGETS, Indicator.ZERO_CARBON_ENERGY_SHARE, "park", 2025)
    mine = applicable_target(TARGETS, Indicator.ZERO_CARBON_ENERGY_SHARE, "mine", 2025)
    assert park is not None and mine is not None
    assert (park.threshold, mine.threshold) == (0.15, 0.20)
    assert applicable_target(TARGETS, Indicator.METHANE_UTILISATION_RATE, "park", 2025) is None


def test_methane_utilisation_against_2030() -> None:
    # (20 + 5) / 50 × 10^4 Nm3 = 0.5; 2030 target 0.60; miss 0.10 > 0.06 → off track
    r = methane_utilisation_rate(250_000, 500_000)
    result = evaluate(
        Indicator.METHANE_UTILISATION_RATE, r, site_kind="mine", year=2030, targets=TARGETS
    )
    assert result.status is Status.OFF_TRACK
    assert result.explanation == "0.5 fraction vs >= 0.6 fraction (milestone 2030): off_track"


def test_reduction_against_the_2020_baseline() -> None:
    # 2020: 1.5 tCO2/t; 2025: 1.1 tCO2/t → (1.5 − 1.1) / 1.5 = 0.26667 ≥ 0.20 → on track
    baseline = co2_per_raw_coal(1_500_000, 1_000_000)
    current = co2_per_raw_coal(1_100_000, 1_000_000)
    reduction = reduction_vs_baseline(baseline, current, baseline_label="2020")
    assert reduction.value.value == pytest.approx(0.4 / 1.5, rel=1e-9)
    result = evaluate(
        Indicator.CO2_PER_RAW_COAL_REDUCTION,
        reduction.value,
        site_kind="mine",
        year=2025,
        targets=TARGETS,
    )
    assert result.status is Status.ON_TRACK


def test_energy_per_tonne_2030_floor() -> None:
    # 2030 "keeps falling" is encoded as holding the 2025 reduction of 10 %: 9.5 % → at risk
    result = evaluate(
        Indicator.ENERGY_PER_RAW_COAL_REDUCTION,
        reduction_vs_baseline(10.0, 9.05).value,  # (10 − 9.05) / 10 = 0.095
        site_kind="mine",
        year=2030,
        targets=TARGETS,
    )
    assert result.status is Status.AT_RISK


@pytest.mark.parametrize(
    ("co2_t", "energy_tce", "threshold", "status"),
    [
        # 600 000 tce is in the 200 000–1 000 000 band (≤ 0.20):
        (120_000, 600_000, 0.20, Status.ON_TRACK),  # 0.20: equal meets "≤"
        (126_000, 600_000, 0.20, Status.AT_RISK),  # 0.21: misses by 0.01 ≤ 0.02
        (150_000, 600_000, 0.20, Status.OFF_TRACK),  # 0.25: misses by 0.05
        # 1 200 000 tce is in the ≥ 1 000 000 band (≤ 0.30): 336 000 / 1 200 000 = 0.28
        (336_000, 1_200_000, 0.30, Status.ON_TRACK),
        # band edges: exactly 1 000 000 tce belongs to the upper band
        (250_000, 1_000_000, 0.30, Status.ON_TRACK),
        (40_000, 200_000, 0.20, Status.ON_TRACK),
    ],
)
def test_park_core_indicator_by_size_band(
    co2_t: float, energy_tce: float, threshold: float, status: Status
) -> None:
    result = park_core_indicator(co2_t, energy_tce, year=2026, targets=TARGETS)
    assert result.target is not None
    assert result.target.threshold == threshold
    assert result.target.comparator is Comparator.LE
    assert result.status is status


def test_small_park_has_no_core_threshold() -> None:
    # 150 000 tce/yr < 200 000: no threshold was found (U) → no_target
    result = park_core_indicator(20_000, 150_000, year=2026, targets=TARGETS)
    assert result.status is Status.NO_TARGET
    assert result.value.value == pytest.approx(20_000 / 150_000, rel=REL)


def test_monthly_park_indicator_uses_the_annual_band() -> None:
    # A month with 50 000 tce in a park of 600 000 tce/yr: band 0.20 applies
    result = park_core_indicator(
        9_000, 50_000, year=2026, targets=TARGETS, annual_energy_tce=600_000
    )
    assert result.target is not None and result.target.threshold == 0.20
    assert result.status is Status.ON_TRACK  # 0.18


def test_clean_energy_share_is_a_standing_target_from_2025() -> None:
    share = clean_energy_share(92.0, 100.0)
    on = evaluate(Indicator.CLEAN_ENERGY_SHARE, share, site_kind="park", year=2026, targets=TARGETS)
    assert on.status is Status.ON_TRACK
    assert on.target is not None and on.target.basis == "standing target from 2025"
    early = evaluate(
        Indicator.CLEAN_ENERGY_SHARE, share, site_kind="park", year=2024, targets=TARGETS
    )
    assert early.status is Status.NO_TARGET


def test_strict_comparator_for_low_carbon_vehicles() -> None:
    # "超过70%": exactly 70 % does not meet it (but is within the band → at risk)
    result = evaluate(
        Indicator.LOW_CARBON_VEHICLE_SHARE,
        low_carbon_vehicle_share(70, 100),
        site_kind="park",
        year=2025,
        targets=TARGETS,
    )
    assert result.status is Status.AT_RISK


def test_enterprise_targets_by_industry() -> None:
    # coking: −10 % by 2030 against the year before the project; 9 % → at risk (≥ 9 %)
    r = reduction_vs_baseline(1.0, 0.91, baseline_label="project start 2023").value
    coking = evaluate(
        Indicator.UNIT_PRODUCT_CO2_REDUCTION,
        r,
        site_kind="enterprise",
        year=2030,
        targets=TARGETS,
        industry="coking",
    )
    assert coking.status is Status.AT_RISK
    steel = evaluate(
        Indicator.UNIT_PRODUCT_CO2_REDUCTION,
        r,
        site_kind="enterprise",
        year=2030,
        targets=TARGETS,
        industry="steel",
    )
    assert steel.status is Status.OFF_TRACK  # 15 % needed, 9 % is 6 points short > 1.5


def test_status_rule_directly() -> None:
    t = applicable_target(TARGETS, Indicator.ZERO_CARBON_ENERGY_SHARE, "park", 2025)  # ≥ 0.15
    assert status_against(0.15, t, BAND) is Status.ON_TRACK
    assert status_against(0.136, t, BAND) is Status.AT_RISK  # 0.15 − 0.136 = 0.014 ≤ 0.015
    assert status_against(0.13, t, BAND) is Status.OFF_TRACK
    assert status_against(None, t, BAND) is Status.INSUFFICIENT_DATA
    assert status_against(0.5, None, BAND) is Status.NO_TARGET
    assert zero_carbon_energy_share(0.0, 0.0).value is None


def test_float_rounding_does_not_turn_a_met_target_into_a_miss() -> None:
    # (0.7 − 0.56) / 0.7 = 0.19999999999999987 in floats: still meets "≥ 0.20"
    reduction = reduction_vs_baseline(0.7, 0.56).value
    assert reduction.value is not None and reduction.value < 0.2
    t = applicable_target(TARGETS, Indicator.CO2_PER_RAW_COAL_REDUCTION, "mine", 2025)
    assert status_against(reduction.value, t, BAND) is Status.ON_TRACK


def test_value_and_target_units_must_agree() -> None:
    with pytest.raises(ValueError, match="value in kWh/t but the target is in fraction"):
        evaluate(
            Indicator.ZERO_CARBON_ENERGY_SHARE,
            electricity_per_raw_coal(1, 1),
            site_kind="mine",
            year=2025,
            targets=TARGETS,
        )


# --- budgets ------------------------------------------------------------------------------------

START = datetime(2026, 1, 1, tzinfo=UTC)
BUDGET = Budget("ent-7", 1200.0, "tce", START, START + timedelta(days=100))
HALF = START + timedelta(days=50)


@pytest.mark.parametrize(
    ("consumed", "projected", "overrun", "status"),
    [
        (500.0, 1000.0, 0.0, Status.ON_TRACK),  # 500 / 0.5 = 1 000 ≤ 1 200
        (640.0, 1280.0, 80.0, Status.AT_RISK),  # 1 280 ≤ 1 200 × 1.1 = 1 320
        (700.0, 1400.0, 200.0, Status.OFF_TRACK),  # 1 400 > 1 320
        (1300.0, 2600.0, 1400.0, Status.OFF_TRACK),  # already exceeded
    ],
)
def test_budget_projection(
    consumed: float, projected: float, overrun: float, status: Status
) -> None:
    s = budget_status(BUDGET, consumed, HALF, at_risk_band=BAND)
    assert s.elapsed_fraction == 0.5
    assert s.projected_total == pytest.approx(projected, rel=REL)
    assert s.projected_overrun == pytest.approx(overrun, rel=REL, abs=1e-9)
    assert s.status is status
    assert s.remaining == pytest.approx(1200.0 - consumed, rel=REL)


def test_budget_exhaustion_date() -> None:
    # 640 tce in 50 days = 12.8 tce/day → 1 200 tce after 93.75 days
    s = budget_status(BUDGET, 640.0, HALF, at_risk_band=BAND)
    assert s.projected_exhaustion == START + timedelta(days=93.75)
    assert budget_status(BUDGET, 500.0, HALF, at_risk_band=BAND).projected_exhaustion is None


def test_budget_before_its_period_and_with_no_consumption() -> None:
    early = budget_status(BUDGET, 0.0, START - timedelta(days=1), at_risk_band=BAND)
    assert (early.status, early.projected_total) == (Status.INSUFFICIENT_DATA, None)
    idle = budget_status(BUDGET, 0.0, HALF, at_risk_band=BAND)
    assert (idle.status, idle.projected_total) == (Status.ON_TRACK, 0.0)


def test_burn_down_and_per_enterprise() -> None:
    # 10 days of 12 tce: after day 10, 120 consumed, 1 080 left; ideal 1 200 × 0.9 = 1 080
    steps = [(START + timedelta(days=d), 12.0) for d in range(1, 11)]
    line = burn_down(BUDGET, steps)
    assert line[-1].consumed == pytest.approx(120.0, rel=REL)
    assert line[-1].remaining == pytest.approx(1080.0, rel=REL)
    assert line[-1].ideal_remaining == pytest.approx(1080.0, rel=REL)
    other = Budget("ent-8", 100.0, "tce", START, START + timedelta(days=100))
    statuses = budgets_by_owner([BUDGET, other], {"ent-7": 640.0}, HALF, at_risk_band=BAND)
    assert statuses["ent-7"].status is Status.AT_RISK
    assert statuses["ent-8"].consumed == 0.0

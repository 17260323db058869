"""Indicators, site targets, budgets and early warnings (carbonflow/domain/indicators/kpis.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache

import pytest

from carbonflow.domain.factors import default_targets
from carbonflow.domain.factors.library import load_library, package_data_files
from carbonflow.domain.indicators.formulas import Status
from carbonflow.domain.indicators.kpis import (
    PeriodInputs,
    budget_events,
    budget_outcomes,
    indicator_events,
    site_indicators,
    site_targets,
)
from carbonflow.domain.inventory.lines import InventoryLine
from carbonflow.domain.inventory.site_factors import site_factors
from carbonflow.domain.site.plan import SitePlan, flow_metric, plan_from_document
from carbonflow.sites.loader import load_site_file
from tests.support.lines import line

MINE = "carbonflow/sites/examples/shanxi-mine.yaml"


def Row(  # noqa: N802 — reads as the row it builds
    basis: str, gas: str, energy_tce: float, zero_carbon_tce: float, gas_t: float, tco2e: float
) -> InventoryLine:
    return line(
        basis=basis, gas=gas, energy_tce=energy_tce, zero_carbon_tce=zero_carbon_tce,
        gas_t=gas_t, tco2e=tco2e,
    )  # fmt: skip


@cache
def mine() -> SitePlan:
    return plan_from_document(load_site_file(MINE))


def quantity(plan: SitePlan, device_id: str, value: float) -> dict[tuple[int, int], float]:
    d = next(x for x in plan.devices if x.device_id == device_id)
    m = flow_metric(d)
    assert m is not None
    return {(d.device_pk, m.metric_id): value}


def test_site_targets_replace_the_defaults_of_the_same_year() -> None:
    doc = load_site_file(MINE)
    targets = site_targets(default_targets(), doc, doc.site.id)
    rows = {(t.indicator, t.year): t for t in targets.targets if t.site_kind == "mine"}
    # The mine's own plan: ≤ 18.5 kWh/t in 2025 (default 20), utilisation ≥ 65 % in 2030.
    assert rows[("electricity_per_raw_coal", 2025)].threshold == 18.5
    assert rows[("methane_utilisation_rate", 2030)].threshold == pytest.approx(0.65)
    assert rows[("methane_utilisation_rate", 2025)].threshold == 0.50  # default kept
    assert "site file" in rows[("electricity_per_raw_coal", 2025)].source


def test_mine_indicators_on_hand_worked_numbers() -> None:
    plan = mine()
    doc = plan.document
    assert doc is not None
    lib = load_library(package_data_files())
    factors = site_factors(lib, province="shanxi", grid_region="north", year=2025)
    devices = {
        **quantity(plan, "raw-coal-scale", 30_000.0),  # t
        **quantity(plan, "longwall-feeder", 400_000.0),  # kWh, production system
        **quantity(plan, "buildings-power", 50_000.0),  # kWh, outside it
        **quantity(plan, "drainage-high", 200_000.0),  # Nm3 CH4
        **quantity(plan, "methane-to-engines", 110_000.0),
        **quantity(plan, "vent-shaft-north", 190_000.0),
    }
    carbon = [
        Row("location", "CO2", 60.0, 0.0, 2_400.0, 2_400.0),
        Row("market", "CO2", 0.0, 0.0, 2_200.0, 2_200.0),
        Row("both", "CH4", 0.0, 0.0, 60.0, 1_260.0),
        Row("both", "CO2", 40.0, 20.0, 300.0, 300.0),
    ]
    inputs = PeriodInputs(plan, 2025, 1.0, 365, carbon, devices, 1.0)
    out = {
        o.indicator: o.result
        for o in site_indicators(
            inputs, site_targets(default_targets(), doc, doc.site.id), factors, doc.baseline
        )
    }
    # CO2e (location + both) = 2 400 + 1 260 + 300 = 3 960 t / 30 000 t = 0.132 tCO2/t;
    # baseline 1 029 000 / 9 600 000 = 0.1071875; reduction = (0.1071875 − 0.132)/0.1071875.
    assert out["co2_per_raw_coal"].value.value == pytest.approx(0.132)
    assert out["co2_per_raw_coal_reduction"].value.value == pytest.approx(
        (0.1071875 - 0.132) / 0.1071875
    )
    # 400 000 kWh / 30 000 t = 13.333 kWh/t ≤ 18.5 (the mine's own 2025 target): on track.
    assert out["electricity_per_raw_coal"].value.value == pytest.approx(13.3333333)
    assert out["electricity_per_raw_coal"].status is Status.ON_TRACK
    # Energy: 100 tce − buildings 50 000 kWh × 0.1229 kgce/kWh = 6.145 tce → 93.855 tce
    # = 93 855 kgce / 30 000 t = 3.1285 kgce/t.
    assert out["energy_per_raw_coal"].value.value == pytest.approx(3.1285)
    # Zero-carbon 20 / 100 tce = 0.20 ≥ 0.20: on track (equal counts as met).
    assert out["zero_carbon_energy_share"].value.value == pytest.approx(0.2)
    assert out["zero_carbon_energy_share"].status is Status.ON_TRACK
    # Utilisation 110 000 / 200 000 = 0.55 ≥ 0.50; drainage 200 000 / 390 000.
    assert out["methane_utilisation_rate"].value.value == pytest.approx(0.55)
    assert out["methane_drainage_rate"].value.value == pytest.approx(200 / 390)


def test_zero_production_gives_undefined_indicators_not_errors() -> None:
    plan = mine()
    doc = plan.document
    assert doc is not None
    lib = load_library(package_data_files())
    factors = site_factors(lib, province="shanxi", grid_region="north", year=2025)
    inputs = PeriodInputs(plan, 2025, 1.0, 365, [], {}, 0.0)
    out = {o.indicator: o.result for o in site_indicators(inputs, default_targets(), factors,
                                                          doc.baseline)}  # fmt: skip
    assert out["co2_per_raw_coal"].status is Status.INSUFFICIENT_DATA
    assert out["methane_utilisation_rate"].value.value is None


def test_budget_burn_down_and_events() -> None:
    doc = load_site_file(MINE)
    start = datetime(2024, 12, 31, 16, tzinfo=UTC)  # 2025-01-01 00:00 in Shanghai
    end = datetime(2025, 12, 31, 16, tzinfo=UTC)
    as_of = datetime(2025, 7, 2, 4, tzinfo=UTC)  # half the year gone (182.5 of 365 days)
    # 46 000 tce budget, 25 000 used by mid-year → projected 50 000 tce: over 46 000 but within
    # 46 000 × 1.10 = 50 600 → at risk. CO2: 50 000 t → 100 000 projected ≤ 130 000 → on track.
    statuses = budget_outcomes(
        doc, 2025, year_start=start, year_end=end,
        consumed={"jinzhong-coal": (25_000.0, 50_000.0)}, as_of=as_of, band=0.10,
    )  # fmt: skip
    by = {q: s for _org, q, s in statuses}
    assert by["energy_tce"].projected_total == pytest.approx(50_000.0)
    assert by["energy_tce"].status is Status.AT_RISK
    assert by["co2_t"].status is Status.ON_TRACK  # 100 000 projected ≤ 130 000
    # A year in progress: at risk for less than 1 h of data opens nothing yet (pending).
    events, states = budget_events(statuses, {}, period_start=start, at=as_of, finished=False)
    assert events == [] and states[("jinzhong-coal", "energy_tce")].pending_since == as_of
    # A finished period opens at once.
    events, states = budget_events(statuses, {}, period_start=start, at=end, finished=True)
    assert [(e.subject, e.status, e.previous_status) for e in events] == [
        ("energy_tce", "at_risk", None)
    ]
    assert states[("jinzhong-coal", "energy_tce")].is_open
    assert events[0].dedup_key("s") != events[0].dedup_key("t")
    assert indicator_events([], {}, grain="month", period_start=start, at=end, finished=True) == (
        [],
        {},
    )

"""The one evaluation of a period (carbonflow/domain/indicators/period.py), hand-worked numbers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from carbonflow.domain.factors import default_targets
from carbonflow.domain.factors.library import load_library, package_data_files
from carbonflow.domain.indicators.kpis import site_targets
from carbonflow.domain.indicators.period import evaluate_period, period_inputs
from carbonflow.domain.inventory.site_factors import plan_factors
from carbonflow.domain.site.plan import DevicePlan, flow_metric, plan_from_document
from carbonflow.sites.loader import EXAMPLES, load_site_file
from tests.support.lines import line


@dataclass(frozen=True)
class Total:
    quantity: float
    completeness: float
    quality: str = "measured"


PLAN = plan_from_document(load_site_file(EXAMPLES / "shanxi-mine.yaml"))
SCALE = next(d for d in PLAN.devices if d.device_id == "raw-coal-scale")
FEEDER = next(d for d in PLAN.devices if d.device_id == "longwall-feeder")
START = datetime(2025, 2, 1, tzinfo=UTC)
END = datetime(2025, 2, 8, 12, tzinfo=UTC)


def _key(device: DevicePlan) -> tuple[int, int]:
    """(device, metric) of the device's flow metric, as the stored totals are keyed."""
    metric = flow_metric(device)
    assert metric is not None
    return device.device_pk, metric.metric_id


def test_period_inputs_settle_sum_and_average_the_period() -> None:
    devices = {
        _key(SCALE): Total(30_000.0, 1.0),
        _key(FEEDER): Total(400_000.0, 0.5),
    }
    carbon = [line(basis="location", gas="CO2", energy_tce=60.0, gas_t=2_400.0, tco2e=2_400.0)]
    inputs = period_inputs(PLAN, 2025, (START, END), carbon, devices)
    # 7 days 12 h = 7.5 days of a 365-day year; completeness (1.0 + 0.5) / 2 = 0.75.
    assert inputs.period_days == pytest.approx(7.5)
    assert inputs.year_days == 365
    assert inputs.completeness == pytest.approx(0.75)
    assert sorted(inputs.devices.values()) == [30_000.0, 400_000.0]
    assert inputs.energy_tce == pytest.approx(60.0)
    assert (inputs.period_start, inputs.period_end) == (START, END)
    # No device data: completeness 0, not a division by zero.
    assert period_inputs(PLAN, 2024, (START, END), carbon, {}).completeness == 0.0
    assert period_inputs(PLAN, 2024, (START, END), carbon, {}).year_days == 366


def test_evaluate_period_adds_the_organisations_only_when_asked() -> None:
    doc = PLAN.document
    assert doc is not None
    factors = plan_factors(load_library(package_data_files()), PLAN, 2025, None)
    targets = site_targets(default_targets(), doc, doc.site.id)
    devices = {_key(SCALE): Total(30_000.0, 1.0)}
    carbon = [line(basis="location", gas="CO2", energy_tce=60.0, gas_t=2_400.0, tco2e=2_400.0)]
    inputs = period_inputs(PLAN, 2025, (START, END), carbon, devices)
    site_only = evaluate_period(inputs, targets, factors, organisations=False)
    assert site_only.graph is None
    # 2 400 tCO2 / 30 000 t raw coal = 0.08 tCO2/t.
    by_name = {o.indicator: o for o in site_only.outcomes if o.org_id == ""}
    assert by_name["co2_per_raw_coal"].result.value.value == pytest.approx(0.08)
    full = evaluate_period(inputs, targets, factors)
    assert full.graph is not None
    assert full.outcomes[: len(site_only.outcomes)] == site_only.outcomes

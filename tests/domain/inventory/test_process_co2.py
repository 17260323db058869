"""Process CO2 from carbonates (GB/T 32151 method; issue 15, step 5): the formula on hand-worked
numbers, a site file's ``process_carbonate`` device booked as scope 1 process, and the checks of
the device's ``carbonate`` section."""

from __future__ import annotations

from datetime import date

import pytest

from carbonflow.domain.factors import use_factor
from carbonflow.domain.factors.library import load_library, package_data_files
from carbonflow.domain.inventory.balance import Quantity, inventory_devices, slot_inventory
from carbonflow.domain.inventory.carbon import carbonate_process_co2
from carbonflow.domain.inventory.lines import Basis, Category, Gas, Scope
from carbonflow.domain.inventory.site_factors import site_factors
from carbonflow.domain.site.plan import flow_metric, plan_from_document
from carbonflow.sites.loader import SiteFileError, parse_site_text
from tests.support.small_park import SMALL_PARK

LIB = load_library(package_data_files())
CACO3 = use_factor(LIB.get("carbonate.caco3"))  # 0.440 tCO2/t (Table C.2)
LI2CO3 = use_factor(LIB.get("carbonate.li2co3"))  # 0.595 tCO2/t


def test_limestone_and_lithium_carbonate_by_hand() -> None:
    # 100 t limestone at 92 % CaCO3, fully calcined: 100 × 0.92 × 1 × 0.440 = 40.48 tCO2
    lime = carbonate_process_co2(100.0, CACO3, purity=0.92)
    assert lime.gas_t == pytest.approx(40.48, abs=1e-12) and lime.emissions_tco2e == lime.gas_t
    assert (lime.category, lime.scope, lime.gas) == (Category.PROCESS, Scope.SCOPE_1, Gas.CO2)
    assert (lime.activity, lime.activity_unit) == (100.0, "t")
    assert lime.formula == "100 t × 0.92 (carbonate) × 1 (calcined) × 0.44 tCO2/t = 40.48 tCO2"
    # 95 % calcined: 40.48 × 0.95 = 38.456 t
    assert carbonate_process_co2(100.0, CACO3, purity=0.92, calcination=0.95).gas_t == (
        pytest.approx(38.456, abs=1e-12)
    )
    # 10 t Li2CO3 at 99.5 %: 10 × 0.995 × 0.595 = 5.92025 t
    assert carbonate_process_co2(10.0, LI2CO3, purity=0.995).gas_t == pytest.approx(5.92025)
    assert carbonate_process_co2(0.0, CACO3).gas_t == 0.0


@pytest.mark.parametrize(
    ("mass", "purity", "calcination", "message"),
    [
        (-1.0, 1.0, 1.0, "negative"),
        (1.0, 1.2, 1.0, "purity must be a fraction"),
        (1.0, 1.0, -0.1, "calcination must be a fraction"),
    ],
)
def test_bad_inputs_are_refused(
    mass: float, purity: float, calcination: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        carbonate_process_co2(mass, CACO3, purity=purity, calcination=calcination)


def test_a_factor_in_another_unit_is_refused() -> None:
    with pytest.raises(ValueError, match="needs a factor in tCO2/t"):
        carbonate_process_co2(1.0, use_factor(LIB.get("gwp.ch4.sar")))


SITE = """
site: {id: k, name: K, kind: enterprise, province: shanxi, grid_region: north}
organisations: [{id: k-co, name: K}]
nodes:
  - {id: kiln, name: Kiln, kind: process, org: k-co}
devices:
  - {id: lime-feed, name: Limestone feeder, kind: carbonate_scale, carrier: carbonate,
     role: process_carbonate, node: kiln, org: k-co,
     carbonate: {carbonate: caco3, purity: 0.92, calcination: 0.95}}
"""


def test_a_carbonate_scale_books_scope_1_process_co2() -> None:
    plan = plan_from_document(parse_site_text(SITE, "k.yaml"))
    (device,) = inventory_devices(plan)
    metric = flow_metric(device)
    assert metric is not None and (metric.name, metric.unit) == ("fed_t", "t")
    factors = site_factors(LIB, province="shanxi", grid_region="north", year=2025)
    q = {(device.device_pk, metric.metric_id): Quantity(12.5, "measured", 1.0)}
    result = slot_inventory(plan, q, factors, day=date(2025, 3, 1))
    (line,) = result.rows
    # 12.5 t × 0.92 × 0.95 × 0.440 tCO2/t = 4.807 tCO2, in both views, no energy
    assert line.tco2e == pytest.approx(12.5 * 0.92 * 0.95 * 0.440, rel=1e-12)
    assert line.tco2e == pytest.approx(4.807, abs=1e-12)
    assert (line.category, line.scope, line.basis) == (Category.PROCESS, Scope.SCOPE_1, Basis.BOTH)
    assert (line.org_id, line.node_id, line.carrier) == ("k-co", "kiln", "carbonate")
    assert line.energy_tce == 0.0 and [f.key for f in line.factors.used] == ["carbonate.caco3"]


def test_an_unknown_carbonate_is_a_problem_of_the_interval_not_a_crash() -> None:
    plan = plan_from_document(parse_site_text(SITE.replace("caco3", "unobtainium"), "k.yaml"))
    (device,) = inventory_devices(plan)
    metric = flow_metric(device)
    assert metric is not None
    factors = site_factors(LIB, province="shanxi", grid_region="north", year=2025)
    q = {(device.device_pk, metric.metric_id): Quantity(1.0, "measured", 1.0)}
    result = slot_inventory(plan, q, factors, day=date(2025, 3, 1))
    assert result.rows == () and "no factor 'carbonate.unobtainium'" in result.problems[0]


def test_the_carbonate_section_goes_with_the_role() -> None:
    without = SITE.replace(
        ",\n     carbonate: {carbonate: caco3, purity: 0.92, calcination: 0.95}", ""
    )
    with pytest.raises(SiteFileError, match="process_carbonate device names its carbonate"):
        parse_site_text(without, "k.yaml")
    with pytest.raises(SiteFileError, match="purity"):
        parse_site_text(SITE.replace("purity: 0.92", "purity: 1.5"), "k.yaml")
    # devices without the section keep their normalised form (no "carbonate": null)
    doc = parse_site_text(SITE, "k.yaml")
    dumped = doc.model_dump(mode="json")["devices"][0]
    assert dumped["carbonate"] == {"carbonate": "caco3", "purity": 0.92, "calcination": 0.95}
    park = parse_site_text(SMALL_PARK, "g.yaml").model_dump(mode="json")
    assert all("carbonate" not in d for d in park["devices"])

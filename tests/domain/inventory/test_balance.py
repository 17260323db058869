"""One interval's inventory by source, on hand-worked numbers
(carbonflow/domain/inventory/balance.py).

Factors for accounting year 2025 (rule: newest data year ≤ 2025 → 2023): Shanxi average
0.6634 tCO2/MWh (location), national residual 0.6096 tCO2/MWh (market), electricity
0.1229 kgce/kWh, diesel 42.652 GJ/t × 0.0202 tC/GJ × 0.98 and 1.4571 kgce/kg at 0.84 kg/L,
natural gas 389.31 GJ/10^4 Nm3 × 0.0153 × 0.99 and 1.2143 kgce/Nm3, heat 0.11 tCO2/GJ and
0.03412 kgce/MJ, CH4 7.17 t/10^4 Nm3 × GWP 21.
"""

from __future__ import annotations

import math
from datetime import date
from functools import cache

import pytest

from carbonflow.domain.factors import FactorLibrary, SiteOverride
from carbonflow.domain.factors.library import Confidence, load_library, package_data_files
from carbonflow.domain.inventory.balance import (
    Quantity,
    SlotResult,
    combined_quality,
    settle_period,
    slot_inventory,
    split_exact,
)
from carbonflow.domain.inventory.lines import InventoryLine
from carbonflow.domain.inventory.site_factors import site_factors
from carbonflow.domain.site.plan import SitePlan, flow_metric, plan_from_document, reverse_metric
from carbonflow.sites.loader import parse_site_text

DAY = date(2025, 3, 1)

SITE = """
site: {id: t, name: T, kind: enterprise, province: shanxi, grid_region: north}
organisations: [{id: o, name: O}]
nodes:
  - {id: sub, name: Sub, kind: distribution, org: o}
  - {id: roof, name: Roof, kind: generation, org: o}
  - {id: plant, name: Plant, kind: process, org: o}
  - {id: yard, name: Yard, kind: transport, org: o}
  - {id: mine, name: Mine gas, kind: methane, org: o}
  - {id: engines, name: Engines, kind: generation, org: o}
  - {id: torch, name: Flare, kind: sink, org: o}
devices:
  - {id: grid, name: G, kind: electricity_meter, carrier: electricity, role: grid_import,
     node: sub, org: o, metrics: {energy_export_kwh: counter}}
  - {id: pv, name: PV, kind: pv_inverter, carrier: electricity, role: generation_pv, node: roof,
     org: o}
  - {id: line, name: Line, kind: electricity_meter, carrier: electricity, role: green_import,
     node: sub, org: o}
  - {id: steam, name: Steam, kind: heat_meter, carrier: heat, role: heat_import, node: plant,
     org: o}
  - {id: diesel, name: D, kind: fuel_dispenser, carrier: diesel, role: fuel_supply, node: yard,
     org: o}
  - {id: gas, name: NG, kind: gas_meter, carrier: natural_gas, role: fuel_supply, node: plant,
     org: o}
  - {id: drain, name: Drain, kind: methane_drainage, carrier: coal_mine_methane,
     role: methane_drained, node: mine, org: o}
  - {id: shaft, name: Shaft, kind: ventilation_shaft, carrier: coal_mine_methane,
     role: methane_ventilation, node: mine, org: o}
  - {id: use, name: Use, kind: methane_meter, carrier: coal_mine_methane, role: methane_utilised,
     node: engines, org: o}
  - {id: flare, name: Flare, kind: flare, carrier: coal_mine_methane, role: methane_flared,
     node: torch, org: o}
"""


@cache
def library() -> FactorLibrary:
    return load_library(package_data_files())


@cache
def plan() -> SitePlan:
    return plan_from_document(parse_site_text(SITE, "t.yaml"))


def quantities(values: dict[tuple[str, str], float]) -> dict[tuple[int, int], Quantity]:
    p = plan()
    out: dict[tuple[int, int], Quantity] = {}
    for (device_id, which), value in values.items():
        device = next(d for d in p.devices if d.device_id == device_id)
        metric = reverse_metric(device) if which == "reverse" else flow_metric(device)
        assert metric is not None
        out[(device.device_pk, metric.metric_id)] = Quantity(value, "measured", 1.0)
    return out


def rows_by(result_rows: tuple[InventoryLine, ...]) -> dict[tuple[str, str], InventoryLine]:
    return {(r.category, r.basis): r for r in result_rows}


def inventory(
    values: dict[tuple[str, str], float],
    pool: float = 0.0,
    pins: dict[str, SiteOverride] | None = None,
) -> SlotResult:
    factors = site_factors(library(), province="shanxi", grid_region="north", year=2025, pins=pins)
    holders = {"o": pool} if pool else None  # the pool of the site's one organisation
    return slot_inventory(plan(), quantities(values), factors, day=DAY, holder_pools=holders)


def test_grid_import_net_of_export_location_and_market() -> None:
    # 1 500 kWh in, 300 kWh out → net 1.2 MWh.
    # location: 1.2 × 0.6634 = 0.79608 t; market: 1.2 × 0.6096 = 0.73152 t;
    # energy: 1 200 kWh × 0.1229 kgce/kWh = 147.48 kgce = 0.14748 tce (on the location row only).
    result = inventory({("grid", "flow"): 1_500.0, ("grid", "reverse"): 300.0})
    rows = rows_by(result.rows)
    loc = rows[("purchased_electricity", "location")]
    mkt = rows[("purchased_electricity", "market")]
    assert result.net_import_mwh == pytest.approx(1.2)
    assert loc.tco2e == pytest.approx(0.79608)
    assert mkt.tco2e == pytest.approx(0.73152)
    assert loc.energy_tce == pytest.approx(0.14748) and mkt.energy_tce == 0.0
    assert loc.factors.key == "electricity.mee_nbs.province.shanxi.average.2023"
    assert mkt.factors.key == "electricity.mee_nbs.national.residual.2023"
    assert loc.node_id == "sub" and loc.scope == "scope_2"


def test_certificates_cover_the_net_import_first_and_count_as_zero_carbon() -> None:
    # Net 1.2 MWh, 0.5 MWh left in the month's pool: covered 0.5 at 0, remainder 0.7 × 0.6096
    # = 0.42672 t; zero-carbon energy 500 kWh × 0.1229 = 0.06145 tce on the market green row.
    result = inventory({("grid", "flow"): 1_200.0}, pool=0.5)
    rows = rows_by(result.rows)
    ((holder, share, covered),) = result.holders
    assert holder == "o" and share == pytest.approx(1.2) and covered == pytest.approx(0.5)
    assert rows[("purchased_electricity", "market")].tco2e == pytest.approx(0.42672)
    green = rows[("green_electricity", "market")]
    assert green.activity == pytest.approx(0.5) and green.tco2e == 0.0
    assert green.zero_carbon_tce == pytest.approx(0.06145) and green.energy_tce == 0.0
    # Location-based is untouched by certificates: 1.2 × 0.6634.
    assert rows[("purchased_electricity", "location")].tco2e == pytest.approx(0.79608)


def test_a_fully_covered_interval_and_one_with_no_pool() -> None:
    covered = rows_by(inventory({("grid", "flow"): 800.0}, pool=10.0).rows)
    assert covered[("purchased_electricity", "market")].tco2e == 0.0
    assert covered[("green_electricity", "market")].activity == pytest.approx(0.8)
    bare = rows_by(inventory({("grid", "flow"): 800.0}, pool=0.0).rows)
    assert ("green_electricity", "market") not in bare
    assert bare[("purchased_electricity", "market")].tco2e == pytest.approx(0.8 * 0.6096)


def test_an_exporting_interval_has_a_negative_net_import_settled_per_period() -> None:
    # Noon: 100 kWh in, 400 kWh out, PV 1 000 kWh. The interval's net import is −0.3 MWh (kept
    # signed so that periods add up): location −0.3 × 0.6634 = −0.19902 t; PV 1 MWh zero-carbon.
    result = inventory(
        {("grid", "flow"): 100.0, ("grid", "reverse"): 400.0, ("pv", "flow"): 1_000.0}
    )
    rows = rows_by(result.rows)
    assert result.net_import_mwh == pytest.approx(-0.3)
    assert rows[("purchased_electricity", "location")].tco2e == pytest.approx(-0.19902)
    assert rows[("self_generation", "both")].activity == pytest.approx(1.0)
    # Reported for a period that is a net exporter (here: this interval alone): scope 2 is 0,
    # the 0.3 MWh surplus comes out of the PV: 0.7 MWh × 0.1229 kgce/kWh = 0.08603 tce.
    settled, surplus = settle_period(list(result.rows))
    by = rows_by(tuple(settled))
    assert surplus == pytest.approx(0.3)
    assert by[("purchased_electricity", "location")].tco2e == 0.0
    assert by[("purchased_electricity", "market")].tco2e == 0.0
    pv = by[("self_generation", "both")]
    assert pv.activity == pytest.approx(0.7) and pv.tco2e == 0.0
    assert pv.energy_tce == pytest.approx(0.08603) and pv.zero_carbon_tce == pv.energy_tce
    # A period that imports on balance is reported as it is.
    two = inventory({("grid", "flow"): 1_000.0}).rows + result.rows
    assert settle_period(list(two)) == (list(two), 0.0)


def test_direct_green_supply_is_zero_in_both_views_and_not_grid_power() -> None:
    # 2 000 kWh on the 绿电直连 line: 0 tCO2, 2 000 × 0.1229 = 0.2458 tce zero-carbon; no grid row.
    rows = rows_by(inventory({("line", "flow"): 2_000.0}).rows)
    green = rows[("green_electricity", "both")]
    assert green.tco2e == 0.0 and green.zero_carbon_tce == pytest.approx(0.2458)
    grid = rows[("purchased_electricity", "location")]  # the grid meter has no data here
    assert grid.activity == 0.0 and grid.quality == "missing"


def test_purchased_heat_diesel_and_natural_gas() -> None:
    result = inventory(
        {("steam", "flow"): 10.0, ("diesel", "flow"): 1_000.0, ("gas", "flow"): 2_000.0}
    )
    rows: dict[tuple[str, str], InventoryLine] = {(r.category, r.carrier): r for r in result.rows}
    heat = rows[("purchased_heat", "heat")]
    # 10 GJ × 0.11 = 1.1 t; 10 GJ = 10 000 MJ × 0.03412 kgce/MJ = 341.2 kgce = 0.3412 tce.
    assert heat.tco2e == pytest.approx(1.1) and heat.energy_tce == pytest.approx(0.3412)
    diesel = rows[("fuel_combustion", "diesel")]
    # 1 000 L × 0.84 kg/L = 840 kg = 0.84 t × 42.652 × 0.0202 × 0.98 × 44/12 = 2.600488 t;
    # 840 kg × 1.4571 kgce/kg = 1 223.964 kgce = 1.223964 tce.
    assert diesel.tco2e == pytest.approx(0.84 * 42.652 * 0.0202 * 0.98 * 44 / 12)
    assert diesel.energy_tce == pytest.approx(1.223964)
    assert [f.key for f in diesel.factors.used][-2:] == ["density.diesel", "tce.diesel"]
    gas = rows[("fuel_combustion", "natural_gas")]
    # 2 000 Nm3 = 0.2 × 10^4 Nm3 × 389.31 × 0.0153 × 0.99 × 44/12 = 4.32448 t;
    # 2 000 Nm3 × 1.2143 kgce/Nm3 = 2.4286 tce.
    assert gas.tco2e == pytest.approx(0.2 * 389.31 * 0.0153 * 0.99 * 44 / 12)
    assert gas.energy_tce == pytest.approx(2.4286)


def test_a_site_override_of_the_diesel_density_is_used_and_recorded() -> None:
    override = SiteOverride(
        "site.t.density.diesel", 0.83, "kg/L", "lab report 2025-02", Confidence.B, "lab-1"
    )
    result = inventory({("diesel", "flow"): 1_000.0}, pins={"density.diesel": override})
    rows = {r.carrier: r for r in result.rows}
    # 1 000 L × 0.83 = 0.83 t.
    assert rows["diesel"].activity == pytest.approx(0.83)
    assert rows["diesel"].factors.used[-2].key == "site.t.density.diesel"


def test_coal_mine_methane_escape_flaring_and_utilisation() -> None:
    # Pure CH4 in one interval: ventilation 600, drained 1 000, utilised 400, flared 100 Nm3.
    # escape (600 + 1 000 − 100 − 400) = 1 100 Nm3 = 0.11 × 10^4 × 7.17 = 0.7887 t × 21
    # = 16.5627 tCO2e; flare 0.01 × 7.17 × 44/16 × 0.98 = 0.193232 t;
    # used 0.04 × 7.17 × 44/16 × 0.99 = 0.780813 t, with 400 Nm3 × 357.9 GJ/10^4 Nm3
    # = 14.316 GJ ÷ 29.3076 GJ/tce = 0.488474 tce.
    result = inventory(
        {("shaft", "flow"): 600.0, ("drain", "flow"): 1_000.0, ("use", "flow"): 400.0,
         ("flare", "flow"): 100.0}
    )  # fmt: skip
    rows: dict[str, InventoryLine] = {r.category: r for r in result.rows}
    assert rows["fugitive"].gas == "CH4" and rows["fugitive"].node_id == "mine"
    assert rows["fugitive"].gas_t == pytest.approx(0.7887)
    assert rows["fugitive"].tco2e == pytest.approx(16.5627)
    assert rows["flaring"].tco2e == pytest.approx(0.01 * 7.17 * 2.75 * 0.98)
    assert rows["fuel_combustion"].tco2e == pytest.approx(0.04 * 7.17 * 2.75 * 0.99)
    assert rows["fuel_combustion"].energy_tce == pytest.approx(400 * 357.9 / 1e4 / 29.3076)
    assert result.problems == ()


def test_an_interval_with_more_methane_burnt_than_captured_has_no_negative_escape() -> None:
    # Meter timing: 300 Nm3 utilised but only 200 drained and 50 ventilated in this interval.
    result = inventory({("shaft", "flow"): 50.0, ("drain", "flow"): 200.0, ("use", "flow"): 300.0})
    rows: dict[str, InventoryLine] = {r.category: r for r in result.rows}
    assert rows["fugitive"].tco2e == 0.0
    assert rows["fuel_combustion"].tco2e == pytest.approx(0.03 * 7.17 * 2.75 * 0.99)
    assert result.problems and "escape is set to 0" in result.problems[0]


def test_missing_data_makes_rows_missing_and_partial_data_estimated() -> None:
    result = inventory({("grid", "flow"): 1_000.0})  # the export register has no interval
    loc = rows_by(result.rows)[("purchased_electricity", "location")]
    assert loc.quality == "estimated" and loc.completeness == 0.5
    assert combined_quality([]) == ("missing", 0.0)


def test_split_exact_adds_up_exactly() -> None:
    parts = split_exact(0.1, [1.0, 1.0, 1.0])
    assert math.fsum(parts) == 0.1
    assert split_exact(1.0, [0.0, 0.0]) == (0.5, 0.5)  # no weights: equal parts
    assert split_exact(0.0, [1.0, 2.0]) == (0.0, 0.0)


def test_methane_volumes_equal_up_to_float_rounding_do_not_stop_the_interval() -> None:
    # 0.3 Nm3 released, 0.1 + 0.2 = 0.30000000000000004 Nm3 destroyed: equal but for the last
    # bit. The interval is computed (escape ≈ 0, noted), instead of raising for every cycle.
    result = inventory({("shaft", "flow"): 0.3, ("flare", "flow"): 0.1, ("use", "flow"): 0.2})
    rows: dict[str, InventoryLine] = {r.category: r for r in result.rows}
    assert rows["fugitive"].tco2e == pytest.approx(0.0, abs=1e-12)
    assert rows["flaring"].tco2e > 0 and rows["fuel_combustion"].tco2e > 0

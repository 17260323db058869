"""Low-carbon vehicle share and per-product reductions against a project-start baseline."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from carbonflow.domain.factors import default_targets
from carbonflow.domain.factors.library import load_library, package_data_files
from carbonflow.domain.flows.graph import ZERO, FlowGraph, ProductFlow
from carbonflow.domain.indicators.formulas import FleetGroup, Status, fleet_low_carbon_share
from carbonflow.domain.indicators.kpis import (
    PeriodInputs,
    fleet_groups,
    org_indicators,
    site_indicators,
)
from carbonflow.domain.inventory.lines import Figures
from carbonflow.domain.inventory.site_factors import site_factors
from carbonflow.domain.site.plan import plan_from_document
from carbonflow.domain.units import ratio
from carbonflow.sites.loader import SiteFileError, parse_site_text

SH = ZoneInfo("Asia/Shanghai")
MARCH = datetime(2025, 3, 1, tzinfo=SH)
APRIL = datetime(2025, 4, 1, tzinfo=SH)


def test_fleet_share_weighs_vehicles_by_days_in_service() -> None:
    # March 2025 (31 days): 30 diesel trucks all month = 930 vehicle-days; 60 electric trucks
    # = 1 860; 10 LNG trucks from 16 March = 10 × 16 = 160; 5 diesel retired in February = 0.
    # Share (1 860 + 160) / (930 + 1 860 + 160) = 2 020 / 2 950 = 0.684746 (to 6 places).
    groups = [
        FleetGroup(30, False),
        FleetGroup(60, True),
        FleetGroup(10, True, in_service_from=datetime(2025, 3, 16, tzinfo=SH)),
        FleetGroup(5, False, in_service_to=datetime(2025, 2, 1, tzinfo=SH)),
    ]
    share = fleet_low_carbon_share(groups, MARCH, APRIL)
    assert share.numerator == pytest.approx(2020.0)
    assert share.denominator == pytest.approx(2950.0)
    assert share.value == pytest.approx(2020 / 2950)
    assert share.unit == "fraction"


def test_fleet_share_without_vehicles_in_service_is_undefined() -> None:
    gone = FleetGroup(5, True, in_service_to=datetime(2025, 2, 1, tzinfo=SH))
    assert fleet_low_carbon_share([gone], MARCH, APRIL).value is None
    with pytest.raises(ValueError, match="ends before"):
        fleet_low_carbon_share([], APRIL, MARCH)


PARK = """
site: {id: p, name: P, kind: park, province: inner_mongolia, grid_region: northwest}
organisations: [{id: log, name: L, industry: logistics}]
nodes:
  - {id: fleet, name: Fleet, kind: transport, org: log}
vehicles:
  - {org: log, node: fleet, powertrain: diesel, count: 30}
  - {org: log, node: fleet, powertrain: battery_electric, count: 60}
  - {org: log, node: fleet, powertrain: natural_gas, count: 10, in_service_from: 2025-03-16}
  - {org: log, node: fleet, powertrain: diesel, count: 5, in_service_to: 2025-02-01}
  - {org: log, node: fleet, powertrain: hybrid, count: 0, note: none yet}
"""


def test_park_fleet_share_against_the_2025_target() -> None:
    # 0.684746 against > 0.70 (2025, Shanxi demonstration zones): misses by 0.0153, within
    # 10 % of 0.70 (0.07) → at risk.
    plan = plan_from_document(parse_site_text(PARK, "p.yaml"))
    assert plan.document is not None
    groups = fleet_groups(plan.document, plan.timezone)
    assert [g.low_carbon for g in groups] == [False, True, True, False, False]
    inputs = PeriodInputs(
        plan, 2025, 31.0, 365, [], {}, 1.0, period_start=MARCH, period_end=APRIL
    )  # fmt: skip
    factors = site_factors(
        load_library(package_data_files()), province="inner_mongolia", grid_region="northwest",
        year=2025,
    )  # fmt: skip
    outcomes = site_indicators(inputs, default_targets(), factors, None)
    (fleet,) = [o for o in outcomes if o.indicator == "low_carbon_vehicle_share"]
    assert fleet.result.value.value == pytest.approx(2020 / 2950)
    assert fleet.result.status is Status.AT_RISK
    assert fleet.basis == "fleet"
    # Without the period's span (old callers) the indicator is not computed.
    bare = PeriodInputs(plan, 2025, 31.0, 365, [], {}, 1.0)
    names = {o.indicator for o in site_indicators(bare, default_targets(), factors, None)}
    assert "low_carbon_vehicle_share" not in names


def test_vehicle_groups_are_validated() -> None:
    bad = PARK.replace("powertrain: hybrid", "powertrain: steam")
    with pytest.raises(SiteFileError, match="powertrain"):
        parse_site_text(bad, "p.yaml")
    backwards = PARK.replace(
        "in_service_from: 2025-03-16", "in_service_from: 2025-03-16, in_service_to: 2025-03-01"
    )
    with pytest.raises(SiteFileError, match="leaves service after it enters"):
        parse_site_text(backwards, "p.yaml")


ENTERPRISE = """
site: {id: e, name: E, kind: park, province: shanxi, grid_region: north}
organisations:
  - {id: steelworks, name: S, industry: steel}
  - {id: cement, name: C, industry: building_materials}
  - {id: cathode, name: K, industry: battery_materials}
nodes:
  - {id: bf, name: BF, kind: process, org: steelworks}
  - {id: kiln, name: Kiln, kind: process, org: cement}
  - {id: line, name: Line, kind: process, org: cathode}
products:
  - {id: steel, name: Steel, unit: t, node: bf, org: steelworks}
  - {id: clinker, name: Clinker, unit: t, node: kiln, org: cement}
  - {id: cathode-material, name: Cathode, unit: t, node: line, org: cathode}
project_baseline:
  year: 2023
  products:
    steel: {output: 900000, co2e_t: 1800000}        # 2.0 tCO2e/t
    clinker: {output: 500000, co2e_t: 400000}       # 0.8 tCO2e/t
    cathode-material: {output: 20000, co2e_t: 60000} # 3.0 tCO2e/t
"""


def product(pid: str, org: str, co2e_t: float, output_t: float) -> ProductFlow:
    r = ratio(co2e_t, output_t, "tCO2e/t")
    vec = Figures(0.0, 0.0, co2e_t, co2e_t, co2e_t, co2e_t)
    return ProductFlow(pid, "n", org, output_t, "t", vec, "test", r, r, footprint=vec, final=vec)


def test_unit_product_reduction_against_the_project_start() -> None:
    doc = parse_site_text(ENTERPRISE, "e.yaml")
    graph = FlowGraph(
        site_id="e", nodes=(), links=(), totals=ZERO, orgs={},
        products=(
            product("steel", "steelworks", 1_700.0, 1_000.0),  # 1.7 tCO2e/t
            product("clinker", "cement", 760.0, 1_000.0),  # 0.76 tCO2e/t
            product("cathode-material", "cathode", 0.0, 0.0),  # nothing made this month
        ),
    )  # fmt: skip
    out = org_indicators(graph, kind="park", year=2026, targets=default_targets(), doc=doc)
    by = {o.indicator: o for o in out}
    # Steel: (2.0 − 1.7) / 2.0 = 0.15 against ≥ 0.15 by 2030 (the next milestone) → on track.
    steel = by["unit_product_co2_reduction.steel"]
    assert steel.org_id == "steelworks"
    assert steel.result.value.value == pytest.approx(0.15)
    assert steel.result.status is Status.ON_TRACK
    assert steel.result.target is not None and steel.result.target.threshold == 0.15
    # Clinker: (0.8 − 0.76) / 0.8 = 0.05 against ≥ 0.10: misses by 0.05 > 10 % of 0.10 → off.
    clinker = by["unit_product_co2_reduction.clinker"]
    assert clinker.result.value.value == pytest.approx(0.05)
    assert clinker.result.status is Status.OFF_TRACK
    # Battery materials: no document gives a target; no output → undefined either way.
    cathode = by["unit_product_co2_reduction.cathode-material"]
    assert cathode.result.status is Status.INSUFFICIENT_DATA
    graph2 = FlowGraph("e", (), (), (product("cathode-material", "cathode", 2_700.0, 1_000.0),),
                       ZERO, {})  # fmt: skip
    (k,) = [
        o
        for o in org_indicators(graph2, kind="park", year=2026, targets=default_targets(), doc=doc)
        if o.indicator.startswith("unit_product")
    ]
    # (3.0 − 2.7) / 3.0 = 0.10 with no target for the industry.
    assert k.result.value.value == pytest.approx(0.10)
    assert k.result.status is Status.NO_TARGET


def test_project_baseline_names_known_products() -> None:
    bad = ENTERPRISE.replace("    clinker: {output", "    klinker: {output")
    with pytest.raises(SiteFileError, match="klinker"):
        parse_site_text(bad, "e.yaml")


def test_a_product_link_names_a_product_of_its_source() -> None:
    site = """
site: {id: m, name: M, kind: mine, province: shanxi, grid_region: north}
organisations: [{id: c, name: C}]
nodes:
  - {id: hoist, name: H, kind: process, org: c}
  - {id: prep, name: P, kind: process, org: c}
products:
  - {id: raw, name: R, unit: t, node: hoist, org: c}
  - {id: washed, name: W, unit: t, node: prep, org: c}
edges:
  - {source: hoist, target: prep, carrier: raw_coal, product: PRODUCT}
"""
    assert parse_site_text(site.replace("PRODUCT", "raw"), "m.yaml").edges[0].product == "raw"
    with pytest.raises(SiteFileError, match="made at 'prep'"):
        parse_site_text(site.replace("PRODUCT", "washed"), "m.yaml")
    with pytest.raises(SiteFileError, match="carries one of"):
        parse_site_text(
            site.replace("PRODUCT", "raw").replace("carrier: raw_coal", "carrier: electricity"),
            "m.yaml",
        )


def test_new_fields_at_their_defaults_leave_the_normalised_document_unchanged() -> None:
    # A file without vehicles, project baseline or edge products dumps without those keys, so
    # the hash of a stored site document does not change with the model.
    doc = parse_site_text(PARK.split("vehicles:", maxsplit=1)[0], "p.yaml")
    dumped = doc.model_dump(mode="json")
    assert "vehicles" not in dumped and "project_baseline" not in dumped
    with_fleet = parse_site_text(PARK, "p.yaml").model_dump(mode="json")
    assert len(with_fleet["vehicles"]) == 5

"""Product footprints carried along product links (allocation.pass_along, flows, indicators).

Hand-worked numbers; vectors of the pure function are (tCO2e, tce) unless said otherwise.
"""

from __future__ import annotations

import math
from datetime import date
from functools import cache

import pytest

from carbonflow.domain.factors import default_targets
from carbonflow.domain.factors.library import load_library, package_data_files
from carbonflow.domain.flows.allocation import ProductTransfer, pass_along
from carbonflow.domain.flows.graph import COMPONENTS, FlowGraph, build_flows
from carbonflow.domain.indicators.kpis import org_indicators
from carbonflow.domain.inventory.balance import Quantity, slot_inventory
from carbonflow.domain.inventory.site_factors import SiteFactors, site_factors
from carbonflow.domain.site.plan import SitePlan, flow_metric, plan_from_document
from carbonflow.sites.loader import parse_site_text

DAY = date(2025, 3, 1)

# --- the pure rule ----------------------------------------------------------------------------


def test_upstream_footprint_flows_on_in_proportion_to_what_is_fed() -> None:
    # Raw coal: own 10 tCO2e / 4 tce, 1000 t hoisted, 800 t fed to the washery → 0.8 flows on:
    # 8 t / 3.2 tce; raw coal keeps 2 t / 0.8 tce. Washed coal: own 2 t / 1 tce + 8 / 3.2 =
    # footprint 10 t / 4.2 tce, all final (it leaves the site). Σ final 2 + 10 = 12 = Σ own.
    own = {"raw": (10.0, 4.0), "washed": (2.0, 1.0)}
    fps, shares, notes = pass_along(
        own,
        {"raw": 1000.0, "washed": 500.0},
        [ProductTransfer("raw", ("washed",), 800.0, (500.0,))],
    )
    raw, washed = fps["raw"], fps["washed"]
    assert raw.footprint == pytest.approx((10.0, 4.0))
    assert raw.passed_on == pytest.approx((8.0, 3.2))
    assert raw.final == pytest.approx((2.0, 0.8))
    assert raw.passed_fraction == pytest.approx(0.8)
    assert washed.embodied == pytest.approx((8.0, 3.2))
    assert washed.footprint == pytest.approx((10.0, 4.2))
    assert washed.final == washed.footprint
    assert [(s.upstream, s.downstream) for s in shares] == [("raw", "washed")]
    assert notes == ()
    for c in range(2):
        assert math.fsum(f.final[c] for f in fps.values()) == pytest.approx(
            math.fsum(v[c] for v in own.values()), rel=1e-15
        )


def test_chain_of_unmetered_links_carries_everything_to_the_last_product() -> None:
    # A (own 6, 100 t) → B (own 3) → C (own 1): unmetered links take all of the output.
    # B footprint 3 + 6 = 9, C footprint 1 + 9 = 10; finals A 0, B 0, C 10.
    fps, _shares, _notes = pass_along(
        {"a": (6.0,), "b": (3.0,), "c": (1.0,)},
        {"a": 100.0, "b": 50.0, "c": 10.0},
        [ProductTransfer("b", ("c",), None, (10.0,)), ProductTransfer("a", ("b",), None, (50.0,))],
    )
    assert fps["b"].footprint == pytest.approx((9.0,))
    assert fps["c"].footprint == pytest.approx((10.0,))
    assert [fps[p].final[0] for p in "abc"] == pytest.approx([0.0, 0.0, 10.0], abs=1e-12)


def test_fed_on_shared_among_the_products_of_the_receiving_node_by_output() -> None:
    # Raw coal own 10, 1000 t; 600 t fed → 6 t flows on, split by output between washed coal
    # (300 t) and middlings (100 t): 6 × 3/4 = 4.5 and 6 × 1/4 = 1.5; raw coal keeps 4.
    fps, _s, _n = pass_along(
        {"raw": (10.0,), "washed": (0.0,), "middlings": (0.0,)},
        {"raw": 1000.0, "washed": 300.0, "middlings": 100.0},
        [ProductTransfer("raw", ("washed", "middlings"), 600.0, (300.0, 100.0))],
    )
    assert fps["washed"].footprint[0] == pytest.approx(4.5)
    assert fps["middlings"].footprint[0] == pytest.approx(1.5)
    assert fps["raw"].final[0] == pytest.approx(4.0)


def test_more_fed_than_produced_and_nothing_produced() -> None:
    # 1200 t fed of 1000 t produced (stock drawn): scaled to all of it, noted.
    fps, _s, notes = pass_along(
        {"raw": (10.0,), "washed": (0.0,)},
        {"raw": 1000.0, "washed": 500.0},
        [ProductTransfer("raw", ("washed",), 1200.0, (500.0,))],
    )
    assert fps["washed"].footprint[0] == pytest.approx(10.0)
    assert fps["raw"].final[0] == pytest.approx(0.0, abs=1e-12)
    assert any("stock drawn" in n for n in notes)
    # Nothing hoisted (its fixed load 10 t), 300 t fed from the silo: all of it flows on.
    fps, _s, notes = pass_along(
        {"raw": (10.0,), "washed": (0.0,)},
        {"raw": 0.0, "washed": 200.0},
        [ProductTransfer("raw", ("washed",), 300.0, (200.0,))],
    )
    assert fps["washed"].footprint[0] == pytest.approx(10.0)
    assert any("nothing produced" in n for n in notes)


def test_products_made_from_each_other_carry_nothing() -> None:
    fps, shares, notes = pass_along(
        {"x": (1.0,), "y": (2.0,)},
        {"x": 1.0, "y": 1.0},
        [ProductTransfer("x", ("y",), None, (1.0,)), ProductTransfer("y", ("x",), None, (1.0,))],
    )
    assert (fps["x"].final, fps["y"].final) == ((1.0,), (2.0,))
    assert shares == ()
    assert any("made from each other" in n for n in notes)


# --- in the flow graph ------------------------------------------------------------------------

# Grid → substation → hoist (raw coal) and preparation plant (washed coal); raw coal goes on a
# belt from the hoist into the plant, metered by a feed scale; washed coal is dispatched.
SITE = """
site: {id: m, name: M, kind: mine, province: shanxi, grid_region: north}
organisations: [{id: coal, name: C}]
nodes:
  - {id: grid, name: Grid, kind: supply}
  - {id: dispatch, name: Dispatch, kind: sink}
  - {id: sub, name: Sub, kind: distribution, org: coal}
  - {id: hoist, name: Hoist, kind: process, org: coal}
  - {id: prep, name: Prep, kind: process, org: coal, production_system: false}
products:
  - {id: raw-coal, name: Raw, unit: t, node: hoist, org: coal}
  - {id: washed-coal, name: Washed, unit: t, node: prep, org: coal}
edges:
  - {source: grid, target: sub, carrier: electricity, meters: [grid]}
  - {source: sub, target: hoist, carrier: electricity, meters: [hoist-feeder]}
  - {source: sub, target: prep, carrier: electricity, meters: [prep-feeder]}
  - {source: hoist, target: prep, carrier: raw_coal, meters: [feed-scale]}
  - {source: prep, target: dispatch, carrier: washed_coal, meters: [washed-scale]}
devices:
  - {id: grid, name: G, kind: electricity_meter, carrier: electricity, role: grid_import,
     node: sub, org: coal}
  - {id: hoist-feeder, name: H, kind: electricity_meter, carrier: electricity, role: consumption,
     node: hoist, org: coal}
  - {id: prep-feeder, name: P, kind: electricity_meter, carrier: electricity, role: consumption,
     node: prep, org: coal}
  - {id: raw-scale, name: R, kind: production_meter, carrier: raw_coal, role: production,
     product: raw-coal, node: hoist, org: coal}
  - {id: feed-scale, name: F, kind: production_meter, carrier: raw_coal, role: consumption,
     node: prep, org: coal}
  - {id: washed-scale, name: W, kind: production_meter, carrier: washed_coal, role: production,
     product: washed-coal, node: prep, org: coal}
"""

VALUES = {
    "grid": 10_000.0,  # kWh
    "hoist-feeder": 6_000.0,
    "prep-feeder": 4_000.0,
    "raw-scale": 1_000.0,  # t hoisted
    "feed-scale": 800.0,  # t fed to the plant
    "washed-scale": 500.0,  # t washed coal
}


@cache
def setup() -> tuple[SitePlan, SiteFactors]:
    plan = plan_from_document(parse_site_text(SITE, "m.yaml"))
    lib = load_library(package_data_files())
    return plan, site_factors(lib, province="shanxi", grid_region="north", year=2025)


def graph(values: dict[str, float]) -> FlowGraph:
    plan, factors = setup()
    q: dict[tuple[int, int], float] = {}
    for device_id, value in values.items():
        d = next(x for x in plan.devices if x.device_id == device_id)
        m = flow_metric(d)
        assert m is not None
        q[(d.device_pk, m.metric_id)] = value
    rows = slot_inventory(
        plan, {k: Quantity(v, "measured", 1.0) for k, v in q.items()}, factors, day=DAY
    ).rows
    return build_flows(plan, rows, q, factors)


def test_washed_coal_carries_the_raw_coal_fed_into_the_plant() -> None:
    g = graph(VALUES)
    p = {x.product_id: x for x in g.products}
    raw, washed = p["raw-coal"], p["washed-coal"]
    # 10 MWh × 0.6634 tCO2/MWh = 6.634 t at the substation → hoist 6/10 = 3.9804 t, plant
    # 4/10 = 2.6536 t. Raw coal (gate-to-gate = cradle-to-gate): 3.9804 / 1000 t = 0.0039804.
    assert raw.allocated.tco2e_location == pytest.approx(3.9804)
    assert raw.intensity_location.value == pytest.approx(0.0039804)
    # 800 of 1000 t fed on: 0.8 × 3.9804 = 3.18432 t; raw coal keeps 0.79608 t as final.
    assert raw.passed_on.tco2e_location == pytest.approx(3.18432)
    assert raw.final.tco2e_location == pytest.approx(0.79608)
    # Washed coal: own 2.6536 + 3.18432 = 5.83792 t over 500 t = 0.01167584 tCO2e/t
    # (gate-to-gate only 2.6536 / 500 = 0.0053072).
    assert washed.allocated.tco2e_location == pytest.approx(2.6536)
    assert washed.footprint.tco2e_location == pytest.approx(5.83792)
    assert washed.intensity_location.value == pytest.approx(0.01167584)
    assert washed.gate_intensity_location is not None
    assert washed.gate_intensity_location.value == pytest.approx(0.0053072)
    assert washed.made_from == ("raw-coal",)
    # Energy: 10 000 kWh × 0.1229 kgce/kWh = 1.229 tce; washed coal 0.4916 + 0.8 × 0.7374 =
    # 1.08152 tce cradle-to-gate.
    assert washed.footprint.energy_tce == pytest.approx(1.08152)
    (link,) = g.embodied_links
    assert (link.source, link.target, link.kind) == ("product:raw-coal", "product:washed-coal",
                                                     "embodied")  # fmt: skip
    assert (link.quantity, link.unit) == (800.0, "t")
    assert link.component("tco2e_location") == pytest.approx(3.18432)


def test_finals_add_up_to_the_period_totals_no_double_counting() -> None:
    g = graph(VALUES)
    for name in COMPONENTS:
        finals = math.fsum(p.final.component(name) for p in g.products) + math.fsum(
            link.attributed.component(name)
            for link in g.final_links()
            if link.target.startswith("unallocated")
        )
        assert finals == pytest.approx(g.totals.component(name), rel=1e-12, abs=1e-15), name
        # The allocation column is unchanged: gate-to-gate shares still close exactly.
        assert math.fsum(
            link.attributed.component(name) for link in g.final_links()
        ) == g.totals.component(name), name
        # Footprints count the embodied part twice over (upstream and downstream): Σ footprint
        # = Σ final + Σ passed on, which is why only finals are totals.
        footprints = math.fsum(p.footprint.component(name) for p in g.products)
        passed = math.fsum(p.passed_on.component(name) for p in g.products)
        assert footprints == pytest.approx(finals + passed, rel=1e-12, abs=1e-15), name


def test_product_link_metered_by_the_output_meter_carries_everything() -> None:
    # The example mine meters the belt into the plant with the raw-coal scale itself: all the
    # raw coal hoisted is washed, so raw coal's final total is 0 and washed coal carries 6.634 t.
    g = graph({**VALUES, "feed-scale": 1_000.0})
    p = {x.product_id: x for x in g.products}
    assert p["raw-coal"].final.tco2e_location == pytest.approx(0.0, abs=1e-12)
    assert p["washed-coal"].footprint.tco2e_location == pytest.approx(6.634)


def test_product_intensity_indicator_is_cradle_to_gate() -> None:
    g = graph(VALUES)
    outcomes = org_indicators(g, kind="mine", year=2025, targets=default_targets())
    by = {o.indicator: o for o in outcomes}
    assert by["product_intensity.washed-coal"].result.value.value == pytest.approx(0.01167584)
    assert by["product_intensity.raw-coal"].result.value.value == pytest.approx(0.0039804)

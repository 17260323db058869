"""The energy–carbon–product graph of a period (carbonflow/domain/flows/graph.py), hand-worked
numbers."""

from __future__ import annotations

import math
from datetime import date
from functools import cache

import pytest

from carbonflow.domain.factors.library import load_library, package_data_files
from carbonflow.domain.flows.graph import COMPONENTS, FlowGraph, build_flows
from carbonflow.domain.inventory.balance import Quantity, slot_inventory
from carbonflow.domain.inventory.site_factors import SiteFactors, site_factors
from carbonflow.domain.site.plan import SitePlan, flow_metric, plan_from_document, reverse_metric
from carbonflow.sites.loader import parse_site_text
from tests.support.small_park import SMALL_PARK

DAY = date(2025, 3, 1)

SITE = SMALL_PARK


@cache
def setup() -> tuple[SitePlan, SiteFactors]:
    plan = plan_from_document(parse_site_text(SITE, "g.yaml"))
    lib = load_library(package_data_files())
    return plan, site_factors(lib, province="shanxi", grid_region="north", year=2025)


def graph(values: dict[tuple[str, str], float]) -> FlowGraph:
    plan, factors = setup()
    q: dict[tuple[int, int], float] = {}
    for (device_id, which), value in values.items():
        d = next(x for x in plan.devices if x.device_id == device_id)
        m = reverse_metric(d) if which == "reverse" else flow_metric(d)
        assert m is not None
        q[(d.device_pk, m.metric_id)] = value
    rows = slot_inventory(
        plan, {k: Quantity(v, "measured", 1.0) for k, v in q.items()}, factors, day=DAY
    ).rows
    return build_flows(plan, rows, q, factors)


VALUES = {
    ("grid", "flow"): 10_000.0,  # kWh in
    ("grid", "reverse"): 0.0,
    ("feeder-a", "flow"): 6_000.0,
    ("feeder-b", "flow"): 3_000.0,
    ("bess", "reverse"): 1_000.0,  # charged
    ("bess", "flow"): 900.0,  # discharged
    ("diesel", "flow"): 100.0,  # L
    ("scale", "flow"): 50.0,  # t of product a
}


def test_link_totals_equal_the_period_totals_exactly() -> None:
    g = graph(VALUES)
    for name in COMPONENTS:
        sources = math.fsum(link.attributed.component(name) for link in g.source_links())
        products = math.fsum(link.attributed.component(name) for link in g.final_links())
        assert sources == g.totals.component(name), name
        assert products == g.totals.component(name), name
    assert math.fsum(v.tco2e_location for v in g.orgs.values()) == pytest.approx(
        g.totals.tco2e_location, rel=1e-15
    )


def test_grid_carbon_follows_the_electricity_to_the_end_uses() -> None:
    g = graph(VALUES)
    # 10 MWh × 0.6634 = 6.634 tCO2 enter at the substation. It passes on by metered tce to
    # works A (6 MWh), works B (3 MWh) and the battery (1 MWh charged): 3.9804, 1.9902,
    # 0.6634 t. The battery returns 0.9 MWh on a back edge, which carries no carbon.
    links = {(link.source, link.target): link for link in g.links}
    grid = links[("grid", "sub")]
    assert grid.kind == "supply" and grid.component("tco2e_location") == pytest.approx(6.634)
    assert links[("sub", "works-a")].component("tco2e_location") == pytest.approx(3.9804)
    assert links[("sub", "works-b")].component("tco2e_location") == pytest.approx(1.9902)
    assert links[("sub", "battery")].component("tco2e_location") == pytest.approx(0.6634)
    assert links[("battery", "sub")].kind == "back_edge"
    assert links[("battery", "sub")].component("tco2e_location") == 0.0
    assert links[("sub", "export")].kind == "sink"


def test_node_emissions_go_to_products_and_orgs_without_products_stay_unallocated() -> None:
    g = graph(VALUES)
    # Diesel: 100 L × 0.84 kg/L = 0.084 t × 42.652 × 0.0202 × 0.98 × 44/12 = 0.2600488 t at the
    # yard (org a-co, no product of its own) → a-co's primary product "a"; works A's 3.9804 t
    # too: product a = 4.2404488 t over 50 t = 0.084809 tCO2e/t.
    diesel = 0.084 * 42.652 * 0.0202 * 0.98 * 44 / 12
    product = g.products[0]
    assert product.allocated.tco2e_location == pytest.approx(3.9804 + diesel)
    assert product.intensity_location.value == pytest.approx((3.9804 + diesel) / 50)
    finals = {link.target: link.attributed.tco2e_location for link in g.final_links()}
    assert finals["unallocated:b-co"] == pytest.approx(1.9902)
    assert finals["unallocated:park"] == pytest.approx(0.6634)  # the battery's share
    assert g.orgs["a-co"].tco2e_location == pytest.approx(3.9804 + diesel)


def test_a_product_without_output_gets_an_undefined_intensity() -> None:
    g = graph({**VALUES, ("scale", "flow"): 0.0})
    assert g.products[0].intensity_location.value is None
    assert "equal shares" in g.products[0].basis

"""An edge whose meters measure different quantities (diesel in L on one, in t on another)
cannot be summed (issue 15): a site file with one is refused at load, naming file, line and
edge; if stored data still brings one to the flow graph, that edge is quarantined (unmetered,
with a note the calc turns into a data event) and the rest of the graph computes."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from carbonflow.domain.factors.library import load_library, package_data_files
from carbonflow.domain.flows.graph import QUARANTINED, build_flows
from carbonflow.domain.inventory.balance import Quantity, slot_inventory
from carbonflow.domain.inventory.site_factors import site_factors
from carbonflow.domain.site.plan import MetricPlan, SitePlan, flow_metric, plan_from_document
from carbonflow.sites.loader import SiteFileError, parse_site_text

SITE = """
site: {id: y, name: Y, kind: enterprise, province: shanxi, grid_region: north}
organisations: [{id: y-co, name: Y}]
nodes:
  - {id: fuel, name: Fuel, kind: supply}
  - {id: grid, name: Grid, kind: supply}
  - {id: yard, name: Yard, kind: transport, org: y-co}
edges:
  - {source: grid, target: yard, carrier: electricity, meters: [grid-meter]}
  - {source: fuel, target: yard, carrier: diesel, meters: [tank-a, tank-b]}
devices:
  - {id: grid-meter, name: G, kind: electricity_meter, carrier: electricity, role: grid_import,
     node: yard, org: y-co}
  - {id: tank-a, name: A, kind: fuel_dispenser, carrier: diesel, role: fuel_supply, node: yard,
     org: y-co, default_metrics: false, metrics: {volume_l: counter}}
  - {id: tank-b, name: B, kind: fuel_dispenser, carrier: diesel, role: fuel_supply, node: yard,
     org: y-co, default_metrics: false, metrics: {volume_l: counter}}
"""


def test_a_mixed_unit_edge_is_refused_at_load_with_its_line() -> None:
    mixed = SITE.rsplit("metrics: {volume_l: counter}}", 1)[0] + "metrics: {mass_t: counter}}\n"
    with pytest.raises(SiteFileError) as err:
        parse_site_text(mixed, "yard.yaml")
    message = str(err.value)
    # line 10 of the file holds edges[1]
    assert "yard.yaml:10: edges[1].meters: the meters of edge 'fuel' → 'yard' (diesel)" in message
    assert "tank-a: volume_l [L]; tank-b: mass_t [t]" in message
    parse_site_text(SITE, "yard.yaml")  # the same edge in one unit loads


def _plan_with_tank_b_in_tonnes() -> SitePlan:
    """The registry says tank-b now counts tonnes (a device re-configured after the file was
    loaded): the plan the calc gets has an edge whose meters disagree."""
    plan = plan_from_document(parse_site_text(SITE, "yard.yaml"))
    devices = tuple(
        replace(d, metrics=(MetricPlan(d.metrics[0].metric_id, "mass_t", "counter", "t"),))
        if d.device_id == "tank-b"
        else d
        for d in plan.devices
    )
    return replace(plan, devices=devices)


def test_a_mixed_unit_edge_reaching_the_graph_is_quarantined_and_the_rest_computes() -> None:
    plan = _plan_with_tank_b_in_tonnes()
    lib = load_library(package_data_files())
    factors = site_factors(lib, province="shanxi", grid_region="north", year=2025)
    q: dict[tuple[int, int], float] = {}
    for d in plan.devices:
        metric = flow_metric(d)
        assert metric is not None
        q[(d.device_pk, metric.metric_id)] = {"grid-meter": 1_000.0}.get(d.device_id, 10.0)
    rows = slot_inventory(
        plan, {k: Quantity(v, "measured", 1.0) for k, v in q.items()}, factors, day=date(2025, 3, 1)
    ).rows
    graph = build_flows(plan, rows, q, factors)
    quarantined = [n for n in graph.notes if n.startswith(QUARANTINED)]
    assert len(quarantined) == 1 and "fuel → yard (diesel)" in quarantined[0]
    assert "cannot convert t (mass) to L" in quarantined[0]
    links = {(link.source, link.target, link.carrier): link for link in graph.links}
    # the electricity edge still carries its metered 1 000 kWh and its carbon (1 MWh × 0.6634)
    grid = links[("grid", "yard", "electricity")]
    assert grid.quantity == 1_000.0
    assert grid.attributed.tco2e_location == pytest.approx(0.6634, rel=1e-12)
    # the quarantined edge has no metered quantity; the period's totals are still complete
    assert links[("fuel", "yard", "diesel")].quantity is None
    assert graph.totals.tco2e_location == pytest.approx(
        sum(r.tco2e for r in rows if r.basis != "market")
    )

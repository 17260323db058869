"""Purchased heat and steam in a park (issue 15): netted against the heat a site delivers off
site (``heat_export``), and shared by the site file's ``attribution`` like electricity — every
tonne on one owner. Hand-worked numbers on a small steam network, the load-time checks, and the
invariant site = Σ organisations + common account on the example park with purchased heat."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from datetime import date
from functools import cache
from zoneinfo import ZoneInfo

import pytest

from carbonflow.domain.factors.library import load_library, package_data_files
from carbonflow.domain.inventory.balance import (
    Quantity,
    heat_export_surplus_gj,
    inventory_devices,
    merge_rows,
    settle_period,
    slot_inventory,
)
from carbonflow.domain.inventory.lines import Basis, Category, InventoryLine, View
from carbonflow.domain.inventory.site_factors import SiteFactors, site_factors
from carbonflow.domain.site.plan import SitePlan, flow_metric, plan_from_document
from carbonflow.sites.loader import EXAMPLES, SiteFileError, parse_site_text
from simulators.ledger import expected_ledger
from simulators.oracle import PeriodTotals

DAY = date(2025, 3, 1)

# A steam network "net" of the park operator: steam bought from a power plant (steam-in), part
# delivered to a town network off site (steam-out, a sink), the rest to works A (a-co), works B
# (b-co) and the operator's office (park).
STEAM = """
site: {id: s, name: S, kind: park, province: shanxi, grid_region: north}
organisations: [{id: a-co, name: A}, {id: b-co, name: B}, {id: park, name: P}]
nodes:
  - {id: plant, name: Power plant, kind: supply}
  - {id: town, name: Town heat network, kind: sink}
  - {id: net, name: Steam network, kind: distribution, org: park}
  - {id: works-a, name: A, kind: process, org: a-co}
  - {id: works-b, name: B, kind: process, org: b-co}
  - {id: office, name: Office, kind: building, org: park}
edges:
  - {source: plant, target: net, carrier: steam, meters: [steam-in]}
  - {source: net, target: town, carrier: steam, meters: [steam-out]}
  - {source: net, target: works-a, carrier: steam, meters: [steam-a]}
  - {source: net, target: works-b, carrier: steam, meters: [steam-b]}
  - {source: net, target: office, carrier: steam, meters: [steam-office]}
devices:
  - {id: steam-in, name: In, kind: steam_meter, carrier: steam, role: heat_import, node: net,
     org: park}
  - {id: steam-out, name: Out, kind: steam_meter, carrier: steam, role: heat_export, node: net,
     org: park}
  - {id: steam-a, name: A, kind: steam_meter, carrier: steam, role: consumption, node: works-a,
     org: a-co}
  - {id: steam-b, name: B, kind: steam_meter, carrier: steam, role: consumption, node: works-b,
     org: b-co}
  - {id: steam-office, name: O, kind: steam_meter, carrier: steam, role: consumption,
     node: office, org: park}
"""
RULE = "attribution: [{node: net, common: park}]\n"

# One interval [GJ]: 100 bought, 20 delivered to the town, A 50, B 20, office 5 (5 lost).
VALUES = {"steam-in": 100.0, "steam-out": 20.0, "steam-a": 50.0, "steam-b": 20.0,
          "steam-office": 5.0}  # fmt: skip
HEAT_T_PER_GJ = 0.11  # purchased heat factor [tCO2/GJ]
TCE_PER_GJ = 0.03412  # GB/T 2589—2020 heat [tce/GJ]


@cache
def factors() -> SiteFactors:
    lib = load_library(package_data_files())
    return site_factors(lib, province="shanxi", grid_region="north", year=2025)


def _plan(text: str) -> SitePlan:
    return plan_from_document(parse_site_text(text, "s.yaml"))


def _rows(plan: SitePlan, values: dict[str, float]) -> list[InventoryLine]:
    q: dict[tuple[int, int], Quantity] = {}
    for device_id, value in values.items():
        d = next(x for x in plan.devices if x.device_id == device_id)
        m = flow_metric(d)
        assert m is not None and m.name == "heat_gj"
        q[(d.device_pk, m.metric_id)] = Quantity(value, "measured", 1.0)
    return list(slot_inventory(plan, q, factors(), day=DAY).rows)


def _heat_by_org(rows: Sequence[InventoryLine]) -> dict[str, tuple[float, float, float]]:
    """org → (GJ, tce, tCO2) of its purchased heat lines."""
    out: dict[str, tuple[float, float, float]] = {}
    for r in rows:
        if r.category == Category.PURCHASED_HEAT:
            gj, tce, t = out.get(r.org_id, (0.0, 0.0, 0.0))
            out[r.org_id] = (gj + r.activity, tce + r.energy_tce, t + r.tco2e)
    return out


def test_the_factors_are_the_ones_worked_by_hand() -> None:
    assert factors().heat.value == HEAT_T_PER_GJ
    assert factors().tce("heat").value == TCE_PER_GJ


def test_without_a_rule_the_import_meters_owner_takes_the_net_heat() -> None:
    # net = 100 − 20 = 80 GJ; 80 × 0.11 = 8.8 tCO2; 80 × 0.03412 = 2.7296 tce, all on "park".
    by_org = _heat_by_org(_rows(_plan(STEAM), VALUES))
    assert by_org.keys() == {"park"}
    assert by_org["park"] == pytest.approx((80.0, 2.7296, 8.8), abs=1e-12)


def test_enterprises_take_their_sub_meters_share_of_the_net_heat() -> None:
    # received = 100 in − 20 out to the town = 80 GJ; A takes 50/80, B 20/80, the common account
    # the rest 10/80 (its office 5 and the 5 lost): A 50 GJ, 5.5 t; B 20 GJ, 2.2 t; park 10 GJ,
    # 1.1 t. tce likewise: A 1.706, B 0.6824, park 0.3412.
    rows = _rows(_plan(STEAM + RULE), VALUES)
    by_org = _heat_by_org(rows)
    assert by_org["a-co"] == pytest.approx((50.0, 1.706, 5.5), abs=1e-12)
    assert by_org["b-co"] == pytest.approx((20.0, 0.6824, 2.2), abs=1e-12)
    assert by_org["park"] == pytest.approx((10.0, 0.3412, 1.1), abs=1e-12)
    heat = [r for r in rows if r.category == Category.PURCHASED_HEAT]
    assert {r.carrier for r in heat} == {"steam"} and {r.basis for r in heat} == {Basis.BOTH}
    assert {r.node_id for r in heat} == {"net"}
    # site = Σ orgs + common, in both views, exactly
    for view in View:
        site = math.fsum(r.tco2e for r in heat if r.basis.in_view(view))
        assert site == 8.8 or abs(site - 8.8) <= 1e-12


def test_the_inventory_reads_the_heat_sub_meters_of_a_rule() -> None:
    ids = {d.device_id for d in inventory_devices(_plan(STEAM + RULE))}
    assert ids == {"steam-in", "steam-out", "steam-a", "steam-b", "steam-office"}
    assert {d.device_id for d in inventory_devices(_plan(STEAM))} == {"steam-in", "steam-out"}


def test_exporting_more_heat_than_bought_books_zero_and_reports_the_excess() -> None:
    plan = _plan(STEAM + RULE)
    # interval 1: 10 in, 30 out → −20 GJ (−2.2 t, signed, so that periods add up)
    exporting = _rows(plan, {"steam-in": 10.0, "steam-out": 30.0, "steam-a": 0.0})
    assert math.fsum(r.tco2e for r in exporting) == pytest.approx(-2.2, abs=1e-12)
    settled, _surplus = settle_period(merge_rows(exporting))
    assert all(r.tco2e == 0 and r.activity == 0 for r in settled)
    assert heat_export_surplus_gj(merge_rows(exporting)) == pytest.approx(20.0, abs=1e-12)
    # with interval 2 (80 GJ net) the period nets to 60 GJ: 6.6 t, nothing in excess
    period = merge_rows(_rows(plan, VALUES) + exporting)
    settled, _surplus = settle_period(period)
    heat = [r for r in settled if r.category == Category.PURCHASED_HEAT]
    assert math.fsum(r.activity for r in heat) == pytest.approx(60.0, abs=1e-12)
    assert math.fsum(r.tco2e for r in heat) == pytest.approx(6.6, abs=1e-12)
    assert heat_export_surplus_gj(period) == 0.0


def test_an_export_only_interval_is_booked_at_the_export_meter() -> None:
    rows = _rows(_plan(STEAM), {"steam-out": 5.0})
    by_org = _heat_by_org(rows)
    assert by_org.keys() == {"park"}
    assert by_org["park"] == pytest.approx((-5.0, -0.1706, -0.55), abs=1e-12)


def test_an_unowned_heat_edge_is_refused_at_load() -> None:
    broken = (STEAM + RULE).replace(
        "{source: net, target: works-b, carrier: steam, meters: [steam-b]}",
        "{source: net, target: works-b, carrier: steam}",
    )
    with pytest.raises(SiteFileError, match="steam from 'net' to 'works-b' has no owner"):
        parse_site_text(broken, "s.yaml")


# --- the example park, buying its heat and steam ---------------------------------------------

_PARK = EXAMPLES / "inner-mongolia-park.yaml"


def _park_buying_heat() -> str:
    """The example park with its boiler outputs bought instead (heat_import at the networks),
    a hot-water delivery to the town (heat_export) and both networks attributed."""
    text = _PARK.read_text(encoding="utf-8")
    for device, node in (("steam-boiler-output", "steam-network"),
                         ("hot-water-boiler-output", "heat-network")):  # fmt: skip
        start = text.index(f"  - id: {device}\n")
        end = text.index("  - id: ", start + 5)
        block = text[start:end]
        text = text.replace(
            block,
            block.replace("role: generation_heat", "role: heat_import").replace(
                "node: boiler-house", f"node: {node}"
            ),
        )
    anchor = "  - {id: park-services, name:"
    text = text.replace(anchor, "  - {id: town-heat, name: Town heat, kind: sink}\n" + anchor, 1)
    edge = "  - {source: heat-network, target: warehouses,"
    text = text.replace(
        edge,
        "  - {source: heat-network, target: town-heat, carrier: heat, meters: [town-heat-meter]}\n"
        + edge,
        1,
    )
    text = text.replace(
        "attribution:\n",
        "attribution:\n  - {node: steam-network, common: park-energy}\n"
        "  - {node: heat-network, common: park-energy}\n",
        1,
    )
    device = (
        "  - {id: town-heat-meter, name: Town heat, kind: heat_meter, carrier: heat,"
        " role: heat_export, node: heat-network, org: park-energy}\n"
    )
    return text.replace("\n# Transport vehicles", "\n" + device + "\n# Transport vehicles", 1)


Key = tuple[str, str, str, str, str]


def _totals(rows: Sequence[InventoryLine]) -> dict[Key, list[float]]:
    out: dict[Key, list[float]] = {}
    for r in rows:
        key = (str(r.category), r.carrier, str(r.gas), str(r.scope), str(r.basis))
        acc = out.setdefault(key, [0.0] * 5)
        for i, v in enumerate((r.activity, r.energy_tce, r.zero_carbon_tce, r.gas_t, r.tco2e)):
            acc[i] += v
    return out


def test_site_is_the_sum_of_its_owners_for_heat_on_the_example_park() -> None:
    doc = parse_site_text(_park_buying_heat(), "park.yaml")
    plan = plan_from_document(doc)
    plain = plan_from_document(doc.model_copy(update={"attribution": []}))
    assert {r.group for r in plan.shares} == {"electricity", "heat"}
    lib = load_library(package_data_files())
    f = site_factors(lib, province=doc.site.province.value, grid_region="north", year=2025)
    rng = random.Random(15)
    worst = 0.0
    for _slot in range(24):
        q: dict[tuple[int, int], Quantity] = {}
        for d in plan.devices:
            m = flow_metric(d)
            if m is not None:
                q[(d.device_pk, m.metric_id)] = Quantity(rng.uniform(0, 500), "measured", 1.0)
        attributed = slot_inventory(plan, q, f, day=DAY).rows
        site, owners = _totals(slot_inventory(plain, q, f, day=DAY).rows), _totals(attributed)
        assert set(site) == set(owners)
        for key, values in site.items():
            for a, b in zip(values, owners[key], strict=True):
                worst = max(worst, abs(a - b))
                assert b == pytest.approx(a, abs=1e-9), key
        heat = [r for r in attributed if r.category == Category.PURCHASED_HEAT]
        assert {r.carrier for r in heat} == {"heat", "steam"}
    assert worst <= 1e-9
    # the steam goes to the cathode plant's lines (and the common account), the hot water to
    # every organisation that takes heat from the network
    orgs = {(r.carrier, r.org_id) for r in attributed if r.category == Category.PURCHASED_HEAT}
    assert ("steam", "cathode-plant") in orgs and ("heat", "logistics-centre") in orgs
    assert ("heat", "cathode-plant") in orgs and ("heat", "park-energy") in orgs


def test_the_simulators_oracle_nets_heat_as_the_platform_does() -> None:
    # the same steam network through the oracle: 100 − 20 = 80 GJ → 8.8 t, 2.7296 tce; with
    # 130 GJ delivered off site nothing is purchased heat (never below 0)
    doc = parse_site_text(STEAM + RULE, "s.yaml")

    def heat(exported: float) -> tuple[float, float]:
        totals = PeriodTotals(
            1.75e9, 1.75e9 + 86_400, {"steam-in": {"heat_gj": 100.0},
                                      "steam-out": {"heat_gj": exported}}, {}, 96,
        )  # fmt: skip
        record = expected_ledger(doc, totals, ZoneInfo("Asia/Shanghai"))
        t = sum(e["tco2e"] for e in record["emissions"] if e["label"] == "purchased heat")
        tce = sum(
            c["tce"] for c in record["energy"]["conversions"] if c["carrier"] == "heat (purchased)"
        )
        return t, tce

    assert heat(20.0) == pytest.approx((8.8, 2.7296), abs=1e-12)
    assert heat(130.0) == (0, 0)

"""Who owns a tonne in a park (ACCOUNTING §6a; issue 15): the site file's ``attribution`` splits
the purchased electricity metered at a distribution node between the enterprises behind its
sub-metered feeders and the park's common account. Hand-worked numbers, the load-time checks,
and the invariant on every example site: site total = Σ owners, for every category, gas, scope
and basis, unchanged by the attribution."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from datetime import date
from functools import cache

import pytest

from carbonflow.domain.factors.library import load_library, package_data_files
from carbonflow.domain.inventory.balance import Quantity, inventory_devices, slot_inventory
from carbonflow.domain.inventory.lines import Basis, Category, InventoryLine
from carbonflow.domain.inventory.site_factors import SiteFactors, site_factors
from carbonflow.domain.site.model import SiteDocument
from carbonflow.domain.site.plan import SitePlan, flow_metric, plan_from_document, reverse_metric
from carbonflow.sites.loader import EXAMPLES, SiteFileError, load_site_file, parse_site_text
from tests.support.small_park import SMALL_PARK

DAY = date(2025, 3, 1)

# tests/support/small_park.py: grid (10 MWh) and a battery's discharge (0.9 MWh) reach the park
# substation "sub"; it feeds works A (a-co, 6 MWh), works B (b-co, 3 MWh) and charges the battery
# (park, 1 MWh); the diesel of a-co's yard is not electricity and stays where it is booked.
SITE = SMALL_PARK
RULE = "attribution: [{node: sub, common: park}]\n"
PRO_RATA = "attribution: [{node: sub, common: park, unmetered: pro_rata}]\n"

VALUES = {
    ("grid", "flow"): 10_000.0,  # kWh imported
    ("grid", "reverse"): 0.0,  # exported
    ("feeder-a", "flow"): 6_000.0,
    ("feeder-b", "flow"): 3_000.0,
    ("bess", "reverse"): 1_000.0,  # charged
    ("bess", "flow"): 900.0,  # discharged
}


@cache
def factors() -> SiteFactors:
    lib = load_library(package_data_files())
    return site_factors(lib, province="shanxi", grid_region="north", year=2025)


def _plan(text: str) -> SitePlan:
    return plan_from_document(parse_site_text(text, "g.yaml"))


def _rows(plan: SitePlan, values: dict[tuple[str, str], float]) -> Sequence[InventoryLine]:
    q: dict[tuple[int, int], Quantity] = {}
    for (device_id, which), value in values.items():
        d = next(x for x in plan.devices if x.device_id == device_id)
        m = reverse_metric(d) if which == "reverse" else flow_metric(d)
        assert m is not None
        q[(d.device_pk, m.metric_id)] = Quantity(value, "measured", 1.0)
    return slot_inventory(plan, q, factors(), day=DAY).rows


def _location_by_org(rows: Sequence[InventoryLine]) -> dict[str, float]:
    out: dict[str, float] = {}
    for r in rows:
        if r.category == Category.PURCHASED_ELECTRICITY and r.basis == Basis.LOCATION:
            out[r.org_id] = out.get(r.org_id, 0.0) + r.tco2e
    return out


def test_without_a_rule_the_grid_meters_owner_takes_it_all() -> None:
    # 10 MWh × 0.6634 tCO2/MWh (Shanxi 2023) = 6.634 t, all on the grid meter's org.
    assert _location_by_org(_rows(_plan(SITE), VALUES)) == pytest.approx({"park": 6.634})


def test_enterprises_take_their_sub_meters_share_of_what_the_node_received() -> None:
    rows = _rows(_plan(SITE + RULE), VALUES)
    by_org = _location_by_org(rows)
    # received = 10 000 (grid) + 900 (battery discharge) − 0 (export) = 10 900 kWh;
    # a-co 6 000 / 10 900 × 6.634 = 3.651743119 t; b-co 3 000 / 10 900 × 6.634 = 1.825871560 t;
    # the common account (battery charging 1 000 + losses/unmetered 900) 1 900 / 10 900 × 6.634
    # = 1.156385321 t.
    assert by_org["a-co"] == pytest.approx(6.634 * 6_000 / 10_900, rel=1e-12)
    assert by_org["b-co"] == pytest.approx(6.634 * 3_000 / 10_900, rel=1e-12)
    assert by_org["park"] == pytest.approx(6.634 * 1_900 / 10_900, rel=1e-12)
    assert math.fsum(by_org.values()) == pytest.approx(6.634, abs=1e-12)
    # booked at the node where it was bought, under each owner; activity follows (MWh)
    purchased = [r for r in rows if r.category == Category.PURCHASED_ELECTRICITY]
    assert {r.node_id for r in purchased} == {"sub"}
    a_mwh = sum(r.activity for r in purchased if r.org_id == "a-co" and r.basis == Basis.LOCATION)
    assert a_mwh == pytest.approx(10 * 6_000 / 10_900, rel=1e-12)


def test_every_energy_line_records_its_tce_coefficient() -> None:
    rows = _rows(_plan(SITE + RULE), VALUES)
    location = [r for r in rows if r.basis == Basis.LOCATION]
    assert location
    for r in location:
        keys = [f.key for f in r.factors.used]
        # the grid factor stays the principal one; GB/T 2589 equivalent value 0.1229 kgce/kWh
        assert keys[0] == "electricity.mee_nbs.province.shanxi.average.2023"
        assert "tce.electricity.equivalent" in keys
        # 0.1229 kgce/kWh = 0.1229 tce/MWh: tce = MWh × 0.1229
        assert r.energy_tce == pytest.approx(r.activity * 0.1229, rel=1e-12)


def test_pro_rata_spreads_the_losses_over_the_feeders() -> None:
    by_org = _location_by_org(_rows(_plan(SITE + PRO_RATA), VALUES))
    # over the metered outflow 10 000 kWh: 6.634 × 0.6 = 3.9804, × 0.3 = 1.9902, × 0.1 = 0.6634
    assert by_org == pytest.approx({"a-co": 3.9804, "b-co": 1.9902, "park": 0.6634}, rel=1e-12)


def test_nothing_received_or_passed_on_goes_to_the_common_account() -> None:
    values = {k: 0.0 for k in VALUES} | {("grid", "reverse"): 2_000.0}  # exporting interval
    by_org = _location_by_org(_rows(_plan(SITE + RULE), values))
    assert set(by_org) == {"park"} and by_org["park"] == pytest.approx(-2 * 0.6634)


def test_the_inventory_reads_the_sub_meters_of_a_rule() -> None:
    with_rule = {d.device_id for d in inventory_devices(_plan(SITE + RULE))}
    without = {d.device_id for d in inventory_devices(_plan(SITE))}
    assert without == {"grid", "diesel"}
    assert with_rule == {"grid", "diesel", "feeder-a", "feeder-b", "bess"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("- {source: sub, target: works-b, carrier: electricity, meters: [feeder-b]}",
         r"g.yaml:18: edges\[3\]\.meters: electricity from 'sub' to 'works-b' has no owner: the "
         "edge is not metered"),
        ("- {id: works-b, name: B, kind: process, org: b-co}",
         r"g.yaml:10: nodes\[5\]\.org: .* node 'works-b' belongs to no organisation"),
    ],
)  # fmt: skip
def test_a_flow_with_no_owner_is_refused_at_load(change: str, message: str) -> None:
    broken = {
        "- {source: sub, target: works-b, carrier: electricity, meters: [feeder-b]}": (
            "- {source: sub, target: works-b, carrier: electricity}"
        ),
        "- {id: works-b, name: B, kind: process, org: b-co}": (
            "- {id: works-b, name: B, kind: process}"
        ),
    }[change]
    with pytest.raises(SiteFileError, match=message):
        parse_site_text((SITE + RULE).replace(change, broken), "g.yaml")


def test_a_rule_names_a_distribution_node_and_an_organisation() -> None:
    with pytest.raises(SiteFileError, match="'works-a' is a process node, not a distribution"):
        parse_site_text(SITE + "attribution: [{node: works-a, common: park}]\n", "g.yaml")
    with pytest.raises(SiteFileError, match="unknown organisation 'nobody'"):
        parse_site_text(SITE + "attribution: [{node: sub, common: nobody}]\n", "g.yaml")


# --- the invariant on every example site ------------------------------------------------------


def _random_quantities(plan: SitePlan, rng: random.Random) -> dict[tuple[int, int], Quantity]:
    q: dict[tuple[int, int], Quantity] = {}
    for d in plan.devices:
        for m in (flow_metric(d), reverse_metric(d)):
            if m is not None:
                q[(d.device_pk, m.metric_id)] = Quantity(rng.uniform(0, 5_000), "measured", 1.0)
    return q


Key = tuple[str, str, str, str, str]


def _totals(rows: Sequence[InventoryLine]) -> dict[Key, list[float]]:
    out: dict[Key, list[float]] = {}
    for r in rows:
        key = (str(r.category), r.carrier, str(r.gas), str(r.scope), str(r.basis))
        acc = out.setdefault(key, [0.0] * 5)
        for i, v in enumerate((r.activity, r.energy_tce, r.zero_carbon_tce, r.gas_t, r.tco2e)):
            acc[i] += v
    return out


def _without_rules(doc: SiteDocument) -> SitePlan:
    return plan_from_document(doc.model_copy(update={"attribution": []}))


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.stem)
def test_site_total_is_the_sum_of_its_owners_on_every_example(path: object) -> None:
    doc = load_site_file(EXAMPLES / str(getattr(path, "name", path)))
    plan, plain = plan_from_document(doc), _without_rules(doc)
    lib = load_library(package_data_files())
    f = site_factors(lib, province=doc.site.province.value, grid_region="north", year=2025)
    rng = random.Random(15)
    worst = 0.0
    for _slot in range(24):
        q = _random_quantities(plan, rng)
        attributed = slot_inventory(plan, q, f, day=DAY).rows
        assert all(r.org_id for r in attributed), "every line has an owner"
        # site total (booked the plain way) = Σ owners, for every category, gas, scope, basis
        site, owners = _totals(slot_inventory(plain, q, f, day=DAY).rows), _totals(attributed)
        assert set(site) == set(owners)
        for key, values in site.items():
            for a, b in zip(values, owners[key], strict=True):
                worst = max(worst, abs(a - b))
                assert b == pytest.approx(a, abs=1e-9), key
    assert worst <= 1e-9
    if doc.attribution:  # the park: the enterprises take a share of the purchased electricity
        orgs = {r.org_id for r in attributed if r.category == Category.PURCHASED_ELECTRICITY}
        assert orgs == {o.id for o in doc.organisations}

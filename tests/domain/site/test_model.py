"""The site model and the site-file loader: the examples load, broken files fail with the file,
the line and the field of every problem."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from carbonflow.domain.site.credit_code import check_character, credit_code_problem
from carbonflow.domain.site.model import (
    DEVICE_KINDS,
    QUANTITY_DIMENSIONS,
    Carrier,
    DeviceKind,
    MetricKind,
    SiteDocument,
    document_json,
    document_sha256,
    multiplier_applies,
)
from carbonflow.domain.units import metric_unit
from carbonflow.sites.loader import SiteFileError, SiteFileProblem, load_site_file, parse_site_text
from tests.support import ROOT as ROOT_DIR

REPO = ROOT_DIR
EXAMPLES = REPO / "carbonflow" / "sites" / "examples"
MINE = EXAMPLES / "shanxi-mine.yaml"
PARK = EXAMPLES / "inner-mongolia-park.yaml"

# A small valid site; each broken case below changes one thing in it.
BASE = textwrap.dedent(
    """\
    site:
      id: test-mine
      name: Test mine
      kind: mine
      province: shanxi
      grid_region: north
    organisations:
      - id: mine-co
        name: Mine Co.
    nodes:
      - {id: grid, name: Grid, kind: supply}
      - {id: hoist, name: Hoist, kind: process, org: mine-co}
    edges:
      - {source: grid, target: hoist, carrier: electricity, meters: [hoist-meter]}
    devices:
      - id: hoist-meter
        name: Hoist meter
        kind: electricity_meter
        carrier: electricity
        role: consumption
        node: hoist
        multiplier: 8000
      - id: fan-meter
        name: Fan meter
        kind: electricity_meter
        carrier: electricity
        role: consumption
        node: hoist
    """
)


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """1-based line of the ``occurrence``-th line containing ``needle``."""
    hits = [i for i, line in enumerate(text.splitlines(), start=1) if needle in line]
    return hits[occurrence - 1]


def problems_of(text: str, filename: str = "broken.yaml") -> tuple[SiteFileProblem, ...]:
    with pytest.raises(SiteFileError) as caught:
        parse_site_text(text, filename)
    return caught.value.problems


def only_problem(text: str) -> SiteFileProblem:
    problems = problems_of(text)
    assert len(problems) == 1, problems
    return problems[0]


# --- the examples ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "site_id", "kind", "devices"),
    [(MINE, "shanxi-jinzhong-mine", "mine", 44), (PARK, "inner-mongolia-ordos-park", "park", 44)],
)
def test_examples_validate(path: Path, site_id: str, kind: str, devices: int) -> None:
    doc = load_site_file(path)
    assert doc.site.id == site_id
    assert doc.site.kind.value == kind
    assert len(doc.devices) == devices
    assert doc.baseline.year == 2020
    # the normalised form is a fixed point: validating it again gives the same document and hash
    again = SiteDocument.model_validate(document_json(doc))
    assert again == doc
    assert document_sha256(again) == document_sha256(doc)


def test_mine_example_orders_of_magnitude() -> None:
    doc = load_site_file(MINE)
    assert doc.site.province.value == "shanxi"
    assert doc.site.grid_region.value == "north"
    roles = {d.role.value for d in doc.devices}
    assert {
        "grid_import",
        "generation_pv",
        "generation_gas",
        "methane_drained",
        "methane_ventilation",
        "methane_utilised",
        "methane_flared",
        "methane_vented",
        "production",
        "fuel_supply",
    } <= roles
    non_production = {n.id for n in doc.nodes if not n.production_system}
    assert non_production == {"preparation-plant", "surface-buildings"}
    # 4 engines × 1.8 MW = 7.2 MW of methane-fired generation
    engines = [d for d in doc.devices if d.kind is DeviceKind.GAS_POWER_PLANT]
    assert sum(d.sim.rated_kw or 0 for d in engines if d.sim) == pytest.approx(7_200)
    # 2 × 20 + 3 + 2 + 1 = 46 MWp of PV
    pv = [d for d in doc.devices if d.kind is DeviceKind.PV_INVERTER]
    assert sum(d.sim.capacity_kwp or 0 for d in pv if d.sim) == pytest.approx(46_000)
    # 110 kV meters: PT 1,100 × CT 120 = 132,000
    assert doc.devices[0].multiplier == 132_000


def test_park_example_enterprises_have_budgets_and_products() -> None:
    doc = load_site_file(PARK)
    enterprises = {"cathode-plant", "data-centre", "logistics-centre"}
    assert enterprises <= {o.id for o in doc.organisations}
    assert enterprises <= {b.org for b in doc.budgets}
    assert {p.org for p in doc.products} == enterprises
    assert {p.unit for p in doc.products} == {"t", "MWh"}
    # 4 × 37.5 MWp = 150 MWp of PV; 3 × 40 MW = 120 MW of wind
    pv = [d.sim.capacity_kwp or 0 for d in doc.devices if d.kind is DeviceKind.PV_INVERTER if d.sim]
    wind = [d.sim.rated_kw or 0 for d in doc.devices if d.kind is DeviceKind.WIND_TURBINE if d.sim]
    assert sum(pv) == pytest.approx(150_000)
    assert sum(wind) == pytest.approx(120_000)


# --- default metrics ---------------------------------------------------------------------------


def test_default_metrics_are_merged_and_overridable() -> None:
    text = BASE.replace(
        "    multiplier: 8000\n",
        "    multiplier: 8000\n    metrics:\n      power_kw: {rated_max: 9000}\n"
        "      energy_export_kwh: counter\n",
    )
    hoist = parse_site_text(text).devices[0]
    assert {n: m.kind for n, m in hoist.metrics.items()} == {
        "energy_import_kwh": MetricKind.COUNTER,
        "power_kw": MetricKind.GAUGE,
        "energy_export_kwh": MetricKind.COUNTER,
    }
    assert hoist.metrics["power_kw"].rated_max == 9000


def test_default_metrics_can_be_switched_off() -> None:
    text = BASE.replace(
        "    multiplier: 8000\n",
        "    multiplier: 8000\n    default_metrics: false\n"
        "    metrics: {energy_import_kwh: counter}\n",
    )
    assert list(parse_site_text(text).devices[0].metrics) == ["energy_import_kwh"]


def test_catalogue_is_complete_and_well_formed() -> None:
    assert set(DEVICE_KINDS) == set(DeviceKind)
    for kind, spec in DEVICE_KINDS.items():
        assert spec.carriers and spec.roles and spec.metrics, kind
        names = [m.name for m in spec.metrics]
        assert len(names) == len(set(names)), kind
        for m in spec.metrics:
            unit = metric_unit(m.name)  # raises on a bad suffix
            if m.kind is not MetricKind.GAUGE:
                assert unit.dimension in QUANTITY_DIMENSIONS, m.name


def test_docs_list_every_device_kind_and_default_metric() -> None:
    docs = (REPO / "docs" / "sites.md").read_text(encoding="utf-8")
    for kind, spec in DEVICE_KINDS.items():
        assert f"`{kind.value}`" in docs, kind
        for m in spec.metrics:
            assert f"`{m.name}`" in docs, m.name
    for carrier in Carrier:
        assert f"`{carrier.value}`" in docs, carrier


def test_multiplier_scales_quantities_and_rates_not_concentrations() -> None:
    assert multiplier_applies("energy_import_kwh")
    assert multiplier_applies("power_kw")
    assert multiplier_applies("mixture_flow_nm3_min")
    assert not multiplier_applies("ch4_pct")
    assert not multiplier_applies("air_temp_degc")


# --- broken files: the problem, the line, the field --------------------------------------------


def test_unknown_carrier() -> None:
    text = BASE.replace("carrier: electricity\n", "carrier: electrcity\n", 1)  # devices[0]
    problem = only_problem(text)
    assert problem.line == line_of(text, "carrier: electrcity")
    assert problem.field == "devices[0].carrier"
    assert "unknown carrier 'electrcity'" in problem.message
    assert "did you mean 'electricity'" in problem.message
    assert str(problem).startswith(f"broken.yaml:{problem.line}: devices[0].carrier: unknown")


def test_unknown_carrier_in_the_mine_example_names_file_line_and_field(tmp_path: Path) -> None:
    text = MINE.read_text(encoding="utf-8")
    # the eighth device's carrier line, misspelt
    target = line_of(text, "    carrier: ", 8)
    lines = text.splitlines(keepends=True)
    lines[target - 1] = lines[target - 1].replace("carrier: ", "carrier: x", 1)
    broken = tmp_path / "shanxi-mine.yaml"
    broken.write_text("".join(lines), encoding="utf-8")
    with pytest.raises(SiteFileError) as caught:
        load_site_file(broken)
    (problem,) = caught.value.problems
    assert str(problem).startswith(
        f"shanxi-mine.yaml:{target}: devices[7].carrier: unknown carrier"
    )


def test_duplicate_device_id() -> None:
    text = BASE.replace("id: fan-meter", "id: hoist-meter")
    problem = only_problem(text)
    assert problem.line == line_of(text, "- id: hoist-meter", 2)
    assert problem.field == "devices[1].id"
    assert "duplicate id 'hoist-meter' (also devices[0])" in problem.message


def test_edge_to_a_missing_node() -> None:
    text = BASE.replace("target: hoist,", "target: hoists,")
    problem = only_problem(text)
    assert problem.line == line_of(text, "target: hoists")
    assert problem.field == "edges[0].target"
    assert "unknown node 'hoists'" in problem.message
    assert "did you mean 'hoist'" in problem.message


def test_metric_without_a_unit_suffix() -> None:
    text = BASE.replace(
        "    multiplier: 8000\n", "    multiplier: 8000\n    metrics:\n      power: gauge\n"
    )
    problem = only_problem(text)
    assert problem.line == line_of(text, "power: gauge")
    assert problem.field == "devices[0].metrics.power"
    assert "does not end in a unit suffix" in problem.message


def test_counter_of_a_power_is_rejected() -> None:
    text = BASE.replace(
        "    multiplier: 8000\n", "    multiplier: 8000\n    metrics:\n      peak_kw: counter\n"
    )
    problem = only_problem(text)
    assert problem.field == "devices[0].metrics.peak_kw.kind"
    assert problem.line == line_of(text, "peak_kw: counter")
    assert "power in kW" in problem.message


def test_yaml_syntax_error() -> None:
    text = BASE.replace(
        "  - {id: grid, name: Grid, kind: supply}", "  - {id: grid, name: Grid, kind: supply"
    )
    problem = only_problem(text)
    assert problem.field == ""
    assert "YAML syntax" in problem.message
    # PyYAML notices the unclosed flow mapping where the next item starts
    assert problem.line == line_of(text, "- {id: hoist")


def test_counter_modulus_on_a_device_without_counters() -> None:
    text = BASE.replace(
        "    multiplier: 8000\n",
        "    multiplier: 8000\n    counter_modulus: 1000000\n    default_metrics: false\n"
        "    metrics: {power_kw: gauge}\n",
    )
    problem = only_problem(text)
    assert problem.field == "devices[0].counter_modulus"
    assert problem.line == line_of(text, "counter_modulus:")
    assert "no metric is a counter" in problem.message


def test_invalid_time_zone_and_typo_in_a_key_are_both_reported() -> None:
    text = BASE.replace(
        "  grid_region: north\n", "  grid_region: north\n  timezone: Asia/Shangai\n"
    )
    text = text.replace("    node: hoist\n    multiplier", "    nod: hoist\n    multiplier")
    first, second = problems_of(text)
    assert (first.field, first.line) == ("site.timezone", line_of(text, "timezone:"))
    assert "Asia/Shangai" in first.message
    assert (second.field, second.line) == ("devices[0].nod", line_of(text, "nod: hoist"))
    assert "did you mean 'node'" in second.message


def test_every_reference_problem_is_reported_at_once() -> None:
    text = BASE.replace("target: hoist,", "target: nowhere,").replace(
        "id: fan-meter", "id: hoist-meter"
    )
    text = text.replace("org: mine-co}", "org: other-co}")
    fields = [p.field for p in problems_of(text)]
    assert fields == ["nodes[1].org", "edges[0].target", "devices[1].id"]


def test_missing_field_points_at_its_mapping() -> None:
    text = BASE.replace("  province: shanxi\n", "")
    problem = only_problem(text)
    assert problem.field == "site.province"
    assert problem.line == line_of(text, "site:")
    assert problem.message == "required field is missing"


def test_key_given_twice() -> None:
    text = BASE.replace(
        "    node: hoist\n    multiplier", "    node: hoist\n    node: grid\n    multiplier"
    )
    problem = only_problem(text)
    assert (problem.field, problem.line) == ("devices[0].node", line_of(text, "node: grid"))
    assert problem.message == "key given twice"


def test_role_not_valid_for_the_kind() -> None:
    text = BASE.replace("kind: electricity_meter", "kind: pv_inverter", 1)  # devices[0]
    problem = only_problem(text)
    assert problem.field == "devices[0].role"
    assert "not valid for a pv_inverter (expected: generation_pv)" in problem.message


def test_a_mine_is_one_organisation() -> None:
    text = BASE.replace("organisations:\n", "organisations:\n  - {id: other, name: Other}\n")
    problem = only_problem(text)
    assert problem.field == "organisations"
    assert "a mine is one organisation; found 2" in problem.message


def test_empty_file_and_non_mapping() -> None:
    assert only_problem("").message == "the file is empty"
    assert only_problem("- a\n- b\n").message == "expected a mapping, got list"


# --- the unified social credit code (GB 32100-2015) ------------------------------------------


def test_credit_code_check_character_worked_by_hand() -> None:
    # 91350100M000100Y4: values 9,1,3,5,0,1,0,0,M=21,0,0,0,1,0,0,Y=30,4 × the weights
    # 1,3,9,27,19,26,16,17,20,29,25,13,8,24,10,30,28 = 9+3+27+135+0+26+0+0+420+0+0+0+8+0+0+900
    # +112 = 1640; 1640 mod 31 = 28; 31 − 28 = 3 → "3".
    assert check_character("91350100M000100Y4") == "3"
    assert credit_code_problem("91350100M000100Y43") is None
    problem = credit_code_problem("91350100M000100Y44")
    assert problem is not None and "'3'" in problem and "校验码" in problem
    assert "18" in str(credit_code_problem("91350100M000100Y4"))
    assert "I" in str(credit_code_problem("91350100M000100I43"))


def test_examples_carry_valid_credit_codes_and_legal_names() -> None:
    for path in (MINE, PARK):
        for org in load_site_file(path).organisations:
            assert org.credit_code is not None and credit_code_problem(org.credit_code) is None
            assert org.legal_name


def test_a_wrong_credit_code_check_character_names_file_and_line() -> None:
    text = BASE.replace(
        "    name: Mine Co.\n",
        "    name: Mine Co.\n    legal_name: 测试煤业有限公司\n"
        "    credit_code: 91350100M000100Y44\n",
    )
    problem = only_problem(text)
    assert problem.file == "broken.yaml"
    assert problem.line == line_of(text, "credit_code")
    assert "GB 32100-2015" in problem.message and "organisations" in problem.field

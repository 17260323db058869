"""Two labelled energy totals where a mine burns its own methane, the indicators naming the total
they use, and the register's claims in the ledger (issue 15). Hand-worked numbers."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from carbonflow.domain.indicators.formulas import ENERGY_TOTAL, Indicator, energy_total_of
from carbonflow.domain.inventory.energy_totals import EnergyTotal, energy_totals
from carbonflow.domain.inventory.lines import InventoryLine
from carbonflow.domain.ledger.document import (
    COLUMNS,
    LedgerHeader,
    LedgerInputs,
    RegisterClaim,
    build_ledger,
    ledger_lines,
)
from tests.domain.inventory.test_balance import inventory

START = datetime(2025, 4, 30, 16, tzinfo=UTC)
END = datetime(2025, 5, 31, 16, tzinfo=UTC)

# One interval of the test mine (tests/domain/inventory/test_balance.py): 10 000 kWh from the
# grid, 20 000 Nm³ CH4 drained, 10 000 Nm³ CH4 burnt in the gas engines.
#   electricity 10 000 kWh × 0.1229 kgce/kWh = 1.229 tce
#   methane     1 × 10⁴ Nm³ × 12.211849486140112 tce/10⁴ Nm³ (pure CH4: 35.9 MJ/Nm³ / 29.3076)
# with the methane 13.440849486140112 tce, without it 1.229 tce.
VALUES = {("grid", "flow"): 10_000.0, ("drain", "flow"): 20_000.0, ("use", "flow"): 10_000.0}
METHANE_TCE = 12.211849486140112


def _lines() -> tuple[InventoryLine, ...]:
    return inventory(VALUES).rows


def test_the_two_totals_worked_by_hand() -> None:
    totals = energy_totals(_lines())
    assert totals.utilised_methane_tce == pytest.approx(METHANE_TCE, rel=1e-12)
    assert totals.of(EnergyTotal.WITH_UTILISED_METHANE) == pytest.approx(
        1.229 + METHANE_TCE, rel=1e-12
    )
    assert totals.of(EnergyTotal.WITHOUT_UTILISED_METHANE) == pytest.approx(1.229, rel=1e-12)
    assert totals.involves_methane


def test_every_energy_based_indicator_names_its_total() -> None:
    energy_based = {
        Indicator.ENERGY_PER_RAW_COAL, Indicator.ENERGY_PER_RAW_COAL_REDUCTION,
        Indicator.ZERO_CARBON_ENERGY_SHARE, Indicator.CO2_PER_ENERGY,
        Indicator.CLEAN_ENERGY_SHARE,
    }  # fmt: skip
    assert set(ENERGY_TOTAL) == energy_based
    assert energy_total_of("co2_per_energy") is EnergyTotal.WITH_UTILISED_METHANE
    assert energy_total_of("methane_utilisation_rate") is None
    assert energy_total_of("not-an-indicator") is None


def _inputs(org_id: str | None = None) -> LedgerInputs:
    return LedgerInputs("mine", org_id, START, END, _lines(), {}, (), (), 1.0, 0.0)


def _header(org_id: str | None = None) -> LedgerHeader:
    return LedgerHeader("mine", org_id, "2025-05", "Asia/Shanghai", END, END, END)


def test_the_ledger_states_both_totals_labelled() -> None:
    doc = build_ledger(_inputs(), _header())
    rows = {r["total"]: r for r in doc["energy_totals"]}
    with_ = rows["with_utilised_methane"]
    without = rows["without_utilised_methane"]
    assert with_["energy_tce"] == pytest.approx(13.44084949, rel=1e-9)
    assert without["energy_tce"] == pytest.approx(1.229, rel=1e-9)
    assert with_["utilised_methane_tce"] == without["utilised_methane_tce"]
    assert with_["label_zh"] == "综合能源消费量（含煤矿瓦斯利用量）"
    assert without["label_en"].endswith("excluding utilised coal-mine methane")
    assert "co2_per_energy" in with_["indicators"] and without["indicators"] is None
    lines = ledger_lines(doc)
    assert lines["energy_totals/without_utilised_methane/energy_tce"] == (1.229, "tce")
    assert [c.key for c in COLUMNS["energy_totals"]][:4] == [
        "total", "label_zh", "label_en", "energy_tce",
    ]  # fmt: skip


CLAIMS = (
    RegisterClaim(7, "GEC-A", "a-co", "certificate", 2.0, date(2025, 3, 1), 1001, 1002),
    RegisterClaim(9, "PPA-B", "b-co", "green_power_contract", 1.5, date(2025, 4, 1)),
    RegisterClaim(8, "GEC-A", "a-co", "certificate", 1.0, date(2025, 3, 1), 1003, 1003),
)


def test_an_organisations_ledger_lists_its_claims_and_scope_2_names_them() -> None:
    own = [c for c in CLAIMS if c.org_id == "a-co"]
    doc = build_ledger(_inputs("a-co"), _header("a-co"), (), own)
    assert doc["green_claims"] == [
        {"claim_ref": "GEC-A/claim-7", "claim_id": 7, "batch_id": "GEC-A", "org_id": "a-co",
         "evidence_kind": "certificate", "serial_first": 1001, "serial_last": 1002, "mwh": 2.0,
         "production_month": "2025-03"},
        {"claim_ref": "GEC-A/claim-8", "claim_id": 8, "batch_id": "GEC-A", "org_id": "a-co",
         "evidence_kind": "certificate", "serial_first": 1003, "serial_last": 1003, "mwh": 1.0,
         "production_month": "2025-03"},
    ]  # fmt: skip
    by_category = {r["category"]: r for r in doc["activity"]}
    assert by_category["purchased_electricity"]["green_claims"] == "GEC-A/claim-7, GEC-A/claim-8"
    assert by_category["fuel_combustion"]["green_claims"] is None
    assert ledger_lines(doc)["green_claims/GEC-A/claim-7/mwh"] == (2.0, "MWh")


def test_the_site_ledger_lists_every_claim_by_holder() -> None:
    doc = build_ledger(_inputs(), _header(), (), CLAIMS)
    assert [(r["org_id"], r["claim_id"]) for r in doc["green_claims"]] == [
        ("a-co", 7), ("a-co", 8), ("b-co", 9),
    ]  # fmt: skip
    assert doc["green_claims"][2]["serial_first"] is None
    # the claims are accounting content: the hash changes with them
    assert doc["content_sha256"] != build_ledger(_inputs(), _header())["content_sha256"]

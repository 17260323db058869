"""The ledger builder (carbonflow/domain/ledger/document.py) on hand-worked inputs, and its
exports. Pure."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from openpyxl import load_workbook  # type: ignore[import-untyped]
from pypdf import PdfReader

from carbonflow.domain.inventory.green import GreenClaim
from carbonflow.domain.inventory.lines import FactorTrail, InventoryLine
from carbonflow.domain.ledger.document import (
    LedgerHeader,
    LedgerInputs,
    build_ledger,
    canonical_json,
    closed,
    content_sha256,
    diff_ledgers,
    ledger_lines,
    rounded,
)
from carbonflow.domain.ledger.rounding import NOTE
from services.api.ledger_export import TABLES, to_csv, to_xlsx
from services.api.ledger_pdf import to_pdf
from tests.support.lines import line

START = datetime(2025, 4, 30, 16, tzinfo=UTC)  # 2025-05-01 00:00 Asia/Shanghai
END = datetime(2025, 5, 31, 16, tzinfo=UTC)
GRID = {
    "factor_key": "electricity.mee_nbs.province.shanxi.average.2023",
    "factor_value": 0.5703,
    "factor_unit": "tCO2/MWh",
    "factor_version": "mee-nbs-electricity-2025-12-31",
    "factor_file": "mee_nbs_electricity.yaml",
    "factor_source": "MEE/NBS 2023 provincial average",
    "factor_confidence": "A",
    "factor_data_year": 2023,
    "selection": "rule",
    "selection_reason": "newest data year ≤ accounting year",
}
RESIDUAL = {**GRID, "factor_key": "electricity.residual.2023", "factor_value": 0.6096}
GWP_AR5 = {
    "factor_key": "gwp.ch4.ar5", "factor_value": 28.0, "factor_unit": "tCO2e/tCH4",
    "factor_version": "ipcc-gwp100-sar-ar6", "factor_data_year": None, "selection": "rule",
}  # fmt: skip


def _line(**kw: Any) -> InventoryLine:
    base: dict[str, Any] = {
        "category": "purchased_electricity", "carrier": "electricity", "scope": "scope_2",
        "basis": "location", "gas": "CO2", "activity": 12.5, "activity_unit": "MWh",
        "gas_t": 0.0, "tco2e": 0.0, "energy_tce": 0.0, "records": (), "quality": "measured",
        "completeness": 1.0,
    }  # fmt: skip
    base.update(kw)
    return line(**base)


# 12.5 MWh × 0.5703 tCO2/MWh = 7.12875 t (location); 10 MWh uncovered × 0.6096 = 6.096 t
# (market: 2.5 MWh covered by a certificate); 12.5 MWh × 0.1229 tce/MWh = 1.53625 tce.
# Methane escape: 700 Nm³ CH4 × 0.000714 t/Nm³ ≈ 0.5 t × GWP 28 = 14 tCO2e (scope 1, both).
LINES = (
    _line(gas_t=7.12875, tco2e=7.12875, energy_tce=1.53625, records=(GRID,)),
    _line(basis="market", gas_t=6.096, tco2e=6.096, records=(RESIDUAL,)),
    _line(category="fugitive", carrier="coal_mine_methane", scope="scope_1", basis="both",
          gas="CH4", activity=700.0, activity_unit="Nm3", gas_t=0.5, tco2e=14.0,
          quality="estimated", completeness=0.5, records=(GWP_AR5,)),
)  # fmt: skip
INPUTS = LedgerInputs(
    "mine", None, START, END, LINES, {}, (("raw_coal", 1000.0, "t", 0.0213), ), (), 0.75, 0.0
)  # fmt: skip
HEADER = LedgerHeader("mine", None, "2025-05", "Asia/Shanghai", END, END, END)
CLAIMS = (GreenClaim("GEC-1", "certificate", True, 2.5, 2.5, 0.0, "accepted"),)


def test_totals_by_view_scope_and_gas() -> None:
    doc = build_ledger(INPUTS, HEADER, CLAIMS)
    totals = {row["view"]: row for row in doc["totals"]}
    # location: scope 1 = 14; scope 2 = 7.12875; total 21.12875; CO2 7.12875 t, CH4 0.5 t
    assert totals["location"] == {
        "view": "location", "scope_1_tco2e": 14.0, "scope_2_tco2e": 7.12875,
        "total_tco2e": 21.12875, "co2_t": 7.12875, "ch4_t": 0.5, "n2o_t": 0.0,
    }  # fmt: skip
    # market: 14 + 6.096 = 20.096
    assert totals["market"]["scope_2_tco2e"] == 6.096
    assert totals["market"]["total_tco2e"] == 20.096
    activity = {row["category"]: row for row in doc["activity"]}
    # The market row repeats the 12.5 MWh: taken once; energy only on the location row.
    assert activity["purchased_electricity"]["quantity"] == 12.5
    assert activity["purchased_electricity"]["unit"] == "MWh"
    assert activity["purchased_electricity"]["energy_tce"] == 1.53625
    assert activity["fugitive"]["quality"] == "estimated"
    assert [f["factor_key"] for f in doc["factors"]] == [
        GRID["factor_key"], RESIDUAL["factor_key"], "gwp.ch4.ar5"]  # fmt: skip
    assert doc["factors"][0]["version"] == "mee-nbs-electricity-2025-12-31"
    assert doc["green_power"][0]["applied_mwh"] == 2.5
    assert doc["production"] == [
        {"product_id": "raw_coal", "output": 1000.0, "unit": "t",
         "intensity_location_tco2e": 0.0213, "intensity_unit": "tCO2e/t"},
    ]  # fmt: skip
    assert doc["quality"]["lines_estimated"] == 1 and doc["quality"]["completeness_share"] == 0.75


def test_hash_covers_content_not_when_it_was_generated() -> None:
    a = build_ledger(INPUTS, HEADER)
    later = replace(HEADER, generated_at=END + timedelta(days=3), calc_results_through=None)
    b = build_ledger(INPUTS, later)
    assert a["content_sha256"] == b["content_sha256"] == content_sha256(a)
    assert canonical_json(a) != canonical_json(b)
    # Float noise of a recomputation (1e-13 relative) rounds away: same document content.
    noisy = replace(INPUTS, lines=(replace(LINES[0], tco2e=7.12875 * (1 + 1e-13)), *LINES[1:]))
    assert build_ledger(noisy, HEADER)["content_sha256"] == a["content_sha256"]
    frozen = closed(a, revision=1, closed_at=END, closed_by="k1", reason=None, changes=[])
    assert (
        frozen["header"]["status"] == "closed" and frozen["content_sha256"] == a["content_sha256"]
    )
    assert json.loads(canonical_json(frozen)) == frozen
    assert rounded(-0.0) == 0.0 and rounded(1 / 3) == 0.3333333333
    with pytest.raises(ValueError, match="not finite"):
        rounded(float("nan"))


def test_header_names_the_reporting_party_and_the_local_month() -> None:
    party = replace(
        HEADER, site_name="Mine", legal_name="示例煤业有限公司", credit_code="91350100M000100Y43",
        industry="coal_mining", preparer="k1",
    )  # fmt: skip
    header = build_ledger(INPUTS, party)["header"]
    assert header["legal_name"] == "示例煤业有限公司"
    assert header["credit_code"] == "91350100M000100Y43" and header["industry"] == "coal_mining"
    # May 2025 in Asia/Shanghai (UTC+8): 30 April 16:00 UTC … 31 May 16:00 UTC.
    assert header["period_start"] == START.isoformat()
    assert header["period_local_start"] == "2025-05-01T00:00:00+08:00"
    assert header["period_local_end"] == "2025-06-01T00:00:00+08:00"
    assert header["preparer"] == "k1"
    # The party is content (a corrected name is a new revision); the preparer is not.
    a = build_ledger(INPUTS, party)["content_sha256"]
    assert build_ledger(INPUTS, replace(party, preparer="k2"))["content_sha256"] == a
    assert build_ledger(INPUTS, replace(party, credit_code=None))["content_sha256"] != a
    frozen = closed(
        build_ledger(INPUTS, party), revision=1, closed_at=END, closed_by="k9", reason=None,
        changes=[],
    )  # fmt: skip
    assert frozen["header"]["preparer"] == "k9"


def test_differences_per_line_with_units() -> None:
    before = build_ledger(INPUTS, HEADER)
    # A late reading: 13.0 MWh instead of 12.5; 13.0 × 0.5703 = 7.4139 t; +0.28515 t
    corrected = replace(
        INPUTS, lines=(replace(LINES[0], activity=13.0, gas_t=7.4139, tco2e=7.4139), *LINES[1:])
    )
    after = build_ledger(corrected, HEADER)
    changes = {c["line"]: c for c in diff_ledgers(before, after)}
    assert changes["totals/location/total_tco2e"] == {
        "line": "totals/location/total_tco2e", "section": "totals",
        "before": 21.12875, "after": 21.4139, "delta": 0.28515, "unit": "tCO2e",
    }  # fmt: skip
    quantity = changes["activity/purchased_electricity/electricity/scope_2/quantity"]
    assert (quantity["before"], quantity["after"], quantity["delta"], quantity["unit"]) == (
        12.5, 13.0, 0.5, "MWh",
    )  # fmt: skip
    assert "totals/market/total_tco2e" not in changes  # the market row did not change
    assert diff_ledgers(before, before) == []
    # A new factor version: the old line goes (after null), the new one comes (before null).
    newer = {**GRID, "factor_version": "mee-nbs-electricity-2026-12-31"}
    swapped = replace(
        INPUTS, lines=(replace(LINES[0], factors=FactorTrail(records=(newer,))), *LINES[1:])
    )
    lines = diff_ledgers(before, build_ledger(swapped, HEADER))
    assert {(c["before"], c["after"]) for c in lines} == {(None, 0.5703), (0.5703, None)}
    assert all(unit for _value, unit in ledger_lines(before).values())


def test_exports_hold_the_same_numbers_and_are_reproducible() -> None:
    doc = closed(
        build_ledger(INPUTS, HEADER, CLAIMS), revision=1, closed_at=END, closed_by="k1",
        reason=None, changes=[],
    )  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(to_csv(doc).decode("utf-8-sig"))))
    location = next(r for r in rows if r["Section"] == "Totals" and r["View"] == "location")
    # The JSON keeps 21.12875 exact; the export prints it to 1 kg (GB/T 8170, rounding.py).
    assert doc["totals"][0]["total_tco2e"] == 21.12875
    assert location["Total [tCO2e]"] == "21.129"
    header = next(r for r in rows if r["Section"] == "Header" and r["Field"] == "Status")
    assert header["Value"] == "closed"
    note = next(r for r in rows if r["Section"] == "Header" and r["Field"] == "Rounding")
    assert note["Value"] == NOTE["en"] and doc["header"]["rounding"]["zh"] == NOTE["zh"]
    data = to_xlsx(doc)
    assert to_xlsx(doc) == data  # same bytes: a strong ETag holds
    sheet = load_workbook(io.BytesIO(data))["Emissions"]
    cells = list(sheet.iter_rows(values_only=True))
    assert cells[0][-4:] == (
        "Gas mass [t]", "Emissions (CO2e) [tCO2e]", "GWP set", "GWP [tCO2e/t]",
    )  # fmt: skip
    assert sorted(c[-3] for c in cells[1:]) == [6.096, 7.129, 14.0]  # numbers, rounded
    assert {sheet.cell(row=r, column=sheet.max_column - 2).number_format
            for r in range(2, sheet.max_row + 1)} == {"0.000"}  # fmt: skip
    zh = load_workbook(io.BytesIO(to_xlsx(doc, "zh")))
    assert zh.sheetnames[0] == "表头信息"
    assert next(zh["排放合计"].iter_rows(values_only=True))[:4] == (
        "口径", "范围一排放 [tCO2e]", "范围二排放 [tCO2e]", "排放总量 [tCO2e]",
    )  # fmt: skip
    pdf = to_pdf(doc, TABLES, "zh")
    assert pdf == to_pdf(doc, TABLES, "zh") and pdf.startswith(b"%PDF")
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages).replace("\n", "")
    assert "21.129" in text and "21.12875" not in text
    assert "四舍六入五成双" in text and "GB/T 8170-2008" in text  # the footnote


def test_each_source_names_its_tce_coefficient() -> None:
    tce = {
        "factor_key": "tce.electricity.equivalent", "factor_value": 0.1229,
        "factor_unit": "kgce/kWh", "factor_version": "gbt-2589-2020", "selection": "default",
    }  # fmt: skip
    # 12.5 MWh × 0.1229 kgce/kWh = 1.53625 tce
    line = _line(gas_t=7.12875, tco2e=7.12875, energy_tce=1.53625, records=(GRID, tce))
    doc = build_ledger(replace(INPUTS, lines=(line,)), HEADER)
    row = doc["activity"][0]
    assert (row["tce_factor_key"], row["tce_factor"], row["tce_factor_unit"]) == (
        "tce.electricity.equivalent", 0.1229, "kgce/kWh")  # fmt: skip
    assert row["energy_tce"] == 1.53625
    assert "tce.electricity.equivalent" in [f["factor_key"] for f in doc["factors"]]
    fugitive = next(r for r in build_ledger(INPUTS, HEADER)["activity"] if r["scope"] == "scope_1")
    assert fugitive["tce_factor_key"] is None  # escaped methane is no energy use


def test_every_emission_names_its_gwp_and_factors_their_years() -> None:
    doc = build_ledger(INPUTS, HEADER, CLAIMS)
    gwp = {(e["gas"], e["basis"]): (e["gwp_key"], e["gwp"]) for e in doc["emissions"]}
    # CO2 counts at 1; the methane escape at AR5 28: 0.5 t × 28 = 14 tCO2e.
    assert gwp == {
        ("CO2", "location"): ("co2", 1.0),
        ("CO2", "market"): ("co2", 1.0),
        ("CH4", "both"): ("gwp.ch4.ar5", 28.0),
    }
    grid = next(f for f in doc["factors"] if f["factor_key"] == GRID["factor_key"])
    # a record stored before requested_year existed reads as no fallback
    assert (grid["data_year"], grid["requested_year"], grid["factor_year_fallback"]) == (
        2023, None, False)  # fmt: skip
    fallback = {**GRID, "requested_year": 2026, "factor_year_fallback": True}
    doc2 = build_ledger(
        replace(INPUTS, lines=(_line(tco2e=1.0, gas_t=1.0, records=(fallback,)),)), HEADER
    )
    row = doc2["factors"][0]
    assert (row["data_year"], row["requested_year"], row["factor_year_fallback"]) == (
        2023, 2026, True)  # fmt: skip


def test_an_indicator_row_says_its_coverage_and_why_it_is_inconclusive() -> None:
    """A month with 9 days of data: coverage 0.29, 9 days, insufficient_data and its reason in
    both languages; a row stored before coverage was recorded leaves both empty."""
    stored = {
        "org_id": None, "indicator": "co2_per_energy", "value": 2.1, "unit": "tCO2/tce",
        "basis": "location", "status": "insufficient_data", "target_threshold": 2.0,
        "target_comparator": "<=", "target_unit": "tCO2/tce", "completeness": 0.29,
        "period_start": START,
        "coverage": {"share": 0.29, "days_with_data": 9, "reason_en": "coverage 29 % < 80 %",
                     "reason_zh": "数据覆盖率 29 % 低于 80 %"},
    }  # fmt: skip
    legacy = {**stored, "indicator": "clean_energy_share", "coverage": None}
    doc = build_ledger(replace(INPUTS, indicators=(stored, legacy)), HEADER, CLAIMS)
    rows = {r["indicator"]: r for r in doc["indicators"]}
    assert (
        rows["co2_per_energy"]["completeness_share"], rows["co2_per_energy"]["days_with_data"],
        rows["co2_per_energy"]["status_reason_zh"], rows["co2_per_energy"]["status_reason_en"],
    ) == (0.29, 9, "数据覆盖率 29 % 低于 80 %", "coverage 29 % < 80 %")  # fmt: skip
    keys = ("days_with_data", "status_reason_zh", "status_reason_en")
    assert [rows["clean_energy_share"][k] for k in keys] == [None, None, None]

"""Monthly ledgers through the API, on calc results of the real engine over generated readings.

The small plant ``SMALL_SITE`` (one grid meter, one feeder, one product scale) gets
five days of May 2025 with the grid meter's last twelve hours held back. The month is closed
(revision 1); the held-back readings then arrive late, the engine runs again, and the month's
GET shows that the computation differs; a revision with a reason is revision 2 with the
differences, while revision 1 stays byte for byte what it was.
"""

from __future__ import annotations

import csv
import importlib
import io
import json
import math
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook  # type: ignore[import-untyped]
from pypdf import PdfReader

from carbonflow.domain.ledger.labels import Lang, field_label, section_label
from carbonflow.domain.ledger.rounding import NOTE, presented
from carbonflow.sites.loader import parse_site_text
from carbonflow.storage.registry_load import load_site
from services.api.ledger_export import FIELD_SECTIONS, SHEET_ORDER, TABLES, XLSX_MEDIA_TYPE
from tests.support.api_support import (
    ADMIN_KEY,
    GREEN_BODY,
    assert_problem,
    grant_keys,
    make_app,
)
from tests.support.calc_generator import SMALL_SITE, generate, month_start, run_calc, store_readings

pytestmark = pytest.mark.integration

SITE = "small-plant"
ORG = "plant-co"
MONTH = "2025-05"
BASE = f"/api/v1/sites/{SITE}/ledgers/{MONTH}"
ORG_BASE = f"/api/v1/sites/{SITE}/organisations/{ORG}/ledgers/{MONTH}"
HELD_BACK = timedelta(hours=12)
CREDIT_CODE = "91140100MA0PLANT1C"  # fictional, with a valid GB 32100-2015 check character
# The small plant as an enterprise files it: registered name, credit code, industry.
PLANT_SITE = SMALL_SITE.replace(
    "{id: plant-co, name: Plant Co}",
    "{id: plant-co, name: Plant Co, legal_name: 示例工厂有限公司, "
    f"credit_code: {CREDIT_CODE}, industry: battery_materials}}",
).replace("name: Small plant,", "name: Small plant, name_zh: 示例小厂,")

# The frozen SQL of revision 0013 (the module's name starts with a digit).
REPAIR_WATERMARKS: str = importlib.import_module(
    "carbonflow.storage.migrations.versions.0013_watermark_repair"
).REPAIR_WATERMARKS


@dataclass
class Plant:
    url: str
    client: TestClient
    tokens: dict[str, str]
    late: Any  # the held-back readings: deliver(), then run()

    def h(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


def _run_calc(url: str) -> None:
    run_calc(url)


def _keys(url: str) -> dict[str, str]:
    grants = {
        "operator": ("operator", [SITE], None),
        "enterprise": ("enterprise", [SITE], ORG),
        "regulator": ("regulator", [SITE], None),
    }
    keys = grant_keys(url, grants)
    tokens = {"admin": ADMIN_KEY, **{name: key.token for name, key in keys.items()}}
    return tokens


@pytest.fixture
def plant(database_url: str) -> Iterator[Plant]:
    doc = parse_site_text(PLANT_SITE, "small-plant.yaml")
    load_site(database_url, doc)
    start = month_start(2025, 5) + timedelta(days=2)
    end = start + timedelta(days=5)
    data = generate(doc, start, end, period=timedelta(minutes=15))
    key = ("grid-meter", "energy_export_kwh")
    late = [(key, ts) for ts, _v in data.readings[key] if ts >= end - HELD_BACK]
    assert late
    store_readings(database_url, SITE, data, skip=late)
    _run_calc(database_url)

    def deliver() -> None:
        store_readings(database_url, SITE, data, only=late, received_at=datetime.now(UTC))
        _run_calc(database_url)

    app = make_app(database_url, settings={"CARBONFLOW_API_KEY_CACHE_S": 0})
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Plant(database_url, client, _keys(database_url), deliver)


def _rollup(url: str, org: str | None = None) -> dict[str, float]:
    """The month's stored totals, straight from calc_carbon_rollup."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(tco2e) FILTER (WHERE basis <> 'market'), 0),"
            " coalesce(sum(tco2e) FILTER (WHERE basis <> 'location'), 0),"
            " coalesce(sum(tco2e) FILTER (WHERE basis <> 'market' AND scope = 'scope_2'), 0),"
            " coalesce(sum(tco2e) FILTER (WHERE basis <> 'market' AND scope = 'scope_1'), 0),"
            " coalesce(sum(gas_t) FILTER (WHERE basis <> 'market' AND gas = 'CO2'), 0),"
            " coalesce(sum(energy_tce), 0)"
            " FROM calc_carbon_rollup WHERE site_id = %s AND grain = 'month'"
            " AND period_start = %s AND (%s::text IS NULL OR org_id = %s)",
            (SITE, month_start(2025, 5), org, org),
        ).fetchone()
    assert row is not None
    names = ("location", "market", "scope2_location", "scope1", "co2_location", "energy_tce")
    return dict(zip(names, (float(v) for v in row), strict=True))


def _totals(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["view"]: row for row in document["totals"]}


def test_ledger_totals_equal_the_calc_rollup(plant: Plant) -> None:
    body = plant.client.get(BASE, headers=plant.h("operator")).json()
    assert body["closed"] is False and body["latest_revision"] is None and body["differs"] is None
    ledger = body["ledger"]
    stored = _rollup(plant.url)
    assert stored["location"] > 0
    totals = _totals(ledger)
    # The ledger rounds to 10 significant digits: equal within 1e-9 relative.
    assert totals["location"]["total_tco2e"] == pytest.approx(stored["location"], rel=1e-9)
    assert totals["market"]["total_tco2e"] == pytest.approx(stored["market"], rel=1e-9)
    assert totals["location"]["scope_2_tco2e"] == pytest.approx(stored["scope2_location"], rel=1e-9)
    assert totals["location"]["scope_1_tco2e"] == pytest.approx(stored["scope1"], abs=1e-12)
    assert totals["location"]["co2_t"] == pytest.approx(stored["co2_location"], rel=1e-9)
    # Emission lines add up to the totals; activity energy to the stored energy.
    location_lines = [e["tco2e"] for e in ledger["emissions"] if e["basis"] != "market"]
    assert math.fsum(location_lines) == pytest.approx(stored["location"], rel=1e-9)
    assert math.fsum(a["energy_tce"] for a in ledger["activity"]) == pytest.approx(
        stored["energy_tce"], rel=1e-9
    )
    # Purchased electricity: activity in MWh, the factor with its version and source.
    purchased = next(a for a in ledger["activity"] if a["category"] == "purchased_electricity")
    assert purchased["unit"] == "MWh" and purchased["quantity"] > 0
    # The devices behind it: the grid meter's import and export registers, opening and closing
    # readings (raw) × the meter's ratio = the quantity of its intervals; quality shares of the
    # month's intervals (5 of 31 days have data: mostly missing).
    assert purchased["devices"] == "grid-meter"
    rows = [d for d in ledger["devices"] if d["category"] == "purchased_electricity"]
    assert {d["metric"] for d in rows} == {"energy_import_kwh", "energy_export_kwh"}
    for d in rows:
        assert d["meter_kind"] == "counter" and d["multiplier"] == 100.0 and d["readings"] > 0
        assert (d["closing_reading"] - d["opening_reading"]) * d["multiplier"] == pytest.approx(
            d["device_quantity"], rel=1e-9
        )
        assert d["measured_share"] + d["estimated_share"] + d["missing_share"] == pytest.approx(1)
    imported, exported = (
        next(d["device_quantity"] for d in rows if d["metric"] == m)
        for m in ("energy_import_kwh", "energy_export_kwh")
    )
    assert purchased["quantity"] == pytest.approx((imported - exported) / 1000, rel=1e-9)
    assert 0 < purchased["measured_share"] < 0.2 < purchased["missing_share"]
    # The line's emission factor with its data year and citation (not where it was read), and
    # its emissions in both views.
    assert purchased["factor_data_year"] == 2023 and purchased["factor_unit"] == "tCO2/MWh"
    assert "公告" in purchased["factor_source"] and "read in" not in purchased["factor_source"]
    assert purchased["scope_2_tco2e_location"] == pytest.approx(
        purchased["quantity"] * purchased["factor_value"], rel=1e-9
    )
    assert purchased["scope_2_tco2e_market"] > 0
    versions = {f["version"] for f in ledger["factors"]}
    assert "mee-nbs-electricity-2025-12-31" in versions
    assert all(f["source"] and f["unit"] for f in ledger["factors"])
    assert ledger["header"]["status"] == "draft" and ledger["header"]["month"] == MONTH
    assert ledger["header"]["calc_results_through"] is not None
    assert ledger["production"][0]["product_id"] == "widget"
    assert ledger["production"][0]["intensity_unit"] == "tCO2e/t"
    assert 0 < ledger["quality"]["completeness_share"] <= 1
    # The organisation's ledger: the plant books everything to plant-co.
    org = plant.client.get(ORG_BASE, headers=plant.h("enterprise")).json()["ledger"]
    assert _totals(org)["location"]["total_tco2e"] == pytest.approx(
        _rollup(plant.url, ORG)["location"], rel=1e-9
    )


def test_close_correct_revise_and_revision_1_unchanged(plant: Plant) -> None:
    client = plant.client
    closed = client.post(f"{BASE}/close", headers=plant.h("operator"))
    assert closed.status_code == 201, closed.text
    assert closed.json()["revision"] == 1 and closed.json()["reason"] is None
    assert_problem(client.post(f"{BASE}/close", headers=plant.h("admin")), 409)
    # Nothing changed yet: no revision to make.
    same = client.post(f"{BASE}/revisions", headers=plant.h("admin"), json={"reason": "again"})
    assert_problem(same, 409)
    first = client.get(f"{BASE}/revisions/1", headers=plant.h("regulator"))
    assert first.status_code == 200
    etag = first.headers["etag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    assert "immutable" in first.headers["cache-control"]
    revision_1 = first.json()
    assert revision_1["header"]["status"] == "closed" and revision_1["header"]["revision"] == 1
    assert client.get(BASE, headers=plant.h("admin")).json()["differs"] is False

    plant.late()  # the held-back grid readings arrive; the engine recomputes the month

    month = client.get(BASE, headers=plant.h("regulator")).json()
    assert month["closed"] is True and month["differs"] is True
    assert month["latest_revision"]["revision"] == 1
    assert month["ledger"] == revision_1  # the latest revision, not the new computation
    changes = {c["line"]: c for c in month["changes"]}
    total = changes["totals/location/total_tco2e"]
    before = revision_1["totals"][0]["total_tco2e"]
    after = _rollup(plant.url)["location"]
    assert total["before"] == before and total["after"] == pytest.approx(after, rel=1e-9)
    # The calc had estimated the missing tail; the real readings move the total either way.
    assert total["after"] != total["before"] and total["unit"] == "tCO2e"
    # delta = after − before, rounded to 10 significant digits
    assert total["delta"] == pytest.approx(total["after"] - total["before"], rel=1e-8)

    assert_problem(client.post(f"{BASE}/revisions", headers=plant.h("admin"), json={}), 422)
    assert_problem(
        client.post(f"{BASE}/revisions", headers=plant.h("regulator"), json={"reason": "x" * 9}),
        403,
    )
    reason = "grid meter readings of 6 May delivered late"
    revised = client.post(f"{BASE}/revisions", headers=plant.h("admin"), json={"reason": reason})
    assert revised.status_code == 201, revised.text
    assert revised.json()["revision"] == 2 and revised.json()["reason"] == reason
    assert revised.json()["change_count"] == len(month["changes"])
    second = client.get(f"{BASE}/revisions/2", headers=plant.h("operator")).json()
    assert second["header"]["reason"] == reason
    assert second["changes"] == month["changes"]
    assert _totals(second)["location"]["total_tco2e"] == pytest.approx(after, rel=1e-9)

    again = client.get(f"{BASE}/revisions/1", headers=plant.h("regulator"))
    assert again.content == first.content and again.headers["etag"] == etag
    cached = client.get(
        f"{BASE}/revisions/1", headers={**plant.h("regulator"), "If-None-Match": etag}
    )
    assert cached.status_code == 304 and cached.headers["etag"] == etag
    listed = client.get(f"{BASE}/revisions", headers=plant.h("operator")).json()["items"]
    assert [r["revision"] for r in listed] == [1, 2]
    assert listed[0]["document_sha256"] == etag.strip('"')
    after_revision = client.get(BASE, headers=plant.h("admin")).json()
    assert after_revision["differs"] is False and after_revision["changes"] == []
    # The stored row itself cannot be changed (write-once trigger).
    with psycopg.connect(plant.url) as conn, pytest.raises(psycopg.errors.RestrictViolation):
        conn.execute("UPDATE ledger_revision SET reason = 'x' WHERE revision = 1")


def _csv_sections(data: bytes, lang: Lang) -> dict[str, list[dict[str, str]]]:
    # A spreadsheet reads Chinese CSV as UTF-8 only after a byte order mark.
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    out: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        out.setdefault(row[field_label("section", lang)], []).append(row)
    return out


def _same(cell: Any, value: Any) -> bool:
    if value is None or value == "":  # an empty cell
        return cell in (None, "")
    if isinstance(value, Decimal):  # a rounded figure: printed with its column's decimals
        return cell == format(value, "f") if isinstance(cell, str) else cell == float(value)
    if isinstance(value, bool):
        return cell in (value, "true" if value else "false")
    if isinstance(value, (int, float)):
        return float(cell) == float(value)
    return str(cell) == str(value)


def _check_export(
    document: dict[str, Any], data_csv: bytes, data_xlsx: bytes, lang: Lang = "en"
) -> None:
    sections = _csv_sections(data_csv, lang)
    workbook = load_workbook(io.BytesIO(data_xlsx))
    assert workbook.sheetnames == [section_label(s, lang) for s in SHEET_ORDER]
    field, value_label = field_label("field", lang), field_label("value", lang)
    for section in SHEET_ORDER:
        worksheet = workbook[section_label(section, lang)]
        assert worksheet.freeze_panes == "A2" and worksheet["A1"].font.bold
        sheet = list(worksheet.iter_rows(values_only=True))
        csv_rows = sections.get(section_label(section, lang), [])
        if section in FIELD_SECTIONS:
            fields = dict(document[section])
            if section == "header":  # every export's header block carries the content hash
                fields["content_sha256"] = document["content_sha256"]
                fields["rounding"] = NOTE[lang]  # and the rounding rule, in the language
            expected = sorted((k, presented(section, k, v)) for k, v in fields.items())
            assert sheet[0] == (field, value_label)
            assert len(sheet) - 1 == len(expected) == len(csv_rows)
            for (key, value), cells, row in zip(expected, sheet[1:], csv_rows, strict=True):
                assert cells[0] == field_label(key, lang) == row[field]
                assert _same(cells[1], value) and _same(row[value_label], value), (key, value)
            continue
        columns = TABLES[section]
        headers = [field_label(c.key, lang, c.unit) for c in columns]
        assert list(sheet[0]) == headers
        assert len(sheet) - 1 == len(document[section]) == len(csv_rows), section
        for item, cells, row in zip(document[section], sheet[1:], csv_rows, strict=True):
            for column, header, cell in zip(columns, headers, cells, strict=True):
                value = presented(section, column.key, item.get(column.key))
                assert _same(cell, value), (section, column.key, cell, value)
                assert _same(row[header], value), (section, column.key)
                if isinstance(value, (float, Decimal)):
                    assert isinstance(cell, (int, float))  # numbers as numbers


def test_csv_and_xlsx_match_the_json(plant: Plant) -> None:
    client = plant.client
    assert client.post(f"{ORG_BASE}/close", headers=plant.h("enterprise")).status_code == 201
    plant.late()
    revised = client.post(
        f"{ORG_BASE}/revisions", headers=plant.h("enterprise"), json={"reason": "late readings"}
    )
    assert revised.status_code == 201, revised.text
    path = f"{ORG_BASE}/revisions/2"
    document = client.get(path, headers=plant.h("enterprise")).json()
    assert document["changes"] and document["header"]["org_id"] == ORG
    header = document["header"]
    # Who reports, and the month in the site's calendar (Asia/Shanghai, UTC+8).
    assert header["legal_name"] == "示例工厂有限公司" and header["credit_code"] == CREDIT_CODE
    assert header["industry"] == "battery_materials" and header["site_name"] == "Small plant"
    assert header["site_name_zh"] == "示例小厂"
    assert header["period_local_start"] == "2025-05-01T00:00:00+08:00"
    assert header["period_local_end"] == "2025-06-01T00:00:00+08:00"
    assert header["preparer"] == header["closed_by"] and header["preparer"]
    # An enterprise's ledger holds its own indicators, none of the site's.
    assert document["indicators"] and {i["org_id"] for i in document["indicators"]} == {ORG}
    as_csv = client.get(path, params={"format": "csv"}, headers=plant.h("enterprise"))
    assert as_csv.headers["content-type"].startswith("text/csv")
    as_xlsx = client.get(
        path,
        headers={**plant.h("enterprise"), "Accept": XLSX_MEDIA_TYPE},
    )
    assert as_xlsx.headers["content-type"].startswith("application/vnd.openxmlformats")
    _check_export(document, as_csv.content, as_xlsx.content)
    # A closed revision's XLSX is reproducible: the same bytes, a strong ETag per format.
    again = client.get(path, params={"format": "xlsx"}, headers=plant.h("admin"))
    assert again.content == as_xlsx.content
    assert again.headers["etag"] == as_xlsx.headers["etag"] != as_csv.headers["etag"]
    # The draft exports too, and the units are in the header cells.
    draft = client.get(f"{BASE}/draft", params={"format": "csv"}, headers=plant.h("admin"))
    header = draft.content.decode("utf-8-sig").splitlines()[0]
    assert "Emissions (CO2e) [tCO2e]" in header and "Energy [tce]" in header
    draft_json = client.get(f"{BASE}/draft", headers=plant.h("admin")).json()
    draft_xlsx = client.get(f"{BASE}/draft", params={"format": "xlsx"}, headers=plant.h("admin"))
    # generated_at is "now" in each response; the fixed wall clock makes them equal.
    _check_export(draft_json, draft.content, draft_xlsx.content)


def test_exports_in_chinese_and_as_pdf(plant: Plant) -> None:
    """What a Chinese enterprise downloads: labels in Chinese (asked for, or preferred by the
    browser), the CSV opens in a spreadsheet, and a PDF for printing: the same revision gives
    the same bytes, under an ETag of its own per format and language."""
    client = plant.client
    assert client.post(f"{ORG_BASE}/close", headers=plant.h("enterprise")).status_code == 201
    path = f"{ORG_BASE}/revisions/1"
    document = client.get(path, headers=plant.h("enterprise")).json()
    zh = {**plant.h("enterprise"), "Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}
    as_csv = client.get(path, params={"format": "csv"}, headers=zh)
    as_xlsx = client.get(path, params={"format": "xlsx", "lang": "zh"}, headers=plant.h("admin"))
    _check_export(document, as_csv.content, as_xlsx.content, "zh")
    assert "排放量 (CO2当量) [tCO2e]" in as_csv.content.decode("utf-8-sig").splitlines()[0]
    assert (
        as_csv.headers["etag"]
        != client.get(path, params={"format": "csv", "lang": "en"}, headers=zh).headers["etag"]
    )
    pdf = client.get(path, params={"format": "pdf"}, headers=zh)
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["content-disposition"].endswith('-r1.zh.pdf"')
    again = client.get(path, headers={**zh, "Accept": "application/pdf"})
    assert again.content == pdf.content and again.headers["etag"] == pdf.headers["etag"]
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
    for expected in (
        "碳排放台账", ORG, MONTH, "排放合计", "范围二排放", "活动数据", "统一社会信用代码",
        CREDIT_CODE, "示例工厂有限公司", "编制人", "2025-05-01T00:00:00+08:00",
        "示例小厂", "电池材料制造",  # the site's Chinese name and the industry in words
    ):  # fmt: skip
        assert expected in text, expected
    assert "Small plant" not in text and "battery_materials" not in text
    assert document["content_sha256"] in text.replace("\n", "")
    # Every figure of the totals whole on one line, as the table prints it (rounded per column).
    for row in document["totals"]:
        for column in TABLES["totals"][1:]:
            figure = format(presented("totals", column.key, row[column.key]), "f")
            assert re.search(rf"(?<![\d.]){re.escape(figure)}(?![\d])", text), figure


def test_who_may_close_and_the_bulk_export(plant: Plant) -> None:
    client = plant.client
    assert_problem(client.post(f"{BASE}/close", headers=plant.h("regulator")), 403)
    assert_problem(client.post(f"{BASE}/close", headers=plant.h("enterprise")), 403)
    assert_problem(
        client.post(f"/api/v1/sites/{SITE}/organisations/nobody/ledgers/{MONTH}/close",
                    headers=plant.h("enterprise")),
        404,
    )  # fmt: skip
    assert_problem(
        client.post(f"/api/v1/sites/{SITE}/ledgers/2026-11/close", headers=plant.h("admin")), 409
    )
    # The plant's readings start in May 2025: April is before it was onboarded.
    before = client.post(f"/api/v1/sites/{SITE}/ledgers/2025-04/close", headers=plant.h("admin"))
    assert_problem(before, 409)
    assert "onboarded" in before.json()["detail"] and "2025-05-" in before.json()["detail"]
    assert client.post(f"{BASE}/close", headers=plant.h("admin")).status_code == 201
    with psycopg.connect(plant.url) as conn:
        audited = conn.execute(
            "SELECT method, status FROM api_audit WHERE path = %s AND status = 201",
            (f"{BASE}/close",),
        ).fetchall()
    assert audited == [("POST", 201)]

    export = client.get(
        "/api/v1/ledgers/export", params={"from": "2025-04", "to": MONTH},
        headers=plant.h("regulator"),
    )  # fmt: skip
    assert export.status_code == 200, export.text
    archive = zipfile.ZipFile(io.BytesIO(export.content))
    manifest = json.loads(archive.read("manifest.json"))
    files = {f["file"]: f for f in manifest["files"]}
    assert set(files) == {
        f"{SITE}/2025-04/site.json", f"{SITE}/2025-04/{ORG}.json",
        f"{SITE}/{MONTH}/site.json", f"{SITE}/{MONTH}/{ORG}.json",
    }  # fmt: skip
    closed = files[f"{SITE}/{MONTH}/site.json"]
    assert (closed["status"], closed["revision"]) == ("closed", 1)
    stored = client.get(f"{BASE}/revisions/1", headers=plant.h("regulator")).content
    assert archive.read(closed["file"]) == stored
    assert files[f"{SITE}/{MONTH}/{ORG}.json"]["status"] == "draft"
    april = json.loads(archive.read(f"{SITE}/2025-04/site.json"))
    assert april["emissions"] == [] and april["header"]["month"] == "2025-04"
    # The enterprise's export holds its organisation's ledgers only.
    own = client.get(
        "/api/v1/ledgers/export", params={"from": MONTH, "to": MONTH},
        headers=plant.h("enterprise"),
    )  # fmt: skip
    names = zipfile.ZipFile(io.BytesIO(own.content)).namelist()
    assert names == ["manifest.json", f"{SITE}/{MONTH}/{ORG}.json"]
    too_long = client.get(
        "/api/v1/ledgers/export", params={"from": "2024-01", "to": MONTH},
        headers=plant.h("admin"),
    )  # fmt: skip
    assert_problem(too_long, 422)


def test_a_green_power_put_does_not_move_the_watermark_past_the_data(plant: Plant) -> None:
    """A green-power change recomputes the site's years with results (here: May 2025, to the end
    of the local month). The ledger's "calculated through" stays at the end of the newest data —
    before the fix it became 1 June (local), days after the last reading."""
    before = plant.client.get(BASE, headers=plant.h("operator")).json()["ledger"]["header"]
    through = datetime.fromisoformat(before["calc_results_through"])
    data_end = month_start(2025, 5) + timedelta(days=7)  # the works meter is not held back
    assert through <= data_end
    body = {
        **{k: v for k, v in GREEN_BODY.items() if not k.startswith(("valid_", "claim_"))},
        "org_id": ORG,
        "valid_from": "2025-01-01",
        "valid_to": "2025-12-31",
        "claim_start": "2025-05-01",
        "claim_end": "2025-05-31",
    }
    put = plant.client.put(
        f"/api/v1/sites/{SITE}/green-instruments/GEC-2025-05", headers=plant.h("admin"), json=body
    )
    assert put.status_code == 201, put.text
    _run_calc(plant.url)
    with psycopg.connect(plant.url) as conn:
        done = conn.execute(
            "SELECT count(*) FROM calc_request WHERE site_id = %s AND layer = 'carbon'", (SITE,)
        ).fetchone()
    assert done is not None and done[0] >= 1  # the PUT did recompute the month
    after = plant.client.get(BASE, headers=plant.h("operator")).json()["ledger"]["header"]
    moved = datetime.fromisoformat(after["calc_results_through"])
    assert through <= moved <= data_end
    assert moved <= datetime.now(UTC)
    # A watermark stored in the future before the fix is repaired once (migration 0013).
    with psycopg.connect(plant.url) as conn:
        conn.execute(
            "UPDATE calc_site_state SET results_through = '2027-01-01T00:00:00+08:00' "
            "WHERE site_id = %s",
            (SITE,),
        )
        assert conn.execute(REPAIR_WATERMARKS).rowcount == 1
        assert conn.execute(REPAIR_WATERMARKS).rowcount == 0
        stored = conn.execute(
            "SELECT results_through FROM calc_site_state WHERE site_id = %s", (SITE,)
        ).fetchone()
    assert stored is not None and stored[0] == data_end

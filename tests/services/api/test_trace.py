"""Traceability through the API: from a ledger line or an indicator value to its devices, readings,
factors and calc, on the small plant of ``test_ledgers.py`` (real engine, generated readings).

Hand-checked counts: the generator gives every quantity metric one reading per 15 min from a phase
inside the first slot, over five days from 3 May 2025 00:00 (+08:00): 5 × 96 = 480 readings. The
grid meter has two registers, import and export; the export register's last twelve hours
(12 × 4 = 48 readings) are held back, so 432 of its readings are stored, 480 of the import's, and
the line's readings are 432 + 480 = 912. May has 31 × 96 = 2 976 expected 15-min intervals, and
every interval outside the five days is missing.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import psycopg
import pytest

from tests.services.api.test_ledgers import MONTH, ORG, SITE, Plant, plant
from tests.support.api_support import assert_problem
from tests.support.calc_generator import month_start

pytestmark = pytest.mark.integration
__all__ = ["plant"]  # the fixture, shared with test_ledgers.py

LINE = "purchased_electricity.electricity.scope_2"
SITE_TRACE = f"/api/v1/sites/{SITE}/ledgers/{MONTH}/lines/{LINE}/trace"
ORG_TRACE = f"/api/v1/sites/{SITE}/organisations/{ORG}/ledgers/{MONTH}/lines/{LINE}/trace"
STORED = 5 * 96 - 12 * 4  # readings of the grid meter's export register
IMPORT = "energy_import_kwh"  # its import register: all 5 × 96 readings
EXPECTED = 31 * 96  # 15-min intervals in May


def _grid_meter_db(
    url: str, metric: str = "energy_export_kwh"
) -> tuple[int, datetime, datetime, dict[str, int]]:
    """A grid meter register's readings (count, first, last) and interval qualities, from SQL."""
    start, end = month_start(2025, 5), month_start(2025, 6)
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*), min(r.ts), max(r.ts) FROM reading r JOIN device d USING (device_pk)"
            " JOIN metric m USING (metric_id) WHERE d.site_id = %s AND d.device_id = 'grid-meter'"
            " AND m.name = %s AND r.ts >= %s AND r.ts < %s",
            (SITE, metric, start, end),
        ).fetchone()
        quality = conn.execute(
            "SELECT i.quality, count(*) FROM calc_interval i JOIN device d USING (device_pk)"
            " JOIN metric m USING (metric_id) WHERE d.site_id = %s AND d.device_id = 'grid-meter'"
            " AND m.name = %s AND i.start_ts >= %s AND i.start_ts < %s GROUP BY i.quality",
            (SITE, metric, start, end),
        ).fetchall()
    assert row is not None
    return int(row[0]), row[1], row[2], {str(q): int(n) for q, n in quality}


def test_a_ledger_line_traces_to_its_meter_readings_factors_and_calc(plant: Plant) -> None:
    client = plant.client
    response = client.get(ORG_TRACE, headers=plant.h("enterprise"))
    assert response.status_code == 200, response.text
    trace = response.json()
    assert trace["line_id"] == LINE and trace["org_id"] == ORG and trace["month"] == MONTH
    assert trace["period_start"].startswith("2025-04-30T16:00:00")  # 1 May 00:00 +08:00
    # The line is the ledger's activity line, figure for figure.
    ledger = client.get(f"{plant_org_ledger()}", headers=plant.h("enterprise")).json()["ledger"]
    row = next(
        r for r in ledger["activity"]
        if (r["category"], r["carrier"], r["scope"]) == tuple(LINE.split("."))
    )  # fmt: skip
    assert trace["line"] == row
    # One device behind it, the grid meter (its name, registers), with its two registers.
    device, import_ = trace["devices"]  # by metric: energy_export_kwh, energy_import_kwh
    assert (device["metric"], import_["metric"]) == ("energy_export_kwh", IMPORT)
    assert device["device_id"] == "grid-meter" and device["name"] == "Grid meter"
    assert device["register_unit"] == "kWh"
    assert device["multiplier"] == 100.0 and device["meter_kind"] == "counter"
    count, first, last, qualities = _grid_meter_db(plant.url)
    assert count == STORED == device["readings"]["count"]
    assert import_["readings"]["count"] == 5 * 96 == _grid_meter_db(plant.url, IMPORT)[0]
    assert trace["readings"]["count"] == STORED + 5 * 96 == 912
    assert device["readings"]["unit"] == "reading"
    assert datetime.fromisoformat(device["readings"]["first_at"]) == first
    assert datetime.fromisoformat(device["readings"]["last_at"]) == last
    assert last - first == timedelta(minutes=15) * (STORED - 1)  # one every 15 min
    intervals = device["intervals"]
    assert intervals["unit"] == "15-min interval" and intervals["expected"] == EXPECTED
    assert intervals["measured"] == qualities.get("measured", 0) > 0
    assert intervals["estimated"] == qualities.get("estimated", 0)
    assert intervals["measured"] + intervals["estimated"] + intervals["missing"] == EXPECTED
    # At most the stored readings' span is data: the rest of the month is missing.
    assert intervals["measured"] + intervals["estimated"] <= STORED
    assert device["measured_share"] == pytest.approx(intervals["measured"] / EXPECTED)
    # (closing − opening) × multiplier = the quantity (a counter without resets).
    assert (device["closing_reading"] - device["opening_reading"]) * 100 == pytest.approx(
        device["device_quantity"], rel=1e-9
    )
    # The factors: the grid factor with its unit, data year and source; the GWP of the CO2e.
    keys = {f["factor_key"]: f for f in trace["factors"]}
    grid = keys[row["factor_key"]]
    assert grid["unit"] and grid["data_year"] and grid["source"] and grid["version"]
    assert {g["gas"] for g in trace["gwp"]} >= {"CO2"}
    assert all(g["unit"] == "tCO2e/t" for g in trace["gwp"])
    assert trace["factor_set_ids"] and trace["factor_set_ids"] == trace["calc"]["factor_set_ids"]
    # The calc that produced it: 15-min rows and when they were computed.
    calc = trace["calc"]
    assert calc["carbon_rows"] > 0 and calc["first_computed_at"] <= calc["last_computed_at"]
    assert calc["site_document_sha256"] and calc["factor_fingerprint"]
    assert trace["ledger"] == {
        "status": "draft", "latest_revision": None,
        "href": f"/api/v1/sites/{SITE}/organisations/{ORG}/ledgers/{MONTH}",
    }  # fmt: skip

    # The late readings arrive: the trace counts them, and names the closed revision.
    assert (
        client.post(f"{plant_org_ledger()}/close", headers=plant.h("enterprise")).status_code == 201
    )
    plant.late()
    after = client.get(ORG_TRACE, headers=plant.h("regulator")).json()
    assert after["devices"][0]["readings"]["count"] == 5 * 96 == _grid_meter_db(plant.url)[0]
    assert after["ledger"]["status"] == "closed" and after["ledger"]["latest_revision"] == 1


def plant_org_ledger() -> str:
    return f"/api/v1/sites/{SITE}/organisations/{ORG}/ledgers/{MONTH}"


def test_who_may_trace_and_unknown_lines(plant: Plant) -> None:
    client = plant.client
    assert client.get(SITE_TRACE, headers=plant.h("admin")).status_code == 200
    assert client.get(SITE_TRACE, headers=plant.h("operator")).status_code == 200
    assert client.get(SITE_TRACE, headers=plant.h("regulator")).status_code == 200
    # An enterprise has its own organisation's ledger only (the site's: 403, as the ledger).
    assert_problem(client.get(SITE_TRACE, headers=plant.h("enterprise")), 403)
    other = ORG_TRACE.replace(f"/{ORG}/", "/nobody/")
    assert_problem(client.get(other, headers=plant.h("enterprise")), 404)
    assert client.get(ORG_TRACE).status_code == 401
    missing = SITE_TRACE.replace(LINE, "process.carbonate.scope_1")
    assert_problem(client.get(missing, headers=plant.h("admin")), 404)
    bad = SITE_TRACE.replace(LINE, "not-a-line")
    assert client.get(bad, headers=plant.h("admin")).status_code == 422
    # A month with no data has no lines.
    empty = SITE_TRACE.replace(MONTH, "2025-01")
    assert_problem(client.get(empty, headers=plant.h("admin")), 404)


def test_an_indicator_value_traces_to_its_inputs(plant: Plant) -> None:
    client = plant.client
    path = f"/api/v1/sites/{SITE}/indicators/co2_per_energy/trace"
    response = client.get(path, params={"grain": "month", "period": "2025-05-01"},
                          headers=plant.h("admin"))  # fmt: skip
    assert response.status_code == 200, response.text
    trace = response.json()
    assert trace["org_id"] is None and trace["unit"] and trace["grain"] == "month"
    assert trace["inputs"]["inventory"] is True and LINE in trace["inputs"]["lines"]
    assert f"/ledgers/{MONTH}/lines/{LINE}/trace" in trace["inputs"]["line_hrefs"][0]
    grid = next(d for d in trace["devices"] if d["metric"] == "energy_export_kwh")
    assert (
        grid["device_id"] == "grid-meter"
        and grid["readings"]["count"] == STORED
        and grid["intervals"]["expected"] == EXPECTED
    )
    assert trace["factors"] and trace["calc"]["computed_at"] is not None
    # An enterprise key: its own organisation's indicators only (the site's is not its own).
    own = client.get(path, params={"period": "2025-05-01"}, headers=plant.h("enterprise"))
    assert own.status_code == 404  # co2_per_energy is a site indicator, none of plant-co's
    energy = client.get(
        f"/api/v1/sites/{SITE}/indicators/energy_tce/trace",
        params={"period": "2025-05-01", "org_id": ORG},
        headers=plant.h("enterprise"),
    )
    assert energy.status_code == 200, energy.text
    assert energy.json()["org_id"] == ORG and energy.json()["energy_tce"] is not None
    assert_problem(
        client.get(path, params={"org_id": "nobody"}, headers=plant.h("enterprise")), 404
    )
    assert_problem(client.get(path, params={"period": "2025-01-01"}, headers=plant.h("admin")), 404)

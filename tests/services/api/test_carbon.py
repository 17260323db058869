"""The calc-result routes against results of the real calc engine: carbon series, device energy,
indicators, budgets, events, factor provenance and library, regulator aggregates, CORS.

One module-scoped database: two small enterprise sites (``twin-works`` with two organisations,
``twin-works-b`` in another province), three days of generated readings at each, the calc
engine run until idle, one key per role. Every figure served is compared with the calc tables
(or the calc service's own read functions) for the same period.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from carbonflow.domain.inventory.balance import settle_period
from carbonflow.embedded.postgres import PostgresServer
from carbonflow.sites.loader import parse_site_text
from carbonflow.storage import carbon as carbon_db
from carbonflow.storage import indicators as indicators_db
from carbonflow.storage.registry_load import load_site
from services.api.reads import indicators_for_period
from tests.support.api_support import ADMIN_KEY, _database, assert_problem, grant_keys, make_app
from tests.support.calc_generator import generate, month_start, run_calc, store_readings

pytestmark = pytest.mark.integration

SITE = "twin-works"
SITE_B = "twin-works-b"
TWIN_SITE = """
site: {id: twin-works, name: Twin works, kind: enterprise, province: shanxi, grid_region: north}
organisations: [{id: plant-co, name: Plant Co}, {id: other-co, name: Other Co}]
nodes:
  - {id: grid, name: Grid, kind: supply}
  - {id: substation, name: Substation, kind: distribution, org: plant-co}
  - {id: works, name: Works, kind: process, org: plant-co}
  - {id: other-substation, name: Other substation, kind: distribution, org: other-co}
  - {id: other-works, name: Other works, kind: process, org: other-co}
products: [{id: widget, name: Widgets, unit: t, node: works, org: plant-co}]
edges:
  - {source: grid, target: substation, carrier: electricity, meters: [grid-meter]}
  - {source: substation, target: works, carrier: electricity, meters: [works-meter]}
  - {source: grid, target: other-substation, carrier: electricity, meters: [other-grid-meter]}
  - {source: other-substation, target: other-works, carrier: electricity,
     meters: [other-works-meter]}
budgets: [{org: plant-co, year: 2025, energy_tce: 0.01, co2_t: 50}]
devices:
  - id: grid-meter
    name: Grid meter
    kind: electricity_meter
    carrier: electricity
    role: grid_import
    node: substation
    org: plant-co
    multiplier: 100
    sim: {rated_kw: 1000, mean_load_pct: 50, publish_interval_s: 3600}
  - id: works-meter
    name: Works feeder
    kind: electricity_meter
    carrier: electricity
    role: consumption
    node: works
    org: plant-co
    sim: {rated_kw: 1000, mean_load_pct: 45, publish_interval_s: 3600}
  - id: widget-scale
    name: Widget scale
    kind: production_meter
    carrier: product
    role: production
    product: widget
    node: works
    org: plant-co
    sim: {rated_t_h: 10, mean_load_pct: 50, publish_interval_s: 3600}
  - id: other-grid-meter
    name: Other grid meter
    kind: electricity_meter
    carrier: electricity
    role: grid_import
    node: other-substation
    org: other-co
    sim: {rated_kw: 400, mean_load_pct: 50, publish_interval_s: 3600}
  - id: other-works-meter
    name: Other works feeder
    kind: electricity_meter
    carrier: electricity
    role: consumption
    node: other-works
    org: other-co
    sim: {rated_kw: 400, mean_load_pct: 45, publish_interval_s: 3600}
"""
# The second site: the same plant in Inner Mongolia (another grid factor, so other factor sets).
TWIN_SITE_B = TWIN_SITE.replace("id: twin-works,", "id: twin-works-b,").replace(
    "province: shanxi, grid_region: north", "province: inner_mongolia, grid_region: north"
)
START = month_start(2025, 5)  # 2025-05-01 00:00 +08:00
END = START + timedelta(days=3)
DAY2 = START + timedelta(days=1)
# The keys: (role, sites, organisation)
GRANTS = {
    "admin": ("admin", [], None),
    "operator": ("operator", [SITE], None),
    "enterprise": ("enterprise", [SITE], "plant-co"),
    "other": ("enterprise", [SITE], "other-co"),
    "regulator": ("regulator", [SITE], None),
}
S = f"/api/v1/sites/{SITE}"


@dataclass
class Calc:
    url: str
    client: TestClient
    tokens: dict[str, str]

    def get(self, who: str, path: str, **params: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"}
        # An empty params would replace a query already in the path (a page link).
        return self.client.get(path, headers=headers, params=params or None)

    def ok(self, who: str, path: str, **params: Any) -> Any:
        response = self.get(who, path, **params)
        assert response.status_code == 200, response.text
        return response.json()


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture(scope="module")
def calc(pg_server: PostgresServer, migrated_template: str) -> Iterator[Calc]:
    db = _database(pg_server, migrated_template)
    try:
        url = pg_server.url_for(db.name)
        for text in (TWIN_SITE, TWIN_SITE_B):
            doc = parse_site_text(text, "twin.yaml")
            load_site(url, doc)
            data = generate(doc, START, END, period=timedelta(minutes=10))
            store_readings(url, doc.site.id, data)
        run_calc(url)
        keys = grant_keys(url, GRANTS, label="test {name}")
        tokens = {"bootstrap": ADMIN_KEY, **{name: key.token for name, key in keys.items()}}
        with TestClient(make_app(url), raise_server_exceptions=False) as client:
            yield Calc(url, client, tokens)
    finally:
        db.drop()


def _conn(url: str) -> psycopg.Connection[Any]:
    conn = psycopg.connect(url)
    conn.execute("SET TIME ZONE 'UTC'")
    return conn


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# --------------------------------------------------------------------------------------------
# Time series
# --------------------------------------------------------------------------------------------


def test_series_equals_the_calc_tables_at_every_grain(calc: Calc) -> None:
    with _conn(calc.url) as conn:
        for grain, count in (("15min", 96), ("hour", 24), ("day", 1)):
            body = calc.ok(
                "admin", f"{S}/carbon/series", grain=grain, start=_iso(DAY2),
                end=_iso(DAY2 + timedelta(days=1)),
            )  # fmt: skip
            stored = carbon_db.site_series(conn, SITE, grain, DAY2, DAY2 + timedelta(days=1))
            assert len(body["points"]) == len(stored) == count
            for point, row in zip(body["points"], stored, strict=True):
                assert _ts(point["period_start"]) == row.period_start
                assert point["tco2e"] == pytest.approx(row.tco2e_location, rel=1e-12)
                assert point["energy_tce"] == pytest.approx(row.energy_tce, rel=1e-12)
                assert point["co2_t"] == pytest.approx(row.co2_t_location, rel=1e-12)
                assert point["scope2_tco2e"] == pytest.approx(row.scope2_location_tco2e, rel=1e-12)
                assert point["completeness"] == pytest.approx(row.completeness)
                assert point["quality"] in ("measured", "estimated", "missing")
            assert body["totals"]["tco2e"] == pytest.approx(
                math.fsum(r.tco2e_location for r in stored)
            )
        market = calc.ok(
            "operator", f"{S}/carbon/series", grain="day", basis="market", start=_iso(START),
            end=_iso(END),
        )  # fmt: skip
        days = carbon_db.site_series(conn, SITE, "day", START, END)
        assert [p["tco2e"] for p in market["points"]] == pytest.approx(
            [d.tco2e_market for d in days], rel=1e-12
        )
        # The day is its 24 hours: the 15-min and hour sums agree with the stored day.
        day2 = next(d for d in days if d.period_start == DAY2)
        assert day2.tco2e_location > 0
    # Local days: 2025-05-02 00:00 +08:00 is 2025-05-01 16:00 UTC, and it ends a day later.
    point = market["points"][1]
    assert (point["period_start"], point["period_end"]) == (
        "2025-05-01T16:00:00Z",
        "2025-05-02T16:00:00Z",
    )


def test_series_without_offset_is_site_local(calc: Calc) -> None:
    local = calc.ok(
        "admin", f"{S}/carbon/series", grain="day", start="2025-05-02T00:00:00",
        end="2025-05-03T00:00:00",
    )  # fmt: skip
    assert local["start"] == "2025-05-01T16:00:00Z" and len(local["points"]) == 1


def test_activity_is_the_grid_meters_energy(calc: Calc) -> None:
    body = calc.ok(
        "admin", f"{S}/carbon/series", grain="day", start=_iso(DAY2),
        end=_iso(DAY2 + timedelta(days=1)), category="purchased_electricity",
    )  # fmt: skip
    [point] = body["points"]
    [activity] = point["activity"]
    assert (activity["carrier"], activity["unit"]) == ("electricity", "MWh")
    with _conn(calc.url) as conn:
        row = conn.execute(
            "SELECT sum(activity) FROM calc_carbon_rollup WHERE site_id = %s AND grain = 'day' "
            "AND period_start = %s AND category = 'purchased_electricity' AND basis = 'location' "
            "AND gas = 'CO2'",
            (SITE, DAY2),
        ).fetchone()
    assert row is not None and activity["activity"] == pytest.approx(row[0], rel=1e-12)


def test_enterprise_series_is_its_organisation_only(calc: Calc) -> None:
    params = {"grain": "day", "start": _iso(START), "end": _iso(END)}
    own = calc.ok("enterprise", f"{S}/carbon/series", **params)
    assert own["org_id"] == "plant-co"
    with _conn(calc.url) as conn:
        plant = carbon_db.site_series(conn, SITE, "day", START, END, org_id="plant-co")
        other = carbon_db.site_series(conn, SITE, "day", START, END, org_id="other-co")
        whole = carbon_db.site_series(conn, SITE, "day", START, END)
    assert [p["tco2e"] for p in own["points"]] == pytest.approx(
        [p.tco2e_location for p in plant], rel=1e-12
    )
    # The two organisations' figures differ and add up to the site's.
    assert plant[0].tco2e_location != pytest.approx(other[0].tco2e_location)
    both = calc.ok("admin", f"{S}/carbon/series", **params)
    for point, p, o in zip(both["points"], plant, other, strict=True):
        assert point["tco2e"] == pytest.approx(p.tco2e_location + o.tco2e_location, rel=1e-12)
    assert len(whole) == 3
    # Naming its own organisation is the same; another's is 404, not an empty series.
    named = calc.ok("enterprise", f"{S}/carbon/series", org_id="plant-co", **params)
    assert named["points"] == own["points"]
    assert_problem(calc.get("enterprise", f"{S}/carbon/series", org_id="other-co", **params), 404)
    assert_problem(
        calc.get("enterprise", f"{S}/carbon/series", node_id="other-works", **params), 404
    )
    operator = calc.ok("operator", f"{S}/carbon/series", org_id="other-co", **params)
    assert [p["tco2e"] for p in operator["points"]] == pytest.approx(
        [o.tco2e_location for o in other], rel=1e-12
    )
    assert_problem(calc.get("operator", f"{S}/carbon/series", org_id="nobody", **params), 404)
    assert_problem(calc.get("regulator", f"/api/v1/sites/{SITE_B}/carbon/series", **params), 404)


def test_series_filters_by_node_carrier_scope_category(calc: Calc) -> None:
    params = {"grain": "day", "start": _iso(START), "end": _iso(END)}
    scope2 = calc.ok("admin", f"{S}/carbon/series", scope="scope_2", **params)
    scope1 = calc.ok("admin", f"{S}/carbon/series", scope="scope_1", **params)
    whole = calc.ok("admin", f"{S}/carbon/series", **params)
    # An electricity-only plant: everything is scope 2.
    assert scope2["totals"]["tco2e"] == pytest.approx(whole["totals"]["tco2e"])
    assert scope1["totals"]["tco2e"] == 0.0
    node = calc.ok("admin", f"{S}/carbon/series", node_id="other-substation", **params)
    org = calc.ok("admin", f"{S}/carbon/series", org_id="other-co", **params)
    assert node["totals"]["tco2e"] == pytest.approx(org["totals"]["tco2e"])
    heat = calc.ok("admin", f"{S}/carbon/series", carrier="heat", **params)
    assert heat["points"] == []


def test_grain_and_range_are_checked(calc: Calc) -> None:
    path = f"{S}/carbon/series"
    # 40 days of 15 min are 3 840 points, more than 3 000: refused with the count.
    too_many = assert_problem(
        calc.get("admin", path, grain="15min", start=_iso(START),
                 end=_iso(START + timedelta(days=40))),
        422,
    )  # fmt: skip
    assert "3840 periods" in too_many["detail"]
    # 31 days of 15 min (2 976) are accepted; a year of days too.
    assert calc.get("admin", path, grain="15min", start=_iso(START),
                    end=_iso(START + timedelta(days=31))).status_code == 200  # fmt: skip
    assert (
        calc.get("admin", path, grain="day", start="2025-01-01", end="2026-01-01").status_code
        == 200
    )
    assert_problem(calc.get("admin", path, grain="week", start=_iso(START), end=_iso(END)), 422)
    assert_problem(calc.get("admin", path, start=_iso(END), end=_iso(START)), 422)
    assert_problem(calc.get("admin", path, start="1900-01-01T00:00:00Z", end=_iso(END)), 422)
    assert_problem(calc.get("admin", path, start=_iso(START)), 422)
    assert_problem(calc.get("admin", path, start=_iso(START), end=_iso(END), basis="both"), 422)


def test_device_energy_equals_the_interval_tables(calc: Calc) -> None:
    body = calc.ok(
        "enterprise", f"{S}/devices/works-meter/energy", grain="hour", start=_iso(DAY2),
        end=_iso(DAY2 + timedelta(hours=6)),
    )  # fmt: skip
    [metric] = body["metrics"]
    assert (metric["metric"], metric["unit"]) == ("energy_import_kwh", "kWh")
    with _conn(calc.url) as conn:
        rows = conn.execute(
            "SELECT r.period_start, r.quantity, r.completeness, r.quality FROM "
            "calc_interval_rollup r JOIN device d ON d.device_pk = r.device_pk "
            "WHERE d.site_id = %s AND d.device_id = 'works-meter' AND r.grain = 'hour' "
            "AND r.period_start >= %s AND r.period_start < %s ORDER BY 1",
            (SITE, DAY2, DAY2 + timedelta(hours=6)),
        ).fetchall()
        quarters = conn.execute(
            "SELECT sum(c.quantity) FROM calc_interval c JOIN device d ON d.device_pk = "
            "c.device_pk WHERE d.site_id = %s AND d.device_id = 'works-meter' "
            "AND c.start_ts >= %s AND c.start_ts < %s",
            (SITE, DAY2, DAY2 + timedelta(hours=1)),
        ).fetchone()
    assert len(rows) == 6
    for point, (start, quantity, completeness, quality) in zip(metric["points"], rows, strict=True):
        assert _ts(point["period_start"]) == start
        assert (point["quantity"], point["completeness"], point["quality"]) == (
            quantity, completeness, quality,
        )  # fmt: skip
        assert point["unit"] == "kWh" and point["intervals"] == 4
    fifteen = calc.ok(
        "admin", f"{S}/devices/works-meter/energy", grain="15min", start=_iso(DAY2),
        end=_iso(DAY2 + timedelta(hours=1)), metric="energy_import_kwh",
    )  # fmt: skip
    assert quarters is not None
    assert math.fsum(p["quantity"] for p in fifteen["metrics"][0]["points"]) == pytest.approx(
        quarters[0], rel=1e-12
    )
    params = {"start": _iso(DAY2), "end": _iso(END)}
    assert_problem(calc.get("enterprise", f"{S}/devices/other-works-meter/energy", **params), 404)
    assert calc.get("other", f"{S}/devices/other-works-meter/energy", **params).status_code == 200
    assert_problem(calc.get("admin", f"{S}/devices/nowhere/energy", **params), 404)


# --------------------------------------------------------------------------------------------
# Indicators, budgets, events
# --------------------------------------------------------------------------------------------


def test_stored_indicators_with_target_status_and_trend(calc: Calc) -> None:
    body = calc.ok("admin", f"{S}/indicators", grain="day", period="2025-05-03", trend=2)
    assert body["period_start"] == "2025-05-02T16:00:00Z"
    with _conn(calc.url) as conn:
        stored = indicators_db.indicators(
            conn, SITE, grain="day", start=START + timedelta(days=2), end=END
        )
    assert len(body["items"]) == len(stored) > 0
    by_key = {(i["org_id"] or "", i["indicator"]): i for i in body["items"]}
    for row in stored:
        item = by_key[(row["org_id"], row["indicator"])]
        assert (item["value"], item["unit"], item["status"], item["explanation"]) == (
            row["value"], row["unit"], row["status"], row["explanation"],
        )  # fmt: skip
        if row["target_threshold"] is not None:
            assert item["target"]["threshold"] == row["target_threshold"]
        # The two days before, oldest first.
        assert [t["period_start"] for t in item["trend"]] == [
            "2025-04-30T16:00:00Z", "2025-05-01T16:00:00Z",
        ]  # fmt: skip
    # Without a period: the newest stored day.
    newest = calc.ok("admin", f"{S}/indicators", grain="day")
    assert newest["period_start"] == body["period_start"]
    # An enterprise sees its organisation's indicators only, not the site's or the other's.
    own = calc.ok("enterprise", f"{S}/indicators", grain="month", period="2025-05-01")
    assert own["items"] and {i["org_id"] for i in own["items"]} == {"plant-co"}
    assert_problem(calc.get("enterprise", f"{S}/indicators", grain="month", org_id="other-co"), 404)


def test_range_indicators_equal_the_calc_services(calc: Calc) -> None:
    body = calc.ok("operator", f"{S}/indicators/range", start=_iso(DAY2), end=_iso(END))
    with _conn(calc.url) as conn:
        outcomes = indicators_for_period(conn, SITE, DAY2, END)
    assert len(body["items"]) == len(outcomes) > 0
    for item, o in zip(body["items"], outcomes, strict=True):
        assert (item["indicator"], item["value"], item["status"]) == (
            o.indicator, o.result.value.value, o.result.status.value,
        )  # fmt: skip
        assert item["grain"] == "range" and item["unit"] == o.result.value.unit
        assert 0.0 < item["completeness"] <= 1.0
    own = calc.ok("enterprise", f"{S}/indicators/range", start=_iso(DAY2), end=_iso(END))
    assert {i["org_id"] for i in own["items"]} == {"plant-co"}
    off_grid = calc.get("admin", f"{S}/indicators/range", start="2025-05-02T00:07:00+08:00",
                        end=_iso(END))  # fmt: skip
    assert_problem(off_grid, 422)


def test_budgets_and_events(calc: Calc) -> None:
    body = calc.ok("enterprise", f"{S}/budgets", year=2025)
    with _conn(calc.url) as conn:
        stored = indicators_db.budgets(conn, SITE, 2025)
        events = indicators_db.events(conn, SITE, limit=1000)
    assert {(b["quantity"], b["consumed"], b["projected_total"]) for b in body["items"]} == {
        (r["quantity"], r["consumed"], r["projected_total"]) for r in stored
        if r["org_id"] == "plant-co"
    }  # fmt: skip
    assert body["items"] and all(b["unit"] for b in body["items"])
    assert all(b["burn_down"] is None for b in body["items"])
    # Burn-down: cumulative per local month; all the data are in May, so from May on the curve
    # stays at the year's consumption as the calc service computed it.
    curves = calc.ok("enterprise", f"{S}/budgets", year=2025, burn_down="true")["items"]
    for budget in curves:
        points = budget["burn_down"]
        assert points[0]["period_end"] == "2025-01-31T16:00:00Z"
        assert [p["consumed"] for p in points[:4]] == [0.0, 0.0, 0.0, 0.0]
        assert points[4]["period_end"] == "2025-05-31T16:00:00Z"
        assert points[4]["consumed"] == pytest.approx(budget["consumed"], rel=1e-9)
        assert points[-1]["consumed"] == pytest.approx(budget["consumed"], rel=1e-9)
        assert budget["consumed"] > 0
    assert calc.ok("other", f"{S}/budgets")["items"] == []  # other-co has no budget
    page = calc.ok("admin", f"{S}/events", limit=1000)
    assert [e["event_id"] for e in page["items"]] == sorted(
        (e["event_id"] for e in events),
        key=lambda i: (-next(e["raised_at"] for e in events if e["event_id"] == i).timestamp(), -i),
    )
    # Three days of a year are too few to judge a projection (insufficient_data raises
    # nothing), but a budget of 0.01 tce is used up: that is a fact, raised at once.
    assert events, "the budget of 0.01 tce, used up in three days, should raise a warning"
    assert any(e["kind"] == "budget" and e["status"] == "off_track" for e in events)
    kinds = {e["kind"] for e in events}
    for kind in kinds:
        only = calc.ok("admin", f"{S}/events", kind=kind)["items"]
        assert only and {e["kind"] for e in only} == {kind}
    mine = calc.ok("enterprise", f"{S}/events", limit=1000)["items"]
    assert {e["org_id"] for e in mine} <= {"plant-co"}
    assert len(mine) == sum(1 for e in events if e["org_id"] == "plant-co")
    first = calc.ok("admin", f"{S}/events", limit=1)
    assert len(first["items"]) == 1 and first["links"]["prev"] is None


# --------------------------------------------------------------------------------------------
# Factors
# --------------------------------------------------------------------------------------------


def _factor_set_of(url: str, site: str, org: str) -> int:
    with _conn(url) as conn:
        row = conn.execute(
            "SELECT max(factor_set_id) FROM calc_carbon WHERE site_id = %s AND org_id = %s "
            "AND category = 'purchased_electricity' AND basis = 'location'",
            (site, org),
        ).fetchone()
    assert row is not None and row[0] is not None
    return int(row[0])


def test_factor_set_only_for_a_key_that_sees_a_row_using_it(calc: Calc) -> None:
    here = _factor_set_of(calc.url, SITE, "plant-co")
    there = _factor_set_of(calc.url, SITE_B, "plant-co")
    assert here != there  # another province, another grid factor
    body = calc.ok("enterprise", f"/api/v1/factor-sets/{here}")
    with _conn(calc.url) as conn:
        assert body["factors"] == carbon_db.factor_set(conn, here)
    grid = body["factors"][0]
    assert grid["factor_unit"] and grid["factor_version"] and grid["factor_source"]
    for who in ("admin", "bootstrap", "operator", "regulator"):
        assert calc.get(who, f"/api/v1/factor-sets/{here}").status_code == 200
    # twin-works-b is not granted to these keys: its factor set does not exist for them.
    for who in ("operator", "regulator", "enterprise"):
        assert_problem(calc.get(who, f"/api/v1/factor-sets/{there}"), 404)
    assert calc.get("admin", f"/api/v1/factor-sets/{there}").status_code == 200
    assert_problem(calc.get("admin", "/api/v1/factor-sets/999999"), 404)


def test_factor_library_listing(calc: Calc) -> None:
    with _conn(calc.url) as conn:
        current = conn.execute(
            "SELECT count(*) FROM factor_value v JOIN factor_file f USING (file_name, version) "
            "WHERE f.superseded_at IS NULL AND v.factor_key LIKE 'electricity.%%'"
        ).fetchone()
    assert current is not None
    seen: list[dict[str, Any]] = []
    path: str | None = "/api/v1/factors?key=electricity.&limit=1000"
    while path is not None:
        page = calc.ok("regulator", path)
        seen += page["items"]
        path = page["links"]["next"]
    assert len(seen) == current[0] > 0
    assert all(f["factor_key"].startswith("electricity.") and f["unit"] for f in seen)
    assert all(f["current"] for f in seen)
    for who in ("admin", "operator", "enterprise", "other"):
        assert calc.get(who, "/api/v1/factors", limit=1).status_code == 200
    a_only = calc.ok("admin", "/api/v1/factors", confidence="A", limit=1000)["items"]
    assert {f["confidence"] for f in a_only} == {"A"}


# --------------------------------------------------------------------------------------------
# Regulator aggregates
# --------------------------------------------------------------------------------------------


def test_aggregate_totals_equal_the_period_totals(calc: Calc) -> None:
    params = {"start": "2025-05-01", "end": "2025-05-04"}
    body = calc.ok("admin", "/api/v1/aggregates/totals", **params)
    assert [s["site_id"] for s in body["sites"]] == [SITE, SITE_B]
    with _conn(calc.url) as conn:
        for site in body["sites"]:
            rows, surplus = settle_period(
                carbon_db.carbon_totals(conn, site["site_id"], START, END, "Asia/Shanghai")
            )
            location = math.fsum(r.tco2e for r in rows if r.basis != "market")
            market = math.fsum(r.tco2e for r in rows if r.basis != "location")
            assert site["totals"]["location_tco2e"] == pytest.approx(location, rel=1e-12)
            assert site["totals"]["market_tco2e"] == pytest.approx(market, rel=1e-12)
            assert site["surplus_export_mwh"] == surplus
            orgs = {o["org_id"]: o for o in site["organisations"]}
            assert set(orgs) == {"plant-co", "other-co"}
            assert orgs["plant-co"]["name"] == "Plant Co"
            assert math.fsum(o["totals"]["location_tco2e"] for o in orgs.values()) == (
                pytest.approx(location, rel=1e-12)
            )
        # The day series and the aggregate agree (both from the calc tables).
        days = carbon_db.site_series(conn, SITE, "day", START, END)
    assert body["sites"][0]["totals"]["location_tco2e"] == pytest.approx(
        math.fsum(d.tco2e_location for d in days), rel=1e-9
    )
    assert body["totals"]["location_tco2e"] == pytest.approx(
        math.fsum(s["totals"]["location_tco2e"] for s in body["sites"])
    )
    # A regulator sees the sites it is granted; another site is 404; an enterprise 403.
    regulator = calc.ok("regulator", "/api/v1/aggregates/totals", **params)
    assert [s["site_id"] for s in regulator["sites"]] == [SITE]
    assert_problem(
        calc.get("regulator", "/api/v1/aggregates/totals", site_id=SITE_B, **params), 404
    )
    assert_problem(calc.get("enterprise", "/api/v1/aggregates/totals", **params), 403)
    assert_problem(
        calc.get("admin", "/api/v1/aggregates/totals", start="2025-05-04", end="2025-05-01"), 422
    )
    assert_problem(
        calc.get("admin", "/api/v1/aggregates/totals", start="2024-01-01", end="2025-05-01"), 422
    )


def test_aggregate_compliance_and_completeness(calc: Calc) -> None:
    body = calc.ok("regulator", "/api/v1/aggregates/compliance", grain="month", period="2025-05-10")
    [site] = body["sites"]
    with _conn(calc.url) as conn:
        stored = indicators_db.indicators(conn, SITE, grain="month", start=START, end=END)
    assert len(site["items"]) == len(stored) > 0
    counts: dict[str, int] = {}
    for row in stored:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    assert site["status_counts"] == counts == body["status_counts"]
    assert {i["org_id"] for i in site["items"]} == {None, "plant-co", "other-co"}

    completeness = calc.ok(
        "admin", "/api/v1/aggregates/completeness", start="2025-05-01", end="2025-05-04",
        site_id=SITE,
    )  # fmt: skip
    by_org = {i["org_id"]: i for i in completeness["items"]}
    assert set(by_org) == {"plant-co", "other-co"}
    # plant-co: grid meter (import, export) + works meter + widget scale; other-co: two meters.
    assert by_org["other-co"]["device_metrics"] >= 2
    for item in by_org.values():
        assert item["without_data"] <= item["device_metrics"]
        assert 0.0 <= item["completeness"] <= 1.0
    # Generated readings every 10 min for the whole three days: complete where data exist.
    assert by_org["other-co"]["completeness"] == pytest.approx(1.0, abs=0.02)


def test_regulator_requests_are_audited(calc: Calc) -> None:
    calc.ok("regulator", "/api/v1/aggregates/totals", start="2025-05-01", end="2025-05-02")
    with _conn(calc.url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM api_audit WHERE route = '/api/v1/aggregates/totals'"
        ).fetchone()
    assert row is not None and row[0] >= 1


# --------------------------------------------------------------------------------------------
# Units on every value
# --------------------------------------------------------------------------------------------

UNITS = {"tce", "tco2e", "t", "mwh", "kwh"}  # a key ending in one (or being one) names its unit
DIMENSIONLESS = {
    "completeness", "elapsed_fraction", "used_fraction", "source_rows", "intervals",
    "event_id", "limit", "offset", "year", "factor_set_id", "device_metrics", "without_data",
    "measured", "estimated", "missing", "data_year", "factor_data_year", "requested_year",
    "days_with_data",
}  # fmt: skip
# Numbers whose unit is the `unit` (or `target_unit`, `factor_unit`) field beside them.
WITH_UNIT_FIELD = {
    "activity", "quantity", "value", "numerator", "denominator", "threshold", "budget",
    "consumed", "remaining", "projected_total", "projected_overrun", "factor_value",
    "target_threshold", "share", "measured_share", "estimated_share", "gap_filled_share",
}  # fmt: skip


def _numbers_without_unit(node: Any, path: str = "") -> list[str]:
    bad: list[str] = []
    if isinstance(node, dict):
        has_unit = any(k in node for k in ("unit", "target_unit", "factor_unit"))
        for key, value in node.items():
            here = f"{path}.{key}"
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                if key in DIMENSIONLESS or key.rsplit("_", 1)[-1] in UNITS:
                    continue
                if key in WITH_UNIT_FIELD and has_unit:
                    continue
                if path.endswith("status_counts"):
                    continue
                bad.append(here)
            else:
                bad += _numbers_without_unit(value, here)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            bad += _numbers_without_unit(item, f"{path}[{i}]")
    return bad


def test_every_number_carries_its_unit(calc: Calc) -> None:
    here = _factor_set_of(calc.url, SITE, "plant-co")
    window = {"start": _iso(DAY2), "end": _iso(END)}
    days = {"start": "2025-05-01", "end": "2025-05-04"}
    responses = [
        calc.ok("admin", f"{S}/carbon/series", grain="hour", **window),
        calc.ok("admin", f"{S}/devices/grid-meter/energy", **window),
        calc.ok("admin", f"{S}/indicators", grain="month"),
        calc.ok("admin", f"{S}/indicators/range", **window),
        calc.ok("admin", f"{S}/budgets"),
        calc.ok("admin", f"{S}/events"),
        calc.ok("admin", f"/api/v1/factor-sets/{here}"),
        calc.ok("admin", "/api/v1/factors", limit=50),
        calc.ok("admin", "/api/v1/aggregates/totals", **days),
        calc.ok("admin", "/api/v1/aggregates/compliance", period="2025-05-01"),
        calc.ok("admin", "/api/v1/aggregates/completeness", **days),
    ]
    for body in responses:
        assert _numbers_without_unit(body) == []
    # The walker itself finds a bare number.
    assert _numbers_without_unit({"items": [{"power": 1.0}]}) == [".items[0].power"]


# --------------------------------------------------------------------------------------------
# CORS
# --------------------------------------------------------------------------------------------


def test_cors_headers_only_for_allowed_origins(calc: Calc) -> None:
    origin = "https://dash.example.org"
    headers = {"Authorization": f"Bearer {calc.tokens['admin']}", "Origin": origin}
    # Default: no allow-list, no CORS headers.
    plain = calc.client.get(f"{S}/budgets", headers=headers)
    assert plain.status_code == 200 and "access-control-allow-origin" not in plain.headers
    app = make_app(calc.url, settings={"CARBONFLOW_API_CORS_ORIGINS": f"{origin}, http://x:3000"})
    with TestClient(app, raise_server_exceptions=False) as client:
        allowed = client.get(f"{S}/budgets", headers=headers)
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == origin
        # A browser's preflight carries no key: answered by the CORS layer, not refused.
        preflight = client.options(
            f"{S}/budgets",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == origin
        assert "GET" in preflight.headers["access-control-allow-methods"]
        other = client.get(f"{S}/budgets", headers={**headers, "Origin": "https://evil.example"})
        assert other.status_code == 200 and "access-control-allow-origin" not in other.headers
        # Without a key the answer is still 401 (CORS does not open anything).
        anonymous = client.get(f"{S}/budgets", headers={"Origin": origin})
        assert anonymous.status_code == 401
        assert anonymous.headers["access-control-allow-origin"] == origin

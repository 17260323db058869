"""``/api/v1/sites/{site_id}/flows`` and the live view's summary against a real PostgreSQL with
calculated results: three hours of the example park, generated and computed by the calc engine.

Link totals are checked against the period's totals and against the calc store's own 15-min
series (a second path to the same rows); an enterprise key sees its organisation's part only.
The period rules and the summary arithmetic are pure and tested on hand-worked values.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from fastapi.testclient import TestClient

from carbonflow.sites.loader import EXAMPLES, load_site_file
from carbonflow.storage import carbon
from carbonflow.storage.registry_load import load_sites
from services.api.problems import ApiProblemError
from services.api.routers.flows import OUTSIDE_IN, SANKEY_KINDS, resolve_period
from services.api.routers.view import newest_kpis, recent_carbon
from tests.support.api_support import MINE, PARK, assert_problem, grant_keys, make_app
from tests.support.calc_generator import generate, run_calc, store_readings

pytestmark = pytest.mark.integration

TZ = "Asia/Shanghai"
# NOW is 2026-11-23T06:15Z = 14:15 in Shanghai; three hours of readings before 06:00Z.
DATA_START = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
DATA_END = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
FLOWS = f"/api/v1/sites/{PARK}/flows"
COMPONENTS = (
    "energy_tce", "zero_carbon_tce", "tco2e_location", "tco2e_market", "co2_t_location",
    "co2_t_market",
)  # fmt: skip


@dataclass
class Park:
    client: TestClient
    url: str
    tokens: dict[str, str]

    def get(self, who: str, path: str, **params: Any) -> Any:
        return self.client.get(
            path, params=params, headers={"Authorization": f"Bearer {self.tokens[who]}"}
        )


@pytest.fixture(scope="module")
def park(pg_server: Any, migrated_template: str) -> Iterator[Park]:
    from tests.support.api_support import _database  # a module-scoped copy of the migrated template

    db = _database(pg_server, migrated_template)
    try:
        url = pg_server.url_for(db.name)
        docs = [load_site_file(p) for p in sorted(EXAMPLES.glob("*.yaml"))]
        load_sites(url, docs)
        doc = next(d for d in docs if d.site.id == PARK)
        store_readings(url, PARK, generate(doc, DATA_START, DATA_END))
        run_calc(url)
        keys = grant_keys(
            url,
            {
                "admin": ("admin", [], None),
                "operator": ("operator", [PARK], None),
                "cathode": ("enterprise", [PARK], "cathode-plant"),
                "data-centre": ("enterprise", [PARK], "data-centre"),
            },
        )
        tokens = {name: key.token for name, key in keys.items()}
        with TestClient(make_app(url), raise_server_exceptions=False) as client:
            yield Park(client, url, tokens)
    finally:
        db.drop()


def _sum(links: list[dict[str, Any]], component: str) -> float:
    return math.fsum(link["attributed"][component] for link in links)


def test_site_links_add_up_to_the_period_totals_and_the_calc_series(park: Park) -> None:
    response = park.get("admin", FLOWS, start=DATA_START.isoformat(), end=DATA_END.isoformat())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["scope"] == "site" and body["org_id"] is None and body["period"] is None
    totals = body["totals"]
    assert totals["energy_tce"] > 0 and totals["tco2e_location"] > 0
    sources = [link for link in body["links"] if link["kind"] in ("supply", "emission")]
    products = [link for link in body["links"] if link["kind"] == "allocation"]
    for component in COMPONENTS:
        # Both ends of the Sankey carry the whole period (exact up to float summation).
        assert _sum(sources, component) == pytest.approx(totals[component], rel=1e-9, abs=1e-9)
        assert _sum(products, component) == pytest.approx(totals[component], rel=1e-9, abs=1e-9)
    # The same rows read another way: Σ of the stored 15-min series over the period.
    with psycopg.connect(park.url) as conn:
        series = carbon.site_series(conn, PARK, "15min", DATA_START, DATA_END)
    assert len(series) == 12  # 3 h × 4 slots
    assert totals["tco2e_location"] == pytest.approx(
        math.fsum(p.tco2e_location for p in series), rel=1e-9
    )
    assert totals["energy_tce"] == pytest.approx(math.fsum(p.energy_tce for p in series), rel=1e-9)
    # Every link's ends are listed nodes; units are in the names or next to the quantity.
    ids = {n["node_id"] for n in body["nodes"]}
    assert all(link["source"] in ids and link["target"] in ids for link in body["links"])
    grid = next(link for link in body["links"] if link["source"] == "grid-220kv")
    assert grid["kind"] == "supply" and grid["quantity_unit"] == "kWh" and grid["quantity"] > 0
    names = {n["node_id"]: n for n in body["nodes"]}
    assert names["park-substation"]["name_zh"] == "园区220kV变电站"
    assert names["grid-220kv"]["column"] == "source"
    assert all(names[link["target"]]["column"] == "product" for link in products)
    factors = {(f["category"], f["basis"]): f for f in body["factors"]}
    electricity = factors[("purchased_electricity", "location")]
    assert electricity["factor_version"] and electricity["factor_unit"]


def test_today_and_a_month_are_the_sites_local_calendar(park: Park) -> None:
    today = park.get("admin", FLOWS, period="today").json()
    # 2026-11-23 in Shanghai (UTC+8) starts at 2026-11-22T16:00Z.
    assert (today["start"], today["end"]) == ("2026-11-22T16:00:00Z", "2026-11-23T16:00:00Z")
    assert today["period"] == "today" and today["timezone"] == TZ
    default = park.get("admin", FLOWS).json()
    assert default["start"] == today["start"] and default["period"] == "today"
    month = park.get("admin", FLOWS, period="2026-11").json()
    assert (month["start"], month["end"]) == ("2026-10-31T16:00:00Z", "2026-11-30T16:00:00Z")
    # All the data lies inside today and inside the month: the same totals.
    explicit = park.get("admin", FLOWS, start=DATA_START.isoformat(), end=DATA_END.isoformat())
    for body in (today, month):
        assert body["totals"]["tco2e_location"] == pytest.approx(
            explicit.json()["totals"]["tco2e_location"], rel=1e-9
        )


def test_the_last_24_hours_end_at_the_current_slot(park: Park) -> None:
    rolling = park.get("admin", FLOWS, period="24h").json()
    # NOW is 06:15Z, a slot boundary: the 24 hours 2026-11-22T06:15Z – 2026-11-23T06:15Z.
    assert (rolling["start"], rolling["end"]) == ("2026-11-22T06:15:00Z", "2026-11-23T06:15:00Z")
    assert rolling["period"] == "24h"
    # The three hours of data lie inside: the same graph as the data's own period.
    explicit = park.get(
        "admin", FLOWS, start=DATA_START.isoformat(), end=DATA_END.isoformat()
    ).json()
    assert rolling["totals"]["energy_tce"] > 0
    for component in COMPONENTS:
        assert rolling["totals"][component] == pytest.approx(
            explicit["totals"][component], rel=1e-9
        )
    assert len(rolling["links"]) == len(explicit["links"])


def test_an_enterprise_sees_its_organisations_part_only(park: Park) -> None:
    site = park.get("admin", FLOWS, period="today").json()
    part = park.get("cathode", FLOWS, period="today").json()
    assert part["scope"] == "organisation" and part["org_id"] == "cathode-plant"
    cathode_nodes = {n["node_id"] for n in site["nodes"] if n["org_id"] == "cathode-plant"}
    other_nodes = {
        n["node_id"] for n in site["nodes"] if n["org_id"] not in (None, "cathode-plant")
    }
    seen = {n["node_id"] for n in part["nodes"]}
    assert seen & other_nodes == set() and "grid-220kv" not in seen
    assert OUTSIDE_IN in seen and cathode_nodes & seen
    assert {p["product_id"] for p in part["products"]} == {"cathode-material"}
    # Its totals are what the site graph allocates out of its nodes, and its own allocation
    # links add up to them.
    allocated = [
        link for link in site["links"]
        if link["kind"] == "allocation" and link["source"] in cathode_nodes
    ]  # fmt: skip
    own = [link for link in part["links"] if link["kind"] == "allocation"]
    for component in COMPONENTS:
        assert part["totals"][component] == pytest.approx(_sum(allocated, component), rel=1e-9)
        assert _sum(own, component) == pytest.approx(part["totals"][component], rel=1e-9)
    assert 0 < part["totals"]["tco2e_location"] < site["totals"]["tco2e_location"]
    # What reaches it from the rest of the park, by carrier: merged into one link each.
    inbound = [link for link in part["links"] if link["source"] == OUTSIDE_IN]
    assert {link["carrier"] for link in inbound} >= {"electricity"}
    assert len({(link["target"], link["carrier"], link["kind"]) for link in inbound}) == len(
        inbound
    )
    # Another enterprise of the park gets a different part; neither sees the other's nodes.
    other = park.get("data-centre", FLOWS, period="today").json()
    assert {n["node_id"] for n in other["nodes"]} & cathode_nodes == set()
    assert park.get("cathode", f"/api/v1/sites/{MINE}/flows").status_code == 404


@pytest.mark.parametrize("component", ["energy_tce", "tco2e_location", "tco2e_market"])
@pytest.mark.parametrize("who", ["admin", "cathode"])
def test_the_sankey_links_form_no_cycle(park: Park, who: str, component: str) -> None:
    """What the view draws (Sankey kinds, value > 0) is acyclic, as d3-sankey needs: a storage
    link back to its substation carries nothing, or is a ``back_edge``."""
    body = park.get(who, FLOWS, period="today").json()
    edges: dict[str, set[str]] = {}
    for link in body["links"]:
        if link["kind"] in SANKEY_KINDS and link["attributed"][component] > 0:
            edges.setdefault(link["source"], set()).add(link["target"])
    assert edges
    state: dict[str, int] = {}

    def visit(node: str) -> None:
        state[node] = 1
        for nxt in edges.get(node, ()):
            assert state.get(nxt) != 1, f"cycle through {nxt} ({who})"
            if nxt not in state:
                visit(nxt)
        state[node] = 2

    for node in list(edges):
        if node not in state:
            visit(node)


@pytest.mark.parametrize(
    "params",
    [
        {"start": "2026-11-23T03:00:00", "end": "2026-11-23T06:00:00Z"},  # no offset
        {"start": "2026-11-23T03:05:00Z", "end": "2026-11-23T06:00:00Z"},  # not a slot
        {"start": "2026-11-23T06:00:00Z", "end": "2026-11-23T06:00:00Z"},  # empty
        {"start": "2026-11-23T03:00:00Z"},  # no end
        {"period": "today", "start": "2026-11-23T03:00:00Z", "end": "2026-11-23T06:00:00Z"},
        {"period": "2026-13"},
        {"period": "yesterday"},
        {"period": "48h"},
        {"period": "24h", "start": "2026-11-23T03:00:00Z", "end": "2026-11-23T06:00:00Z"},
        {"start": "2024-01-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"},  # two years
        {"start": "0001-01-01T00:00:00Z", "end": "0001-01-02T00:00:00Z"},  # out of range
        {"start": "9999-12-31T00:00:00+14:00", "end": "9999-12-31T12:00:00+14:00"},
        {"period": "0000-01"},
        {"period": "9999-12"},
    ],
)
def test_invalid_periods_are_422_problems(park: Park, params: dict[str, str]) -> None:
    body = assert_problem(park.get("admin", FLOWS, **params), 422)
    assert body["type"] == "urn:carbonflow:problem:validation"


def test_view_summary_rate_share_and_kpis(park: Park) -> None:
    response = park.get("admin", f"/api/v1/sites/{PARK}/view/summary")
    assert response.status_code == 200, response.text
    recent = response.json()["recent"]
    # The newest hour of complete slots: the newest reading is stamped 05:59:59Z, so the slot
    # 05:45–06:00 is still running for the view (its end not reached by the data) and is left
    # out: 04:45–05:45Z.
    assert recent["slots"] == 4
    assert recent["complete_before"] == "2026-11-23T05:59:59Z"
    assert (recent["window_start"], recent["window_end"]) == (
        "2026-11-23T04:45:00Z",
        "2026-11-23T05:45:00Z",
    )
    hour = park.get("admin", FLOWS, start="2026-11-23T04:45:00Z", end="2026-11-23T05:45:00Z").json()
    # One hour: the rate [tCO2e/h] is the hour's tCO2e.
    assert recent["emission_rate_location_tco2e_h"] == pytest.approx(
        hour["totals"]["tco2e_location"], rel=1e-9
    )
    share = hour["totals"]["zero_carbon_tce"] / hour["totals"]["energy_tce"]
    assert recent["zero_carbon_share"] == pytest.approx(share, rel=1e-9)
    assert recent["zero_carbon_share_pct"] == pytest.approx(100 * share, rel=1e-9)
    assert (
        recent["emission_rate_location_tco2e_h"] >= 0 and recent["net_export_tco2e_location"] >= 0
    )
    mine = park.get("cathode", f"/api/v1/sites/{PARK}/view/summary").json()
    assert mine["org_id"] == "cathode-plant"
    assert all(k["org_id"] == "cathode-plant" for k in mine["kpis"])


# --- pure -------------------------------------------------------------------------------------


def test_resolve_period_hand_worked() -> None:
    now = datetime(2026, 12, 31, 17, 0, tzinfo=UTC)  # 2027-01-01 01:00 in Shanghai
    assert resolve_period("today", None, None, timezone=TZ, now=now) == (
        datetime(2026, 12, 31, 16, 0, tzinfo=UTC),
        datetime(2027, 1, 1, 16, 0, tzinfo=UTC),
    )
    # The local month is January 2027 already; December's end is January's start.
    assert resolve_period("month", None, None, timezone=TZ, now=now) == (
        datetime(2026, 12, 31, 16, 0, tzinfo=UTC),
        datetime(2027, 1, 31, 16, 0, tzinfo=UTC),
    )
    assert resolve_period("2026-12", None, None, timezone=TZ, now=now) == (
        datetime(2026, 11, 30, 16, 0, tzinfo=UTC),
        datetime(2026, 12, 31, 16, 0, tzinfo=UTC),
    )
    # A daylight-saving day in Berlin has 23 hours: 2026-03-29 00:00+01:00 → 2026-03-30 00:00+02.
    spring = datetime(2026, 3, 29, 12, 0, tzinfo=UTC)
    lo, hi = resolve_period("today", None, None, timezone="Europe/Berlin", now=spring)
    assert (lo, hi - lo) == (datetime(2026, 3, 28, 23, 0, tzinfo=UTC), timedelta(hours=23))
    with pytest.raises(ApiProblemError):
        resolve_period(None, datetime(2026, 1, 1, 0, 7, tzinfo=UTC), now, timezone=TZ, now=now)


def test_resolve_period_last_24_hours_hand_worked() -> None:
    # 16:07:42.5Z = 00:07:42.5 on 2027-01-01 in Shanghai: "today" is 7 minutes old, the last
    # 24 h end at the slot 16:00Z (7 min 42.5 s floored to 0) and start 24 h before.
    now = datetime(2026, 12, 31, 16, 7, 42, 500_000, tzinfo=UTC)
    assert resolve_period("24h", None, None, timezone=TZ, now=now) == (
        datetime(2026, 12, 30, 16, 0, tzinfo=UTC),
        datetime(2026, 12, 31, 16, 0, tzinfo=UTC),
    )
    # On a boundary the slot that starts now is not in: 06:15Z → [06:15Z the day before, 06:15Z).
    on_slot = datetime(2026, 11, 23, 6, 15, tzinfo=UTC)
    assert resolve_period("24h", None, None, timezone=TZ, now=on_slot) == (
        datetime(2026, 11, 22, 6, 15, tzinfo=UTC),
        on_slot,
    )
    # 14:59:59 just before a slot; a clock in another offset names the same instant:
    # 22:59:59+08:00 = 14:59:59Z → end 14:45Z.
    late = datetime(2026, 11, 23, 22, 59, 59, tzinfo=ZoneInfo(TZ))
    assert resolve_period("24h", None, None, timezone=TZ, now=late) == (
        datetime(2026, 11, 22, 14, 45, tzinfo=UTC),
        datetime(2026, 11, 23, 14, 45, tzinfo=UTC),
    )
    # Over Berlin's spring change the window is 24 real hours (the local day had 23):
    # 2026-03-29 12:00Z → [2026-03-28 12:00Z, 2026-03-29 12:00Z).
    spring = datetime(2026, 3, 29, 12, 0, tzinfo=UTC)
    lo, hi = resolve_period("24h", None, None, timezone="Europe/Berlin", now=spring)
    assert (lo, hi - lo) == (datetime(2026, 3, 28, 12, 0, tzinfo=UTC), timedelta(hours=24))
    # A rolling period is a period: not together with start and end.
    with pytest.raises(ApiProblemError):
        resolve_period("24h", lo, hi, timezone=TZ, now=now)


def test_recent_carbon_is_an_hourly_rate_of_the_newest_slots() -> None:
    def point(minute: int, tco2e: float, energy: float, zero: float) -> carbon.SeriesPoint:
        ts = datetime(2026, 11, 23, 5, 0, tzinfo=UTC) + timedelta(minutes=minute)
        return carbon.SeriesPoint(ts, energy, zero, tco2e, tco2e / 2, 0.0, 0.0, 0.0, 0.0, 1.0)

    # Five slots; the newest four count: 0.5 + 0.6 + 0.4 + 0.5 = 2.0 tCO2e over 4 × 0.25 h.
    points = [
        point(-15, 9.0, 9.0, 0.0), point(0, 0.5, 1.0, 0.25), point(15, 0.6, 1.0, 0.25),
        point(30, 0.4, 1.0, 0.25), point(45, 0.5, 1.0, 0.25),
    ]  # fmt: skip
    recent = recent_carbon(points)
    assert recent.slots == 4
    assert recent.emission_rate_location_tco2e_h == pytest.approx(2.0)  # 2.0 t / 1 h
    assert recent.emission_rate_market_tco2e_h == pytest.approx(1.0)  # half of it
    assert recent.zero_carbon_share == pytest.approx(0.25)  # 1.0 tce / 4.0 tce
    # Two slots only (half an hour): 1.1 tCO2e / 0.5 h = 2.2 tCO2e/h.
    assert recent_carbon(points[1:3]).emission_rate_location_tco2e_h == pytest.approx(2.2)
    nothing = recent_carbon([])
    assert nothing.slots == 0 and nothing.emission_rate_location_tco2e_h is None
    assert recent_carbon([point(0, 0.0, 0.0, 0.0)]).zero_carbon_share is None


def test_newest_kpis_prefer_the_year_then_the_newest_period() -> None:
    def row(grain: str, month: int, value: float) -> dict[str, Any]:
        start = datetime(2026, month, 1, tzinfo=UTC)
        return {
            "org_id": "", "indicator": "tco2e_per_t", "grain": grain, "period_start": start,
            "period_end": start + timedelta(days=28), "value": value, "unit": "tCO2e/t",
            "basis": "location", "target_threshold": 1.0, "target_comparator": "le",
            "target_unit": "tCO2e/t", "status": "on_track", "explanation": "",
            "completeness": 1.0,
        }  # fmt: skip

    kpis = newest_kpis([row("month", 11, 3.0), row("year", 1, 2.0), row("month", 10, 1.0)])
    assert [(k.grain, k.value, k.org_id) for k in kpis] == [("year", 2.0, None)]
    months = newest_kpis([row("month", 10, 1.0), row("month", 11, 3.0)])
    assert [k.value for k in months] == [3.0]


def test_the_view_page_and_assets_need_no_key_and_allow_only_their_own_origin(park: Park) -> None:
    page = park.client.get("/view/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "connect-src 'self'" in csp and "unsafe-inline" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    # The page holds no data: the same bytes for every site, with or without a key.
    site_page = park.get("admin", f"/view/sites/{PARK}")
    assert site_page.content == page.content and PARK not in page.text
    script = park.client.get("/view/assets/view.js")
    assert script.status_code == 200
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert "cdn" not in page.text.lower() and "https://" not in page.text
    licence = park.client.get("/view/assets/vendor/LICENSE.d3-sankey")
    assert licence.status_code == 200 and "Redistribution" in licence.text
    assert park.client.get("/view/assets/index.html").status_code == 404

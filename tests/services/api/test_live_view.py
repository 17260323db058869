"""The live view end to end, in headless Chromium (Debian's ``chromium``, driven by Playwright;
no browser download).

The platform runs as in ``carbonflow demo``: a real PostgreSQL and Mosquitto, the ingest
service, the example park's simulator (the last hour back-filled, then live), the calc engine
over what arrived, and the API under uvicorn on a free port. The calc engine runs once, after
the back-fill, so that the flows the page draws and the flows the test reads stay the same while
the live stream goes on. The test enters a key, waits for live snapshots, switches the Sankey to
the last 24 hours, compares every Sankey link in the page with the API's ``period=24h`` flows
response (energy and carbon), checks the wall-screen layout (the Sankey above the fold at
1920 × 1080, no two Sankey labels overlapping by their rendered boxes), that no untranslated
word shows in Chinese, acknowledges an alarm from the panel, shows a mine's methane panel,
stops the simulator and waits for the stale state, loads ``/docs`` with every request to
another host refused, and saves screenshots (zh and en, 1920 × 1080 and 1366 × 768). The
rolling 24 hours always hold the back-filled hour, whatever the time of day ("today" is nearly
empty just after the site's midnight, 16:00 UTC for the park).
"""

from __future__ import annotations

import math
import os
import re
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn

from carbonflow.embedded.broker import EmbeddedMosquitto
from carbonflow.embedded.net import free_port
from carbonflow.sites.loader import EXAMPLES, load_site_file
from carbonflow.storage.registry_load import load_sites
from services.api.routers.flows import SANKEY_KINDS
from simulators.engine import SimConfig
from simulators.runner import SimulationRunner
from tests.support import ROOT as ROOT_DIR
from tests.support.api_support import ADMIN_KEY, MINE, PARK, make_app
from tests.support.calc_generator import run_calc
from tests.support.ingest_harness import running_ingest
from tests.support.waiting import wait_until

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT_DIR / "docs" / "img"
BACKFILL = timedelta(hours=1)
# A wall screen and a laptop (docs/live-view.md): the wall layout starts at 1600 px.
WALL = {"width": 1920, "height": 1080}
LAPTOP = {"width": 1366, "height": 768}
# Live readings every 15 s; a device is stale after 45 s without one (the test's setting,
# 3 reporting periods: the park's devices declare none, so the server default applies).
STEP = timedelta(seconds=15)
STALE_S = 45

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium: scripts/ensure-chromium.sh"
    ),
]


@dataclass
class Platform:
    base_url: str
    database_url: str
    simulator: SimulationRunner


def _newest_reading(database_url: str) -> datetime | None:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT max(ts) FROM reading").fetchone()
    return None if row is None else row[0]


@pytest.fixture
def platform(database_url: str, mosquitto: EmbeddedMosquitto) -> Iterator[Platform]:
    docs = [load_site_file(p) for p in sorted(EXAMPLES.glob("*.yaml"))]
    load_sites(database_url, docs)
    park = next(d for d in docs if d.site.id == PARK)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    simulator = SimulationRunner(
        SimConfig(
            park, start=now - BACKFILL, step=STEP, speed=math.inf, live_from=now, batch_size=30
        ),
        mosquitto.url,
        client_id="live-view-test-sim",
    )
    sim_thread = threading.Thread(target=simulator.run, name="simulator", daemon=True)
    app = make_app(
        database_url,
        wall_clock=lambda: datetime.now(UTC),
        settings={
            "CARBONFLOW_API_STREAM_INTERVAL_S": 1,
            "CARBONFLOW_API_STREAM_MAX_S": 300,
            "CARBONFLOW_API_LIVE_STALE_S": STALE_S,
        },
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    )
    api_thread = threading.Thread(target=server.run, name="api", daemon=True)
    with running_ingest(database_url, mosquitto.url):
        sim_thread.start()
        try:
            # The back-fill is stored up to its last minute before the live part.
            wait_until(
                lambda: (
                    (_newest_reading(database_url) or now - BACKFILL) >= now - timedelta(minutes=1)
                ),
                60,
                interval_s=0.2,
                message="back-filled readings stored",
            )
            run_calc(database_url)
            api_thread.start()
            wait_until(lambda: server.started, 30, message="API listening")
            yield Platform(f"http://127.0.0.1:{port}", database_url, simulator)
        finally:
            server.should_exit = True
            simulator.request_stop()
            if api_thread.is_alive():
                api_thread.join(timeout=30)
            sim_thread.join(timeout=30)


def _api_sankey(flows: dict[str, Any], measure: str) -> list[tuple[str, str, str, float]]:
    """The links the view must draw: Sankey kinds with a positive value of ``measure``."""
    return sorted(
        (link["source"], link["target"], link["kind"], link["attributed"][measure])
        for link in flows["links"]
        if link["kind"] in SANKEY_KINDS and link["attributed"][measure] > 0
    )


def _page_sankey(page: Any) -> list[tuple[str, str, str, float]]:
    rows = page.eval_on_selector_all(
        "#sankey-links tbody tr",
        "rows => rows.map(r => [r.dataset.source, r.dataset.target, r.dataset.kind,"
        " r.dataset.value])",
    )
    return sorted((s, t, k, float(v)) for s, t, k, v in rows)


def _drawn_paths(page: Any) -> list[tuple[str, str, float]]:
    paths = page.eval_on_selector_all(
        "#sankey svg path.link",
        "ps => ps.map(p => [p.dataset.source, p.dataset.target, p.dataset.value])",
    )
    return sorted((s, t, float(v)) for s, t, v in paths)


# Words that may show in Chinese as they are: units, formulas, abbreviations Chinese writes in
# Latin letters too (kV, LNG, IT, PV), the language button; identifiers (factor keys, key ids,
# meter tags without a Chinese name) are in <code>. Anything else in Latin letters is
# untranslated.
ALLOWED_LATIN = re.compile(
    r"^(t?CO2e?|tCO2e?/h|tCO2e?/t|tCO2/tce|tce|t|kW|kWh|MW|MWh|Nm³|Nm³/h|CH4|h|s|min|EN|API|"
    r"GWP|kgce/kWh|kgce/t|kWh/t|tce/t|cf_|kV|MWp|LNG|IT|COP|PV|LFP)$"
)
VISIBLE_TEXT_JS = """() => {
  const skip = (el) => el.closest('code, script, style, title, #sankey-links, dialog:not([open])');
  const out = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (!el || skip(el) || !n.textContent.trim()) continue;
    if (!el.checkVisibility({visibilityProperty: true})) continue;
    out.push(n.textContent);
  }
  return out;
}"""
LABEL_BOXES_JS = """() => [...document.querySelectorAll('#sankey svg g.nodes text')]
  .filter((t) => t.getAttribute('visibility') !== 'hidden')
  .map((t) => { const r = t.getBoundingClientRect();
                return [t.textContent, r.left, r.top, r.right, r.bottom]; })"""


def _untranslated(page: Any) -> list[str]:
    words = re.findall(r"[A-Za-z][A-Za-z0-9_:./³-]*", " ".join(page.evaluate(VISIBLE_TEXT_JS)))
    return sorted({w for w in words if not ALLOWED_LATIN.match(w.rstrip(".:"))})


def _overlapping_labels(page: Any) -> list[tuple[str, str]]:
    boxes = page.evaluate(LABEL_BOXES_JS)
    assert boxes, "no Sankey labels drawn"
    return [
        (a[0], b[0])
        for i, a in enumerate(boxes)
        for b in boxes[i + 1 :]
        if a[1] < b[3] and b[1] < a[3] and a[2] < b[4] and b[2] < a[4]
    ]


SANKEY_WIDTHS_JS = """() => { const c = document.getElementById('sankey');
  return [c.dataset.state, c.dataset.width + ' ' + c.dataset.fontPx,
          Math.max(c.clientWidth, 320) + ' ' + (parseFloat(getComputedStyle(c).fontSize) || 14)];
}"""


def _wait_redrawn(page: Any) -> None:
    """After a resize: drawn at the new width and font size. The resize event may not have
    fired yet, so the state alone can still say "drawn" — of the old drawing, whose labels
    already have the new viewport's larger font and may touch until it is drawn again."""
    wait_until(
        lambda: (w := page.evaluate(SANKEY_WIDTHS_JS))[0] == "drawn" and w[1] == w[2],
        30,
        interval_s=0.2,
        message="Sankey drawn again at the new width",
    )


def _no_horizontal_scrolling(page: Any, width: int) -> None:
    """Nothing wider than the viewport: a long status or label wraps instead of pushing the
    side panel off the screen."""
    wait_until(
        lambda: page.evaluate("() => document.documentElement.scrollWidth") <= width,
        10,
        interval_s=0.2,
        message=f"no horizontal scrolling at {width} px",
    )


def _screenshot(page: Any, tmp_path: Path, name: str) -> None:
    artefact = tmp_path / f"{name}.png"
    page.screenshot(path=str(artefact))
    assert artefact.stat().st_size > 10_000
    if os.environ.get("CARBONFLOW_UPDATE_SCREENSHOTS") == "1":  # docs/img, linked from README
        shutil.copyfile(artefact, SCREENSHOTS / artefact.name)


def _check_wall_layout(page: Any) -> None:
    """At 1920 × 1080 the Sankey, the tiles, alarms and indicators show without scrolling."""
    assert page.evaluate("() => window.scrollY") == 0
    height = WALL["height"]
    sankey = page.locator("#sankey svg").bounding_box()
    assert sankey is not None and sankey["y"] + sankey["height"] <= height, sankey
    for selector in (".tiles", "#kpi-table", "#alarms-panel"):
        box = page.locator(selector).bounding_box()
        assert box is not None and box["y"] < height, selector


def _insert_alarm(database_url: str) -> None:
    from carbonflow.domain.alarms.lifecycle import Changes
    from carbonflow.domain.alarms.model import Condition, Severity, Source
    from carbonflow.storage import alarms as alarms_db
    from carbonflow.storage.db import make_engine

    engine = make_engine(database_url)
    condition = Condition(PARK, "cathode-power", Source.THRESHOLD, "cathode-incomer-1",
                          Severity.CRITICAL, "cathode-incomer-1: power 30000 kW above 25000 kW",
                          "cathode-incomer-1：功率 30000 kW 高于限值 25000 kW", 30000.0, 25000.0,
                          "kW")  # fmt: skip
    with engine.begin() as conn:
        alarms_db.apply_changes(conn, PARK, Changes((condition,), (), ()), datetime.now(UTC))
    engine.dispose()


# (device, metric, value): a mine's methane streams now, 32 % CH4 in the drained gas mains.
MINE_METHANE = (
    ("drainage-high", "mixture_flow_nm3_min", 160.0), ("drainage-high", "ch4_pct", 32.0),
    ("drainage-low", "mixture_flow_nm3_min", 140.0), ("drainage-low", "ch4_pct", 32.0),
    ("methane-to-engines", "mixture_flow_nm3_min", 85.0), ("methane-to-engines", "ch4_pct", 32.0),
    ("flare", "mixture_flow_nm3_min", 15.0), ("flare", "ch4_pct", 32.0),
    ("methane-vent", "mixture_flow_nm3_min", 20.0), ("methane-vent", "ch4_pct", 32.0),
    ("vent-shaft-north", "air_flow_nm3_min", 9000.0), ("vent-shaft-north", "ch4_pct", 0.4),
)  # fmt: skip


def _insert_mine_methane(database_url: str) -> None:
    now = datetime.now(UTC)
    with psycopg.connect(database_url) as conn:
        for device, metric, value in MINE_METHANE:
            conn.execute(
                "INSERT INTO reading (device_pk, metric_id, ts, value, received_at)"
                " SELECT d.device_pk, m.metric_id, %s, %s, %s FROM device d, metric m"
                " WHERE d.site_id = %s AND d.device_id = %s AND m.name = %s",
                (now, value, now, MINE, device, metric),
            )


def test_live_view_shows_live_data_and_the_apis_flows(platform: Platform, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            page = browser.new_page(viewport=WALL)  # type: ignore[arg-type]
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            # The page itself needs no key; it asks for one, in Chinese first. A wrong key is
            # refused.
            page.goto(f"{platform.base_url}/view/")
            page.wait_for_selector("#key-dialog[open]")
            assert page.text_content("h1") == "能碳实时监测"
            assert page.get_attribute("html", "lang") == "zh-CN"
            page.fill("#key-input", "cf_0123456789ab_" + "x" * 43)
            page.click("#key-submit")
            page.wait_for_selector("#key-error:not([hidden])")
            page.fill("#key-input", ADMIN_KEY)
            page.click("#key-submit")
            # The site picker lists both example sites; choose the park.
            page.wait_for_selector(f"#site-picker option[value='{PARK}']", state="attached")
            page.select_option("#site-picker", PARK)
            page.wait_for_url(f"**/view/sites/{PARK}")
            # The key is in no storage and no cookie: memory only.
            kept = page.evaluate(
                "() => JSON.stringify([Object.entries(sessionStorage),"
                " Object.entries(localStorage), document.cookie])"
            )
            assert "cf_" not in kept and ADMIN_KEY not in kept

            _check_live(page)
            expected = _check_sankey(page, platform, headers)

            # The summary: emission rate and zero-carbon share of the newest calculated hour.
            wait_until(
                lambda: page.text_content("#emission-rate") != "–",
                30,
                interval_s=0.2,
                message="emission rate shown",
            )
            summary = httpx.get(
                f"{platform.base_url}/api/v1/sites/{PARK}/view/summary",
                headers=headers,
                timeout=30,
            ).json()
            assert summary["recent"]["slots"] > 0
            assert page.text_content("#zero-share") != "–"
            assert float(summary["recent"]["emission_rate_location_tco2e_h"]) >= 0

            # An alarm shows in the panel and is acknowledged from it.
            _insert_alarm(platform.database_url)
            page.wait_for_selector("#alarm-table tr[data-state='open'] button.ack", timeout=30_000)
            page.click("#alarm-table tr[data-state='open'] button.ack")
            page.wait_for_selector("#alarm-table tr[data-state='acknowledged']", timeout=30_000)
            alarms = httpx.get(
                f"{platform.base_url}/api/v1/sites/{PARK}/alarms", headers=headers, timeout=30
            ).json()["items"]
            assert [(a["state"], a["acknowledged_by"]) for a in alarms] == [
                ("acknowledged", "bootstrap-admin")
            ]

            # Wall screen, Chinese: above the fold, labels apart, nothing untranslated.
            page.click("button.measure[data-measure='energy_tce']")
            page.wait_for_selector("#sankey[data-measure='energy_tce'][data-state='drawn']")
            _check_wall_layout(page)
            _no_horizontal_scrolling(page, WALL["width"])
            assert _overlapping_labels(page) == []
            untranslated = _untranslated(page)
            assert untranslated == [], " ".join(untranslated) + repr(
                [t for t in page.evaluate(VISIBLE_TEXT_JS) if re.search(r"[A-Za-z]{3}", t)]
            )
            _screenshot(page, tmp_path, "live-view-zh-1920x1080")
            # Every label in the page has both languages in the one table.
            missing = page.evaluate(
                "() => [...document.querySelectorAll('[data-label]')].map(e => e.dataset.label)"
                ".concat(Object.keys(window.CF_LABELS))"
                ".filter(k => !(window.CF_LABELS[k] || {}).en || !(window.CF_LABELS[k] || {}).zh)"
            )
            assert missing == []
            # A laptop: one column, no horizontal scrolling, labels still apart.
            page.set_viewport_size(LAPTOP)  # type: ignore[arg-type]
            _wait_redrawn(page)
            _no_horizontal_scrolling(page, LAPTOP["width"])
            assert _overlapping_labels(page) == []
            _screenshot(page, tmp_path, "live-view-zh-1366x768")
            # English: the same data, other words.
            page.click("#lang-toggle")
            assert page.text_content("h1") == "carbonflow live"
            assert _page_sankey(page) == expected
            assert _overlapping_labels(page) == []
            _screenshot(page, tmp_path, "live-view-en-1366x768")
            page.set_viewport_size(WALL)  # type: ignore[arg-type]
            _wait_redrawn(page)
            _no_horizontal_scrolling(page, WALL["width"])
            assert _overlapping_labels(page) == []
            _screenshot(page, tmp_path, "live-view-en-1920x1080")
            page.click("#lang-toggle")

            _check_mine_panel(page, platform)
            _check_stale(page, platform)
            _check_docs_offline(browser, platform)
        finally:
            browser.close()
    # No script error, no blocked or missing resource (the content security policy reports as
    # errors); only the wrong key's refusal.
    assert [e for e in errors if "status of 401" not in e] == []
    assert len(errors) == 1


def _check_live(page: Any) -> None:
    """Live data from the stream: power, then a newer snapshot; honest figures."""
    page.wait_for_selector("#stream-state[data-state='live']", timeout=30_000)
    # (Polled from here: the page's content security policy forbids the string evaluation
    # that Playwright's wait_for_function uses.)
    wait_until(
        lambda: float(page.get_attribute("#power-total", "data-power-kw") or 0) > 0,
        30,
        interval_s=0.2,
        message="live power shown",
    )
    first = page.get_attribute("#as-of", "data-snapshot-at")
    wait_until(
        lambda: page.get_attribute("#as-of", "data-snapshot-at") != first,
        30,
        interval_s=0.2,
        message="a newer live snapshot shown",
    )
    # "As of": the newest reading received, not the server clock; the site is live; no
    # negative power, renewable never above power in.
    data_as_of = page.get_attribute("#as-of", "data-as-of") or ""
    snapshot_at = page.get_attribute("#as-of", "data-snapshot-at") or ""
    assert data_as_of and datetime.fromisoformat(data_as_of) <= datetime.fromisoformat(snapshot_at)
    assert page.get_attribute("body", "data-live-state") in ("live", "partial")
    assert page.is_hidden("#stale-banner")
    power_kw = float(page.get_attribute("#power-total", "data-power-kw") or "nan")
    renewable_kw = float(page.get_attribute("#power-renewable", "data-power-kw") or "nan")
    assert 0 <= renewable_kw <= power_kw
    assert float(page.get_attribute("#power-export", "data-export-kw") or "nan") >= 0
    # Every tile names its period and its unit.
    for tile in page.query_selector_all(".tile"):
        assert (tile.query_selector(".tile-period") or tile).text_content()
        assert (tile.query_selector(".unit") or tile).text_content()


def _check_sankey(
    page: Any, platform: Platform, headers: dict[str, str]
) -> list[tuple[str, str, str, float]]:
    """The Sankey of the last 24 hours: every link as the API's flows response has it."""
    page.click("button.period[data-period='24h']")
    page.wait_for_selector("#sankey[data-period='24h'][data-state='drawn']", timeout=30_000)
    assert page.get_attribute("button.period[data-period='24h']", "aria-pressed") == "true"
    flows = httpx.get(
        f"{platform.base_url}/api/v1/sites/{PARK}/flows",
        params={"period": "24h"},
        headers=headers,
        timeout=30,
    ).json()
    if page.get_attribute("#sankey", "data-start") != flows["start"]:
        # A 15-min boundary passed between the page's request and ours: the window moved on.
        # Ask the page again (the button) for the window the API now has.
        page.click("button.period[data-period='24h']")
        wait_until(
            lambda: page.get_attribute("#sankey", "data-start") == flows["start"],
            30,
            interval_s=0.2,
            message="the page's Sankey over the API's 24 hours",
        )
    assert flows["period"] == "24h"
    assert page.get_attribute("#sankey", "data-start") == flows["start"]
    assert page.get_attribute("#sankey", "data-end") == flows["end"]
    expected = _api_sankey(flows, "energy_tce")
    assert len(expected) > 5
    assert _page_sankey(page) == expected
    assert _drawn_paths(page) == sorted((s, t, v) for s, t, _k, v in expected)
    assert (
        float(page.get_attribute("#sankey-total", "data-value") or "nan")
        == (flows["totals"]["energy_tce"])
    )
    # Switched to carbon (location-based): the same graph in tCO2e.
    page.click("button.measure[data-measure='tco2e_location']")
    page.wait_for_selector("#sankey[data-measure='tco2e_location'][data-state='drawn']")
    assert _page_sankey(page) == _api_sankey(flows, "tco2e_location")
    return expected


def _check_mine_panel(page: Any, platform: Platform) -> None:
    """The mine's methane panel: drained, utilised, flared, vented and the rates."""
    _insert_mine_methane(platform.database_url)
    page.select_option("#site-picker", MINE)
    page.wait_for_selector("#mine-panel:not([hidden]) #methane-table tr[data-stream]")
    expected = {  # pure CH4 [Nm³/h] = mixture [Nm³/min] × 32 % × 60
        "drained": (160 + 140) * 0.32 * 60,  # 5 760
        "utilised": 85 * 0.32 * 60,  # 1 632
        "flared": 15 * 0.32 * 60,  # 288
        "vented": 20 * 0.32 * 60,  # 384
    }

    def streams() -> dict[str, float]:
        rows = page.eval_on_selector_all(
            "#methane-table tr[data-stream]",
            "rs => rs.map(r => [r.dataset.stream, r.dataset.nm3H])",
        )
        return {k: float(v or "nan") for k, v in rows}

    wait_until(
        lambda: (
            streams().keys() == expected.keys()
            and all(math.isclose(streams()[k], v, rel_tol=1e-9) for k, v in expected.items())
        ),
        30,
        interval_s=0.2,
        message="the mine's methane streams in Nm³/h",
    )
    # And in tCO2e/h, each a number (vented: 384 Nm³/h × 7.17 t/10⁴ Nm³ × 21 = 5.78 t/h).
    co2e = page.eval_on_selector_all(
        "#methane-table tr[data-stream]", "rs => rs.map(r => Number(r.dataset.tco2eH))"
    )
    assert len(co2e) == 4 and all(v > 0 for v in co2e)
    # CH4 of the drained gas 32 %; utilisation 27.2 / 96 = 28.3 %; drainage 96 / (96 + 36) =
    # 72.7 % (ventilation 9 000 × 0.4 % = 36 Nm³/min).
    assert page.text_content("#methane-ch4-pct") == "32.0"
    assert page.text_content("#methane-utilisation") == "28.3"
    assert page.text_content("#methane-drainage") == "72.7"
    assert "60 %" in (page.text_content("#methane-utilisation-target") or "")
    assert _untranslated(page) == []
    page.select_option("#site-picker", PARK)
    page.wait_for_selector("#stream-state[data-state='live']", timeout=30_000)


def _check_stale(page: Any, platform: Platform) -> None:
    """The feed stops: within the stale limit the page says so, from across the room."""
    platform.simulator.request_stop()
    wait_until(
        lambda: page.get_attribute("body", "data-live-state") == "stale",
        STALE_S + 30,
        interval_s=0.5,
        message="the stale state after the simulator stopped",
    )
    assert page.is_visible("#stale-banner")
    assert "数据中断" in (page.text_content("#stale-banner") or "")


def _check_docs_offline(browser: Any, platform: Platform) -> None:
    """/docs with every request to another host refused: Swagger UI still renders."""
    docs = browser.new_page(viewport=LAPTOP)
    refused: list[str] = []

    def only_local(route: Any) -> None:
        if route.request.url.startswith(platform.base_url):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    docs.route("**/*", only_local)
    docs.goto(f"{platform.base_url}/docs")
    docs.wait_for_selector(".swagger-ui .info .title", timeout=30_000)
    assert "carbonflow API" in (docs.text_content(".swagger-ui .info .title") or "")
    assert refused == []
    docs.close()

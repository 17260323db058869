"""The live view end to end, in headless Chromium (Debian's ``chromium``, driven by Playwright;
no browser download).

The platform runs as in ``carbonflow demo``: a real PostgreSQL and Mosquitto, the ingest
service, the example park's simulator (the last hour back-filled, then live), the calc engine
over what arrived, and the API under uvicorn on a free port. The calc engine runs once, after
the back-fill, so that the flows the page draws and the flows the test reads stay the same while
the live stream goes on. The test enters a key, waits for live snapshots, switches the Sankey to
the last 24 hours, compares every Sankey link in the page with the API's ``period=24h`` flows
response (energy and carbon), and saves a screenshot. The rolling 24 hours always hold the
back-filled hour, whatever the time of day ("today" is nearly empty just after the site's
midnight, 16:00 UTC for the park).
"""

from __future__ import annotations

import math
import os
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
from tests.support.api_support import ADMIN_KEY, PARK, make_app
from tests.support.calc_generator import run_calc
from tests.support.ingest_harness import running_ingest
from tests.support.waiting import wait_until

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = ROOT_DIR / "docs" / "img" / "live-view.png"
BACKFILL = timedelta(hours=1)
# The wall-screen layout (docs/live-view.md): two columns from 1600 px.
VIEWPORT = {"width": 1680, "height": 1050}

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
        SimConfig(park, start=now - BACKFILL, speed=math.inf, live_from=now, batch_size=30),
        mosquitto.url,
        client_id="live-view-test-sim",
    )
    sim_thread = threading.Thread(target=simulator.run, name="simulator", daemon=True)
    app = make_app(
        database_url,
        wall_clock=lambda: datetime.now(UTC),
        settings={"CARBONFLOW_API_STREAM_INTERVAL_S": 1, "CARBONFLOW_API_STREAM_MAX_S": 300},
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
            yield Platform(f"http://127.0.0.1:{port}", database_url)
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


def test_live_view_shows_live_data_and_the_apis_flows(platform: Platform, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            page = browser.new_page(viewport=VIEWPORT)  # type: ignore[arg-type]
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            # The page itself needs no key; it asks for one. A wrong key is refused.
            page.goto(f"{platform.base_url}/view/")
            page.wait_for_selector("#key-dialog[open]")
            page.fill("#key-input", "cf_0123456789ab_" + "x" * 43)
            page.click("#key-submit")
            page.wait_for_selector("#key-error:not([hidden])")
            page.fill("#key-input", ADMIN_KEY)
            page.click("#key-submit")
            # The site picker lists both example sites; choose the park.
            page.wait_for_selector(f"#site-picker option[value='{PARK}']", state="attached")
            page.select_option("#site-picker", PARK)
            page.wait_for_url(f"**/view/sites/{PARK}")

            # Live data from the stream: a snapshot with power, then a newer one.
            page.wait_for_selector("#stream-state[data-state='live']", timeout=30_000)
            # (Polled from here: the page's content security policy forbids the string
            # evaluation that Playwright's wait_for_function uses.)
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
            # Honest "as of": the newest reading received, not the server clock, and the
            # site is live; no negative power, renewable never above power in.
            data_as_of = page.get_attribute("#as-of", "data-as-of") or ""
            snapshot_at = page.get_attribute("#as-of", "data-snapshot-at") or ""
            assert data_as_of and datetime.fromisoformat(data_as_of) <= datetime.fromisoformat(
                snapshot_at
            )
            assert page.get_attribute("body", "data-live-state") in ("live", "partial")
            assert page.is_hidden("#stale-banner")
            power_kw = float(page.get_attribute("#power-total", "data-power-kw") or "nan")
            renewable_kw = float(page.get_attribute("#power-renewable", "data-power-kw") or "nan")
            assert 0 <= renewable_kw <= power_kw
            assert float(page.get_attribute("#power-export", "data-export-kw") or "nan") >= 0
            # Every tile names its period and its unit.
            for tile in page.query_selector_all(".tile"):
                assert (tile.query_selector(".period") or tile).text_content()
                assert (tile.query_selector(".unit") or tile).text_content()

            # The Sankey of the last 24 hours, energy: every link as the API's flows response
            # has it.
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
                # A 15-min boundary passed between the page's request and ours: the window
                # moved on. Ask the page again (the button) for the window the API now has.
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

            page.click("button.measure[data-measure='energy_tce']")
            page.wait_for_selector("#sankey[data-measure='energy_tce'][data-state='drawn']")
            artefact = tmp_path / "live-view.png"
            page.screenshot(path=str(artefact), full_page=True)
            assert artefact.stat().st_size > 10_000
            if os.environ.get("CARBONFLOW_UPDATE_SCREENSHOTS") == "1":  # the README's picture
                shutil.copyfile(artefact, SCREENSHOT)

            # Every label in the page has both languages in the one table.
            missing = page.evaluate(
                "() => [...document.querySelectorAll('[data-label]')].map(e => e.dataset.label)"
                ".concat(Object.keys(window.CF_LABELS))"
                ".filter(k => !(window.CF_LABELS[k] || {}).en || !(window.CF_LABELS[k] || {}).zh)"
            )
            assert missing == []
            # Chinese labels from the same table; the view's data stays.
            page.click("#lang-toggle")
            assert page.text_content("h1") == "能碳实时监测"
            assert page.get_attribute("html", "lang") == "zh-CN"
            assert _page_sankey(page) == expected
            # A laptop screen: one column, nothing lost.
            page.set_viewport_size({"width": 1280, "height": 800})
            page.wait_for_selector("#sankey[data-state='drawn']")
            page.screenshot(path=str(tmp_path / "live-view-laptop-zh.png"), full_page=True)
        finally:
            browser.close()
    # No script error, no blocked or missing resource (the content security policy reports as
    # errors); only the wrong key's refusal.
    assert [e for e in errors if "status of 401" not in e] == []
    assert len(errors) == 1

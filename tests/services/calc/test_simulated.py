"""The calc service against the simulator's ground truth (issue #5, done-when).

A month of the example mine and of the example park, simulated with every fault injected often
(``heavy``: resets, meter replacements, rollovers, gaps, late, skewed, duplicated and reordered
deliveries), go
through Mosquitto and the real ingest service; the calc service then computes them. Interval
energy per device must be within 0.1 % of the oracle's truth over the period, and carbon per
site within 0.1 % of the oracle's ledger of the period (scope 1, and scope 2 location-based
on the period's net grid import).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

from carbonflow.embedded.broker import EmbeddedMosquitto
from carbonflow.sites.loader import EXAMPLES, load_site_file
from services.api.reads import indicators_for_period
from simulators.engine import SimConfig
from simulators.faultspec import FaultSpec
from simulators.oracle import read_oracle
from simulators.runner import register_fleet, run_simulation
from tests.support.calc_generator import run_calc
from tests.support.ingest_harness import count, running_ingest
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

TZ = ZoneInfo("Asia/Shanghai")
SLOT = timedelta(minutes=15)


def _floor(ts: datetime) -> datetime:
    return ts - (ts - datetime(2000, 1, 1, tzinfo=ts.tzinfo)) % SLOT


def _ceil(ts: datetime) -> datetime:
    down = _floor(ts)
    return down if down == ts else down + SLOT


@pytest.mark.slow
@pytest.mark.parametrize(("site_file", "seed"), [("shanxi-mine", 5), ("inner-mongolia-park", 6)])
def test_a_simulated_month_matches_the_oracle(
    database_url: str, mosquitto: EmbeddedMosquitto, tmp_path: Path, site_file: str, seed: int
) -> None:
    today = datetime.now(TZ).replace(hour=0, minute=0, second=0, microsecond=0)
    config = SimConfig(
        load_site_file(EXAMPLES / f"{site_file}.yaml"),
        start=today - timedelta(days=33),
        duration=timedelta(days=30),
        step=timedelta(minutes=15),
        speed=math.inf,
        seed=seed,
        faults=FaultSpec.parse("heavy,malformed=0"),
        batch_size=50,
    )
    register_fleet(database_url, config)
    oracle_path = tmp_path / "oracle.jsonl.gz"
    with running_ingest(database_url, mosquitto.url):
        report = run_simulation(config, mosquitto.url, oracle_path=oracle_path, client_id="sim")
        wait_until(
            lambda: (
                count(database_url, "SELECT count(*) FROM reading") >= report.tally.stored_readings
            ),
            240,
            message="readings stored",
        )
    for kind in ("reset", "replacement", "rollover", "gap", "late"):
        assert report.injected.get(kind, 0) > 0, kind
    run_calc(database_url)

    oracle = read_oracle(oracle_path)
    start, end = oracle.intervals[0].start, oracle.intervals[-1].end
    site = config.site.site.id
    with psycopg.connect(database_url) as conn:
        windows = {
            (str(d), str(m)): (max(start, _ceil(lo)), min(end, _floor(hi)))
            for d, m, lo, hi in conn.execute(
                "SELECT d.device_id, m.name, min(r.ts), max(r.ts) FROM reading r "
                "JOIN device d USING (device_pk) JOIN metric m USING (metric_id) "
                "JOIN device_metric dm ON dm.device_pk = r.device_pk "
                "AND dm.metric_id = r.metric_id AND dm.kind <> 'gauge' "
                "WHERE d.site_id = %s GROUP BY d.device_id, m.name",
                (site,),
            )
        }
        calc_in = {}
        for (device, metric), (lo, hi) in windows.items():
            row = conn.execute(
                "SELECT coalesce(sum(c.quantity), 0) FROM calc_interval c "
                "JOIN device d USING (device_pk) JOIN metric m USING (metric_id) "
                "WHERE d.site_id = %s AND d.device_id = %s AND m.name = %s "
                "AND c.start_ts >= %s AND c.start_ts < %s",
                (site, device, metric, lo, hi),
            ).fetchone()
            assert row is not None
            calc_in[(device, metric, lo, hi)] = float(row[0])
        location = conn.execute(
            "SELECT sum(tco2e) FILTER (WHERE scope = 'scope_1'), "
            "sum(tco2e) FILTER (WHERE scope = 'scope_2') FROM calc_carbon WHERE site_id = %s "
            "AND start_ts >= %s AND start_ts < %s AND basis <> 'market'",
            (site, start, end),
        ).fetchone()
    # Interval energy per device metric: within 0.1 % of the truth (or two register steps), over
    # the intervals between the metric's first and last stored reading — a fault that drops the
    # readings at the very start or end of the run leaves time no reading brackets (and no
    # method could recover).
    swaps: dict[str, list[datetime]] = {}
    for event in oracle.events:
        if event["kind"] == "replacement":
            swaps.setdefault(event["device"], []).append(datetime.fromisoformat(event["ts"]))
    checked = 0
    for device, record in oracle.devices.items():
        for metric, spec in record["metrics"].items():
            if spec["kind"] == "gauge" or (device, metric) not in windows:
                continue
            lo, hi = windows[(device, metric)]
            truth = math.fsum(
                i.quantities.get(device, {}).get(metric, 0.0)
                for i in oracle.intervals
                if lo <= i.start and i.end <= hi
            )
            got = calc_in[(device, metric, lo, hi)]
            # A replacement meter starts at an unknown register (the simulator: ≤ 1 % of the
            # old one), so the step it happens in is estimated from the rates around it: that
            # step's true quantity is the most it can be off by.
            unknowable = math.fsum(
                i.quantities.get(device, {}).get(metric, 0.0)
                for i in oracle.intervals
                for t in swaps.get(device, ())
                if lo <= i.start and i.end <= hi and t <= i.start < t + SLOT
            )
            assert got == pytest.approx(truth, rel=1e-3, abs=0.02 + unknowable), (device, metric)
            checked += 1
    assert checked > 40
    full = [k for k, (lo, hi) in windows.items() if lo <= start and hi >= end]
    assert len(full) >= 0.8 * len(windows)  # most metrics are bracketed over the whole period

    # Carbon of the site over the period: the oracle's own ledger (the same documented method,
    # from the true quantities): scope 1 and location-based scope 2 each within 0.1 %.
    period = next(ledger for ledger in oracle.ledgers if ledger["scope"] == "period")
    assert location is not None
    assert location[0] == pytest.approx(period["totals"]["scope1_tco2e"], rel=1e-3)
    assert location[1] == pytest.approx(period["totals"]["scope2_tco2e"], rel=1e-3)
    if "co2_per_energy" in period["indicators"]:
        _core_indicator_agrees(database_url, site, (start, end), period["indicators"])


def _core_indicator_agrees(
    url: str, site: str, period: tuple[datetime, datetime], expected: dict[str, Any]
) -> None:
    """The park core indicator (CO2 ÷ tce, market-based) as the platform evaluates the period
    agrees with the oracle's (issue 15, step 6: the oracle counted no LNG energy and took the
    location-based CO2, ~10 % apart; now both within the 0.1 % of the totals above)."""
    with psycopg.connect(url) as conn:
        outcomes = indicators_for_period(conn, site, *period)
    platform = next(o for o in outcomes if o.org_id == "" and o.indicator == "co2_per_energy")
    want = expected["co2_per_energy"]
    got = platform.result.value
    assert got.numerator == pytest.approx(want["numerator"], rel=1e-3)  # t CO2
    assert got.denominator == pytest.approx(want["denominator"], rel=1e-3)  # tce
    assert got.value == pytest.approx(want["value"], rel=2e-3)  # tCO2/tce

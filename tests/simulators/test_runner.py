"""The simulators end to end: real Mosquitto, the real ingest service, real PostgreSQL.

A month of the example mine and of the example park, accelerated, with every fault injected
often (the ``heavy`` preset, more malformed messages): the rows ingest stores must equal the
valid readings the simulator published (each stored once, however often it was delivered), and
the rejected rows must equal the malformed and misrouted messages it injected, reason by reason.

The month runs at a 15-minute reporting step, the accounting grain: at the 1-minute step a
month of both sites is ~8.5 million readings, minutes of ingest on a laptop — the unit tests
cover the 1-minute physics, the benchmark the 1-minute publishing rate. The oracle's
15-minute truth does not depend on the step.
"""

from __future__ import annotations

import json
import math
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from carbonflow.sites.loader import EXAMPLES, load_site_file
from cli.main import build_parser
from simulators.engine import SimConfig, Simulation
from simulators.faults import Outgoing
from simulators.faultspec import FaultSpec
from simulators.oracle import read_oracle
from simulators.runner import RETIRED_DEVICE_ID, SimulationReport, register_fleet, run_simulation
from tests.support.ingest_harness import count, reason_counts, running_ingest
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

TZ = ZoneInfo("Asia/Shanghai")


def _month_config(name: str, seed: int) -> SimConfig:
    # A whole month that ended days ago: nothing in the future, well inside retention.
    today = datetime.now(TZ).replace(hour=0, minute=0, second=0, microsecond=0)
    return SimConfig(
        load_site_file(EXAMPLES / f"{name}.yaml"),
        start=today - timedelta(days=33),
        duration=timedelta(days=30),
        step=timedelta(minutes=15),
        speed=math.inf,
        seed=seed,
        # heavy, and enough malformed messages and replacements that every reason and every
        # fault kind appears whatever the start date (≈ 160 malformed messages per site)
        faults=FaultSpec.parse("heavy,malformed=0.06,replace=0.003"),
        batch_size=50,
        retired_device=RETIRED_DEVICE_ID,
    )


def _rows(url: str) -> int:
    return count(url, "SELECT count(*) FROM reading")


def test_a_month_of_mine_and_park_through_ingest(
    database_url: str, mosquitto, tmp_path: Path
) -> None:
    configs = [_month_config("shanxi-mine", 11), _month_config("inner-mongolia-park", 12)]
    for config in configs:
        register_fleet(database_url, config, retired=True)
    by_run: dict[int, SimulationReport] = {}
    with running_ingest(database_url, mosquitto.url):
        threads = [
            threading.Thread(
                target=lambda c=c, i=i: by_run.__setitem__(
                    i,
                    run_simulation(
                        c,
                        mosquitto.url,
                        oracle_path=tmp_path / f"oracle-{i}.jsonl.gz",
                        client_id=f"sim-{i}",
                    ),
                )
            )
            for i, c in enumerate(configs)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        assert len(by_run) == 2, "a simulation failed"
        reports = [by_run[0], by_run[1]]
        stored = sum(r.tally.stored_readings for r in reports)
        rejected = sum(sum(r.tally.rejections.values()) for r in reports)
        wait_until(lambda: _rows(database_url) >= stored, 240, message="readings stored")
        wait_until(
            lambda: count(database_url, "SELECT count(*) FROM rejected_reading") >= rejected,
            60,
            message="rejections stored",
        )
    expected: dict[str, int] = {}
    for r in reports:
        for reason, n in r.tally.rejections.items():
            expected[reason] = expected.get(reason, 0) + n
    assert _rows(database_url) == stored
    assert reason_counts(database_url) == expected
    # Every injectable reason was exercised, and every fault kind happened.
    assert len(expected) == 16, sorted(expected)
    for kind in ("reset", "replacement", "rollover", "gap", "late", "skew", "duplicate",
                 "reorder"):  # fmt: skip
        assert sum(r.injected.get(kind, 0) for r in reports) > 0, kind
    # The oracle of each run describes the whole month and what ingest should hold.
    for i, report in enumerate(reports):
        oracle = read_oracle(tmp_path / f"oracle-{i}.jsonl.gz")
        assert len(oracle.intervals) == 30 * 96
        assert oracle.summary is not None
        assert oracle.summary["expected"]["stored_readings"] == report.tally.stored_readings
    mine_rows = count(
        database_url,
        "SELECT count(*) FROM reading r JOIN device d USING (device_pk) WHERE d.site_id = %s",
        configs[0].site.site.id,
    )
    assert mine_rows == reports[0].tally.stored_readings


def test_paced_run_publishes_what_is_due_and_stops_on_request(database_url: str, mosquitto) -> None:
    """With the wall clock held 3½ minutes after the start, readings 0–3 go out and the run
    waits for the fourth minute (never publishing the future) until it is asked to stop."""
    doc = load_site_file(EXAMPLES / "inner-mongolia-park.yaml")
    start = (datetime.now(UTC) - timedelta(hours=1)).replace(second=0, microsecond=0)
    config = SimConfig(doc, start=start, step=timedelta(minutes=1), speed=math.inf, seed=2)
    due = start.timestamp() + 3 * 60
    prefix = SimConfig(
        doc, start=start, duration=timedelta(minutes=4), step=config.step, speed=math.inf, seed=2
    )
    expected = sum(
        item.stored_readings
        for item in Simulation(prefix).stream()
        if isinstance(item, Outgoing) and item.release_s <= due
    )
    register_fleet(database_url, config)
    stop = threading.Event()
    reports: list[SimulationReport] = []
    with running_ingest(database_url, mosquitto.url):
        thread = threading.Thread(
            target=lambda: reports.append(
                run_simulation(config, mosquitto.url, stop, wall=lambda: due + 30.0)
            ),
            daemon=True,
        )
        thread.start()
        try:
            wait_until(lambda: _rows(database_url) >= expected, 60, message="due readings")
        finally:
            stop.set()
            thread.join(timeout=30)
    assert not thread.is_alive()
    (report,) = reports
    assert report.stopped
    assert report.tally.stored_readings == expected == _rows(database_url)
    assert datetime.fromisoformat(report.reached).timestamp() == due


def test_the_command_registers_a_scaled_fleet_and_writes_the_oracle(
    database_url: str, mosquitto, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("MQTT_URL", mosquitto.url)
    monkeypatch.setenv("DATABASE_URL", database_url)
    midnight = datetime.now(TZ).replace(hour=0, minute=0, second=0, microsecond=0)
    start = midnight - timedelta(days=2)
    oracle = tmp_path / "run.jsonl.gz"
    # The fleet is registered before ingest starts (the command registers it again: no change).
    scaled = SimConfig(
        load_site_file(EXAMPLES / "shanxi-mine.yaml"), start, devices=100,
        retired_device=RETIRED_DEVICE_ID,
    )  # fmt: skip
    register_fleet(database_url, scaled, retired=True)
    arguments = [
        "simulate", "--site", "shanxi-mine", "--start", start.isoformat(), "--duration", "6h",
        "--step", "15m", "--speed", "max", "--devices", "100", "--faults", "heavy",
        "--oracle", str(oracle), "--register", "--json",
    ]  # fmt: skip
    args = build_parser().parse_args(arguments)  # the handler alone: no logging set-up
    with running_ingest(database_url, mosquitto.url):
        assert args.handler(args) == 0
        out = capsys.readouterr().out
        report = json.loads(out[out.index("{") :])
        stored = report["expected"]["stored_readings"]
        wait_until(lambda: _rows(database_url) >= stored, 60, message="readings stored")
    assert _rows(database_url) == stored
    assert report["devices"] == 100 and report["msgs_per_s"] > 0
    # the registry holds the scaled fleet, and the retired meter for inactive_device faults
    assert count(database_url, "SELECT count(*) FROM device WHERE active") == 100
    assert count(database_url, "SELECT count(*) FROM device WHERE NOT active") == 1
    written = read_oracle(oracle)
    assert len(written.devices) == 100 and len(written.intervals) == 6 * 4
    assert written.summary is not None
    assert written.summary["expected"]["stored_readings"] == stored


def test_two_publishing_processes_share_the_fleet(database_url: str, mosquitto) -> None:
    """A fleet of two replicas, one per process: together they publish it all, once."""
    midnight = datetime.now(TZ).replace(hour=0, minute=0, second=0, microsecond=0)
    config = SimConfig(
        load_site_file(EXAMPLES / "inner-mongolia-park.yaml"),
        start=midnight - timedelta(days=1),
        duration=timedelta(hours=3),
        step=timedelta(minutes=15),
        speed=math.inf,
        devices=88,
        batch_size=4,
        faults=FaultSpec.parse("duplicate=0.2,reorder=0.2"),
    )
    register_fleet(database_url, config)
    with running_ingest(database_url, mosquitto.url):
        report = run_simulation(config, mosquitto.url, workers=2, connections=2)
        wait_until(
            lambda: _rows(database_url) >= report.tally.stored_readings, 60, message="stored"
        )
    assert report.workers == 2 and report.devices == 88
    assert report.tally.duplicate_messages > 0
    assert _rows(database_url) == report.tally.stored_readings
    assert count(database_url, "SELECT count(DISTINCT device_pk) FROM reading") == 88

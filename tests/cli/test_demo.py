"""`make demo` runs `carbonflow demo`: it starts, says ready, Ctrl-C leaves nothing behind, and a
second start picks up where the first stopped (same ports and key, no replayed back-fill)."""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psutil
import psycopg
import pytest

from carbonflow.domain.reporting.hj212 import parse
from carbonflow.embedded.net import free_port
from cli.demo import READY_LINE, STATE_FILE
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

TEST_KEY = "demo-test-admin-key-0123456789abcdef"
MINE = "shanxi-jinzhong-mine"


def _get(port: int, path: str, key: str = TEST_KEY) -> str:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {key}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return str(response.read().decode())
    except urllib.error.HTTPError as err:  # 503 while not healthy still carries the state
        return str(err.read().decode())


@dataclass
class _Run:
    proc: subprocess.Popen[str]
    started: float  # monotonic [s]
    lines: queue.Queue[str] = field(default_factory=queue.Queue)
    seen: list[str] = field(default_factory=list)
    ready_after_s: float | None = None

    def ready(self) -> bool:
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        # The block after the ready line ends with "press Ctrl-C"; wait for all of it.
        done = any(READY_LINE in line for line in self.seen) and any(
            "Ctrl-C" in line for line in self.seen
        )
        if done and self.ready_after_s is None:
            self.ready_after_s = time.monotonic() - self.started
        return done or self.proc.poll() is not None

    @property
    def output(self) -> str:
        return "".join(self.seen)

    def field(self, name: str) -> str:
        match = re.search(rf"^  {re.escape(name)}\s+(\S+)", self.output, re.MULTILINE)
        assert match, f"no {name!r} line in {self.output}"
        return match.group(1)


@contextmanager
def _demo(env: dict[str, str]) -> Iterator[_Run]:
    # The demo's log goes to a file, not a pipe nobody reads (a full pipe would block it): a
    # demo that exits early says why in the failure.
    log_path = Path(env["CARBONFLOW_DATA_DIR"]) / f"demo-stderr-{time.monotonic_ns()}.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "demo"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
    run = _Run(proc, time.monotonic())

    def pump() -> None:
        for line in proc.stdout or []:
            run.lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    try:
        wait_until(run.ready, 180, message="demo ready")
        assert proc.poll() is None, (
            f"demo exited early ({proc.returncode}): {run.seen}\n"
            f"its log ends:\n{log_path.read_text(errors='replace')[-3000:]}"
        )
        yield run
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _stop(run: _Run) -> None:
    children = psutil.Process(run.proc.pid).children(recursive=True)
    assert children, "the embedded database and broker run as child processes"
    run.proc.send_signal(signal.SIGINT)
    assert run.proc.wait(timeout=120) == 0
    wait_until(
        lambda: not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children),
        30,
        message="no child process left",
    )


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Not under pytest's tmp_path: as root, PostgreSQL runs as an unprivileged user that must
    # reach its data directory, and pytest keeps its own base directory private.
    path = Path(tempfile.mkdtemp(prefix="carbonflow-demo-test-"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "MQTT_URL")}
    env.pop("CARBONFLOW_API_ADMIN_KEY", None)
    env.update(
        {
            "CARBONFLOW_DATA_DIR": str(data_dir),
            "CARBONFLOW_INGEST_HTTP_PORT": str(free_port()),
            "CARBONFLOW_DEMO_BACKFILL_HOURS": "1",
            "CARBONFLOW_DEMO_PUSH_PORT": str(free_port()),
            **extra,
        }
    )
    return env


def test_demo_starts_reports_ready_and_stops_cleanly_on_ctrl_c(data_dir: Path) -> None:
    api_port = free_port()
    calc_port = free_port()
    env = _env(
        data_dir,
        CARBONFLOW_API_PORT=str(api_port),
        CARBONFLOW_API_ADMIN_KEY=TEST_KEY,
        CARBONFLOW_CALC_HTTP_PORT=str(calc_port),
    )
    with _demo(env) as run:
        output = run.output
        assert "postgresql://" in output and "mqtt://" in output and MINE in output
        # The API answers with the admin key the demo printed, and sees the example sites.
        assert TEST_KEY in output
        assert MINE in _get(api_port, "/api/v1/sites")
        # The simulators publish, ingest stores, the API serves: readings arrive end to end.
        wait_until(
            lambda: '"metric"' in _get(api_port, f"/api/v1/sites/{MINE}/live/readings"),
            120,
            message="simulated readings served by the API",
        )
        # The calc service completes cycles over what arrived.
        wait_until(lambda: '"ok": true' in _get(calc_port, "/healthz"), 120, message="calc cycles")
        # The push service sends the mine's completed hours to the local HJ 212 platform, which
        # answers them; what it received is in the data directory, and the API shows it acked.
        received = data_dir / "push-received.jsonl"
        wait_until(
            lambda: received.exists() and '"answered": true' in received.read_text(),
            120,
            message="an hourly packet pushed and answered",
        )
        first = json.loads(received.read_text().splitlines()[0])
        packet = parse(first["raw"].encode() + b"\r\n")
        assert (packet.cn, packet.mn, packet.st) == ("2061", "DEMO0000SHANXIJINZHONGMINE01", "31")
        assert float(packet.value("a05001-Cou") or "nan") >= 0  # CO2 of the hour [kg]
        assert "push-received.jsonl" in run.field("push") + run.output
        assert (data_dir / "push-destinations.yaml").exists()
        status = json.loads(_get(api_port, "/api/v1/push/status"))["items"]
        assert [(d["destination"], d["site_id"]) for d in status] == [("demo-platform", MINE)]
        assert status[0]["acked_packets"] >= 1, status
        _stop(run)


def _count(database_url: str, sql: str, *params: object) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(sql, params).fetchone()
    return int(row[0]) if row else 0


def test_demo_restart_keeps_ports_key_and_hand_added_devices_and_replays_nothing(
    data_dir: Path,
) -> None:
    env = _env(data_dir, CARBONFLOW_CALC_HTTP_PORT="0")
    with _demo(env) as first:
        database_url = first.field("database")
        broker, api, key = first.field("broker"), first.field("api"), first.field("api key")
        port = int(re.sub(r".*:(\d+)/docs", r"\1", api))
        # a device added by hand, through the API
        document = json.loads(_get(port, f"/api/v1/sites/{MINE}/document", key))["document"]
        extra = {**document["devices"][0], "id": "hand-added-meter", "serial": "HAND0000001"}
        added = urllib.request.urlopen(
            urllib.request.Request(
                f"http://127.0.0.1:{port}/api/v1/sites/{MINE}/devices",
                data=json.dumps({"device": extra, "reason": "added by hand"}).encode(),
                headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
                method="POST",
            ),
            timeout=30,
        )
        assert added.status == 201
        wait_until(
            lambda: _count(database_url, "SELECT count(*) FROM reading") > 1000,
            180,
            message="the back-fill stored",
        )
        stored_before = _count(database_url, "SELECT count(*) FROM reading")
        _stop(first)
    stopped_at = datetime.now(UTC)
    state = data_dir / STATE_FILE
    assert state.stat().st_mode & 0o777 == 0o600  # it holds the admin key

    with _demo(env) as second:
        # the same ports and the same key, and the key still opens the API
        assert second.field("database") == database_url
        assert (second.field("broker"), second.field("api"), second.field("api key")) == (
            broker,
            api,
            key,
        )
        assert MINE in _get(port, "/api/v1/sites", key)
        # the device added by hand is still registered and active, with its revision
        assert _count(
            database_url,
            "SELECT count(*) FROM device WHERE device_id = 'hand-added-meter' AND active",
        )
        revisions = json.loads(_get(port, f"/api/v1/sites/{MINE}/revisions", key))["items"]
        assert [(r["revision"], r["source"]) for r in revisions] == [(2, "api"), (1, "demo")]
        # new readings arrive (the gap since the first run), none of the old ones again
        wait_until(
            lambda: _count(
                database_url, "SELECT count(*) FROM reading WHERE received_at > %s", stopped_at
            ),
            180,
            message="the second run stores readings",
        )
        conflicts = _count(
            database_url,
            "SELECT count(*) FROM rejected_reading WHERE reason = 'duplicate_conflict'",
        )
        # Ctrl-C with a live event stream open (the stream would last up to an hour)
        stream = urllib.request.urlopen(
            urllib.request.Request(
                f"http://127.0.0.1:{port}/api/v1/sites/{MINE}/live/stream",
                headers={"Authorization": f"Bearer {key}"},
            ),
            timeout=30,
        )
        assert stream.readline()  # the stream is open and sending
        stop_started = time.monotonic()
        _stop(second)
        stopped_in_s = time.monotonic() - stop_started
        stream.close()
    assert conflicts == 0
    print(  # the figures the closing note quotes; never asserted (wall-clock time)
        f"\ndemo ready after {first.ready_after_s:.1f} s (first start), "
        f"{second.ready_after_s:.1f} s (restart); {stored_before} readings after the first run; "
        f"stopped in {stopped_in_s:.1f} s with a live stream open"
    )

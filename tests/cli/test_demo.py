"""`make demo` runs `carbonflow demo`: it starts, says ready, and Ctrl-C leaves nothing behind."""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

from carbonflow.embedded.net import free_port
from cli.demo import READY_LINE
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


def _get(port: int, path: str) -> str:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        headers={"Authorization": "Bearer demo-test-admin-key-0123456789abcdef"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return str(response.read().decode())
    except urllib.error.HTTPError as err:  # 503 while not healthy still carries the state
        return str(err.read().decode())


def test_demo_starts_reports_ready_and_stops_cleanly_on_ctrl_c() -> None:
    # Not under pytest's tmp_path: as root, PostgreSQL runs as an unprivileged user that must
    # reach its data directory, and pytest keeps its own base directory private.
    data_dir = Path(tempfile.mkdtemp(prefix="carbonflow-demo-test-"))
    data_dir.chmod(0o711)
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "MQTT_URL")}
    api_port = free_port()
    calc_port = free_port()
    env.update(
        {
            "CARBONFLOW_DATA_DIR": str(data_dir),
            "CARBONFLOW_INGEST_HTTP_PORT": str(free_port()),
            "CARBONFLOW_API_PORT": str(api_port),
            "CARBONFLOW_API_ADMIN_KEY": "demo-test-admin-key-0123456789abcdef",
            "CARBONFLOW_DEMO_BACKFILL_HOURS": "1",
            "CARBONFLOW_CALC_HTTP_PORT": str(calc_port),
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "demo"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in proc.stdout or []:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []

    def ready() -> bool:
        while not lines.empty():
            seen.append(lines.get())
        # The block after the ready line ends with "press Ctrl-C"; wait for all of it.
        ready_seen = any(READY_LINE in line for line in seen)
        return (ready_seen and any("Ctrl-C" in line for line in seen)) or proc.poll() is not None

    try:
        wait_until(ready, 180, message="demo ready")
        assert proc.poll() is None, f"demo exited early: {seen}"
        output = "".join(seen)
        assert (
            "postgresql://" in output and "mqtt://" in output and "shanxi-jinzhong-mine" in output
        )
        # The API answers with the admin key the demo printed, and sees the example sites.
        assert "demo-test-admin-key-0123456789abcdef" in output
        assert "shanxi-jinzhong-mine" in _get(api_port, "/api/v1/sites")
        # The simulators publish, ingest stores, the API serves: readings arrive end to end.
        wait_until(
            lambda: (
                '"metric"' in _get(api_port, "/api/v1/sites/shanxi-jinzhong-mine/live/readings")
            ),
            120,
            message="simulated readings served by the API",
        )
        # The calc service completes cycles over what arrived.
        wait_until(lambda: '"ok": true' in _get(calc_port, "/healthz"), 120, message="calc cycles")
        children = psutil.Process(proc.pid).children(recursive=True)
        assert children, "the embedded database and broker run as child processes"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 0
        wait_until(
            lambda: (
                not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children)
            ),
            30,
            message="no child process left",
        )
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(data_dir, ignore_errors=True)

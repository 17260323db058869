"""``carbonflow push`` as the deployments run it: without a destinations file it idles and
says so on ``/healthz`` (200, nothing sent); a file that is named but missing is fatal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from carbonflow.embedded.net import free_port
from cli.main import main
from tests.support import ROOT
from tests.support.waiting import wait_until


def _health(port: int) -> tuple[int, dict[str, Any]] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
            return int(answer.status), json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
    except OSError:
        return None  # not listening yet


def test_without_destinations_push_idles_healthy_and_stops_on_sigterm() -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARBONFLOW_")}
    env |= {
        # Never contacted: with no destination the worker does not touch the database.
        "DATABASE_URL": f"postgresql://nobody:none@127.0.0.1:{free_port()}/none",
        "CARBONFLOW_PUSH_HTTP_PORT": str(port),
        "CARBONFLOW_LOG_FORMAT": "text",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "push"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: _health(port), timeout_s=60, message="push /healthz")
        answer = _health(port)
        assert answer is not None
        code, health = answer
        assert code == 200
        assert health["ok"] is True
        assert health["status"] == "idle: no destinations configured"
        assert health["destinations"] == {} and health["database_ok"] is None
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "no destinations file (CARBONFLOW_PUSH_DESTINATIONS): idling" in err


def test_a_named_destinations_file_that_is_missing_is_fatal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "destinations.yaml"
    monkeypatch.setenv("CARBONFLOW_PUSH_DESTINATIONS", str(missing))
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody:none@127.0.0.1:9/none")
    assert main(["push"]) == 2
    assert str(missing) in capsys.readouterr().err

"""Run the ingest service in a thread (or a subprocess) against the test broker and database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from carbonflow.embedded.net import free_port
from services.ingest.service import IngestService
from services.ingest.settings import IngestSettings
from tests.support.waiting import wait_until


def ingest_settings(database_url: str, mqtt_url: str, **overrides: Any) -> IngestSettings:
    values: dict[str, Any] = {
        "DATABASE_URL": database_url,
        "MQTT_URL": mqtt_url,
        "CARBONFLOW_INGEST_HTTP_PORT": 0,
        "CARBONFLOW_INGEST_BATCH_MAX_AGE_MS": 50,
        "CARBONFLOW_INGEST_RETRY_INITIAL_S": 0.2,
        "CARBONFLOW_INGEST_RETRY_MAX_S": 1.0,
    }
    values.update(overrides)
    return IngestSettings(**values)


@contextmanager
def running_ingest(database_url: str, mqtt_url: str, **overrides: Any) -> Iterator[IngestService]:
    service = IngestService(ingest_settings(database_url, mqtt_url, **overrides))
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(service.run()), daemon=True)
    thread.start()
    try:
        wait_until(lambda: service.health()["subscribed"], 30, message="ingest subscribed")
        yield service
    finally:
        service.request_stop()
        thread.join(timeout=60)
        assert not thread.is_alive(), "ingest did not stop"
        assert result == [0], f"ingest exited with {result}"


def start_ingest_process(database_url: str, mqtt_url: str, **env: str) -> subprocess.Popen[bytes]:
    """Start ``carbonflow ingest`` and return once it has subscribed."""
    port = int(env.pop("CARBONFLOW_INGEST_HTTP_PORT", 0)) or free_port()
    environment = dict(os.environ)
    environment.update(
        {
            "DATABASE_URL": database_url,
            "MQTT_URL": mqtt_url,
            "CARBONFLOW_INGEST_HTTP_PORT": str(port),
            "CARBONFLOW_INGEST_BATCH_MAX_AGE_MS": "50",
            "CARBONFLOW_INGEST_RETRY_INITIAL_S": "0.2",
            "CARBONFLOW_INGEST_RETRY_MAX_S": "1.0",
        }
    )
    environment.update(env)
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "ingest"],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_until(
        lambda: proc.poll() is not None or health(port).get("subscribed") is True,
        60,
        message="ingest process subscribed",
    )
    assert proc.poll() is None, f"ingest exited with {proc.returncode}"
    return proc


def health(port: int) -> dict[str, object]:
    """The worker's /healthz document, or {} while it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return dict(json.loads(response.read()))
    except urllib.error.HTTPError as err:  # 503 while unhealthy still carries the state
        return dict(json.loads(err.read()))
    except OSError:
        return {}


def count(database_url: str, sql: str, *params: Any) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(sql, params).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def reason_counts(database_url: str) -> dict[str, int]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT reason, count(*) FROM rejected_reading GROUP BY reason"
        ).fetchall()
    return {str(r): int(n) for r, n in rows}

"""Run the ingest service in a thread (or a subprocess) against the test broker and database."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from services.ingest.service import IngestService
from services.ingest.settings import IngestSettings


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
        yield service
    finally:
        service.request_stop()
        thread.join(timeout=60)
        assert not thread.is_alive(), "ingest did not stop"
        assert result == [0], f"ingest exited with {result}"


def start_ingest_process(database_url: str, mqtt_url: str, **env: str) -> subprocess.Popen[bytes]:
    environment = dict(os.environ)
    environment.update(
        {
            "DATABASE_URL": database_url,
            "MQTT_URL": mqtt_url,
            "CARBONFLOW_INGEST_HTTP_PORT": "0",
            "CARBONFLOW_INGEST_BATCH_MAX_AGE_MS": "50",
            "CARBONFLOW_INGEST_RETRY_INITIAL_S": "0.2",
            "CARBONFLOW_INGEST_RETRY_MAX_S": "1.0",
        }
    )
    environment.update(env)
    return subprocess.Popen(
        [sys.executable, "-m", "carbonflow.cli", "ingest"],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


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

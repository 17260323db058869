"""Horizontal scale-out as deployed: three `carbonflow ingest` processes with stable client ids
on one shared subscription; one is killed (SIGKILL) holding received, uncommitted messages and
restarted under the same id, as a StatefulSet or compose restart does. Every reading published
is stored exactly once.

tests/services/ingest/test_ingest.py covers two in-process workers sharing a stream and the kill of
a lone worker; this is the multi-process shared-subscription case the deployment relies on.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import urllib.request
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from carbonflow.domain.readings.contract import device_topic, encode, reading_set_document
from carbonflow.embedded.net import free_port
from simulators.publisher import Publisher
from tests.support.ingest_harness import count, health, start_ingest_process
from tests.support.seed import seed_site
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

BASE = (datetime.now(UTC) - timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
DEVICES = 20
MINUTES = 300
PER_MESSAGE = 5
# 20 devices × 300 one-minute reading sets × 2 values = 12 000 rows, in 20 × 60 = 1 200 messages.
TOTAL_ROWS = DEVICES * MINUTES * 2
_STORED = re.compile(r'^carbonflow_ingest_messages_total\{result="stored"\} ([0-9.e+]+)$', re.M)


def _messages(devices: list[str], minutes: range) -> list[tuple[str, bytes]]:
    """Messages of PER_MESSAGE reading sets; the counter of minute m reads 1000 + m kWh."""
    messages = []
    for device in devices:
        for start in range(minutes.start, minutes.stop, PER_MESSAGE):
            sets = [
                reading_set_document(
                    BASE + timedelta(minutes=m),
                    {"energy_import_kwh": 1000.0 + m, "power_kw": 60.0},
                    seq=m,
                )
                for m in range(start, min(start + PER_MESSAGE, minutes.stop))
            ]
            messages.append((device_topic("t1", device), encode(sets)))
    return messages


def _stored_messages(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        match = _STORED.search(response.read().decode())
    return float(match.group(1)) if match else 0.0


def _pending(port: int) -> int:
    """Messages the worker has received and not yet acknowledged (its /healthz)."""
    pending = health(port).get("pending_messages")
    return pending if isinstance(pending, int) else 0


def _rows(url: str) -> int:
    return count(url, "SELECT count(*) FROM reading")


def test_three_workers_one_killed_mid_stream_store_everything_once(
    database_url: str, mosquitto
) -> None:
    devices = seed_site(database_url, devices=DEVICES)
    half = MINUTES // 2
    first, second = _messages(devices, range(half)), _messages(devices, range(half, MINUTES))
    ports = {name: free_port() for name in ("ingest-0", "ingest-1", "ingest-2")}

    def start(name: str, **env: str) -> subprocess.Popen[bytes]:
        return start_ingest_process(
            database_url,
            mosquitto.url,
            CARBONFLOW_INGEST_CLIENT_ID=name,
            CARBONFLOW_INGEST_SHARED_GROUP="carbonflow-ingest",
            CARBONFLOW_INGEST_HTTP_PORT=str(ports[name]),
            **env,
        )

    procs = {"ingest-0": start("ingest-0"), "ingest-1": start("ingest-1")}
    # The victim commits only when its batch is 60 s old: whatever it receives before the kill
    # is received and unacknowledged, so the kill lands mid-batch by construction.
    procs["ingest-2"] = start("ingest-2", CARBONFLOW_INGEST_BATCH_MAX_AGE_MS="60000")
    try:
        with Publisher(mosquitto.url) as pub:
            pub.publish_many(first)
        wait_until(
            lambda: _pending(ports["ingest-2"]) > 0,
            60,
            message="the victim holds uncommitted messages",
        )
        os.kill(procs["ingest-2"].pid, signal.SIGKILL)
        assert procs["ingest-2"].wait(timeout=30) == -signal.SIGKILL
        # The other two store their shares; the victim's share stays with its session, and so
        # does its share of what is published while it is down.
        wait_until(lambda: _rows(database_url) > 0, 60, message="the others' shares")
        with Publisher(mosquitto.url) as pub:
            pub.publish_many(second)
        procs["ingest-2"] = start("ingest-2")  # restarted under the same client id
        wait_until(lambda: _rows(database_url) >= TOTAL_ROWS, 120, message="every reading")
        shares = {name: _stored_messages(port) for name, port in ports.items()}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        exit_codes = {name: proc.wait(timeout=60) for name, proc in procs.items()}
    assert exit_codes == {"ingest-0": 0, "ingest-1": 0, "ingest-2": 0}
    assert _rows(database_url) == TOTAL_ROWS
    assert count(database_url, "SELECT count(*) FROM rejected_reading") == 0
    # Exactly once, value by value: each device has every minute once, with its own counter.
    with psycopg.connect(database_url) as conn:
        per_device = conn.execute(
            "SELECT d.device_id, count(*), min(r.value), max(r.value), sum(r.value)"
            " FROM reading r JOIN device d USING (device_pk) JOIN metric m USING (metric_id)"
            " WHERE m.name = 'energy_import_kwh' GROUP BY d.device_id"
        ).fetchall()
    # Σ_{m=0}^{299} (1000 + m) = 300 × 1000 + 299 × 300 / 2 = 300 000 + 44 850 = 344 850 kWh
    assert sorted(per_device) == [(d, MINUTES, 1000.0, 1299.0, 344_850.0) for d in sorted(devices)]
    # The shared subscription spread the stream over all three, the restarted one included.
    assert all(n > 0 for n in shares.values()), shares

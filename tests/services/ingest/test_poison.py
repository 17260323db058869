"""Poison messages through a real Mosquitto into a real ingest process: it never exits, and every
valid reading behind the hostile ones is stored."""

from __future__ import annotations

import random
import signal
import subprocess
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carbonflow.domain.readings.contract import device_topic, encode, gateway_topic
from carbonflow.embedded.net import free_port
from simulators.publisher import Publisher
from tests.support.ingest_fuzz import messages, mutated_corpus
from tests.support.ingest_harness import count, start_ingest_process
from tests.support.seed import seed_site
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

BASE = (datetime.now(UTC) - timedelta(days=1)).replace(minute=0, second=0, microsecond=0)


def _poison(ts: str) -> list[bytes]:
    """The payloads of issue 14 that crashed ingest, and their kin."""
    v = b'"values": {"power_kw": 1.5}'
    t = ts.encode()
    return [
        b'{"ts": "%s", "seq": %d, %s}' % (t, 2**63, v),
        b'{"ts": "%s", "seq": %s, %s}' % (t, b"9" * 400, v),
        b'{"ts": "%s", "values": {"power_kw": %s}}' % (t, b"9" * 400),
        b'{"ts": "%s", "values": {"power_kw": %s}}' % (t, b"9" * 5000),
        b'{"ts": "10000-01-01T00:00:00Z", %s}' % v,
        b'{"ts": "9999-12-31T23:00:00-05:00", %s}' % v,
        b'{"ts": "0001-01-01T00:00:00+05:00", %s}' % v,
        b'{"ts": "2026-11-21T08:00:00+99:00", %s}' % v,
        b'{"ts": %d, %s}' % (10**18, v),
        b'{"ts": "%s", "serial": "S\\u0000N", "values": {"power_kw": 2.5}}' % t,
        b'{"ts": "%s", "values": {"energy_import_kwh": 3.5, "x\\u0000y": 1}}' % t,
        b'{"ts": "%s", "values": {"power_kw": {"value": 1e308, "unit": "MW"}}}' % t,
        b'{"ts": "%s", "values": {"power_kw": {"value": 1e12, "unit": "GW"}}}' % t,
        b'{"ts": "%s", "values": {"power_kw": 1, "power_kw": 2}}' % t,
        b'{"ts": "%s", "ts": "%s", %s}' % (t, t, v),
        b'{"ts": "%s", "values": {"energy_import_kwh": -10}}' % t,
        b"[" * 100_000 + b"]" * 100_000,
        b"1" + b"0" * 400,
    ]


FUZZED = 300


# One example: hypothesis only generates the fuzzed corpus (reproducibly); the test runs once.
@settings(
    max_examples=1,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
@given(fuzzed=st.lists(messages("t1", ("m0",)), min_size=FUZZED, max_size=FUZZED))
def test_poison_messages_never_stop_ingest(
    database_url: str, mosquitto, fuzzed: list[tuple[str, bytes]]
) -> None:
    devices = seed_site(database_url, devices=2)
    topic = device_topic("t1", devices[0])
    poison: list[tuple[str, bytes]] = list(fuzzed)
    for i in range(3):  # the same poison at three instants: three distinct rows each
        ts = (BASE - timedelta(minutes=i)).isoformat()
        poison += [(topic, p) for p in _poison(ts)]
    poison.append((gateway_topic("t1", "gw"), b'{"devices": {"m1": {"ts": "x\\u0000"}}}'))
    rng = random.Random(14)
    poison += [(topic, rng.randbytes(rng.randint(1, 300))) for _ in range(100)]
    valid = _valid_behind(devices[1])
    port, proc = _start(database_url, mosquitto.url, "poison")
    try:
        with Publisher(mosquitto.url) as pub:
            pub.publish_many(poison)  # the hostile ones first: the valid ones queue behind them
            pub.publish_many(valid)
        # 200 valid + (bad serial: power_kw kept; NUL-named metric: energy_import_kwh kept) × 3
        wait_until(
            lambda: (
                proc.poll() is not None
                or count(database_url, "SELECT count(*) FROM reading") >= 206
            ),
            30,
            message="valid readings behind the poison",
        )
        assert proc.poll() is None, f"ingest exited with {proc.returncode}"
        # Every message published is accounted for: stored, partly rejected or rejected.
        total = len(poison) + len(valid)
        wait_until(lambda: _messages_counted(port) >= total, 30, message="every message counted")
        assert _messages_counted(port) == total
        reasons = {
            r for (r,) in _rows(database_url, "SELECT DISTINCT reason FROM rejected_reading")
        }
        assert "store_failed" not in reasons and "unprocessable" not in reasons, reasons
        assert {
            "seq_out_of_range",
            "value_out_of_range",
            "timestamp_out_of_range",
            "invalid_text",
            "duplicate_key",
            "negative_counter",
        } <= reasons
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    assert count(database_url, "SELECT count(*) FROM reading") == 206
    assert (
        count(
            database_url,
            "SELECT count(*) FROM reading WHERE value IN ('Infinity', '-Infinity', 'NaN')",
        )
        == 0
    )


MUTATED = 10_000


def test_ten_thousand_mutated_payloads_through_the_broker(database_url: str, mosquitto) -> None:
    """10 000 seeded mutations of valid and poison payloads, then 200 valid readings of another
    device: ingest never exits, every message is counted (stored, partly rejected or rejected),
    nothing non-finite is stored, none is quarantined as unprocessable or store_failed, and all
    200 readings behind the corpus are stored."""
    devices = seed_site(database_url, devices=2)
    ts = (BASE - timedelta(minutes=5)).isoformat()
    templates = [
        *_poison(ts),
        encode({"ts": ts, "seq": 7, "values": {"power_kw": 1.5, "energy_import_kwh": 10.0}}),
        encode([{"ts": ts, "values": {"power_kw": {"value": 2.5, "unit": "MW"}}}] * 3),
        b"12.5",
    ]
    templates = [t for t in templates if len(t) < 10_000]  # the deep nesting once is enough
    corpus = mutated_corpus(14, MUTATED, templates)
    topic = device_topic("t1", devices[0])
    valid = _valid_behind(devices[1])
    port, proc = _start(database_url, mosquitto.url, "mutated")
    behind = (
        "SELECT count(*) FROM reading JOIN device USING (device_pk)"
        f" WHERE device.device_id = '{devices[1]}'"
    )
    try:
        with Publisher(mosquitto.url) as pub:
            pub.publish_many([(topic, p) for p in corpus])
            pub.publish_many(valid)
        wait_until(
            lambda: proc.poll() is not None or count(database_url, behind) >= len(valid),
            120,
            message="valid readings behind the corpus",
        )
        assert proc.poll() is None, f"ingest exited with {proc.returncode}"
        total = len(corpus) + len(valid)
        wait_until(lambda: _messages_counted(port) >= total, 60, message="every message counted")
        assert _messages_counted(port) == total
        reasons = {
            r for (r,) in _rows(database_url, "SELECT DISTINCT reason FROM rejected_reading")
        }
        assert "store_failed" not in reasons and "unprocessable" not in reasons, reasons
        assert len(reasons) >= 10, reasons
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    assert count(database_url, behind) == len(valid)
    assert (
        count(
            database_url,
            "SELECT count(*) FROM reading WHERE value IN ('Infinity', '-Infinity', 'NaN')",
        )
        == 0
    )


def _valid_behind(device: str) -> list[tuple[str, bytes]]:
    """200 valid readings, published after the hostile ones: they must all be stored."""
    return [
        (
            device_topic("t1", device),
            encode({"ts": (BASE + timedelta(minutes=i)).isoformat(), "values": {"power_kw": i}}),
        )
        for i in range(200)
    ]


def _start(database_url: str, mqtt_url: str, client_id: str) -> tuple[int, subprocess.Popen[bytes]]:
    port = free_port()
    proc = start_ingest_process(
        database_url,
        mqtt_url,
        CARBONFLOW_INGEST_CLIENT_ID=client_id,
        CARBONFLOW_INGEST_HTTP_PORT=str(port),
    )
    return port, proc


def _messages_counted(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return int(
        sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("carbonflow_ingest_messages_total{")
        )
    )


def _rows(url: str, sql: str) -> list[tuple[object, ...]]:
    import psycopg

    with psycopg.connect(url) as conn:
        return list(conn.execute(sql).fetchall())

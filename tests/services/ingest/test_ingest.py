"""Ingest end to end: real Mosquitto, real PostgreSQL, the real service."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from carbonflow.domain.readings.contract import (
    Reason,
    device_topic,
    encode,
    gateway_topic,
    reading_set_document,
)
from carbonflow.embedded.net import free_port
from simulators.publisher import Publisher
from tests.support.ingest_harness import (
    count,
    health,
    reason_counts,
    running_ingest,
    start_ingest_process,
)
from tests.support.seed import seed_site
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

BASE = (datetime.now(UTC) - timedelta(days=2)).replace(minute=0, second=0, microsecond=0)


def _counter_stream(devices: list[str], minutes: int, site: str = "t1", per_message: int = 1):
    """Messages of ``per_message`` one-minute reading sets per device; counters rise 1 kWh/min."""
    messages = []
    for d in devices:
        for start in range(0, minutes, per_message):
            sets = [
                reading_set_document(
                    BASE + timedelta(minutes=m),
                    {"energy_import_kwh": 1000.0 + m, "power_kw": 60.0},
                    seq=m,
                )
                for m in range(start, min(start + per_message, minutes))
            ]
            payload = encode(sets[0] if per_message == 1 else sets)
            messages.append((device_topic(site, d), payload))
    return messages


def _rows(url: str) -> int:
    return count(url, "SELECT count(*) FROM reading")


def test_every_reading_stored_exactly_once(database_url: str, mosquitto) -> None:
    devices = seed_site(database_url, devices=20)
    messages = _counter_stream(devices, minutes=50)  # 1000 messages, 2000 readings
    with running_ingest(database_url, mosquitto.url), Publisher(mosquitto.url) as pub:
        pub.publish_many(messages)
        pub.publish_many(messages[:100])  # the same messages again: no new rows
        wait_until(lambda: _rows(database_url) >= 2000, 60, message="readings stored")
        wait_until(
            lambda: count(database_url, "SELECT count(*) FROM dirty_hour") > 0,
            10,
            message="dirty hours",
        )
    assert _rows(database_url) == 2000
    assert count(database_url, "SELECT count(*) FROM rejected_reading") == 0
    # Every reading lands with its value and sequence number as published.
    assert count(database_url, "SELECT count(*) FROM reading WHERE seq IS NULL") == 0
    assert (
        count(
            database_url,
            "SELECT max(value)::int FROM reading r JOIN metric m USING (metric_id)"
            " WHERE m.name = 'energy_import_kwh'",
        )
        == 1049
    )


def test_batches_gateways_units_and_bare_numbers(database_url: str, mosquitto) -> None:
    seed_site(database_url, devices=3)
    seed_site(database_url, devices=1, metrics={"ch4_pct": "gauge"}, prefix="ch4-")
    ts = BASE.isoformat()
    gateway_payload = encode(
        {
            "devices": {
                "m1": [reading_set_document(BASE, {"energy_import_kwh": 5.0})],
                "m2": reading_set_document(
                    BASE, {"energy_import_kwh": {"value": 2.5, "unit": "MWh"}}
                ),
            }
        }
    )
    with running_ingest(database_url, mosquitto.url) as service, Publisher(mosquitto.url) as pub:
        pub.publish(
            device_topic("t1", "m0"),
            encode(
                [
                    {"ts": ts, "values": {"power_kw": 1.0}},
                    {"ts": int(BASE.timestamp() * 1000) + 60000, "values": {"power_kw": 2.0}},
                ]
            ),
        )
        pub.publish(gateway_topic("t1", "gw-1"), gateway_payload)
        pub.publish(device_topic("t1", "ch4-0"), b"0.42")
        wait_until(lambda: _rows(database_url) == 5, 30, message="5 readings")
        assert service.health()["ok"]
    assert (
        count(
            database_url,
            "SELECT value::int FROM reading WHERE device_pk = "
            "(SELECT device_pk FROM device WHERE device_id = 'm2')",
        )
        == 2500
    )  # 2.5 MWh = 2500 kWh


def _hostile_corpus(valid_device: str) -> tuple[list[tuple[str, bytes]], dict[str, int]]:
    """(messages, expected rejection count by reason); each malformed part is distinct."""
    now = datetime.now(UTC)
    t = device_topic("t1", valid_device)
    ok = reading_set_document(BASE, {"power_kw": 1.0})
    cases: list[tuple[Reason, str, bytes]] = [
        (Reason.MALFORMED_JSON, t, b'{"ts": "2026-'),
        (Reason.MALFORMED_JSON, t, b"\xff\xfe\x00garbage"),
        (Reason.INVALID_SCHEMA, t, b'{"values": {"power_kw": 1}}'),
        (Reason.INVALID_SCHEMA, t, b'"just text"'),
        (Reason.INVALID_SCHEMA, t, encode({**ok, "extra": 1})),
        (Reason.INVALID_VALUE, t, encode({"ts": BASE.isoformat(), "values": {"power_kw": "12"}})),
        (
            Reason.INVALID_VALUE,
            t,
            b'{"ts": "%s", "values": {"power_kw": Infinity}}' % BASE.isoformat().encode(),
        ),
        (Reason.INVALID_VALUE, t, encode({"ts": BASE.isoformat(), "values": {"power_kw": True}})),
        (
            Reason.INVALID_TIMESTAMP,
            t,
            encode({"ts": "2026-11-21 08:00:00", "values": {"power_kw": 1}}),
        ),
        (Reason.INVALID_TIMESTAMP, t, encode({"ts": 1763683200, "values": {"power_kw": 1}})),
        (Reason.UNKNOWN_TOPIC, "carbonflow/v1/t1/m0", encode(ok)),
        (Reason.UNKNOWN_TOPIC, "carbonflow/v1/t1/m0/status", encode(ok)),
        (Reason.UNKNOWN_SITE, device_topic("nosuchsite", "m0x"), encode(ok)),
        (Reason.UNKNOWN_DEVICE, device_topic("t1", "ghost"), encode(ok)),
        (Reason.WRONG_SITE, device_topic("t1", "p0"), encode(ok)),
        (Reason.UNKNOWN_METRIC, t, encode(reading_set_document(BASE, {"voltage_v_x": 1.0}))),
        (
            Reason.UNIT_MISMATCH,
            t,
            encode({"ts": BASE.isoformat(), "values": {"power_kw": {"value": 1, "unit": "Nm3"}}}),
        ),
        (
            Reason.FUTURE_TIMESTAMP,
            t,
            encode(reading_set_document(now + timedelta(hours=2), {"power_kw": 1.0})),
        ),
        (
            Reason.TOO_OLD,
            t,
            encode(reading_set_document(now - timedelta(days=4000), {"power_kw": 1.0})),
        ),
        (Reason.PAYLOAD_TOO_LARGE, t, b"[" + b" " * 300_000 + b"]"),
    ]
    messages = [(topic, payload) for _r, topic, payload in cases]
    expected: dict[str, int] = {}
    for reason, _t, _p in cases:
        expected[reason.value] = expected.get(reason.value, 0) + 1
    return messages, expected


def test_hostile_corpus_is_quarantined_with_reasons(database_url: str, mosquitto) -> None:
    seed_site(database_url, devices=2)
    seed_site(database_url, site="t2", devices=1, prefix="p")
    messages, expected = _hostile_corpus("m0")
    rng = random.Random(7)
    random_blobs = [
        (device_topic("t1", "m1"), rng.randbytes(rng.randint(1, 400))) for _ in range(50)
    ]
    # valid neighbours, interleaved, including one message with a good and a bad value
    valid = [
        (
            device_topic("t1", "m1"),
            encode(reading_set_document(BASE + timedelta(minutes=i), {"power_kw": float(i)})),
        )
        for i in range(30)
    ]
    mixed = (
        device_topic("t1", "m1"),
        encode(
            {
                "ts": (BASE - timedelta(minutes=1)).isoformat(),
                "values": {"power_kw": 3.0, "energy_import_kwh": "x"},
            }
        ),
    )
    everything = [*messages, *random_blobs, *valid, mixed]
    rng.shuffle(everything)
    with running_ingest(database_url, mosquitto.url), Publisher(mosquitto.url) as pub:
        pub.publish_many(everything)
        wait_until(lambda: _rows(database_url) == 31, 60, message="valid readings")
        wait_until(
            lambda: (
                count(database_url, "SELECT count(*) FROM rejected_reading") >= len(messages) + 1
            ),
            60,
            message="rejections",
        )
        # counter running backwards, after a good value
        pub.publish(
            device_topic("t1", "m0"),
            encode(reading_set_document(BASE, {"energy_import_kwh": 500.0})),
        )
        pub.publish(
            device_topic("t1", "m0"),
            encode(reading_set_document(BASE + timedelta(minutes=1), {"energy_import_kwh": 495.0})),
        )
        wait_until(
            lambda: reason_counts(database_url).get("counter_backwards") == 1,
            30,
            message="backwards",
        )
    got = reason_counts(database_url)
    blobs = (
        got.get(Reason.MALFORMED_JSON.value, 0)
        + got.get(Reason.INVALID_SCHEMA.value, 0)
        + got.get(Reason.INVALID_VALUE.value, 0)
    )
    for reason, n in expected.items():
        if reason in (Reason.MALFORMED_JSON, Reason.INVALID_SCHEMA, Reason.INVALID_VALUE):
            continue  # random bytes can land in these too; checked in total below
        assert got.get(reason) == n, (reason, got)
    expected_parse = sum(
        expected.get(r.value, 0)
        for r in (Reason.MALFORMED_JSON, Reason.INVALID_SCHEMA, Reason.INVALID_VALUE)
    )
    # every random blob is rejected once (none is valid JSON of the contract), plus the mixed one
    assert blobs >= expected_parse + 1
    assert count(database_url, "SELECT count(*) FROM rejected_reading") == sum(got.values())
    assert got.get(Reason.COUNTER_BACKWARDS.value) == 1
    # Every rejection keeps the raw payload (truncated safely), the topic and the reason.
    assert (
        count(
            database_url,
            "SELECT count(*) FROM rejected_reading WHERE payload_excerpt IS NULL "
            "OR topic = '' OR detail = ''",
        )
        == 0
    )
    assert count(database_url, "SELECT max(length(payload_excerpt)) FROM rejected_reading") <= 1025


def test_conflicting_duplicate_keeps_first_value_and_says_so(database_url: str, mosquitto) -> None:
    seed_site(database_url, devices=1)
    t = device_topic("t1", "m0")
    with running_ingest(database_url, mosquitto.url), Publisher(mosquitto.url) as pub:
        pub.publish(t, encode(reading_set_document(BASE, {"power_kw": 1.0})))
        wait_until(lambda: _rows(database_url) == 1, 30)
        pub.publish(t, encode(reading_set_document(BASE, {"power_kw": 2.0})))
        wait_until(lambda: reason_counts(database_url).get("duplicate_conflict") == 1, 30)
    assert count(database_url, "SELECT value::int FROM reading") == 1


def test_kill_9_mid_stream_loses_and_duplicates_nothing(database_url: str, mosquitto) -> None:
    devices = seed_site(database_url, devices=50)
    messages = _counter_stream(devices, minutes=2000, per_message=50)  # 2000 msgs, 200k readings
    total = 50 * 2000 * 2
    proc = start_ingest_process(
        database_url, mosquitto.url, CARBONFLOW_INGEST_CLIENT_ID="kill-test"
    )
    try:
        with Publisher(mosquitto.url) as pub:
            pub.publish_many(messages)
        wait_until(lambda: _rows(database_url) > total // 5, 120, message="ingest under way")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        stored_at_kill = _rows(database_url)
        assert stored_at_kill < total, "killed too late to prove anything"
        proc = start_ingest_process(
            database_url, mosquitto.url, CARBONFLOW_INGEST_CLIENT_ID="kill-test"
        )
        wait_until(lambda: _rows(database_url) >= total, 300, message="all readings after restart")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    assert _rows(database_url) == total
    assert count(database_url, "SELECT count(*) FROM rejected_reading") == 0


def test_broker_restart_mid_stream_loses_nothing(database_url: str, mosquitto) -> None:
    devices = seed_site(database_url, devices=20)
    messages = _counter_stream(devices, minutes=1000, per_message=10)  # 2000 msgs, 40k readings
    total = 20 * 1000 * 2
    with running_ingest(database_url, mosquitto.url, CARBONFLOW_INGEST_BATCH_MAX_READINGS=400):
        with Publisher(mosquitto.url) as pub:
            pub.publish_many(messages)
        wait_until(lambda: _rows(database_url) > 0, 60, message="ingest under way")
        mosquitto.stop()
        mosquitto.start()
        wait_until(
            lambda: _rows(database_url) >= total, 180, message="all readings after broker restart"
        )
    assert _rows(database_url) == total


@pytest.mark.slow
def test_database_down_30s_mid_stream_loses_nothing(own_postgres, mosquitto) -> None:
    url = own_postgres.url
    devices = seed_site(url, devices=20)
    first = _counter_stream(devices, minutes=200, per_message=10)
    total = 20 * 200 * 2
    with running_ingest(url, mosquitto.url) as service, Publisher(mosquitto.url) as pub:
        pub.publish_many(first[: len(first) // 2])
        wait_until(lambda: _rows(url) > 0, 60, message="ingest under way")
        own_postgres.stop()
        pub.publish_many(first[len(first) // 2 :])  # arrives while the database is down
        wait_until(lambda: not service.health()["database_ok"], 30, message="ingest notices")
        wait_until(lambda: service.metrics.db_retries._value.get() >= 3, 60, message="retries")
        # Keep it down for at least 30 s of retries, measured by the service's own retry count
        # at its 1 s maximum backoff.
        wait_until(lambda: service.metrics.db_retries._value.get() >= 32, 90, message="30 s down")
        own_postgres.start()
        wait_until(
            lambda: _rows(url) >= total, 120, message="all readings after the database returns"
        )
        assert service.health()["database_ok"]
    assert _rows(url) == total


def test_two_workers_share_the_load(database_url: str, mosquitto) -> None:
    devices = seed_site(database_url, devices=20)
    messages = _counter_stream(devices, minutes=200)  # 4000 messages
    with (
        running_ingest(
            database_url,
            mosquitto.url,
            CARBONFLOW_INGEST_CLIENT_ID="w1",
            CARBONFLOW_INGEST_SHARED_GROUP="carbonflow-ingest",
            CARBONFLOW_INGEST_RECEIVE_MAXIMUM=50,
        ) as w1,
        running_ingest(
            database_url,
            mosquitto.url,
            CARBONFLOW_INGEST_CLIENT_ID="w2",
            CARBONFLOW_INGEST_SHARED_GROUP="carbonflow-ingest",
            CARBONFLOW_INGEST_RECEIVE_MAXIMUM=50,
        ) as w2,
    ):
        with Publisher(mosquitto.url) as pub:
            pub.publish_many(messages)
        wait_until(lambda: _rows(database_url) >= 8000, 120, message="all readings")
        share1 = w1.metrics.messages.labels("stored")._value.get()
        share2 = w2.metrics.messages.labels("stored")._value.get()
    assert _rows(database_url) == 8000
    assert share1 > 0 and share2 > 0, (share1, share2)
    assert share1 + share2 >= 4000


def test_sigterm_flushes_acknowledges_and_exits_zero(database_url: str, mosquitto) -> None:
    devices = seed_site(database_url, devices=5)
    messages = _counter_stream(devices, minutes=100)  # 500 messages, 1000 readings
    port = free_port()
    # Batches flush only on SIGTERM here: 60 s age, more messages than were sent.
    proc = start_ingest_process(
        database_url,
        mosquitto.url,
        CARBONFLOW_INGEST_CLIENT_ID="term-test",
        CARBONFLOW_INGEST_BATCH_MAX_AGE_MS="60000",
        CARBONFLOW_INGEST_HTTP_PORT=str(port),
    )
    try:
        with Publisher(mosquitto.url) as pub:
            pub.publish_many(messages)
        wait_until(lambda: health(port).get("pending_messages") == 500, 30, message="all received")
        assert _rows(database_url) == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    assert _rows(database_url) == 1000
    # Everything was acknowledged: the same session gets nothing more after a restart.
    proc2 = start_ingest_process(
        database_url,
        mosquitto.url,
        CARBONFLOW_INGEST_CLIENT_ID="term-test",
        CARBONFLOW_INGEST_HTTP_PORT=str(port),
    )
    try:
        assert health(port)["pending_messages"] == 0
    finally:
        proc2.send_signal(signal.SIGTERM)
        assert proc2.wait(timeout=60) == 0
    assert count(database_url, "SELECT count(*) FROM rejected_reading") == 0


def test_retiring_a_worker_hands_its_share_back(database_url: str, mosquitto) -> None:
    """Scale-down: a stopped worker's session keeps taking its share of a shared subscription
    until it is retired; `carbonflow ingest --retire` stores that share and ends the session."""
    devices = seed_site(database_url, devices=10)
    first = _counter_stream(devices, minutes=100)  # 1000 messages
    # minutes 100–199 of every device: 1000 more messages
    second = [m for i, m in enumerate(_counter_stream(devices, minutes=200)) if i % 200 >= 100]
    # Retiring is about shared subscriptions: every worker here is in the same group (with the
    # plain default each would receive everything, and the stopped one would hold no "share").
    group = {"CARBONFLOW_INGEST_SHARED_GROUP": "retire-test"}
    with running_ingest(database_url, mosquitto.url, CARBONFLOW_INGEST_CLIENT_ID="keep", **group):
        proc = start_ingest_process(
            database_url, mosquitto.url, CARBONFLOW_INGEST_CLIENT_ID="leave", **group
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        with Publisher(mosquitto.url) as pub:
            pub.publish_many(first)  # part of it is queued for the stopped worker's session
        wait_until(lambda: _rows(database_url) > 0, 30, message="the remaining worker's share")
        assert _rows(database_url) < 2000, "the stopped worker's session took no share"
        retire = subprocess.run(
            [sys.executable, "-m", "cli.main", "ingest", "--retire"],
            env={
                **os.environ,
                "DATABASE_URL": database_url,
                "MQTT_URL": mosquitto.url,
                "CARBONFLOW_INGEST_CLIENT_ID": "leave",
                "CARBONFLOW_INGEST_HTTP_PORT": "0",
                **group,
            },
            timeout=120,
            check=False,
        )
        assert retire.returncode == 0
        wait_until(lambda: _rows(database_url) == 2000, 30, message="the retired share stored")
        with Publisher(mosquitto.url) as pub:
            pub.publish_many(second)  # all of it now goes to the remaining worker
        wait_until(lambda: _rows(database_url) == 4000, 60, message="everything after retiring")
    assert _rows(database_url) == 4000

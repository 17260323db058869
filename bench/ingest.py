"""Ingest benchmark: broker ceiling, COPY ceiling, and the ingest service end to end.

All three consume the same pre-queued stream so that the publisher's speed does not enter the
figures: messages are published to a persistent session while its consumer is offline, then
the consumer connects and drains the queue. Latency is measured separately, under a steady
publish rate below capacity, as commit time minus the reading's timestamp (stamped at publish).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bench.common import Stack, peak_rss_mb, private_stack
from carbonflow.domain.readings.contract import device_topic, encode, reading_set_document
from carbonflow.domain.site.model import SiteDocument
from carbonflow.embedded.net import free_port
from carbonflow.settings import MqttTarget
from carbonflow.storage.registry_load import load_site
from simulators.publisher import Publisher

SITE = "bench"
DEVICES = 1000
GROUP = "carbonflow-ingest"
FILTER = f"$share/{GROUP}/carbonflow/v1/#"


def _site(devices: int) -> SiteDocument:
    """The bench site: ``devices`` consumption meters ``m0…`` in one workshop, as a site file
    would describe them (loaded through the registry like any site)."""
    meters = [f"m{i}" for i in range(devices)]
    return SiteDocument.model_validate(
        {
            "site": {"id": SITE, "name": "Ingest bench", "kind": "park", "province": "shanxi",
                     "grid_region": "north"},
            "organisations": [{"id": "co", "name": "Co"}],
            "nodes": [{"id": "grid", "name": "Grid", "kind": "supply"},
                      {"id": "w", "name": "Workshop", "kind": "process", "org": "co"}],
            "edges": [{"source": "grid", "target": "w", "carrier": "electricity",
                       "meters": meters}],
            "devices": [{"id": m, "name": m, "kind": "electricity_meter",
                         "carrier": "electricity", "role": "consumption", "node": "w",
                         "org": "co"} for m in meters],
        }
    )  # fmt: skip


def _messages(readings: int, per_message: int) -> list[tuple[str, bytes]]:
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    per_device = readings // DEVICES
    out: list[tuple[str, bytes]] = []
    for d in range(DEVICES):
        topic = device_topic(SITE, f"m{d}")
        for start in range(0, per_device, per_message):
            sets = [
                reading_set_document(
                    base + timedelta(minutes=m), {"energy_import_kwh": 1000.0 + m}, seq=m
                )
                for m in range(start, min(start + per_message, per_device))
            ]
            out.append((topic, encode(sets[0] if per_message == 1 else sets)))
    # interleave devices as a real fleet does
    out.sort(key=lambda tp: (tp[1][:40], tp[0]))
    return out


def _v5_client(url: str, client_id: str) -> mqtt.Client:
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
    )
    return client


def _connect_props() -> Properties:
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 3600
    props.ReceiveMaximum = 20000
    return props


def broker_ceiling(stack: Stack, messages: list[tuple[str, bytes]]) -> dict[str, float]:
    """QoS 1 delivery rate of the broker to a paho subscriber that only counts."""
    target = MqttTarget.parse(stack.mqtt_url)
    received = 0
    first = last = 0.0
    done = threading.Event()

    def on_message(_c: Any, _u: Any, _m: Any) -> None:
        nonlocal received, first, last
        now = time.perf_counter()
        if received == 0:
            first = now
        received += 1
        last = now
        if received >= len(messages):
            done.set()

    subscribed = threading.Event()
    client = _v5_client(stack.mqtt_url, "bench-counter")
    client.on_subscribe = lambda *_a: subscribed.set()
    client.connect(target.host, target.port, clean_start=False, properties=_connect_props())
    client.loop_start()
    client.subscribe("$share/bench-counter/carbonflow/v1/#", qos=1)
    subscribed.wait(10)
    client.disconnect()
    client.loop_stop()
    with Publisher(stack.mqtt_url) as pub:
        pub.publish_many(messages)
    client = _v5_client(stack.mqtt_url, "bench-counter")
    client.on_message = on_message
    client.connect(target.host, target.port, clean_start=False, properties=_connect_props())
    client.loop_start()
    done.wait(600)
    client.disconnect()
    client.loop_stop()
    seconds = max(last - first, 1e-9)
    return {"messages": received, "seconds": seconds, "msgs_per_s": received / seconds}


def copy_ceiling(stack: Stack, readings: int) -> dict[str, float]:
    """Raw binary COPY of the same rows straight into the readings table."""
    base = datetime.now(UTC) - timedelta(days=1)
    now = datetime.now(UTC)
    per_device = readings // DEVICES
    with psycopg.connect(stack.database_url) as conn:
        ids: dict[str, int] = {
            str(d): int(pk)
            for d, pk in conn.execute(
                "SELECT device_id, device_pk FROM device WHERE site_id = %s", (SITE,)
            )
        }
        metric_id = _scalar(conn, "SELECT metric_id FROM metric WHERE name = 'energy_import_kwh'")
        rows = [
            (ids[f"m{d}"], metric_id, base + timedelta(minutes=m), 1000.0 + m, m, now)
            for d in range(DEVICES)
            for m in range(per_device)
        ]
        conn.execute("TRUNCATE reading")
        conn.commit()
        started = time.perf_counter()
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY reading (device_pk, metric_id, ts, value, seq, received_at)"
                " FROM STDIN (FORMAT BINARY)"
            ) as copy,
        ):
            copy.set_types(["int4", "int2", "timestamptz", "float8", "int8", "timestamptz"])
            for row in rows:
                copy.write_row(row)
        conn.commit()
        seconds = time.perf_counter() - started
        conn.execute("TRUNCATE reading")
        conn.commit()
    return {"rows": len(rows), "seconds": seconds, "rows_per_s": len(rows) / seconds}


def _start_worker(stack: Stack, client_id: str, port: int, group: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update(
        {
            # A group of its own per run: sessions of earlier runs' workers stay members of their
            # group until they expire and would take their share of the stream.
            "CARBONFLOW_INGEST_SHARED_GROUP": group,
            "DATABASE_URL": stack.database_url,
            "MQTT_URL": stack.mqtt_url,
            "CARBONFLOW_INGEST_CLIENT_ID": client_id,
            "CARBONFLOW_INGEST_HTTP_PORT": str(port),
            "CARBONFLOW_LOG_LEVEL": "WARNING",
        }
    )
    return subprocess.Popen(
        [sys.executable, "-m", "cli.main", "--log-level", "WARNING", "ingest"],
        env=env,
        stdout=subprocess.DEVNULL,
    )


def _get(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
        return str(response.read().decode())


def _wait_connected(port: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if '"subscribed": true' in _get(port, "/healthz"):
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError("ingest worker did not connect")


def _count(url: str) -> int:
    with psycopg.connect(url) as conn:
        return int(_scalar(conn, "SELECT count(*) FROM reading"))


def _scalar(conn: psycopg.Connection[Any], query: str) -> Any:
    row = conn.execute(query).fetchone()
    if row is None:
        raise RuntimeError(f"no row from {query!r}")
    return row[0]


def ingest_end_to_end(
    stack: Stack, messages: list[tuple[str, bytes]], readings: int, workers: int
) -> dict[str, float]:
    with psycopg.connect(stack.database_url) as conn:
        conn.execute("TRUNCATE reading, dirty_hour, rejected_reading")
    ports = [free_port() for _ in range(workers)]
    run_id = f"{workers}w-{messages[0][1][:0].hex()}{len(messages)}"
    ids = [f"bench-ingest-{run_id}-{i}" for i in range(workers)]
    # Create the sessions, then let the broker queue the whole stream for them.
    procs = [_start_worker(stack, cid, port, ids[0]) for cid, port in zip(ids, ports, strict=True)]
    for port in ports:
        _wait_connected(port)
    for p in procs:
        p.send_signal(signal.SIGTERM)
        p.wait(60)
    with Publisher(stack.mqtt_url) as pub:
        pub.publish_many(messages)
    procs = [_start_worker(stack, cid, port, ids[0]) for cid, port in zip(ids, ports, strict=True)]
    rss = [0.0] * workers
    try:
        deadline = time.monotonic() + 900
        while _count(stack.database_url) < readings:
            if time.monotonic() > deadline:
                raise RuntimeError("ingest did not finish")
            time.sleep(0.02)
        finished = datetime.now(UTC)
        rss = [peak_rss_mb(p.pid) for p in procs]
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
            p.wait(60)
    with psycopg.connect(stack.database_url) as conn:
        first = _scalar(conn, "SELECT min(received_at) FROM reading")
    seconds = (finished - first).total_seconds()
    return {
        "readings": readings,
        "messages": len(messages),
        "seconds": seconds,
        "readings_per_s": readings / seconds,
        "msgs_per_s": len(messages) / seconds,
        "peak_rss_mb": max(rss),
    }


def ingest_latency(stack: Stack, rate_per_s: float, seconds: float) -> dict[str, float]:
    """Publish single readings stamped with the publish time at a steady rate; commit − ts."""
    with psycopg.connect(stack.database_url) as conn:
        conn.execute("TRUNCATE reading, dirty_hour, rejected_reading")
    port = free_port()
    proc = _start_worker(stack, "bench-latency", port, "bench-latency")
    _wait_connected(port)
    total = int(rate_per_s * seconds)
    try:
        with Publisher(stack.mqtt_url) as pub:
            started = time.monotonic()
            tick = 0.05
            sent = 0
            minute = 0
            while sent < total:
                due = min(total, int((time.monotonic() - started) * rate_per_s) + 1)
                batch = []
                now = datetime.now(UTC)
                for i in range(sent, due):
                    d = i % DEVICES
                    minute = i // DEVICES
                    batch.append(
                        (
                            device_topic(SITE, f"m{d}"),
                            encode(
                                reading_set_document(now, {"energy_import_kwh": 5000.0 + minute})
                            ),
                        )
                    )
                if batch:
                    pub.publish_many(batch)
                    sent = due
                time.sleep(tick)
        deadline = time.monotonic() + 120
        while _count(stack.database_url) < total and time.monotonic() < deadline:
            time.sleep(0.05)
        metrics = _get(port, "/metrics")
        rss = peak_rss_mb(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    buckets = _histogram(metrics, "carbonflow_ingest_lag_seconds")
    return {
        "rate_per_s": rate_per_s,
        "readings": total,
        "p50_ms": _hist_quantile(buckets, 0.50) * 1000,
        "p95_ms": _hist_quantile(buckets, 0.95) * 1000,
        "p99_ms": _hist_quantile(buckets, 0.99) * 1000,
        "peak_rss_mb": rss,
    } | ({"samples": buckets[-1][1]} if buckets else {})


def _histogram(text: str, name: str) -> list[tuple[float, float]]:
    out = []
    for line in text.splitlines():
        if line.startswith(f"{name}_bucket{{"):
            le = line.split('le="')[1].split('"')[0]
            out.append((float("inf") if le == "+Inf" else float(le), float(line.rsplit(" ", 1)[1])))
    return sorted(out)


def _hist_quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """Prometheus-style histogram_quantile: linear interpolation inside the bucket."""
    if not buckets or buckets[-1][1] == 0:
        return float("nan")
    rank = q * buckets[-1][1]
    prev_le, prev_count = 0.0, 0.0
    for le, cnt in buckets:
        if cnt >= rank:
            if le == float("inf"):
                return prev_le
            return prev_le + (le - prev_le) * (rank - prev_count) / max(cnt - prev_count, 1e-12)
        prev_le, prev_count = le, cnt
    return prev_le


def run(quick: bool = False) -> dict[str, object]:
    readings = 20_000 if quick else 100_000
    with private_stack() as stack:
        load_site(stack.database_url, _site(DEVICES))
        single = _messages(readings, 1)
        batched = _messages(readings, 50)
        broker = broker_ceiling(stack, single)
        copy = copy_ceiling(stack, readings)
        runs = {
            "single_1w": ingest_end_to_end(stack, single, readings, 1),
            "batch50_1w": ingest_end_to_end(stack, batched, readings, 1),
            "single_2w": ingest_end_to_end(stack, single, readings, 2),
            "batch50_2w": ingest_end_to_end(stack, batched, readings, 2),
        }
        latency = ingest_latency(stack, rate_per_s=1000 if quick else 2000, seconds=10)
    best = max(r["readings_per_s"] for r in runs.values())
    return {
        "ingest_broker_qos1_msgs_per_s": broker["msgs_per_s"],
        "ingest_copy_rows_per_s": copy["rows_per_s"],
        "ingest_runs": runs,
        "ingest_latency": latency,
        "ingest_vs_broker_qos1": runs["single_1w"]["msgs_per_s"] / broker["msgs_per_s"],
        "ingest_vs_copy": runs["batch50_1w"]["readings_per_s"] / copy["rows_per_s"],
        "ingest_best_vs_copy": best / copy["rows_per_s"],
        "ingest_readings_per_s": runs["batch50_1w"]["readings_per_s"],
        "ingest_p95_latency_ms": latency["p95_ms"],
        "ingest_peak_rss_mb": max(r["peak_rss_mb"] for r in runs.values()),
    }

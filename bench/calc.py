"""Calc benchmark: freshness under a steady load, and a full year recomputed for 1 000 devices.

- **Freshness**: 1 000 devices publish over MQTT at a steady rate through the ingest service
  (a subprocess) while the calc service runs (another subprocess, a cycle every second). A probe
  reading is published every ``probe_every_s``; its freshness is the time from publishing it to
  the calc watermark (``calc_site_state.last_received_at``, committed in the same transaction as
  the results) reaching its ``received_at`` — i.e. until its carbon is in the results tables.
- **Recomputation**: a year of 15-min counter readings for 1 000 devices is written straight
  into ``reading`` (no dirty hours), then ``carbonflow calc recompute`` of the year is timed
  until nothing is pending: 35 M 15-min intervals, carbon, rollups and indicators.

``--quick`` shrinks both (100 devices, one month; a shorter freshness run).
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any

import psycopg

from bench.calc_site import SITE, metric_of, rate_per_hour, site_document
from bench.common import Stack, private_stack, quantile
from bench.year import year_database
from carbonflow.domain.readings.contract import device_topic, encode, reading_set_document
from carbonflow.domain.site.model import SiteDocument
from carbonflow.embedded.net import free_port
from carbonflow.storage.registry_load import load_site
from simulators.publisher import Publisher


def recompute_year(quick: bool) -> dict[str, Any]:
    return dict(year_database(quick).stats)


class _Load(threading.Thread):
    """Every device publishes its counter every ``period_s``, spread evenly over the period."""

    def __init__(self, stack: Stack, doc: SiteDocument, period_s: float, stop: threading.Event):
        super().__init__(daemon=True)
        self.stack, self.doc, self.period_s, self.stop = stack, doc, period_s, stop
        self.published = 0

    def run(self) -> None:
        devices = [d.id for d in self.doc.devices if d.id != "m0"]
        values = dict.fromkeys(devices, 1_000.0)
        last = dict.fromkeys(devices, time.time())
        with Publisher(self.stack.mqtt_url, "calc-bench-load") as publisher:
            gap = self.period_s / len(devices)
            next_at = time.monotonic()
            i = 0
            while not self.stop.is_set():
                device = devices[i % len(devices)]
                now = time.time()
                values[device] += rate_per_hour(device) * (now - last[device]) / 3600.0
                last[device] = now
                ts = datetime.fromtimestamp(now, UTC)
                payload = encode(reading_set_document(ts, {metric_of(device): values[device]}))
                publisher.publish(device_topic(SITE, device), payload)
                self.published += 1
                i += 1
                next_at += gap
                delay = next_at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)


def _service(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "cli.main", *args],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def freshness(quick: bool) -> dict[str, Any]:
    devices = 200 if quick else 1_000
    probes = 15 if quick else 60
    period_s = 10.0  # each device every 10 s: 100 readings/s at 1 000 devices
    with private_stack() as stack:
        doc = site_document(devices, publish_interval_s=period_s)
        load_site(stack.database_url, doc)
        env = {
            "DATABASE_URL": stack.database_url,
            "MQTT_URL": stack.mqtt_url,
            "CARBONFLOW_INGEST_HTTP_PORT": str(free_port()),
            "CARBONFLOW_CALC_HTTP_PORT": str(free_port()),
            "CARBONFLOW_CALC_INTERVAL_S": "1.0",
        }
        ingest = _service(["ingest"], env)
        calc = _service(["calc"], env)
        stop = threading.Event()
        load = _Load(stack, doc, period_s, stop)
        samples: list[float] = []
        try:
            time.sleep(3.0)  # both services up
            load.start()
            time.sleep(2 * period_s)  # steady state: every device has reported twice
            with (
                psycopg.connect(stack.database_url, autocommit=True) as conn,
                Publisher(stack.mqtt_url, "calc-bench-probe") as probe,
            ):
                pk = conn.execute(
                    "SELECT device_pk FROM device WHERE site_id = %s AND device_id = 'm0'", (SITE,)
                ).fetchone()
                assert pk is not None
                value = 1_000.0
                for _ in range(probes):
                    value += 10.0
                    published = time.time()
                    # Timestamps travel with millisecond precision (docs/mqtt.md).
                    ts = datetime.fromtimestamp(round(published, 3), UTC)
                    probe.publish(
                        device_topic(SITE, "m0"),
                        encode(reading_set_document(ts, {"energy_import_kwh": value})),
                    )
                    received = None
                    deadline = time.monotonic() + 60
                    while time.monotonic() < deadline:
                        if received is None:
                            row = conn.execute(
                                "SELECT received_at FROM reading WHERE device_pk = %s AND ts = %s",
                                (pk[0], ts),
                            ).fetchone()
                            received = None if row is None else row[0]
                        if received is not None:
                            mark = conn.execute(
                                "SELECT last_received_at FROM calc_site_state WHERE site_id = %s",
                                (SITE,),
                            ).fetchone()
                            if mark and mark[0] is not None and mark[0] >= received:
                                samples.append(time.time() - published)
                                break
                        time.sleep(0.02)
                    time.sleep(max(0.0, 1.0 - (time.time() - published)))
        finally:
            stop.set()
            load.join(timeout=10)
            for proc in (calc, ingest):
                proc.send_signal(signal.SIGTERM)
            for proc in (calc, ingest):
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
    samples.sort()
    return {
        "devices": devices,
        "readings_per_s": round(devices / period_s, 1),
        "probes": len(samples),
        "p50_s": round(quantile(samples, 0.5), 3),
        "p95_s": round(quantile(samples, 0.95), 3),
        "max_s": round(samples[-1], 3) if samples else math.nan,
        "published": load.published,
    }


def run(*, quick: bool) -> dict[str, object]:
    fresh = freshness(quick)
    year = recompute_year(quick)
    results: dict[str, object] = {
        "calc_freshness": fresh,
        "calc_freshness_p50_s": fresh["p50_s"],
        "calc_freshness_p95_s": fresh["p95_s"],
        "calc_recompute": year,
        "calc_recompute_rows_per_s": year["intervals_per_s"],
    }
    if not quick:  # a quick run (100 devices, a month) does not measure the year figure
        results["calc_recompute_year_1000_devices_s"] = year["seconds"]
    # The machine's speed varies between runs (a shared host: 2× seen); the recompute in units of
    # the same run's seeding of the same readings (client COPY) compares across runs.
    results["calc_recompute_vs_seed"] = round(year["seconds"] / year["seed_seconds"], 2)
    return results

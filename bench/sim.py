"""Simulator benchmark: how fast a 5,000-device fleet publishes into a private Mosquitto.

The example mine, scaled to 5,000 devices (:func:`simulators.scaling.fleet`), at a 1-minute
step, as fast as the broker acknowledges (QoS 1):

- ``live shape``: one reading set per message, as a fleet publishing live does — the figure
  ``sim_publish_msgs_per_s_5000_devices``; with one process and with two;
- ``batch50``: 50 reading sets per message, the shape the ingest benchmark consumes —
  ``sim_publish_readings_per_s_5000_devices`` (readings = metric values, as ingest counts them);
- the broker's own ceiling for the same messages, published pre-encoded by one connection
  without generating them (``sim_broker_publish_msgs_per_s``), so the simulator's share of the
  cost is visible.

Nothing subscribes: this is the publishing side alone (the ingest benchmark measures the rest).
"""

from __future__ import annotations

import math
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from carbonflow.embedded.broker import EmbeddedMosquitto
from carbonflow.sites.loader import load_site_file
from simulators.engine import SimConfig, Simulation
from simulators.faults import Outgoing
from simulators.publisher import StreamPublisher
from simulators.runner import run_simulation

DEVICES = 5000
SITE = (
    Path(__file__).resolve().parents[1] / "carbonflow" / "sites" / "examples" / "shanxi-mine.yaml"
)


def _config(minutes: int, batch: int) -> SimConfig:
    start = (datetime.now(UTC) - timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
    return SimConfig(
        load_site_file(SITE),
        start=start,
        duration=timedelta(minutes=minutes),
        step=timedelta(minutes=1),
        speed=math.inf,
        seed=1,
        devices=DEVICES,
        batch_size=batch,
    )


def _run(url: str, config: SimConfig, workers: int, name: str) -> dict[str, Any]:
    report = run_simulation(
        config, url, workers=workers, client_id=f"bench-{name}", dedicated_process=True
    )
    return {
        "workers": workers,
        "batch": config.batch_size,
        "devices": report.devices,
        "messages": report.tally.messages,
        "readings": report.tally.readings,
        "seconds": round(report.wall_seconds, 3),
        "msgs_per_s": report.msgs_per_s,
        "readings_per_s": report.readings_per_s,
        "reading_sets_per_s": report.reading_sets_per_s,
    }


def _broker_ceiling(url: str, config: SimConfig) -> dict[str, Any]:
    """The same messages, pre-generated, published by one connection as fast as acknowledged."""
    messages = [
        (m.topic, m.payload) for m in Simulation(config).stream() if isinstance(m, Outgoing)
    ]
    with StreamPublisher(url, "bench-ceiling") as pub:
        started = time.perf_counter()
        for topic, payload in messages:
            pub.send(topic, payload)
        pub.flush()
        seconds = time.perf_counter() - started
    return {"messages": len(messages), "seconds": round(seconds, 3),
            "msgs_per_s": len(messages) / seconds}  # fmt: skip


def run(quick: bool) -> dict[str, object]:
    minutes = 10 if quick else 60
    live = _config(minutes, batch=1)
    batched = _config(minutes * 5, batch=50)
    with (
        tempfile.TemporaryDirectory(prefix="carbonflow-bench-sim-") as tmp,
        EmbeddedMosquitto(Path(tmp) / "mqtt") as broker,
    ):
        runs = {
            "live_1p": _run(broker.url, live, 1, "live1"),
            "live_2p": _run(broker.url, live, 2, "live2"),
            "batch50_1p": _run(broker.url, batched, 1, "b50x1"),
            "batch50_2p": _run(broker.url, batched, 2, "b50x2"),
        }
        ceiling = _broker_ceiling(broker.url, _config(min(minutes, 10), batch=1))
    best_live = max(runs["live_1p"], runs["live_2p"], key=lambda r: r["msgs_per_s"])
    best_batch = max(runs["batch50_1p"], runs["batch50_2p"], key=lambda r: r["readings_per_s"])
    return {
        "sim_publish_msgs_per_s_5000_devices": best_live["msgs_per_s"],
        "sim_publish_readings_per_s_5000_devices": best_batch["readings_per_s"],
        "sim_broker_publish_msgs_per_s": ceiling["msgs_per_s"],
        "sim_vs_broker_publish": best_live["msgs_per_s"] / ceiling["msgs_per_s"],
        "sim_runs": runs,
    }

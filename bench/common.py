"""Shared pieces of the benchmarks: a private database and broker, timing and quantiles."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from carbonflow.embedded.broker import EmbeddedMosquitto
from carbonflow.embedded.postgres import EmbeddedPostgres
from carbonflow.storage.migrate import upgrade

RESULTS = Path(__file__).with_name("results.json")


@dataclass(frozen=True)
class Stack:
    database_url: str
    mqtt_url: str
    broker: EmbeddedMosquitto


@contextmanager
def private_stack() -> Iterator[Stack]:
    """A durable PostgreSQL and a Mosquitto of our own, so runs are comparable."""
    with tempfile.TemporaryDirectory(prefix="carbonflow-bench-") as tmp:
        root = Path(tmp)
        with (
            EmbeddedPostgres(root / "pg", durable=True) as pg,
            EmbeddedMosquitto(root / "mqtt") as broker,
        ):
            upgrade(pg.url)
            yield Stack(pg.url, broker.url, broker)


def quantile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolated quantile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    pos = (len(sorted_values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def peak_rss_mb(pid: int) -> float:
    """VmHWM of a live process [MiB]."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def merge_results(new: dict[str, object]) -> dict[str, object]:
    old: dict[str, object] = {}
    if RESULTS.exists():
        try:
            old = json.loads(RESULTS.read_text())
        except json.JSONDecodeError:
            old = {}
    old.update(new)
    RESULTS.write_text(json.dumps(old, indent=2, sort_keys=True) + "\n")
    return old


def cpu_count() -> int:
    return os.cpu_count() or 1

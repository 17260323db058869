"""Shared pieces of the benchmarks: a private database and broker, timing and quantiles."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from carbonflow.embedded.broker import EmbeddedMosquitto
from carbonflow.embedded.postgres import PG_BIN_ENV, EmbeddedPostgres
from carbonflow.storage.migrate import upgrade

RESULTS = Path(__file__).with_name("results.json")


@dataclass(frozen=True)
class Stack:
    database_url: str
    mqtt_url: str
    broker: EmbeddedMosquitto


@contextmanager
def private_stack(pg_bin: Path | None = None) -> Iterator[Stack]:
    """A durable PostgreSQL and a Mosquitto of our own, so runs are comparable.

    ``pg_bin``: a bin directory of PostgreSQL with TimescaleDB (the kit's build); the cluster
    then preloads it and is migrated with the TimescaleDB layout. None: the binaries
    ``EmbeddedPostgres`` finds, migrated with whatever layout they allow.
    """
    with tempfile.TemporaryDirectory(prefix="carbonflow-bench-") as tmp:
        root = Path(tmp)
        with _pg_bin(pg_bin):
            pg = EmbeddedPostgres(root / "pg", durable=True)
            pg.start()
        try:
            with EmbeddedMosquitto(root / "mqtt") as broker:
                upgrade(pg.url, use_timescaledb=True if pg_bin is not None else None)
                if pg_bin is not None:
                    _pause_policy_jobs(pg.url)
                yield Stack(pg.url, broker.url, broker)
        finally:
            pg.stop()


def _pause_policy_jobs(url: str) -> None:
    """Stop TimescaleDB's scheduler from running the policies on this bench cluster: the whole
    year is older than their ages, so they would compress chunks while the year is built (and
    slow it down); ``bench/sizes.py`` measures first and compresses what they select itself."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "SELECT alter_job(job_id, scheduled => false) FROM timescaledb_information.jobs "
            "WHERE hypertable_schema = 'public'"
        )


@contextmanager
def _pg_bin(pg_bin: Path | None) -> Iterator[None]:
    """``CARBONFLOW_PG_BIN`` set to ``pg_bin`` while the cluster starts (its binaries are
    chosen then), restored afterwards."""
    if pg_bin is None:
        yield
        return
    before = os.environ.get(PG_BIN_ENV)
    os.environ[PG_BIN_ENV] = str(pg_bin)
    try:
        yield
    finally:
        if before is None:
            del os.environ[PG_BIN_ENV]
        else:
            os.environ[PG_BIN_ENV] = before


def quantile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolated quantile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    pos = (len(sorted_values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def quarter_means(per_cycle: list[float]) -> tuple[float, float] | None:
    """The mean of the first and of the last quarter of ``per_cycle`` (a recompute's cycles):
    how much a cycle's cost grows with the history stored; None under four cycles."""
    q = len(per_cycle) // 4
    if q < 1:
        return None
    return sum(per_cycle[:q]) / q, sum(per_cycle[-q:]) / q


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

"""A year of calc results for 1 000 devices, built once per ``python -m bench`` process.

The calc scenario times building it (a year of 15-min counter readings written straight into
``reading``, then ``recompute`` of the year); the API scenario measures its dashboard queries
against the same database, so a year of results — real ones, made by the calc engine, not
synthetic rows — is paid for once when both run. The stack stays up until the process exits.
"""

from __future__ import annotations

import atexit
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.calc_site import SITE, seed_year, site_document
from bench.common import Stack, private_stack, quarter_means
from carbonflow.domain.site.model import SiteDocument
from carbonflow.storage.registry_load import load_site
from services.calc.engine import CalcEngine, EngineConfig

PERIOD = timedelta(minutes=15)
# Shanghai midnight of 2025-01-01: the year is whole local days and months.
START = datetime(2025, 1, 1, tzinfo=UTC) - timedelta(hours=8)


@dataclass(frozen=True)
class YearDatabase:
    stack: Stack
    doc: SiteDocument
    site_id: str
    start: datetime
    days: int
    stats: dict[str, Any]


_built: dict[tuple[bool, Path | None], YearDatabase] = {}
_exit = ExitStack()
atexit.register(_exit.close)


def built_year(quick: bool, pg_bin: Path | None = None) -> YearDatabase | None:
    """The year if this process has built it already, else None (nothing is built)."""
    return _built.get((quick, pg_bin))


def year_database(quick: bool, pg_bin: Path | None = None) -> YearDatabase:
    """The year (``quick``: a month of 100 devices) of readings and results, built on first use.

    ``pg_bin``: build it on a cluster of these binaries with the TimescaleDB layout
    (``bench/sizes.py``); None: the default cluster the other scenarios share.
    """
    key = (quick, pg_bin)
    if key in _built:
        return _built[key]
    devices = 100 if quick else 1_000
    days = 31 if quick else 365
    stack = _exit.enter_context(private_stack(pg_bin))
    doc = site_document(devices, publish_interval_s=PERIOD.total_seconds())
    load_site(stack.database_url, doc)
    t0 = time.monotonic()
    readings = seed_year(stack.database_url, doc, START, days, PERIOD)
    seed_s = time.monotonic() - t0
    engine = CalcEngine(stack.database_url, EngineConfig())
    try:
        engine.sync_reference()
        t0 = time.monotonic()
        engine.request_recompute(SITE, START, START + timedelta(days=days), "benchmark")
        reports = engine.run_until_idle(max_cycles=100_000)
        seconds = time.monotonic() - t0
    finally:
        engine.close()
    intervals = sum(r.intervals_written for r in reports)
    stats: dict[str, Any] = {
        "devices": devices,
        "days": days,
        "readings": readings,
        "seed_seconds": round(seed_s, 1),
        "seconds": round(seconds, 1),
        "cycles": len(reports),
        "intervals_written": intervals,
        "carbon_rows_written": sum(r.carbon_rows_written for r in reports),
        "intervals_per_s": round(intervals / seconds),
        "readings_per_s": round(readings / seconds),
        **cycle_quarters([r.seconds for r in reports]),
    }
    built = YearDatabase(stack, doc, SITE, START, days, stats)
    _built[key] = built
    return built


def cycle_quarters(cycle_seconds: list[float]) -> dict[str, float]:
    """Mean seconds a cycle in the first and the last quarter of the cycles: how much a cycle's
    cost grows with the history stored (docs/performance.md, "What grew with the history")."""
    means = quarter_means(cycle_seconds)
    if means is None:
        return {}
    return {"cycle_s_first_quarter": round(means[0], 2), "cycle_s_last_quarter": round(means[1], 2)}

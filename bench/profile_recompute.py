"""``python -m bench.profile_recompute [--devices N] [--days D] [--cprofile FILE]``: where a
recompute spends its time, at a reduced scale.

Builds the calc bench's site (:mod:`bench.calc_site`) with ``devices`` counters and ``days`` of
15-min readings in a private database, then times ``request_recompute`` + ``run_until_idle``
of those days, once per phase (the calc steps and the SQL writes are wrapped in timers), and
optionally under cProfile. Prints intervals/s and the extrapolation to a year × 1 000 devices
(a year is 365 / ``days`` × 1 000 / ``devices`` times the work; the per-cycle overhead of the
indicators is not linear, so profile at 1 000 devices × a few days as well).
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import itertools
import os
import pstats
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from bench.calc_site import SITE, seed_year, site_document
from bench.common import private_stack, quarter_means
from bench.year import PERIOD, START
from carbonflow.storage.registry_load import load_site
from services.calc.engine import CalcEngine, CycleReport, EngineConfig

#: (module, attribute) timed on every call; inner ones are also counted in the outer ones
TIMED = (
    ("services.calc.site_cycle", "recompute_intervals"),
    ("services.calc.site_cycle", "recompute_carbon"),
    ("services.calc.site_cycle", "_rollups"),
    ("services.calc.site_cycle", "recompute_indicators"),
    ("services.calc.steps.intervals", "readings_db"),
    ("services.calc.steps.intervals", "_grid_arrays"),
    ("services.calc.steps.intervals", "_grid_intervals"),
    ("services.calc.steps.intervals", "intervals_db"),
    ("services.calc.steps.carbon", "intervals_db"),
    ("services.calc.steps.carbon", "carbon_db"),
    ("services.calc.steps.carbon", "slot_inventory"),
)

_timings: dict[str, float] = defaultdict(float)
_cpu: dict[str, float] = defaultdict(float)
_db: dict[str, float] = defaultdict(float)
_backend = [0]  # the engine's database backend pid, once known
_calls: dict[str, int] = defaultdict(int)


def _timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0, c0 = time.perf_counter(), time.process_time()
        d0 = _backend_cpu(_backend[0]) if _backend[0] else 0.0
        try:
            return fn(*args, **kwargs)
        finally:
            _timings[name] += time.perf_counter() - t0
            _cpu[name] += time.process_time() - c0
            _db[name] += (_backend_cpu(_backend[0]) - d0) if _backend[0] else 0.0
            _calls[name] += 1

    return wrapper


class _TimedModule:
    """A module whose functions are timed, each under ``prefix.name``."""

    def __init__(self, module: Any, prefix: str) -> None:
        self._module, self._prefix = module, prefix

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._module, name)
        if callable(value) and not isinstance(value, type):
            return _timed(f"{self._prefix}.{name}", value)
        return value


@contextmanager
def _instrumented() -> Iterator[None]:
    import importlib

    saved: list[tuple[Any, str, Any]] = []
    for module_name, attr in TIMED:
        module = importlib.import_module(module_name)
        value = getattr(module, attr, None)
        if value is None:  # not in this version of the code
            continue
        saved.append((module, attr, value))
        short = module_name.rsplit(".", 1)[-1]
        if isinstance(value, type(importlib)):
            setattr(module, attr, _TimedModule(value, f"{short}:{attr}"))
        else:
            setattr(module, attr, _timed(f"{short}:{attr}", value))
    try:
        yield
    finally:
        for module, attr, value in saved:
            setattr(module, attr, value)


def _stat(pid: int) -> list[str]:
    """The fields of ``/proc/<pid>/stat`` after the command name (field 3 is the first)."""
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()


def _backend_cpu(pid: int) -> float:
    """User + system CPU of a database backend process so far [s] (Linux /proc)."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cluster_cpu(backend: int) -> float:
    """User + system CPU of the whole private cluster so far [s]: the postmaster, its live
    processes and those that exited (its children's CPU, counted when it reaps them). Unlike the
    engine's backend alone, this counts the parallel workers of the rollup statements (the hour
    rollup is planned with two), autovacuum, the WAL writer and the checkpointer."""
    postmaster = int(_stat(backend)[1])
    own = _stat(postmaster)
    ticks = sum(int(f) for f in own[11:15])  # utime, stime, cutime, cstime
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = _stat(int(entry))
            except OSError:  # exited meanwhile
                continue
            if int(fields[1]) == postmaster:
                ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_recompute")
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--days", type=int, default=31)
    parser.add_argument("--cprofile", help="write cProfile stats here and print the top 40")
    args = parser.parse_args()
    with private_stack() as stack:
        doc = site_document(args.devices, publish_interval_s=PERIOD.total_seconds())
        load_site(stack.database_url, doc)
        readings = seed_year(stack.database_url, doc, START, args.days, PERIOD)
        engine = CalcEngine(stack.database_url, EngineConfig())
        profiler = cProfile.Profile() if args.cprofile else None
        try:
            engine.sync_reference()
            row = engine.connection().execute("SELECT pg_backend_pid()").fetchone()
            engine.connection().rollback()
            backend = int(row[0]) if row else 0
            _backend[0] = backend
            db0 = _backend_cpu(backend)
            cluster0 = _cluster_cpu(backend)
            with _instrumented():
                t0, c0 = time.perf_counter(), time.process_time()
                if profiler:
                    profiler.enable()
                engine.request_recompute(SITE, START, START + timedelta(days=args.days), "prof")
                reports, snapshots = _run_cycles(engine)
                if profiler:
                    profiler.disable()
                seconds = time.perf_counter() - t0
                cpu = time.process_time() - c0
                db_cpu = _backend_cpu(backend) - db0
                cluster_cpu = _cluster_cpu(backend) - cluster0
        finally:
            engine.close()
    intervals = sum(r.intervals_written for r in reports)
    scale = (365 / args.days) * (1000 / args.devices)
    print(f"devices {args.devices}, days {args.days}, readings {readings}, cycles {len(reports)}")
    print(f"recompute {seconds:.2f} s wall, intervals {intervals}, {intervals / seconds:,.0f} /s")
    busy = cpu + db_cpu
    print(
        f"CPU: calc process {cpu:.2f} s + database backend {db_cpu:.2f} s = {busy:.2f} s "
        f"({intervals / busy:,.0f} intervals per CPU-second; year × 1 000 devices at that "
        f"rate: {busy * scale:,.0f} s)"
    )
    print(
        f"database cluster CPU (backend, parallel workers, autovacuum, WAL, checkpoints): "
        f"{cluster_cpu:.2f} s; calc process + cluster = {cpu + cluster_cpu:.2f} s"
    )
    print(f"extrapolated year × 1 000 devices: {seconds * scale:,.0f} s")
    head = ("part (wall s includes the database)", "calls", "s", "%", "cpu s", "db cpu")
    print(f"{head[0]:<52} {head[1]:>7} {head[2]:>8} {head[3]:>6} {head[4]:>7} {head[5]:>7}")
    for name, spent in sorted(_timings.items(), key=lambda kv: -kv[1]):
        print(
            f"{name:<52} {_calls[name]:>7} {spent:>8.2f} {100 * spent / seconds:>6.1f} "
            f"{_cpu[name]:>7.2f} {_db[name]:>7.2f}"
        )
    _print_growth(snapshots)
    if profiler and args.cprofile:
        profiler.dump_stats(args.cprofile)
        pstats.Stats(args.cprofile).sort_stats("cumulative").print_stats(40)
        pstats.Stats(args.cprofile).sort_stats("tottime").print_stats(30)
    return 0


def _run_cycles(engine: CalcEngine) -> tuple[list[CycleReport], list[dict[str, float]]]:
    """Cycles until idle (as ``run_until_idle``), with the timings after each: which parts
    grow with the history."""
    reports, snapshots = [], []
    while True:
        reports.append(engine.run_once())
        snapshots.append(dict(_timings))
        if engine.pending() == 0:
            return reports, snapshots


def _print_growth(snapshots: list[dict[str, float]]) -> None:
    """Each part's wall seconds a cycle in the first and the last quarter of the cycles: what
    grows with the history stored (a year's run is dearer than the extrapolation of a short
    one by these)."""
    last = snapshots[-1] if snapshots else {}
    lines = []
    for name in sorted(last, key=lambda n: -last[n]):
        totals = [0.0] + [s.get(name, 0.0) for s in snapshots]
        means = quarter_means([b - a for a, b in itertools.pairwise(totals)])
        if means is not None:
            lines.append(f"{name:<52} {means[0]:>8.3f} {means[1]:>8.3f}")
    if lines:  # four cycles or more
        print(f"\n{'part: s a cycle, first quarter → last quarter':<52} {'first':>8} {'last':>8}")
        print("\n".join(lines))


if __name__ == "__main__":
    raise SystemExit(main())

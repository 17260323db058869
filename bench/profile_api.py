"""``python -m bench.profile_api [--database-url URL] [--only NAME …] [-n N] [--cprofile]``:
where a dashboard request spends its time.

Points the API (in process, TestClient, as ``bench/api.py``) at an existing database —
``DATABASE_URL`` or ``--database-url``, e.g. the bench year built by ``bench/year.py`` or
``/work/notes/build_year.py`` — and requests each of the bench's dashboard queries
(:func:`bench.api.dashboard_queries`, placed from the site's stored readings) ``n`` times. The
database is only read.

Each request is split into parts by timers wrapped around the code it runs; a part's time is
its own (*exclusive*: a timed call inside another timed call counts in the inner part only):

- ``db execute``: psycopg ``Cursor.execute`` — the statement on the server and the transfer;
- ``db rows``: psycopg's fetch — result rows decoded into Python objects;
- ``sqlalchemy``: ``Connection.execute`` around it — compiling the statement, the result;
- ``storage``: the rest of the ``carbonflow.storage`` functions the API calls (their rows into
  records);
- ``domain``: the ``carbonflow.domain`` functions the API calls (pure computation);
- ``pydantic build``: response models built in the route (``__init__``, ``model_validate``);
- ``response``: FastAPI's ``serialize_response`` — the response model validated again and
  dumped to JSON;
- ``route``: the rest of the route function;
- ``framework``: what is left of the request (middleware, auth, dependencies, thread hops,
  the test client).

Garbage collection is timed apart, through ``gc.callbacks`` (a pause happens inside whatever
part allocated the object that triggered it): collections per request by generation, the
time they took, and whether the slowest requests are the ones with a collection. Wall time is
shown next to the CPU of this process and of its database backends (``/proc/<pid>/stat`` of
the sessions named ``application_name=bench-profile-api``), since the machine may be shared.
``--cprofile`` also runs each query under cProfile and prints its costliest functions and
their time by package.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import gc
import importlib
import inspect
import os
import pstats
import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pydantic
from fastapi.testclient import TestClient

from bench.api import ADMIN_KEY, dashboard_queries
from bench.calc_site import SITE
from bench.common import quantile
from services.api.app import create_app
from services.api.settings import ApiSettings

APPLICATION_NAME = "bench-profile-api"
PARTS = (
    "db execute",
    "db rows",
    "sqlalchemy",
    "storage",
    "domain",
    "pydantic build",
    "response",
    "route",
    "framework",
)
# fastapi.routing's function that runs a sync route in the worker thread
SYNC_ENDPOINT = "_run_sync_endpoint"
# The API modules whose references to storage and domain functions are timed.
API_MODULES = (
    "services.api.reads",
    "services.api.routers.live",
    "services.api.routers.ledgers",
    "services.api.routers.organisations",
    "services.api.routers.flows",
    "services.api.routers.carbon",
    "services.api.routers.indicators",
    "services.api.deps",
)


@dataclass
class _Request:
    """What one request spent, by part [s], and its garbage collections."""

    parts: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    parts_cpu: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    statements: Counter[str] = field(default_factory=Counter)
    statement_s: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    gc_s: float = 0.0
    gc_max_s: float = 0.0
    gc_cpu_s: float = 0.0
    collections: Counter[int] = field(default_factory=Counter)


class _Recorder:
    """Exclusive part timers (one stack per thread) and the GC callback."""

    def __init__(self) -> None:
        self.current = _Request()
        self._local = threading.local()
        self._gc_started = (0.0, 0.0)

    def _stack(self) -> list[list[float]]:
        stack: list[list[float]] | None = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack

    @contextmanager
    def part(self, name: str) -> Iterator[None]:
        stack = self._stack()
        # start wall, start CPU of this thread, wall and CPU of the timed calls inside
        frame = [time.perf_counter(), time.thread_time(), 0.0, 0.0]
        stack.append(frame)
        try:
            yield
        finally:
            stack.pop()
            spent = time.perf_counter() - frame[0]
            cpu = time.thread_time() - frame[1]
            self.current.parts[name] += spent - frame[2]
            self.current.parts_cpu[name] += cpu - frame[3]
            if stack:
                stack[-1][2] += spent
                stack[-1][3] += cpu

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def awrapper(*args: Any, **kwargs: Any) -> Any:
                with self.part(name):
                    return await fn(*args, **kwargs)

            return awrapper

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self.part(name):
                return fn(*args, **kwargs)

        return wrapper

    def on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = (time.perf_counter(), time.thread_time())
            return
        pause = time.perf_counter() - self._gc_started[0]
        self.current.gc_cpu_s += time.thread_time() - self._gc_started[1]
        self.current.gc_s += pause
        self.current.gc_max_s = max(self.current.gc_max_s, pause)
        self.current.collections[info["generation"]] += 1


class _TimedModule:
    """A module seen through the recorder: its functions are timed under ``part``."""

    def __init__(self, module: Any, part: str, recorder: _Recorder) -> None:
        self._module, self._part, self._recorder = module, part, recorder

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._module, name)
        if inspect.isfunction(value):
            return self._recorder.wrap(self._part, value)
        return value


def _part_of(value: Any) -> str | None:
    module = value.__name__ if inspect.ismodule(value) else getattr(value, "__module__", "")
    if not isinstance(module, str):
        return None
    if module.startswith("carbonflow.storage"):
        return "storage"
    if module.startswith("carbonflow.domain"):
        return "domain"
    return None


@contextmanager
def _instrumented(recorder: _Recorder) -> Iterator[None]:
    """Install the timers (restored on exit)."""
    saved: list[tuple[Any, str, Any]] = []

    def patch(owner: Any, attr: str, value: Any) -> None:
        saved.append((owner, attr, owner.__dict__[attr]))
        setattr(owner, attr, value)

    def execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        text = _statement(query)
        recorder.current.statements[text] += 1
        t0 = time.perf_counter()
        try:
            return original_execute(self, query, *args, **kwargs)
        finally:
            recorder.current.statement_s[text] += time.perf_counter() - t0

    original_execute = psycopg.Cursor.execute
    patch(psycopg.Cursor, "execute", recorder.wrap("db execute", execute))
    for fetch in ("fetchone", "fetchmany", "fetchall", "__iter__"):
        patch(psycopg.Cursor, fetch, recorder.wrap("db rows", getattr(psycopg.Cursor, fetch)))
    import sqlalchemy.engine.base as sa_base

    patch(sa_base.Connection, "execute", recorder.wrap("sqlalchemy", sa_base.Connection.execute))
    for name in API_MODULES:
        module = importlib.import_module(name)
        for attr, value in list(vars(module).items()):
            part = _part_of(value)
            if part is None:
                continue
            if inspect.ismodule(value):
                patch(module, attr, _TimedModule(value, part, recorder))
            elif inspect.isfunction(value):
                patch(module, attr, recorder.wrap(part, value))
    build = recorder.wrap("pydantic build", pydantic.BaseModel.__init__)
    patch(pydantic.BaseModel, "__init__", build)
    validate = pydantic.BaseModel.__dict__["model_validate"].__func__
    timed_validate = classmethod(recorder.wrap("pydantic build", validate))
    patch(pydantic.BaseModel, "model_validate", timed_validate)
    from fastapi import routing

    patch(routing, "serialize_response", recorder.wrap("response", routing.serialize_response))
    # FastAPI's own hook for profiling a sync route (it runs in a worker thread)
    patch(routing, SYNC_ENDPOINT, recorder.wrap("route", getattr(routing, SYNC_ENDPOINT)))
    gc.callbacks.append(recorder.on_gc)
    try:
        yield
    finally:
        gc.callbacks.remove(recorder.on_gc)
        for owner, attr, value in reversed(saved):
            setattr(owner, attr, value)


def _statement(query: Any) -> str:
    text = query if isinstance(query, str) else str(getattr(query, "as_string", lambda: query)())
    return re.sub(r"\s+", " ", text).strip()[:90]


def _backend_cpu(pids: list[int]) -> float:
    """User + system CPU of database backends so far [s] (Linux /proc, same machine)."""
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:  # not on this machine, or gone
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _backends(url: str) -> list[int]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (APPLICATION_NAME,)
        ).fetchall()
    return [int(r[0]) for r in rows]


def _span(url: str, site_id: str) -> tuple[datetime, int]:
    """The first stored reading of the site and the number of whole days stored."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT min(r.ts), max(r.ts) FROM device d"
            " JOIN device_metric dm ON dm.device_pk = d.device_pk"
            " CROSS JOIN LATERAL (SELECT min(ts) AS ts FROM reading x WHERE x.device_pk ="
            " dm.device_pk AND x.metric_id = dm.metric_id UNION ALL SELECT max(ts) FROM reading"
            " x WHERE x.device_pk = dm.device_pk AND x.metric_id = dm.metric_id) r"
            " WHERE d.site_id = %s",
            (site_id,),
        ).fetchone()
    if row is None or row[0] is None:
        raise SystemExit(f"site {site_id!r} has no readings in this database")
    first, last = row
    return first, max(2, (last - first) // timedelta(days=1))


def _with_application_name(url: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}application_name={APPLICATION_NAME}"


@dataclass
class _Run:
    seconds: list[float]
    cpu_s: float
    db_cpu_s: float
    requests: list[_Request]


def _measure(get: Callable[[], object], n: int, recorder: _Recorder, url: str) -> _Run:
    get()  # warm the pool and the caches
    pids = _backends(url)
    seconds: list[float] = []
    requests: list[_Request] = []
    c0, d0 = time.process_time(), _backend_cpu(pids)
    for _ in range(n):
        recorder.current = _Request()
        t0 = time.perf_counter()
        get()
        seconds.append(time.perf_counter() - t0)
        requests.append(recorder.current)
    cpu = time.process_time() - c0
    return _Run(seconds, cpu, _backend_cpu(pids) - d0, requests)


def _report(name: str, run: _Run) -> None:
    n = len(run.seconds)
    ordered = sorted(run.seconds)
    total = sum(run.seconds)
    print(
        f"\n== {name}: {n} requests, p50 {quantile(ordered, 0.5) * 1e3:.1f} ms, "
        f"p95 {quantile(ordered, 0.95) * 1e3:.1f} ms, max {ordered[-1] * 1e3:.1f} ms; "
        f"CPU per request: process {run.cpu_s / n * 1e3:.1f} ms, "
        f"database {run.db_cpu_s / n * 1e3:.1f} ms"
    )
    spent: dict[str, float] = defaultdict(float)
    spent_cpu: dict[str, float] = defaultdict(float)
    for r in run.requests:
        for part, s in r.parts.items():
            spent[part] += s
        for part, s in r.parts_cpu.items():
            spent_cpu[part] += s
    spent["framework"] = max(0.0, total - sum(spent.values()))
    spent_cpu["framework"] = max(0.0, run.cpu_s - sum(spent_cpu.values()))
    print(f"  {'part':<16} {'wall ms':>8} {'%':>6} {'CPU ms':>8}   (per request)")
    for part in PARTS:
        print(
            f"  {part:<16} {spent[part] / n * 1e3:>8.2f} {100 * spent[part] / total:>6.1f} "
            f"{spent_cpu[part] / n * 1e3:>8.2f}"
        )
    gc_total = sum(r.gc_s for r in run.requests)
    gc_cpu = sum(r.gc_cpu_s for r in run.requests)
    by_gen = Counter[int]()
    for r in run.requests:
        by_gen.update(r.collections)
    print(
        f"  gc: {gc_total / n * 1e3:.2f} ms/request wall, {gc_cpu / n * 1e3:.2f} ms CPU "
        "(in the parts above), collections per "
        f"request gen0 {by_gen[0] / n:.2f} gen1 {by_gen[1] / n:.2f} gen2 {by_gen[2] / n:.2f}, "
        f"longest pause {max(r.gc_max_s for r in run.requests) * 1e3:.1f} ms"
    )
    slow_cut = quantile(ordered, 0.9)
    slow = [(s, r) for s, r in zip(run.seconds, run.requests, strict=True) if s >= slow_cut]
    for s, r in sorted(slow, key=lambda sr: -sr[0])[:5]:
        print(
            f"  slow: {s * 1e3:.1f} ms, gc {r.gc_s * 1e3:.1f} ms "
            f"(gen2 ×{r.collections[2]}), db execute {r.parts['db execute'] * 1e3:.1f} ms"
        )
    statements = Counter[str]()
    statement_s: dict[str, float] = defaultdict(float)
    for r in run.requests:
        statements.update(r.statements)
        for text, s in r.statement_s.items():
            statement_s[text] += s
    print(f"  statements per request: {sum(statements.values()) / n:.1f} (count, ms each request)")
    for text, s in sorted(statement_s.items(), key=lambda kv: -kv[1])[:10]:
        print(f"    {statements[text] / n:>4.1f}× {s / n * 1e3:>7.2f} ms  {text}")


def _cprofile(get: Callable[[], object], n: int) -> None:
    """cProfile of the route functions (they run in a worker thread, which a profiler enabled
    here would not see): SQL, storage, domain and the response models they build."""
    from fastapi import routing

    profiler = cProfile.Profile()
    original = getattr(routing, SYNC_ENDPOINT)

    def profiled(*args: Any, **kwargs: Any) -> Any:
        profiler.enable()
        try:
            return original(*args, **kwargs)
        finally:
            profiler.disable()

    setattr(routing, SYNC_ENDPOINT, profiled)
    try:
        for _ in range(n):
            get()
    finally:
        setattr(routing, SYNC_ENDPOINT, original)
    stats = pstats.Stats(profiler)
    by_package: dict[str, float] = defaultdict(float)
    for (filename, _line, _fn), (_cc, _nc, tt, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        by_package[_package(filename)] += tt
    total = sum(by_package.values())
    print(f"  cProfile of the route, own time by package ({total / n * 1e3:.1f} ms/request):")
    for package, tt in sorted(by_package.items(), key=lambda kv: -kv[1])[:14]:
        print(f"    {package:<44} {tt / n * 1e3:>8.2f} ms {100 * tt / total:>6.1f} %")
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(25)


def _package(filename: str) -> str:
    """``pydantic``, ``carbonflow/domain``, ``stdlib/dataclasses.py``, ``~`` (C functions)."""
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1].split("/", maxsplit=1)[0]
    if "/lib/python3" in filename:
        return "stdlib/" + filename.rsplit("/", 1)[1]
    for top in ("carbonflow/", "services/", "bench/"):
        if f"/{top}" in filename:
            parts = (top + filename.split(f"/{top}", 1)[1]).split("/")
            return "/".join(parts[:2])
    return filename


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_api")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--site", default=SITE)
    parser.add_argument("--only", nargs="*", help="these dashboard queries (default: all)")
    parser.add_argument("-n", type=int, default=100, help="requests per query")
    parser.add_argument("--also", nargs="*", default=[], help="more paths, e.g. another ledger")
    parser.add_argument("--cprofile", action="store_true", help="also under cProfile")
    args = parser.parse_args()
    if not args.database_url:
        parser.error("give --database-url or set DATABASE_URL")
    url = _with_application_name(args.database_url)
    start, days = _span(args.database_url, args.site)
    settings = ApiSettings(
        DATABASE_URL=url,
        CARBONFLOW_API_ADMIN_KEY=ADMIN_KEY,
        CARBONFLOW_API_RATE_BURST=1_000_000,
    )
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    queries = dashboard_queries(args.site, start, days)
    queries.update({path: path for path in args.also})
    print(f"site {args.site}: {days} days from {start.isoformat()}, gc {gc.get_threshold()}")
    recorder = _Recorder()
    with TestClient(create_app(settings)) as client:

        def get(path: str) -> object:
            response = client.get(path, headers=headers)
            assert response.status_code == 200, (path, response.text[:500])
            return response

        for name, path in queries.items():
            if args.only is not None and name not in args.only and name not in args.also:
                continue
            call = functools.partial(get, path)
            with _instrumented(recorder):
                run = _measure(call, args.n, recorder, args.database_url)
            _report(f"{name} ({path})", run)
            if args.cprofile:
                _cprofile(call, args.n)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

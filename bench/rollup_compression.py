"""``python -m bench.rollup_compression [--quick]``: should the rollup tables be compressed
hypertables on TimescaleDB? The measurement behind docs/performance.md, "Storage per year".

On the sizes scenario's TimescaleDB year (``bench/sizes.py``: built, then every chunk the
policies select compressed; its table sizes are written to bench/results.json as by
``python -m bench sizes``), with ``calc_interval_rollup`` and ``calc_carbon_rollup`` first
plain (as migrated), then converted in place into hypertables compressed like the result
tables (segments per device metric and grain, per site and grain), this measures for each
layout: the month reads of the API (flows of a month, the 500-device organisation's ledger;
p50/p95 wall and process CPU per request) and ``device_totals`` / ``carbon_totals`` alone,
whether their answers are identical, the rollups' bytes, and a recompute of one month (wall,
process CPU) with the rollup tables' digest before and after. The conversion SQL is the
experiment's, not a migration.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import psycopg
import sqlalchemy as sa
from fastapi.testclient import TestClient

from bench.api import ADMIN_KEY, dashboard_queries
from bench.common import merge_results, quantile
from bench.sizes import run as run_sizes
from bench.sizes import timescaledb_bin
from bench.year import YearDatabase, year_database
from carbonflow.storage import carbon as carbon_db
from carbonflow.storage import intervals as intervals_db
from carbonflow.storage import timescale
from carbonflow.storage.db import make_engine, psycopg_of
from services.api.app import create_app
from services.api.settings import ApiSettings
from services.calc.engine import CalcEngine, EngineConfig

ROLLUPS = {
    "calc_interval_rollup": ("device_pk, metric_id, grain", "period_start"),
    "calc_carbon_rollup": (
        "site_id, grain",
        "period_start, org_id, node_id, carrier, category, basis, gas",
    ),
}
TZ = "Asia/Shanghai"
# When the answer was made, not what it says: differ between any two requests.
STAMPS = {"/computed_at", "/ledger/header/generated_at"}
_DIGEST = (
    "SELECT count(*), md5(string_agg((to_jsonb(t) - 'computed_at')::text, '|' "
    "ORDER BY (to_jsonb(t) - 'computed_at')::text)) FROM {} t"
)


def _timed(call: Callable[[], object], n: int) -> dict[str, float]:
    call()
    wall: list[float] = []
    cpu = 0.0
    for _ in range(n):
        t0, c0 = time.perf_counter(), time.process_time()
        call()
        wall.append(time.perf_counter() - t0)
        cpu += time.process_time() - c0
    wall.sort()
    return {
        "p50_ms": round(quantile(wall, 0.5) * 1e3, 2),
        "p95_ms": round(quantile(wall, 0.95) * 1e3, 2),
        "process_cpu_ms": round(cpu / n * 1e3, 2),
    }


def month_reads(year: YearDatabase, n: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Latencies of the month reads and what they answered."""
    url = year.stack.database_url
    settings = ApiSettings(
        DATABASE_URL=url, CARBONFLOW_API_ADMIN_KEY=ADMIN_KEY, CARBONFLOW_API_RATE_BURST=1_000_000
    )
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    queries = dashboard_queries(year.site_id, year.start, year.days)
    latency: dict[str, Any] = {}
    answers: dict[str, Any] = {}
    with TestClient(create_app(settings)) as client:
        for name in ("flows_month", "ledger_month_org_500_devices"):
            path = queries[name]
            latency[name] = _timed(partial(client.get, path, headers=headers), n)
            response = client.get(path, headers=headers)
            assert response.status_code == 200, response.text[:300]
            answers[name] = response.json()
    month_start, month_end = month_of(year)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            pks = [
                int(r[0])
                for r in conn.execute(
                    sa.text("SELECT device_pk FROM device WHERE site_id = :s"), {"s": year.site_id}
                )
            ]
            driver = psycopg_of(conn)

            def devices() -> object:
                return intervals_db.device_totals(driver, pks, month_start, month_end, TZ)

            def carbon() -> object:
                return carbon_db.carbon_totals(driver, year.site_id, month_start, month_end, TZ)

            latency["device_totals_month"] = _timed(devices, n)
            latency["carbon_totals_month"] = _timed(carbon, n)
            answers["device_totals_month"] = repr(sorted(devices().items()))  # type: ignore[attr-defined]
            answers["carbon_totals_month"] = repr(carbon())
    finally:
        engine.dispose()
    return latency, answers


def differences(a: object, b: object, path: str = "") -> list[str]:
    """Where two JSON answers differ (paths, at most 20)."""
    if isinstance(a, dict) and isinstance(b, dict):
        found = [f"{path}/{k}" for k in a.keys() ^ b.keys()]
        for k in a.keys() & b.keys():
            found += differences(a[k], b[k], f"{path}/{k}")
        return found[:20]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [
            d
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for d in differences(x, y, f"{path}/{i}")
        ][:20]
    return [] if a == b else [f"{path}: {str(a)[:60]} != {str(b)[:60]}"]


def digests(url: str) -> dict[str, list[object]]:
    with psycopg.connect(url) as conn:
        return {t: list(conn.execute(_DIGEST.format(t)).fetchone() or ()) for t in ROLLUPS}


def month_of(year: YearDatabase) -> tuple[datetime, datetime]:
    """The local month the API scenario reads: June 2025 of a year, January of a quick run."""
    first, last = (151, 181) if year.days >= 365 else (0, 31)
    return year.start + timedelta(days=first), year.start + timedelta(days=last)


def recompute_month(year: YearDatabase) -> dict[str, float]:
    """Recompute that month as a factor change would; wall and process CPU."""
    start, end = month_of(year)
    engine = CalcEngine(year.stack.database_url, EngineConfig())
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        engine.request_recompute(year.site_id, start, end, "rollup layout experiment")
        reports = engine.run_until_idle(max_cycles=10_000)
        assert all(r.site_errors == 0 for r in reports)
        return {
            "wall_s": round(time.perf_counter() - t0, 1),
            "process_cpu_s": round(time.process_time() - c0, 1),
        }
    finally:
        engine.close()


def convert_rollups(url: str) -> dict[str, float]:
    """Make both rollup tables compressed hypertables and compress what the policy selects."""
    engine = make_engine(url)
    seconds: dict[str, float] = {}
    try:
        with engine.connect() as conn:
            t0 = time.perf_counter()
            for table, (segment_by, order_by) in ROLLUPS.items():
                conn.execute(
                    sa.text(
                        f"SELECT create_hypertable('{table}', 'period_start', "
                        "chunk_time_interval => INTERVAL '30 days', "
                        "create_default_indexes => false, migrate_data => true)"
                    )
                )
                conn.execute(
                    sa.text(
                        f"ALTER TABLE {table} SET (timescaledb.compress, "
                        f"timescaledb.compress_segmentby = '{segment_by}', "
                        f"timescaledb.compress_orderby = '{order_by}')"
                    )
                )
                conn.execute(
                    sa.text(f"SELECT add_compression_policy('{table}', INTERVAL '45 days')")
                )
                conn.commit()
            seconds["convert_s"] = round(time.perf_counter() - t0, 1)
            t0 = time.perf_counter()
            timescale.compress_due(conn)
            seconds["compress_s"] = round(time.perf_counter() - t0, 1)
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(sa.text("VACUUM ANALYZE"))
    finally:
        engine.dispose()
    return seconds


def rollup_bytes(url: str) -> dict[str, int]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return {
                s.table: s.total_bytes for s in timescale.table_sizes(conn) if s.table in ROLLUPS
            }
    finally:
        engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rollup_compression")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("-n", type=int, default=100, help="requests per query")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    sizes = run_sizes(quick=args.quick)
    merge_results(sizes)
    bin_dir, why = timescaledb_bin()
    if bin_dir is None:
        print(f"rollup_compression: skipped: {why}")
        return 0
    year = year_database(args.quick, bin_dir)
    url = year.stack.database_url
    out: dict[str, Any] = {"devices": year.stats["devices"], "days": year.days}
    # No recompute between the two layouts' reads, so their answers (computed_at included)
    # must be equal: the plain layout recomputes before its reads, the compressed one after.
    out["plain_rollups"] = {"rollup_bytes": rollup_bytes(url)}
    digest = digests(url)
    out["plain_rollups"]["recompute_month"] = recompute_month(year)
    out["plain_rollups"]["rollups_unchanged_by_recompute"] = digests(url) == digest
    latency, plain_answers = month_reads(year, args.n)
    out["plain_rollups"]["latency"] = latency
    print("plain_rollups", json.dumps(out["plain_rollups"], indent=1))

    out["conversion"] = convert_rollups(url)
    out["compressed_rollups"] = {"rollup_bytes": rollup_bytes(url)}
    out["compressed_rollups"]["rollups_unchanged_by_conversion"] = digests(url) == digest
    latency, answers = month_reads(year, args.n)
    out["compressed_rollups"]["latency"] = latency
    out["differences"] = {
        k: [d for d in differences(plain_answers[k], answers[k]) if d.split(":")[0] not in STAMPS]
        for k in answers
    }
    out["compressed_rollups"]["recompute_month"] = recompute_month(year)
    out["compressed_rollups"]["rollups_unchanged_by_recompute"] = digests(url) == digest
    print("compressed_rollups", json.dumps(out["compressed_rollups"], indent=1))
    print("differences:", out["differences"])
    key = "rollup_compression_timescaledb" + ("_quick" if args.quick else "")
    merge_results({key: out})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

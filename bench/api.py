"""API latency over a year of real calc results: ``python -m bench api``.

The database is the calc scenario's year (``bench/year.py``: 1 000 devices, a year of 15-min
counter readings, every result computed by the calc engine; ``--quick``: 100 devices, a month),
built once per process. The app runs in-process (TestClient: no network, one client), so the
figures are the service's own cost — query, aggregation, serialisation — per request, for the
dashboard queries of the issue: live values, a day of 15-min carbon for the site, a month's
flows, a year's indicators, and the month ledger of the 500-device organisation (its first
request, nothing cached, is ``ledger_month_500_devices_s``). The latest-readings query is also
timed on its own and explained, to show that it reads the ``reading`` primary key backwards once
per device metric, whatever the length of the history.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial

import psycopg
from fastapi.testclient import TestClient

from bench.calc_site import LEDGER_ORG
from bench.common import quantile
from bench.year import year_database
from carbonflow.storage import readings as readings_db
from carbonflow.storage.db import make_engine
from services.api.app import create_app
from services.api.settings import ApiSettings

ADMIN_KEY = "bench-bootstrap-admin-key-0123456789abcdef"
LOCAL = timedelta(hours=8)  # the bench site is in Asia/Shanghai


def _timed(call: Callable[[], object], n: int) -> dict[str, float]:
    call()  # warm the pool and caches
    seconds: list[float] = []
    for _ in range(n):
        t0 = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - t0)
    seconds.sort()
    return {
        "p50_ms": round(quantile(seconds, 0.5) * 1e3, 2),
        "p95_ms": round(quantile(seconds, 0.95) * 1e3, 2),
        "max_ms": round(seconds[-1] * 1e3, 2),
        "requests_per_s": round(len(seconds) / sum(seconds), 1),
    }


def dashboard_queries(site_id: str, start: datetime, days: int) -> dict[str, str]:
    """The queries a dashboard makes, on the middle of the year (a month of a quick run) of
    ``days`` of results from ``start`` (UTC, a local midnight of the bench's Shanghai site)."""
    base = f"/api/v1/sites/{site_id}"
    local_start = start + LOCAL  # naive-free: keep the +08:00 offset in the query
    day = (local_start + timedelta(days=min(165, days - 2))).date()
    month = f"{day:%Y-%m}"
    next_day = day + timedelta(days=1)
    return {
        "live_snapshot": f"{base}/live",
        "live_power": f"{base}/live/power",
        "live_readings_all": f"{base}/live/readings?limit=1000",
        "carbon_day_15min": (
            f"{base}/carbon/series?grain=15min"
            f"&start={day}T00:00:00%2B08:00&end={next_day}T00:00:00%2B08:00"
        ),
        "flows_month": f"{base}/flows?period={month}",
        "indicators_year": f"{base}/indicators?grain=year&period={day}",
        "ledger_month_org_500_devices": f"{base}/organisations/{LEDGER_ORG}/ledgers/{month}",
    }


def run(quick: bool = False) -> dict[str, object]:
    n = 20 if quick else 100
    year = year_database(quick)
    url = year.stack.database_url
    settings = ApiSettings(
        DATABASE_URL=url,
        CARBONFLOW_API_ADMIN_KEY=ADMIN_KEY,
        CARBONFLOW_API_RATE_BURST=1_000_000,
    )
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    latency: dict[str, dict[str, float]] = {}
    with TestClient(create_app(settings)) as client:
        queries = dashboard_queries(year.site_id, year.start, year.days)

        def get(path: str) -> object:
            response = client.get(path, headers=headers)
            assert response.status_code == 200, (path, response.text[:500])
            return response

        ledger_path = queries["ledger_month_org_500_devices"]
        t0 = time.perf_counter()
        get(ledger_path)
        ledger_first_s = time.perf_counter() - t0
        for name, path in queries.items():
            latency[name] = _timed(partial(get, path), n)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:

            def query() -> object:
                return readings_db.latest_readings(
                    conn, year.site_id, org_id=None, limit=1000, offset=0
                )

            sql_only = _timed(query, n)
    finally:
        engine.dispose()
    results: dict[str, object] = {
        "api": {
            "devices": year.stats["devices"],
            "history_days": year.days,
            "readings": year.stats["readings"],
            "requests_per_query": n,
            "queries": queries,
            "latency": latency,
            "ledger_first_request_s": round(ledger_first_s, 3),
            "latest_readings_sql": sql_only,
            "latest_readings_plan": _plan(url, year.site_id),
        },
    }
    # Each query's p95 in units of the same run's latest-readings SQL (unchanged code, pure
    # database work): comparable across runs on hosts of different speed.
    results["api_p95_vs_sql"] = relative_p95(latency, sql_only["p95_ms"])
    if not quick:  # a quick run (100 devices, a month) does not measure the figures
        results["api_p95_ms"] = {name: v["p95_ms"] for name, v in latency.items()}
        results["ledger_month_500_devices_s"] = round(ledger_first_s, 3)
    return results


def relative_p95(latency: dict[str, dict[str, float]], base_ms: float) -> dict[str, float]:
    """Each query's p95 divided by ``base_ms`` (the latest-readings SQL of the same run)."""
    return {name: round(v["p95_ms"] / base_ms, 2) for name, v in latency.items()}


def _plan(url: str, site_id: str) -> dict[str, object]:
    """How the newest reading of one device metric is found (EXPLAIN ANALYZE, BUFFERS)."""
    with psycopg.connect(url) as conn:
        pk, metric_id = conn.execute(
            "SELECT dm.device_pk, dm.metric_id FROM device_metric dm"
            " JOIN device d ON d.device_pk = dm.device_pk WHERE d.site_id = %s LIMIT 1",
            (site_id,),
        ).fetchone() or (0, 0)
        lines = [
            r[0]
            for r in conn.execute(
                "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT ts, value FROM reading"
                " WHERE device_pk = %s AND metric_id = %s ORDER BY ts DESC LIMIT 1",
                (pk, metric_id),
            )
        ]
    return {
        "backward_primary_key_scan": any("Backward" in line for line in lines),
        "plan": lines[:6],
    }

"""API latency on a realistic history: ``python -m bench api`` (``--quick``: one day).

A private PostgreSQL holds the example mine with one reading per minute for every metric of
every device over ``days`` days. The app runs in-process (TestClient: no network, one client),
so the figures are the service's own cost — query, aggregation, serialisation — per request.
The latest-readings query is also timed on its own and explained, to show that it reads the
``reading`` primary key backwards once per device metric, whatever the length of the history.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from fastapi.testclient import TestClient

from bench.common import quantile
from carbonflow.embedded.postgres import EmbeddedPostgres
from carbonflow.sites.loader import load_site_file
from carbonflow.storage import api_store
from carbonflow.storage.db import make_engine
from carbonflow.storage.migrate import upgrade
from carbonflow.storage.registry import load_sites
from services.api.app import create_app
from services.api.settings import ApiSettings

EXAMPLES = Path(__file__).resolve().parents[1] / "carbonflow" / "sites" / "examples"
SITE = "shanxi-jinzhong-mine"
ADMIN_KEY = "bench-bootstrap-admin-key-0123456789abcdef"
STEP = timedelta(minutes=1)


def _fill(url: str, days: int, end: datetime) -> int:
    """One reading per minute per device metric of the site over ``days`` days; rows written."""
    with psycopg.connect(url) as conn:
        keys = conn.execute(
            "SELECT dm.device_pk, dm.metric_id FROM device_metric dm"
            " JOIN device d ON d.device_pk = dm.device_pk WHERE d.site_id = %s",
            (SITE,),
        ).fetchall()
        steps = int(timedelta(days=days) / STEP)
        start = end - steps * STEP
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY reading (device_pk, metric_id, ts, value, received_at) FROM STDIN"
            ) as copy,
        ):
            for i in range(steps):
                ts = start + i * STEP
                for pk, metric_id in keys:
                    copy.write_row((pk, metric_id, ts, float(i % 97), ts))
        conn.execute("ANALYZE reading")
    return steps * len(keys)


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
    }


def run(quick: bool = False) -> dict[str, object]:
    days = 1 if quick else 14
    n = 30 if quick else 200
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    with (
        tempfile.TemporaryDirectory(prefix="carbonflow-bench-api-") as tmp,
        EmbeddedPostgres(Path(tmp) / "pg", durable=False) as pg,
    ):
        upgrade(pg.url)
        load_sites(pg.url, [load_site_file(p) for p in sorted(EXAMPLES.glob("*.yaml"))])
        t0 = time.perf_counter()
        rows = _fill(pg.url, days, end)
        fill_s = time.perf_counter() - t0
        settings = ApiSettings(
            DATABASE_URL=pg.url,
            CARBONFLOW_API_ADMIN_KEY=ADMIN_KEY,
            CARBONFLOW_API_RATE_BURST=1_000_000,
        )
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        base = f"/api/v1/sites/{SITE}"
        latency: dict[str, object] = {}
        with TestClient(create_app(settings)) as client:
            for name, path in (
                ("live_readings_all", f"{base}/live/readings?limit=1000"),
                ("live_snapshot", f"{base}/live"),
                ("live_power", f"{base}/live/power"),
                ("live_methane", f"{base}/live/methane"),
                ("devices_page", f"{base}/devices"),
                ("rejections_page", f"{base}/rejections"),
                ("me", "/api/v1/me"),
            ):

                def get(path: str = path) -> object:
                    response = client.get(path, headers=headers)
                    assert response.status_code == 200, response.text
                    return response

                latency[name] = _timed(get, n)
        engine = make_engine(pg.url)
        try:
            with engine.connect() as conn:

                def query() -> object:
                    return api_store.latest_readings(conn, SITE, org_id=None, limit=1000, offset=0)

                device_metrics = len(api_store.latest_readings(
                    conn, SITE, org_id=None, limit=1000, offset=0
                ))  # fmt: skip
                sql_only = _timed(query, n)
                plan = _plan(pg.url)
        finally:
            engine.dispose()
    return {
        "api": {
            "history_days": days,
            "readings": rows,
            "device_metrics": device_metrics,
            "fill_seconds": round(fill_s, 1),
            "requests_per_route": n,
            "latency": latency,
            "latest_readings_sql": sql_only,
            "latest_readings_plan": plan,
        }
    }


def _plan(url: str) -> dict[str, object]:
    """How the newest reading of one device metric is found (EXPLAIN ANALYZE, BUFFERS)."""
    with psycopg.connect(url) as conn:
        pk, metric_id = conn.execute(
            "SELECT dm.device_pk, dm.metric_id FROM device_metric dm"
            " JOIN device d ON d.device_pk = dm.device_pk WHERE d.site_id = %s LIMIT 1",
            (SITE,),
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

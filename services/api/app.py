"""``create_app(settings)``: the API as a FastAPI application (run by ``carbonflow api``)."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import anyio
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.routing import BaseRoute, Route

from carbonflow.storage.access import AuditEntry, KeyRecord, lookup_key, write_audit
from carbonflow.storage.db import make_engine
from carbonflow.storage.migrate import head_revision
from services.api import problems
from services.api.auth import Authenticator
from services.api.context import ApiContext
from services.api.metrics import ApiMetrics
from services.api.middleware import OPENAPI_PATH, ApiMiddleware
from services.api.openapi import openapi_document
from services.api.ratelimit import FailedAuthThrottle, RateLimiter
from services.api.routers import (
    alarms,
    carbon,
    devices,
    factors,
    flows,
    green,
    imports,
    indicators,
    keys,
    ledgers,
    live,
    me,
    nodes,
    organisations,
    push,
    regulator,
    rejections,
    service,
    site_admin,
    sites,
    trace,
    view,
)
from services.api.settings import ApiSettings

# The version of the API contract (paths are /api/v1): minor for additions, major for breaks.
API_VERSION = "1.5.0"

ROUTERS = (
    me.router,
    keys.router,
    sites.router,
    site_admin.router,
    imports.router,
    organisations.router,
    nodes.router,
    devices.router,
    live.router,
    rejections.router,
    rejections.summary_router,
    green.router,
    ledgers.router,
    trace.router,
    carbon.router,
    indicators.router,
    factors.router,
    regulator.router,
    flows.router,
    view.router,
    alarms.router,
    service.router,
    push.router,
    push.site_router,
)

DESCRIPTION = """\
Energy–carbon monitoring of zero-carbon parks and coal mines: the site registry, live values,
rejected readings, the green-power register, and the calc service's results — carbon, tce and
energy time series, energy → carbon → product flows, indicators against targets with budgets
and early warnings, monthly emission ledgers (碳排放台账) with revisions and exports, and
regulators' cross-site aggregates. Every route under `/api/v1` needs an API key
(`Authorization: Bearer cf_…`, from `carbonflow keys create`); what a key sees depends on its
role (admin, operator, enterprise, regulator) and its sites. Quantities carry their unit in
their name (`power_kw`, `volume_mwh`) or in a `unit` field next to the value. Errors are RFC 9457
problem details (`application/problem+json`). See docs/api.md.
"""


def _utc_now() -> datetime:
    return datetime.now(UTC)


_startup_frozen = threading.Event()


def freeze_startup_heap() -> None:
    """Take what exists when the first app of the process starts — the imported code, the app,
    its routes and schemas (≈ 200 000 objects) — out of the garbage collector's full
    collections (``gc.freeze``), once per process.

    They live as long as the process, yet every full collection traversed all of them: ≈ 170 ms
    on the bench machine, which a request allocating many objects (a 1 000-device live
    snapshot) triggered every tenth time or so — the slow tail of its latency
    (docs/performance.md). Objects made later (requests, caches) are collected as before, and
    the unreachable ones are collected first, so nothing collectable is kept.
    """
    if _startup_frozen.is_set():
        return
    _startup_frozen.set()
    gc.collect()
    gc.freeze()


def create_app(
    settings: ApiSettings,
    *,
    metrics: ApiMetrics | None = None,
    clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], datetime] = _utc_now,
    stream_sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
) -> FastAPI:
    """The application; its database engine is disposed when the app shuts down.

    ``clock`` (monotonic [s]) drives rate limits and the key cache, ``wall_clock`` the ages of
    readings and the audit log, ``stream_sleep`` the pause between live-stream events.
    """
    if settings.database_url is None:
        raise ValueError("DATABASE_URL is not set")
    engine = make_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        pool_timeout=10,
        connect_args={"options": f"-c statement_timeout={settings.statement_timeout_ms}"},
    )

    def lookup(key_id: str) -> KeyRecord | None:
        with engine.begin() as conn:
            return lookup_key(conn, key_id)

    def audit(entry: AuditEntry) -> None:
        with engine.begin() as conn:
            write_audit(conn, entry)

    admin_key = settings.admin_key.get_secret_value() if settings.admin_key else None
    context = ApiContext(
        settings=settings,
        engine=engine,
        metrics=metrics or ApiMetrics.create(),
        authenticator=Authenticator(
            lookup,
            admin_key=admin_key,
            cache_s=settings.key_cache_s,
            clock=clock,
            wall_clock=wall_clock,
        ),
        limiter=RateLimiter(settings.rate_burst, clock),
        failed_auth=FailedAuthThrottle(
            settings.auth_failure_burst, settings.auth_failures_per_minute, clock
        ),
        wall_clock=wall_clock,
        expected_revision=head_revision(),
        stream_sleep=stream_sleep,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        freeze_startup_heap()
        try:
            yield
        finally:
            engine.dispose()

    app = FastAPI(
        title="carbonflow API",
        version=API_VERSION,
        summary="Registry, live values, carbon, flows, indicators, ledgers, regulator views",
        description=DESCRIPTION,
        openapi_url=OPENAPI_PATH,
        docs_url=None,  # served from the package by routers/view.py (no CDN)
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.api = context
    problems.install(app)
    for router in ROUTERS:
        app.include_router(router)
    # Route templates for metric labels and audit rows, also before routing (401, 429).
    api_routes: list[BaseRoute] = [r for r in app.routes if isinstance(r, Route)]
    api_routes += [route for router in ROUTERS for route in router.routes]
    app.add_middleware(
        ApiMiddleware, context=lambda: context, routes=lambda: api_routes, write_audit=audit
    )
    if settings.cors_origins:
        # Outermost, so that a browser's preflight (OPTIONS, no key) is answered before auth.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "If-None-Match"],
            expose_headers=["ETag", "Link", "Retry-After"],
            max_age=600,
        )
    app.openapi = lambda: openapi_document(app)  # type: ignore[method-assign]
    return app

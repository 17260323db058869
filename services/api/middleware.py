"""One ASGI middleware around every request: metrics; and for ``/api/v1/…`` (except the OpenAPI
document) authentication, the rate limit and the regulator audit log.

Pure ASGI (no ``BaseHTTPMiddleware``), so streamed responses pass through untouched. Order of
checks: no or bad key → 401 (before routing, so unknown paths reveal nothing); rate limit → 429
with ``Retry-After``; then the route. A regulator's request is written to ``api_audit`` when its
response starts, with the final status; if that write fails the request is refused with 503
instead (fail closed: no unaudited regulator access).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

import anyio
import sqlalchemy as sa
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from carbonflow.storage.access import AuditEntry
from services.api.access import Principal
from services.api.auth import MISS
from services.api.context import ApiContext
from services.api.metrics import UNMATCHED_ROUTE
from services.api.problems import DATABASE_RETRY_AFTER_S, ProblemType, problem_response
from services.api.ratelimit import Decision

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1/"
OPENAPI_PATH = "/api/v1/openapi.json"
PRINCIPAL_STATE = "principal"


class ApiMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        context: Callable[[], ApiContext],
        routes: Callable[[], list[BaseRoute]],
        write_audit: Callable[[AuditEntry], None],
    ) -> None:
        self.app = app
        self._context = context
        self._routes = routes
        self._write_audit = write_audit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ctx = self._context()
        started = time.perf_counter()
        status = 500
        timed = False

        async def observed(message: Message) -> None:
            nonlocal status, timed
            if message["type"] == "http.response.start" and not timed:
                timed = True
                status = int(message["status"])
                ctx.metrics.request_seconds.labels(self._route(scope), scope["method"]).observe(
                    time.perf_counter() - started
                )
            await send(message)

        try:
            await self._access(ctx, scope, receive, observed)
        finally:
            route = self._route(scope)
            if not timed:
                ctx.metrics.request_seconds.labels(route, scope["method"]).observe(
                    time.perf_counter() - started
                )
            ctx.metrics.requests.labels(route, scope["method"], str(status)).inc()

    async def _access(self, ctx: ApiContext, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        if not path.startswith(API_PREFIX) or path == OPENAPI_PATH:
            await self.app(scope, receive, send)
            return
        token = _bearer(scope)
        if token is None:
            await _unauthorized(scope, receive, send, "send an API key: Authorization: Bearer …")
            return
        client = _client(scope)
        throttled = ctx.failed_auth.refused(client)
        if throttled is not None:
            await _too_many_failures(scope, receive, send, throttled)
            return
        principal = ctx.authenticator.cached(token)
        if principal is MISS:
            try:
                principal = await anyio.to_thread.run_sync(ctx.authenticator.authenticate, token)
            except (sa.exc.OperationalError, sa.exc.TimeoutError) as exc:
                log.warning("cannot look up an API key: %s", getattr(exc, "orig", None) or exc)
                response = problem_response(
                    503,
                    "the database is unavailable; retry shortly",
                    instance=path,
                    headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
                )
                await response(scope, receive, send)
                return
        if not isinstance(principal, Principal):
            ctx.failed_auth.failed(client)  # the next ones get 429 once the allowance is used
            await _unauthorized(scope, receive, send, "the API key is unknown, revoked or expired")
            return
        scope.setdefault("state", {})[PRINCIPAL_STATE] = principal
        if principal.audited:
            send = self._audited(ctx, principal, scope, receive, send)
        decision = ctx.limiter.acquire(
            principal.key_id, principal.requests_per_minute or ctx.settings.rate_per_minute
        )
        if not decision.allowed:
            response = problem_response(
                429,
                f"rate limit of key {principal.key_id} reached; retry in "
                f"{decision.retry_after_header} s",
                instance=path,
                type_=ProblemType.RATE_LIMITED,
                headers={"Retry-After": decision.retry_after_header},
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _audited(
        self, ctx: ApiContext, principal: Principal, scope: Scope, receive: Receive, send: Send
    ) -> Send:
        """``send`` that writes the audit row before the response starts, or refuses."""
        at = ctx.wall_clock()
        refused = False
        written = False

        async def audited(message: Message) -> None:
            nonlocal refused, written
            if message["type"] == "http.response.start" and not written:
                written = True
                entry = self._entry(principal, scope, at, int(message["status"]))
                try:
                    await anyio.to_thread.run_sync(self._write_audit, entry)
                except Exception:
                    log.exception("audit row for key %s could not be written", principal.key_id)
                    ctx.metrics.audit_failures.inc()
                    refused = True
                    response = problem_response(
                        503,
                        "the audit log could not be written, so the request is refused",
                        instance=scope["path"],
                        type_=ProblemType.UNAVAILABLE,
                    )
                    await response(scope, receive, send)
                    return
            if refused:
                return
            await send(message)

        return audited

    def _entry(self, principal: Principal, scope: Scope, at: datetime, status: int) -> AuditEntry:
        route, path_params = self._match(scope)
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        client = scope.get("client")
        return AuditEntry(
            at=at,
            key_id=principal.key_id,
            role=principal.role.value,
            method=scope["method"],
            route=route,
            path=scope["path"],
            path_params=path_params,
            query=query,
            status=status,
            client=str(client[0]) if client else None,
        )

    def _route(self, scope: Scope) -> str:
        return self._match(scope)[0]

    def _match(self, scope: Scope) -> tuple[str, dict[str, str]]:
        """The route template and path parameters (routing result, or matched here)."""
        route = scope.get("route")
        if route is not None and hasattr(route, "path"):
            params = scope.get("path_params") or {}
            return str(route.path), {k: str(v) for k, v in params.items()}
        partial: tuple[str, dict[str, str]] | None = None
        for candidate in self._routes():
            match, child = candidate.matches(scope)
            if match is Match.NONE or not hasattr(candidate, "path"):
                continue
            found = (str(candidate.path), _str_params(child.get("path_params", {})))
            if match is Match.FULL:
                return found
            partial = partial or found
        return partial or (UNMATCHED_ROUTE, {})


def _str_params(params: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in params.items()}


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            header: str = bytes(value).decode("latin-1")
            scheme, _, token = header.partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return None


def _client(scope: Scope) -> str:
    """The client's address (behind a proxy: the proxy's, unless uvicorn trusts its headers)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


async def _too_many_failures(scope: Scope, receive: Receive, send: Send, refusal: Decision) -> None:
    response = problem_response(
        429,
        "too many failed authentications from this address; retry in "
        f"{refusal.retry_after_header} s / 此地址认证失败次数过多，请稍后重试",
        instance=scope["path"],
        type_=ProblemType.RATE_LIMITED,
        headers={"Retry-After": refusal.retry_after_header},
    )
    await response(scope, receive, send)


async def _unauthorized(scope: Scope, receive: Receive, send: Send, detail: str) -> None:
    response = problem_response(
        401,
        detail,
        instance=scope["path"],
        type_=ProblemType.UNAUTHORIZED,
        headers={"WWW-Authenticate": 'Bearer realm="carbonflow"'},
    )
    await response(scope, receive, send)

"""The audit row of a write, written by the route in the write's own transaction."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import Request

from carbonflow.storage.access import AuditEntry, write_audit
from services.api.access import Principal
from services.api.context import ApiContext


def audit_write(
    conn: sa.Connection, ctx: ApiContext, principal: Principal, request: Request, status: int
) -> None:
    """Append the audit row of this request (the caller commits it with the write)."""
    route = request.scope.get("route")
    client = request.client
    write_audit(
        conn,
        AuditEntry(
            at=ctx.wall_clock(),
            key_id=principal.key_id,
            role=principal.role.value,
            method=request.method,
            route=str(getattr(route, "path", request.url.path)),
            path=request.url.path,
            path_params={k: str(v) for k, v in request.path_params.items()},
            query={k: request.query_params.getlist(k) for k in request.query_params},
            status=status,
            client=client.host if client else None,
        ),
    )

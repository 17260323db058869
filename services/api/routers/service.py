"""``/health`` and ``/metrics``: no key needed."""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from carbonflow.storage.migrate import stored_revision
from services.api.deps import ContextDep
from services.api.problems import ApiProblemError, responses
from services.api.schemas import HealthOut

router = APIRouter(tags=["service"])


def _revision(ctx: ContextDep) -> str | None:
    try:
        with ctx.engine.connect() as conn:
            return stored_revision(conn)
    except sa.exc.SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None) or exc
        raise ApiProblemError(503, f"database unavailable: {type(cause).__name__}") from None


@router.get(
    "/health",
    response_model=HealthOut,
    summary="Is the service up and its database reachable and migrated?",
    responses=responses(503),
)
def health(ctx: ContextDep, revision: Annotated[str | None, Depends(_revision)]) -> HealthOut:
    expected = ctx.expected_revision
    if revision != expected:
        raise ApiProblemError(
            503, f"database schema is at revision {revision}, this service needs {expected}"
        )
    return HealthOut(
        status="ok", database=True, schema_revision=revision, expected_revision=expected
    )


@router.get("/metrics", include_in_schema=False)
def metrics(ctx: ContextDep) -> Response:
    if not ctx.settings.metrics_enabled:
        raise ApiProblemError(404, "metrics are disabled (CARBONFLOW_API_METRICS=false)")
    return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)

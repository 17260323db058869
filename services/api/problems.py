"""Errors as RFC 9457 problem details (``application/problem+json``), for every error.

``type`` is ``about:blank`` for a plain HTTP status (405) and otherwise one of the URNs of
:class:`ProblemType` (listed in docs/api.md); ``instance`` is the request path. Validation errors
add ``errors``: one entry per invalid input with its location.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from http import HTTPStatus
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
# Retry-After of a 503 for an unavailable database [s].
DATABASE_RETRY_AFTER_S = 5


class ProblemType(StrEnum):
    BLANK = "about:blank"
    UNAUTHORIZED = "urn:carbonflow:problem:unauthorized"
    FORBIDDEN = "urn:carbonflow:problem:forbidden"
    NOT_FOUND = "urn:carbonflow:problem:not-found"
    CONFLICT = "urn:carbonflow:problem:conflict"
    VALIDATION = "urn:carbonflow:problem:validation"
    RATE_LIMITED = "urn:carbonflow:problem:rate-limited"
    UNAVAILABLE = "urn:carbonflow:problem:unavailable"
    INTERNAL = "urn:carbonflow:problem:internal"


_TITLES = {
    ProblemType.UNAUTHORIZED: "Authentication required",
    ProblemType.FORBIDDEN: "Not allowed for this key",
    ProblemType.NOT_FOUND: "Not found",
    ProblemType.CONFLICT: "Conflict",
    ProblemType.VALIDATION: "Invalid request",
    ProblemType.RATE_LIMITED: "Too many requests",
    ProblemType.UNAVAILABLE: "Service unavailable",
    ProblemType.INTERNAL: "Internal server error",
}
_BY_STATUS = {
    401: ProblemType.UNAUTHORIZED,
    403: ProblemType.FORBIDDEN,
    404: ProblemType.NOT_FOUND,
    409: ProblemType.CONFLICT,
    422: ProblemType.VALIDATION,
    429: ProblemType.RATE_LIMITED,
    500: ProblemType.INTERNAL,
    503: ProblemType.UNAVAILABLE,
}


class InvalidParam(BaseModel):
    location: list[str | int] = Field(
        description="where: ['query', 'limit'], ['path', 'site_id'], ['body', 'volume_mwh']"
    )
    detail: str


class Problem(BaseModel):
    """An error (RFC 9457)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": ProblemType.NOT_FOUND.value,
                    "title": "Not found",
                    "status": 404,
                    "detail": "site 'shanxi-jinzhong-mine' not found",
                    "instance": "/api/v1/sites/shanxi-jinzhong-mine",
                }
            ]
        }
    )

    type: str = Field(default=ProblemType.BLANK.value, description="a URI naming the problem")
    title: str
    status: int = Field(ge=400, le=599)
    detail: str | None = None
    instance: str | None = Field(default=None, description="the request path")
    errors: list[InvalidParam] | None = Field(
        default=None, description="validation problems only: each invalid input"
    )


class ApiProblemError(Exception):
    """Raised anywhere in a request to answer with a problem."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        type_: ProblemType | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.type = type_ or _BY_STATUS.get(status, ProblemType.BLANK)
        self.headers = headers or {}


def not_found(detail: str) -> ApiProblemError:
    return ApiProblemError(404, detail)


def forbidden(detail: str) -> ApiProblemError:
    return ApiProblemError(403, detail)


def problem_body(
    status: int,
    detail: str | None,
    *,
    instance: str | None,
    type_: ProblemType | None = None,
    errors: list[InvalidParam] | None = None,
) -> dict[str, Any]:
    kind = type_ or _BY_STATUS.get(status, ProblemType.BLANK)
    title = _TITLES.get(kind) or HTTPStatus(status).phrase
    problem = Problem(
        type=kind.value, title=title, status=status, detail=detail, instance=instance, errors=errors
    )
    return problem.model_dump(mode="json", exclude_none=True)


def problem_response(
    status: int,
    detail: str | None,
    *,
    instance: str | None,
    type_: ProblemType | None = None,
    headers: dict[str, str] | None = None,
    errors: list[InvalidParam] | None = None,
) -> JSONResponse:
    return JSONResponse(
        problem_body(status, detail, instance=instance, type_=type_, errors=errors),
        status_code=status,
        headers=headers,
        media_type=PROBLEM_MEDIA_TYPE,
    )


async def _api_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiProblemError)
    return problem_response(
        exc.status, exc.detail, instance=request.url.path, type_=exc.type, headers=exc.headers
    )


async def _http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else None
    if exc.status_code == 404 and detail == HTTPStatus.NOT_FOUND.phrase:
        detail = f"no route {request.url.path}"
    if exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
    return problem_response(
        exc.status_code, detail, instance=request.url.path, headers=dict(exc.headers or {})
    )


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        InvalidParam(
            location=[str(p) if not isinstance(p, int) else p for p in e["loc"]],
            detail=str(e["msg"]),
        )
        for e in exc.errors()
    ]
    where = ", ".join(".".join(str(p) for p in e.location) for e in errors[:5])
    return problem_response(
        422, f"invalid input: {where}", instance=request.url.path, errors=errors
    )


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """A lost or refused database connection, or an exhausted pool: transient, retry later."""
    cause = getattr(exc, "orig", None) or exc
    log.warning("database unavailable on %s %s: %s", request.method, request.url.path, cause)
    return problem_response(
        503,
        "the database is unavailable; retry shortly",
        instance=request.url.path,
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(
        500, "an unexpected error; it has been logged", instance=request.url.path
    )


def install(app: FastAPI) -> None:
    """Answer every error of ``app`` with a problem."""
    app.add_exception_handler(ApiProblemError, _api_problem)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(sa.exc.OperationalError, _database_unavailable)
    app.add_exception_handler(sa.exc.TimeoutError, _database_unavailable)
    app.add_exception_handler(Exception, _unexpected)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the problems a route may answer with."""
    return {
        status: {
            "description": HTTPStatus(status).phrase,
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }

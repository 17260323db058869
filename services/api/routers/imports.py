"""``/api/v1/sites/{site_id}/imports``: history and manual import of readings (数据补录).

The request body is the file itself (``text/csv``, UTF-8, or an XLSX workbook), at most
``MAX_IMPORT_BYTES``; ``filename``, ``reason``, ``source`` and ``dry_run`` are query parameters.
Admin keys, and operator keys for their sites; every import (not a dry run) is audited.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

import anyio
from fastapi import APIRouter, Depends, Query, Request, Response

from carbonflow.storage.imports import (
    ImportFileError,
    ImportReport,
    ImportRequest,
    Policy,
    run_import,
)
from services.api.access import Action
from services.api.audit import audit_write
from services.api.deps import ContextDep, SiteScope, site_access
from services.api.problems import ApiProblemError, responses
from services.api.schemas_admin import ClosedLedgerOut, ImportOut, ImportProblemOut

router = APIRouter(
    prefix="/api/v1/sites/{site_id}/imports",
    tags=["registry"],
    responses=responses(401, 403, 404, 429, 500),
)

ImportSite = Annotated[SiteScope, Depends(site_access(Action.IMPORT_READINGS))]
MAX_IMPORT_BYTES = 256 * 1024 * 1024  # a year of 15-min data of 100 devices is ~150 MB of CSV
FUTURE_SKEW_S = 300.0  # as ingest: readings further ahead than this are refused [s]


def import_out(report: ImportReport) -> ImportOut:
    return ImportOut(
        import_id=report.import_id,
        site_id=report.site_id,
        filename=report.filename,
        file_sha256=report.file_sha256,
        dry_run=report.dry_run,
        already_imported=report.already_imported,
        rows_read=report.rows_read,
        stored=report.stored,
        unchanged=report.unchanged,
        conflicts=report.conflicts,
        rejected=dict(report.rejected),
        problems=[
            ImportProblemOut(
                line=p.line,
                reason=p.reason.value,
                detail=p.detail,
                device_id=p.device,
                metric=p.metric,
            )
            for p in report.problems
        ],
        hours_to_recompute=report.hours_to_recompute,
        closed_ledgers=[
            ClosedLedgerOut(org_id=c.org_id, month=f"{c.month:%Y-%m}", revision=c.revision)
            for c in report.closed_ledgers
        ],
    )


@router.post(
    "",
    response_model=ImportOut,
    summary="Import readings from a CSV or XLSX file (the body); dry_run=true stores nothing",
    responses={201: {"model": ImportOut, "description": "Stored"}, **responses(413, 422)},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {
                    "schema": {"type": "string", "format": "binary"}
                },
            },
        }
    },
)
async def import_readings(
    site: ImportSite,
    ctx: ContextDep,
    request: Request,
    response: Response,
    filename: Annotated[
        str, Query(min_length=1, max_length=200, description="the file's name (.csv or .xlsx)")
    ],
    reason: Annotated[str, Query(min_length=3, max_length=2000, description="why (kept)")],
    source: Annotated[Literal["import", "manual"], Query()] = "import",
    dry_run: Annotated[bool, Query(description="store nothing; report what would be")] = False,
) -> ImportOut:
    data = bytearray()
    async for part in request.stream():
        data.extend(part)
        if len(data) > MAX_IMPORT_BYTES:
            raise ApiProblemError(413, f"the file is larger than {MAX_IMPORT_BYTES} bytes")
    settings = ctx.settings
    url = settings.database_url
    assert url is not None  # create_app refuses to start without one
    principal = site.principal
    job = ImportRequest(
        site.site_id,
        filename,
        bytes(data),
        f"{principal.key_id} ({principal.label})",
        reason,
        source,
        dry_run,
    )
    now = ctx.wall_clock()
    policy = Policy(
        now, timedelta(seconds=FUTURE_SKEW_S), timedelta(days=settings.readings_retention_days)
    )
    try:
        report = await anyio.to_thread.run_sync(run_import, url, job, policy)
    except ImportFileError as exc:
        raise ApiProblemError(422, str(exc)) from None
    status = 200 if dry_run or report.already_imported else 201
    if not dry_run:
        await anyio.to_thread.run_sync(_audit, ctx, site, request, status)
    response.status_code = status
    return import_out(report)


def _audit(ctx: ContextDep, site: SiteScope, request: Request, status: int) -> None:
    with ctx.engine.begin() as conn:
        audit_write(conn, ctx, site.principal, request, status)

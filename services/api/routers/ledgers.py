"""Monthly emission ledgers (碳排放台账): draft, close, revise, export; the bulk export.

``/api/v1/sites/{site_id}/ledgers/{month}…`` is the site's own ledger (every source booked at
the site); ``/api/v1/sites/{site_id}/organisations/{org_id}/ledgers/{month}…`` one
organisation's. ``{month}`` is a site-local calendar month, ``YYYY-MM``.

Reading: every role that sees the site; an enterprise key its own organisation's ledger only
(another organisation's: 404; the site's own ledger: 403). Closing and revising: admin, an
operator of the site, an enterprise for its own organisation; never a regulator (403). Writes
are audited in their own transaction. A closed revision is stored once, as the bytes served:
its responses carry a strong ETag and may be cached for good.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Path, Query, Request, Response

from carbonflow.domain import calendar
from carbonflow.domain.ledger import document as ledger_doc
from carbonflow.domain.ledger.closing import close_refusal
from carbonflow.domain.ledger.document import LedgerInputs
from carbonflow.domain.ledger.labels import Lang
from carbonflow.storage import carbon, certificates, db, readings, registry
from carbonflow.storage import ledgers as store
from carbonflow.storage.access import AuditEntry, write_audit
from services.api.access import Principal, Role
from services.api.deps import ConnDep, ContextDep, PrincipalDep, SiteIdPath, id_path
from services.api.ledger_export import (
    CSV_MEDIA_TYPE,
    JSON_MEDIA_TYPE,
    MEDIA_TYPES,
    PDF_MEDIA_TYPE,
    XLSX_MEDIA_TYPE,
    ZIP_MEDIA_TYPE,
    render,
    zip_files,
)
from services.api.problems import ApiProblemError, forbidden, not_found, responses
from services.api.reads import ledger_inputs
from services.api.schemas_ledger import (
    LedgerChange,
    LedgerDocument,
    LedgerFormat,
    LedgerMonthOut,
    RevisionIn,
    RevisionList,
    RevisionOut,
)

router = APIRouter(tags=["ledgers"], responses=responses(401, 403, 404, 422, 429, 500))

SITE_PREFIX = "/api/v1/sites/{site_id}/ledgers/{month}"
ORG_PREFIX = "/api/v1/sites/{site_id}/organisations/{org_id}/ledgers/{month}"
MAX_EXPORT_MONTHS = 12
# A closed revision never changes: clients and proxies may keep it (private: keyed access).
IMMUTABLE = "private, max-age=31536000, immutable"
VARY = "Accept, Accept-Language"
# Years 1900–2999: a calendar month the site's time zone can place (and its successor).
MONTH_PATTERN = r"^(19|2[0-9])[0-9]{2}-(0[1-9]|1[0-2])$"

MonthPath = Annotated[
    str,
    Path(pattern=MONTH_PATTERN, description="site-local month, YYYY-MM", examples=["2025-03"]),
]
OrgIdPath = Annotated[str, id_path("organisation", "cathode-plant")]
RevisionPath = Annotated[int, Path(ge=1, le=100_000, description="revision number")]
FormatQuery = Annotated[
    LedgerFormat | None,
    Query(
        alias="format",
        description="json, csv, xlsx or pdf (else the Accept header decides; default json)",
    ),
]
LangQuery = Annotated[
    Lang | None,
    Query(
        description=(
            "language of the CSV, XLSX and PDF labels: zh or en (else Accept-Language: zh when"
            " it prefers Chinese, otherwise en); JSON keys never change"
        ),
    ),
]
EXPORT_CONTENT: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The ledger as JSON, CSV (one table, a section column) or XLSX",
        "content": {
            JSON_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/LedgerDocument"}},
            CSV_MEDIA_TYPE: {"schema": {"type": "string"}},
            XLSX_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}},
            PDF_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


@dataclass(frozen=True, slots=True)
class LedgerScope:
    """One ledger the principal may read (or write): a site, or one organisation of it."""

    site_id: str
    org_id: str | None
    principal: Principal

    @property
    def stored_org(self) -> str:
        return self.org_id if self.org_id is not None else store.SITE_LEDGER

    def path(self, month: str) -> str:
        org = f"/organisations/{self.org_id}" if self.org_id is not None else ""
        return f"/api/v1/sites/{self.site_id}{org}/ledgers/{month}"


def _visible_site(site_id: str, principal: Principal, conn: sa.Connection) -> None:
    if not principal.sees_site(site_id) or registry.site_kind(conn, site_id) is None:
        raise not_found(f"site {site_id!r} not found")


def _may_write(principal: Principal) -> None:
    if principal.role is Role.REGULATOR:
        raise forbidden("a regulator key reads ledgers; it may not close or revise them")


def _site_scope(site_id: str, principal: Principal, conn: sa.Connection) -> LedgerScope:
    _visible_site(site_id, principal, conn)
    if principal.role is Role.ENTERPRISE:
        raise forbidden(
            "an enterprise key has its own organisation's ledger only: "
            f"/api/v1/sites/{site_id}/organisations/{principal.org_id}/ledgers/…"
        )
    return LedgerScope(site_id, None, principal)


def _org_scope(site_id: str, org_id: str, principal: Principal, conn: sa.Connection) -> LedgerScope:
    _visible_site(site_id, principal, conn)
    own = principal.org_scope
    if (own is not None and own != org_id) or not registry.organisation_exists(
        conn, site_id, org_id
    ):
        raise not_found(f"organisation {org_id!r} not found at site {site_id!r}")
    return LedgerScope(site_id, org_id, principal)


def _site_read(site_id: SiteIdPath, principal: PrincipalDep, conn: ConnDep) -> LedgerScope:
    return _site_scope(site_id, principal, conn)


def _site_write(site_id: SiteIdPath, principal: PrincipalDep, conn: ConnDep) -> LedgerScope:
    _may_write(principal)
    return _site_scope(site_id, principal, conn)


def _org_read(
    site_id: SiteIdPath, org_id: OrgIdPath, principal: PrincipalDep, conn: ConnDep
) -> LedgerScope:
    return _org_scope(site_id, org_id, principal, conn)


def _org_write(
    site_id: SiteIdPath, org_id: OrgIdPath, principal: PrincipalDep, conn: ConnDep
) -> LedgerScope:
    _may_write(principal)
    return _org_scope(site_id, org_id, principal, conn)


# --------------------------------------------------------------------------------------------
# Building the current computation (the draft)
# --------------------------------------------------------------------------------------------


def month_bounds(month: str, timezone: str) -> tuple[date, datetime, datetime]:
    """First day of ``month`` (``YYYY-MM``) and its site-local [start, end) in UTC."""
    first = date(int(month[:4]), int(month[5:]), 1)
    start, end = calendar.month_bounds(first, timezone)
    return first, start, end


def draft_document(
    conn: sa.Connection,
    site_id: str,
    org_id: str | None,
    month: str,
    now: datetime,
    preparer: str | None = None,
) -> dict[str, Any]:
    """The ledger as the calc results stand now."""
    site = registry.ledger_site(conn, site_id)
    if site is None:
        raise not_found(f"site {site_id!r} not found")
    first, start, end = month_bounds(month, site.timezone)
    if site.results_through is None:
        # The calc service has never committed results for the site (nor, perhaps, stored its
        # reference data): an empty ledger, completeness 0, no watermark in its header.
        inputs = LedgerInputs(site_id, org_id, start, end, (), {}, (), (), 0.0, 0.0)
    else:
        inputs = ledger_inputs(db.psycopg_utc(conn), site_id, start, end, org_id=org_id)
    claims = carbon.month_claims(conn, site_id, start, org_id)
    party = registry.ledger_party(conn, site_id, org_id)
    header = ledger_doc.LedgerHeader(
        site_id=site_id,
        org_id=org_id,
        month=month,
        timezone=site.timezone,
        generated_at=now,
        calc_results_through=site.results_through,
        calc_last_received_at=site.last_received_at,
        site_name=site.name,
        site_name_zh=party.site_name_zh,
        legal_name=party.legal_name,
        credit_code=party.credit_code,
        industry=party.industry,
        preparer=preparer,
    )
    register_claims = certificates.month_register_claims(conn, site_id, first, org_id)
    return ledger_doc.build_ledger(inputs, header, claims, register_claims)


def _revision_out(scope: LedgerScope, month: str, row: store.RevisionRow) -> RevisionOut:
    changes = json.loads(row.document).get("changes", [])
    return RevisionOut(
        revision=row.revision,
        content_sha256=row.content_sha256,
        document_sha256=row.document_sha256,
        reason=row.reason,
        created_by=row.created_by,
        created_at=row.created_at,
        change_count=len(changes),
        href=f"{scope.path(month)}/revisions/{row.revision}",
    )


@dataclass(frozen=True, slots=True)
class Export:
    """What a download is rendered as: the format and the language of its labels."""

    fmt: str
    lang: Lang

    @property
    def tag(self) -> str:
        """What, besides the document, the bytes depend on (ETag suffix, file name)."""
        return "" if self.fmt == "json" else f".{self.lang}.{self.fmt}"


def _export(request: Request, fmt: FormatQuery = None, lang: LangQuery = None) -> Export:
    if fmt is None:
        accept = request.headers.get("accept", "")
        media = {"text/csv": "csv", XLSX_MEDIA_TYPE: "xlsx", PDF_MEDIA_TYPE: "pdf"}
        chosen = next((f for m, f in media.items() if m in accept), "json")
    else:
        chosen = fmt
    if lang is None:
        first = request.headers.get("accept-language", "").split(",")[0].strip().lower()
        lang = "zh" if first.startswith("zh") else "en"
    return Export(chosen, lang)


ExportDep = Annotated[Export, Depends(_export)]


def _filename(scope: LedgerScope, month: str, revision: int | None, export: Export) -> str:
    who = scope.org_id or "site"
    suffix = f"r{revision}" if revision is not None else "draft"
    return f"ledger-{scope.site_id}-{who}-{month}-{suffix}{export.tag or '.json'}"


def _audit(ctx: ContextDep, principal: Principal, request: Request, status: int) -> AuditEntry:
    client = request.client
    route = request.scope.get("route")
    return AuditEntry(
        at=ctx.wall_clock(),
        key_id=principal.key_id,
        role=principal.role.value,
        method=request.method,
        route=getattr(route, "path", request.url.path),
        path=request.url.path,
        path_params={k: str(v) for k, v in request.path_params.items()},
        query={k: request.query_params.getlist(k) for k in request.query_params},
        status=status,
        client=client.host if client else None,
    )


# --------------------------------------------------------------------------------------------
# Handlers (each registered for the site's ledger and for an organisation's)
# --------------------------------------------------------------------------------------------


def _month(scope: LedgerScope, month: str, conn: sa.Connection, ctx: ContextDep) -> LedgerMonthOut:
    draft = draft_document(
        conn, scope.site_id, scope.org_id, month, ctx.wall_clock(), scope.principal.key_id
    )
    first, _s, _e = month_bounds(month, draft["header"]["timezone"])
    latest = store.latest_revision(conn, scope.site_id, scope.stored_org, first)
    if latest is None:
        return LedgerMonthOut(
            site_id=scope.site_id, org_id=scope.org_id, month=month, closed=False,
            latest_revision=None, differs=None, current_content_sha256=draft["content_sha256"],
            changes=[], ledger=LedgerDocument.model_validate(draft),
        )  # fmt: skip
    stored = json.loads(latest.document)
    changes = ledger_doc.diff_ledgers(stored, draft)
    return LedgerMonthOut(
        site_id=scope.site_id,
        org_id=scope.org_id,
        month=month,
        closed=True,
        latest_revision=_revision_out(scope, month, latest),
        differs=draft["content_sha256"] != latest.content_sha256,
        current_content_sha256=draft["content_sha256"],
        changes=[LedgerChange.model_validate(c) for c in changes],
        ledger=LedgerDocument.model_validate(stored),
    )


def _draft(
    scope: LedgerScope, month: str, export: Export, *, conn: sa.Connection, ctx: ContextDep,
) -> Response:  # fmt: skip
    draft = draft_document(
        conn, scope.site_id, scope.org_id, month, ctx.wall_clock(), scope.principal.key_id
    )
    return Response(
        render(draft, export.fmt, export.lang),
        media_type=MEDIA_TYPES[export.fmt],
        headers={
            "Cache-Control": "no-store",
            "Vary": VARY,
            "Content-Disposition": (
                f'attachment; filename="{_filename(scope, month, None, export)}"'
            ),
        },
    )


def _store_revision(
    scope: LedgerScope,
    month: str,
    reason: str | None,
    *,
    conn: sa.Connection,
    ctx: ContextDep,
    request: Request,
) -> RevisionOut:
    now = ctx.wall_clock()
    draft = draft_document(conn, scope.site_id, scope.org_id, month, now, scope.principal.key_id)
    first, _start, end = month_bounds(month, draft["header"]["timezone"])
    latest = store.latest_revision(conn, scope.site_id, scope.stored_org, first)
    if reason is None:
        if latest is not None:
            raise ApiProblemError(
                409,
                f"{month} is closed (revision {latest.revision}); a correction is a revision: "
                f"POST {scope.path(month)}/revisions with a reason",
            )
        refusal = close_refusal(
            draft,
            month=month,
            end=end,
            now=now,
            first_reading=readings.site_first_reading(conn, scope.site_id),
        )
        if refusal is not None:
            raise ApiProblemError(409, refusal)
        number, changes = 1, []
    else:
        if latest is None:
            raise ApiProblemError(
                409, f"{month} is not closed: POST {scope.path(month)}/close first"
            )
        if draft["content_sha256"] == latest.content_sha256:
            raise ApiProblemError(
                409, f"the current computation equals revision {latest.revision}: no revision"
            )
        number = latest.revision + 1
        changes = ledger_doc.diff_ledgers(json.loads(latest.document), draft)
    document = ledger_doc.closed(
        draft,
        revision=number,
        closed_at=now,
        closed_by=scope.principal.key_id,
        reason=reason,
        changes=changes,
    )
    data = render(document, "json")
    row = store.RevisionRow(
        site_id=scope.site_id,
        org_id=scope.stored_org,
        month=first,
        revision=number,
        document=data.decode("utf-8"),
        document_sha256=hashlib.sha256(data).hexdigest(),
        content_sha256=document["content_sha256"],
        reason=reason,
        created_by=scope.principal.key_id,
        created_at=now,
    )
    try:
        store.insert_revision(conn, row)
    except store.RevisionExists:
        raise ApiProblemError(
            409, f"revision {number} of {month} was just stored by another request"
        ) from None
    write_audit(conn, _audit(ctx, scope.principal, request, 201))
    conn.commit()
    return _revision_out(scope, month, row)


def _revisions(scope: LedgerScope, month: str, conn: sa.Connection) -> RevisionList:
    site = registry.ledger_site(conn, scope.site_id)
    assert site is not None  # the scope checked it
    first, _s, _e = month_bounds(month, site.timezone)
    rows = store.revisions(conn, scope.site_id, scope.stored_org, first)
    return RevisionList(items=[_revision_out(scope, month, r) for r in rows])


def _revision(
    scope: LedgerScope, month: str, number: int, export: Export, *, request: Request,
    conn: sa.Connection,
) -> Response:  # fmt: skip
    site = registry.ledger_site(conn, scope.site_id)
    assert site is not None
    first, _s, _e = month_bounds(month, site.timezone)
    row = store.get_revision(conn, scope.site_id, scope.stored_org, first, number)
    if row is None:
        raise not_found(f"{month} has no revision {number}")
    etag = f'"{row.document_sha256}{export.tag}"'
    headers = {"ETag": etag, "Cache-Control": IMMUTABLE, "Vary": VARY}
    if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    data = row.document.encode("utf-8")
    if export.fmt != "json":
        data = render(json.loads(row.document), export.fmt, export.lang)
    headers["Content-Disposition"] = (
        f'attachment; filename="{_filename(scope, month, number, export)}"'
    )
    return Response(data, media_type=MEDIA_TYPES[export.fmt], headers=headers)


SiteRead = Annotated[LedgerScope, Depends(_site_read)]
SiteWrite = Annotated[LedgerScope, Depends(_site_write)]
OrgRead = Annotated[LedgerScope, Depends(_org_read)]
OrgWrite = Annotated[LedgerScope, Depends(_org_write)]
_REVISION_RESPONSES: dict[int | str, dict[str, Any]] = {
    **EXPORT_CONTENT,
    304: {"description": "Not modified (If-None-Match matched the ETag)"},
}


@router.get(SITE_PREFIX, response_model=LedgerMonthOut, summary="A site's ledger of a month")
def site_month(scope: SiteRead, month: MonthPath, conn: ConnDep, ctx: ContextDep) -> LedgerMonthOut:
    return _month(scope, month, conn, ctx)


@router.get(
    ORG_PREFIX, response_model=LedgerMonthOut, summary="An organisation's ledger of a month"
)
def org_month(scope: OrgRead, month: MonthPath, conn: ConnDep, ctx: ContextDep) -> LedgerMonthOut:
    return _month(scope, month, conn, ctx)


@router.get(
    SITE_PREFIX + "/draft",
    response_class=Response,
    responses=EXPORT_CONTENT,
    summary="A site's ledger as computed now (json, csv, xlsx, pdf)",
)
def site_draft(
    *,
    scope: SiteRead,
    month: MonthPath,
    conn: ConnDep,
    ctx: ContextDep,
    export: ExportDep,
) -> Response:
    return _draft(scope, month, export, conn=conn, ctx=ctx)


@router.get(
    ORG_PREFIX + "/draft",
    response_class=Response,
    responses=EXPORT_CONTENT,
    summary="An organisation's ledger as computed now (json, csv, xlsx, pdf)",
)
def org_draft(
    *,
    scope: OrgRead,
    month: MonthPath,
    conn: ConnDep,
    ctx: ContextDep,
    export: ExportDep,
) -> Response:
    return _draft(scope, month, export, conn=conn, ctx=ctx)


@router.post(
    SITE_PREFIX + "/close",
    status_code=201,
    response_model=RevisionOut,
    responses=responses(409),
    summary="Close a site's month: revision 1 (admin, operator)",
)
def site_close(
    scope: SiteWrite, month: MonthPath, conn: ConnDep, ctx: ContextDep, request: Request
) -> RevisionOut:
    return _store_revision(scope, month, None, conn=conn, ctx=ctx, request=request)


@router.post(
    ORG_PREFIX + "/close",
    status_code=201,
    response_model=RevisionOut,
    responses=responses(409),
    summary="Close an organisation's month: revision 1 (admin, operator, the enterprise)",
)
def org_close(
    scope: OrgWrite, month: MonthPath, conn: ConnDep, ctx: ContextDep, request: Request
) -> RevisionOut:
    return _store_revision(scope, month, None, conn=conn, ctx=ctx, request=request)


@router.get(SITE_PREFIX + "/revisions", response_model=RevisionList, summary="Revisions")
def site_revisions(scope: SiteRead, month: MonthPath, conn: ConnDep) -> RevisionList:
    return _revisions(scope, month, conn)


@router.get(ORG_PREFIX + "/revisions", response_model=RevisionList, summary="Revisions")
def org_revisions(scope: OrgRead, month: MonthPath, conn: ConnDep) -> RevisionList:
    return _revisions(scope, month, conn)


@router.post(
    SITE_PREFIX + "/revisions",
    status_code=201,
    response_model=RevisionOut,
    responses=responses(400, 409),
    summary="Record the current computation as the next revision, with a reason",
)
def site_revise(
    *,
    scope: SiteWrite,
    month: MonthPath,
    body: RevisionIn,
    conn: ConnDep,
    ctx: ContextDep,
    request: Request,
) -> RevisionOut:
    return _store_revision(scope, month, body.reason, conn=conn, ctx=ctx, request=request)


@router.post(
    ORG_PREFIX + "/revisions",
    status_code=201,
    response_model=RevisionOut,
    responses=responses(400, 409),
    summary="Record the current computation as the next revision, with a reason",
)
def org_revise(
    *,
    scope: OrgWrite,
    month: MonthPath,
    body: RevisionIn,
    conn: ConnDep,
    ctx: ContextDep,
    request: Request,
) -> RevisionOut:
    return _store_revision(scope, month, body.reason, conn=conn, ctx=ctx, request=request)


@router.get(
    SITE_PREFIX + "/revisions/{revision}",
    response_class=Response,
    responses=_REVISION_RESPONSES,
    summary="One revision as stored (json, csv, xlsx, pdf); strong ETag",
)
def site_revision(
    *,
    scope: SiteRead,
    month: MonthPath,
    revision: RevisionPath,
    request: Request,
    conn: ConnDep,
    export: ExportDep,
) -> Response:
    return _revision(scope, month, revision, export, request=request, conn=conn)


@router.get(
    ORG_PREFIX + "/revisions/{revision}",
    response_class=Response,
    responses=_REVISION_RESPONSES,
    summary="One revision as stored (json, csv, xlsx, pdf); strong ETag",
)
def org_revision(
    *,
    scope: OrgRead,
    month: MonthPath,
    revision: RevisionPath,
    request: Request,
    conn: ConnDep,
    export: ExportDep,
) -> Response:
    return _revision(scope, month, revision, export, request=request, conn=conn)


# --------------------------------------------------------------------------------------------
# Bulk export
# --------------------------------------------------------------------------------------------


def _months(first: str, last: str) -> list[str]:
    """The months from ``first`` to ``last`` (``YYYY-MM``, both included)."""
    month = date(int(first[:4]), int(first[5:]), 1)
    out = []
    while (name := f"{month.year:04d}-{month.month:02d}") <= last:
        out.append(name)
        month = calendar.next_month(month)
    return out


@router.get(
    "/api/v1/ledgers/export",
    response_class=Response,
    responses={
        200: {
            "description": "A ZIP: manifest.json and one JSON ledger per site/organisation/month",
            "content": {ZIP_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
        },
    },
    summary="Every ledger the key may see for a range of months, as a ZIP",
)
def export_ledgers(
    principal: PrincipalDep,
    conn: ConnDep,
    ctx: ContextDep,
    first: Annotated[
        str, Query(alias="from", pattern=MONTH_PATTERN, description="first month, YYYY-MM")
    ],
    last: Annotated[
        str, Query(alias="to", pattern=MONTH_PATTERN, description="last month, YYYY-MM")
    ],
) -> Response:
    months = _months(first, last)
    if not months or len(months) > MAX_EXPORT_MONTHS:
        raise ApiProblemError(
            422, f"from {first} to {last}: give 1 to {MAX_EXPORT_MONTHS} months, from ≤ to"
        )
    now = ctx.wall_clock()
    sites = [s.site_id for s in registry.list_sites(conn, **_site_listing(principal))]
    files: list[tuple[str, bytes]] = []
    manifest: list[dict[str, Any]] = []
    for site_id in sites:
        site = registry.ledger_site(conn, site_id)
        if site is None:
            continue
        firsts = [month_bounds(m, site.timezone)[0] for m in months]
        closed = store.latest_revisions(conn, [site_id], firsts)
        orgs: list[str | None] = [None] if principal.org_scope is None else []
        orgs += [o for o in registry.organisation_ids(conn, site_id)
                 if principal.org_scope in (None, o)]  # fmt: skip
        for org_id in orgs:
            for month, first_day in zip(months, firsts, strict=True):
                row = closed.get((site_id, org_id or store.SITE_LEDGER, first_day))
                if row is not None:
                    data = row.document.encode("utf-8")
                    status, number, content = "closed", row.revision, row.content_sha256
                else:
                    draft = draft_document(conn, site_id, org_id, month, now, principal.key_id)
                    data = render(draft, "json")
                    status, number, content = "draft", None, draft["content_sha256"]
                name = f"{site_id}/{month}/{org_id or 'site'}.json"
                files.append((name, data))
                manifest.append(
                    {
                        "file": name, "site_id": site_id, "org_id": org_id, "month": month,
                        "status": status, "revision": number, "content_sha256": content,
                        "sha256": hashlib.sha256(data).hexdigest(),
                    }
                )  # fmt: skip
    index = {
        "schema": "carbonflow.ledger-export/1",
        "generated_at": now.isoformat(),
        "from": first,
        "to": last,
        "key_id": principal.key_id,
        "files": manifest,
    }
    body = zip_files([("manifest.json", ledger_doc.canonical_json(index)), *files])
    return Response(
        body,
        media_type=ZIP_MEDIA_TYPE,
        headers={
            "Cache-Control": "no-store",
            "Content-Disposition": f'attachment; filename="ledgers-{first}-{last}.zip"',
        },
    )


def _site_listing(principal: Principal) -> dict[str, Any]:
    return {
        "site_ids": principal.site_ids,
        "org_id": principal.org_scope,
        "limit": 10_000,
        "offset": 0,
    }

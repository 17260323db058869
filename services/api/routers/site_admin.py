"""Site documents by API: read the current document and its revisions, check a proposed one,
apply it (optimistic concurrency: ``ETag`` / ``If-Match``), add, replace or retire a device, and
register a new site. Every change is a new revision of the site document (who, when, why,
diff) written with the registry rows and the audit row in one transaction; nothing is deleted
(a retired device keeps its readings and results). Admin keys, and operator keys for their
sites.
"""

from __future__ import annotations

from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Header, Path, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from carbonflow.domain.document_diff import document_diff
from carbonflow.domain.site.model import (
    SiteDocument,
    document_json,
    format_loc,
    validation_issues,
)
from carbonflow.storage.registry import device_pk
from carbonflow.storage.registry_load import write_site
from carbonflow.storage.site_revisions import (
    Authorship,
    RevisionRow,
    get_revision,
    latest_revision,
    list_revisions,
    lock_site,
)
from services.api.access import Action, Principal
from services.api.audit import audit_write
from services.api.deps import ConnDep, ContextDep, PrincipalDep, SiteScope, id_path, site_access
from services.api.problems import ApiProblemError, forbidden, not_found, responses
from services.api.schemas_admin import (
    ChangeOut,
    DeviceIn,
    DocumentCheckIn,
    DocumentCheckOut,
    DocumentIn,
    DocumentProblemOut,
    RetireIn,
    RevisionOut,
    RevisionPage,
    RevisionSummaryOut,
)

router = APIRouter(
    prefix="/api/v1/sites", tags=["registry"], responses=responses(401, 403, 404, 429, 500)
)

AdminSite = Annotated[SiteScope, Depends(site_access(Action.MANAGE_REGISTRY))]
DeviceIdPath = Annotated[str, id_path("device", "grid-line-1")]
IfMatch = Annotated[
    str | None,
    Header(description='the ETag of the revision the change is based on, e.g. "r3"'),
]
_WRITE = responses(400, 409, 412, 422)


def _site_creator(principal: PrincipalDep) -> Principal:
    """Only a key that sees every site (admin) registers new ones."""
    if principal.site_ids is not None or not principal.may(Action.MANAGE_REGISTRY):
        raise forbidden(f"a {principal.role.value} key may not register sites")
    return principal


SiteCreator = Annotated[Principal, Depends(_site_creator)]


def etag(revision: int) -> str:
    return f'"r{revision}"'


def _author(principal: Principal) -> str:
    return f"{principal.key_id} ({principal.label})"


def _summary(row: RevisionRow) -> RevisionSummaryOut:
    return RevisionSummaryOut(
        site_id=row.site_id,
        revision=row.revision,
        document_sha256=row.document_sha256,
        author=row.author,
        reason=row.reason,
        source=row.source,
        created_at=row.created_at,
        changes=len(row.diff),
    )


def _full(row: RevisionRow) -> RevisionOut:
    return RevisionOut(
        **_summary(row).model_dump(),
        diff=[ChangeOut(**c) for c in row.diff],
        document=row.document,
    )


def _current(conn: sa.Connection, site_id: str) -> RevisionRow:
    row = latest_revision(conn, site_id)
    if row is None:  # every registered site has revision 1 since migration 0009
        raise not_found(f"site {site_id!r} has no document revision")
    return row


def _problems(data: dict[str, Any]) -> tuple[SiteDocument | None, list[DocumentProblemOut]]:
    try:
        return SiteDocument.model_validate(data), []
    except ValidationError as exc:
        return None, [
            DocumentProblemOut(path=format_loc(i.loc), message=i.message)
            for i in validation_issues(exc)
        ]


def _validated(data: dict[str, Any], site_id: str | None, where: tuple[str, ...]) -> SiteDocument:
    """``where``: the location prefix of the problems (``body.document``, or ``document`` for
    the document an edit would make)."""
    """The document, or 422 listing every problem with its path (nothing is stored)."""
    doc, problems = _problems(data)
    if doc is not None and site_id is not None and doc.site.id != site_id:
        problems = [
            DocumentProblemOut(
                path="site.id", message=f"{doc.site.id!r} is not this site ({site_id!r})"
            )
        ]
    if doc is None or problems:
        raise RequestValidationError(
            [
                {"loc": (*where, *p.path.split(".")), "msg": p.message, "type": "site"}
                for p in problems
            ]
        )
    return doc


def _check_match(if_match: str | None, current: RevisionRow, *, required: bool) -> None:
    if if_match is None:
        if required:
            raise ApiProblemError(
                428, f"send If-Match: {etag(current.revision)} (the revision you changed)"
            )
        return
    wanted = {t.strip() for t in if_match.split(",")}
    if "*" not in wanted and etag(current.revision) not in wanted:
        raise ApiProblemError(
            412,
            f"the document changed: the current revision is {etag(current.revision)}, not "
            f"{if_match}; read it again and reapply your change",
        )


def _apply(
    conn: sa.Connection,
    ctx: ContextDep,
    request: Request,
    response: Response,
    principal: Principal,
    doc: SiteDocument,
    reason: str,
    status: int = 200,
) -> RevisionOut:
    report = write_site(conn, doc, Authorship(_author(principal), reason, "api"))
    if report.revision is None:
        raise ApiProblemError(409, "nothing changes: the document equals the current revision")
    audit_write(conn, ctx, principal, request, status)
    conn.commit()
    response.status_code = status
    row = _current(conn, doc.site.id)
    response.headers["ETag"] = etag(row.revision)
    return _full(row)


@router.post(
    "",
    status_code=201,
    response_model=RevisionOut,
    summary="Register a new site from its document (admin)",
    responses=_WRITE,
)
def create_site(
    principal: SiteCreator,
    body: DocumentIn,
    conn: ConnDep,
    ctx: ContextDep,
    request: Request,
    response: Response,
) -> RevisionOut:
    doc = _validated(body.document, None, ("body", "document"))
    if lock_site(conn, doc.site.id):
        raise ApiProblemError(409, f"site {doc.site.id!r} is already registered")
    return _apply(conn, ctx, request, response, principal, doc, body.reason, 201)


@router.get(
    "/{site_id}/document",
    response_model=RevisionOut,
    summary="The site's current document (ETag: its revision)",
    responses=responses(422),
)
def read_document(site: AdminSite, conn: ConnDep, response: Response) -> RevisionOut:
    row = _current(conn, site.site_id)
    response.headers["ETag"] = etag(row.revision)
    return _full(row)


@router.get(
    "/{site_id}/revisions",
    response_model=RevisionPage,
    summary="The site document's revisions",
    responses=responses(422),
)
def revisions(site: AdminSite, conn: ConnDep) -> RevisionPage:
    return RevisionPage(items=[_summary(r) for r in list_revisions(conn, site.site_id)])


@router.get(
    "/{site_id}/revisions/{revision}",
    response_model=RevisionOut,
    summary="One revision with its document and its diff against the one before",
    responses=responses(422),
)
def revision(
    site: AdminSite, revision: Annotated[int, Path(ge=1, le=1_000_000)], conn: ConnDep
) -> RevisionOut:
    row = get_revision(conn, site.site_id, revision)
    if row is None:
        raise not_found(f"site {site.site_id!r} has no revision {revision}")
    return _full(row)


@router.post(
    "/{site_id}/document/check",
    response_model=DocumentCheckOut,
    summary="Check a proposed document: every problem with its path, the changes; stores nothing",
    responses=responses(400, 422),
)
def check_document(site: AdminSite, body: DocumentCheckIn, conn: ConnDep) -> DocumentCheckOut:
    doc, problems = _problems(body.document)
    if doc is not None and doc.site.id != site.site_id:
        problems = [DocumentProblemOut(path="site.id", message=f"{doc.site.id!r} is not this site")]
    if doc is None or problems:
        return DocumentCheckOut(valid=False, errors=problems, changes=[])
    current = _current(conn, site.site_id)
    changes = document_diff(current.document, document_json(doc))
    return DocumentCheckOut(
        valid=True, errors=[], changes=[ChangeOut(**c.record()) for c in changes]
    )


@router.put(
    "/{site_id}/document",
    response_model=RevisionOut,
    summary="Apply a whole document as the next revision (If-Match required)",
    responses=responses(400, 409, 412, 422, 428),
)
def put_document(
    site: AdminSite,
    body: DocumentIn,
    conn: ConnDep,
    ctx: ContextDep,
    request: Request,
    response: Response,
    if_match: IfMatch = None,
) -> RevisionOut:
    doc = _validated(body.document, site.site_id, ("body", "document"))
    lock_site(conn, site.site_id)
    _check_match(if_match, _current(conn, site.site_id), required=True)
    return _apply(conn, ctx, request, response, site.principal, doc, body.reason)


def _edited(conn: sa.Connection, site: SiteScope, if_match: str | None, edit: Any) -> SiteDocument:
    """The current document with ``edit(devices) -> devices`` applied, validated."""
    lock_site(conn, site.site_id)
    current = _current(conn, site.site_id)
    _check_match(if_match, current, required=False)
    data = dict(current.document)
    data["devices"] = edit(list(data.get("devices", [])))
    return _validated(data, site.site_id, ("document",))


@router.post(
    "/{site_id}/devices",
    status_code=201,
    response_model=RevisionOut,
    summary="Add a device (a new revision; If-Match optional)",
    responses=_WRITE,
)
def add_device(
    site: AdminSite,
    body: DeviceIn,
    conn: ConnDep,
    ctx: ContextDep,
    request: Request,
    response: Response,
    if_match: IfMatch = None,
) -> RevisionOut:
    device_id = body.device.get("id")

    def edit(devices: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if any(d.get("id") == device_id for d in devices):
            raise ApiProblemError(409, f"device {device_id!r} is already in the document")
        if _ever_registered(conn, site.site_id, device_id):
            raise ApiProblemError(
                409,
                f"device id {device_id!r} belonged to a retired device whose history is kept; "
                "choose another id",
            )
        return [*devices, body.device]

    doc = _edited(conn, site, if_match, edit)
    return _apply(conn, ctx, request, response, site.principal, doc, body.reason, 201)


@router.put(
    "/{site_id}/devices/{device_id}",
    response_model=RevisionOut,
    summary="Replace a device (new meter: another serial; a new revision; If-Match optional)",
    responses=_WRITE,
)
def replace_device(
    site: AdminSite,
    device_id: DeviceIdPath,
    body: DeviceIn,
    conn: ConnDep,
    ctx: ContextDep,
    request: Request,
    response: Response,
    if_match: IfMatch = None,
) -> RevisionOut:
    if body.device.get("id") != device_id:
        raise ApiProblemError(422, f"the device's id must be {device_id!r} (the path's)")

    def edit(devices: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not any(d.get("id") == device_id for d in devices):
            raise not_found(f"device {device_id!r} is not in the site document")
        return [body.device if d.get("id") == device_id else d for d in devices]

    doc = _edited(conn, site, if_match, edit)
    return _apply(conn, ctx, request, response, site.principal, doc, body.reason)


@router.post(
    "/{site_id}/devices/{device_id}/retire",
    response_model=RevisionOut,
    summary="Retire a device: out of the document, its history kept (a new revision)",
    responses=_WRITE,
)
def retire_device(
    site: AdminSite,
    device_id: DeviceIdPath,
    body: RetireIn,
    conn: ConnDep,
    ctx: ContextDep,
    request: Request,
    response: Response,
    if_match: IfMatch = None,
) -> RevisionOut:
    def edit(devices: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not any(d.get("id") == device_id for d in devices):
            raise not_found(f"device {device_id!r} is not in the site document")
        return [d for d in devices if d.get("id") != device_id]

    doc = _edited(conn, site, if_match, edit)
    return _apply(conn, ctx, request, response, site.principal, doc, body.reason)


def _ever_registered(conn: sa.Connection, site_id: str, device_id: object) -> bool:
    """Whether the registry has (or had: retired devices stay) a device with this id."""
    return (
        isinstance(device_id, str) and device_pk(conn, site_id, device_id, org_id=None) is not None
    )

"""FastAPI dependencies as ``Annotated`` aliases: context, connection, principal, site, paging."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, cast

import sqlalchemy as sa
from fastapi import Depends, Path, Query, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from carbonflow.storage.registry import site_kind
from services.api.access import Action, Principal
from services.api.context import ApiContext
from services.api.middleware import PRINCIPAL_STATE
from services.api.problems import ApiProblemError, forbidden, not_found

# Ids as the site model defines them (carbonflow/domain/site/model.py).
SITE_ID_PATTERN = r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$"
ID_PATTERN = r"^[a-z0-9](?:[a-z0-9_-]*[a-z0-9])?$"
MAX_ID_CHARS = 64
MAX_PAGE = 1000
MAX_OFFSET = 1_000_000

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="an API key from `carbonflow keys create`: `Authorization: Bearer cf_…`",
)


def _context(request: Request) -> ApiContext:
    return cast(ApiContext, request.app.state.api)


ContextDep = Annotated[ApiContext, Depends(_context)]


def _connection(ctx: ContextDep) -> Iterator[sa.Connection]:
    """One pooled connection per request; rolled back unless the handler commits."""
    with ctx.engine.connect() as conn:
        yield conn


# Released when the handler returns, before the response is sent: a streamed response holds none.
ConnDep = Annotated[sa.Connection, Depends(_connection, scope="function")]


def _principal(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> Principal:
    """Set by the middleware, which has already refused requests without a valid key."""
    principal = request.scope.get("state", {}).get(PRINCIPAL_STATE)
    if not isinstance(principal, Principal):
        raise ApiProblemError(401, "send an API key: Authorization: Bearer …")
    return principal


PrincipalDep = Annotated[Principal, Depends(_principal)]

SiteIdPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=MAX_ID_CHARS,
        pattern=SITE_ID_PATTERN,
        description="site id",
        examples=["shanxi-jinzhong-mine"],
    ),
]


def id_path(what: str, example: str) -> Any:
    """A path parameter holding a registry id (organisation, node, device)."""
    return Path(
        min_length=1,
        max_length=MAX_ID_CHARS,
        pattern=ID_PATTERN,
        description=f"{what} id",
        examples=[example],
    )


@dataclass(frozen=True, slots=True)
class SiteScope:
    """A site the principal may see, for one action; ``org_id`` restricts every query."""

    site_id: str
    kind: str
    org_id: str | None
    principal: Principal


def site_access(action: Action) -> Callable[..., SiteScope]:
    """Dependency: the path's site for ``action`` — 403 when the role may never do it, 404 when
    the key may not see the site (or it does not exist: the two are indistinguishable)."""

    def dependency(site_id: SiteIdPath, principal: PrincipalDep, conn: ConnDep) -> SiteScope:
        if not principal.may(action):
            raise forbidden(
                f"a {principal.role.value} key may not {action.value.replace('_', ' ')}"
            )
        kind = site_kind(conn, site_id) if principal.sees_site(site_id) else None
        if kind is None:
            raise not_found(f"site {site_id!r} not found")
        return SiteScope(site_id, kind, principal.org_scope, principal)

    return dependency


RegistrySite = Annotated[SiteScope, Depends(site_access(Action.READ_REGISTRY))]
LiveSite = Annotated[SiteScope, Depends(site_access(Action.READ_LIVE))]
RejectionsSite = Annotated[SiteScope, Depends(site_access(Action.READ_REJECTIONS))]
GreenReadSite = Annotated[SiteScope, Depends(site_access(Action.READ_GREEN))]
GreenWriteSite = Annotated[SiteScope, Depends(site_access(Action.WRITE_GREEN))]


@dataclass(frozen=True, slots=True)
class PageParams:
    limit: int
    offset: int


def _page(
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="items per page")] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="items to skip")] = 0,
) -> PageParams:
    return PageParams(limit, offset)


PageDep = Annotated[PageParams, Depends(_page)]

"""``/api/v1/me``: what the presented key is and may do."""

from __future__ import annotations

from fastapi import APIRouter

from services.api.access import PERMISSIONS
from services.api.deps import ContextDep, PrincipalDep
from services.api.problems import responses
from services.api.schemas import MeOut

router = APIRouter(prefix="/api/v1", tags=["access"], responses=responses(401, 429, 500))


@router.get("/me", response_model=MeOut, summary="The key making this request")
def me(principal: PrincipalDep, ctx: ContextDep) -> MeOut:
    return MeOut(
        key_id=principal.key_id,
        role=principal.role.value,
        label=principal.label,
        site_ids=None if principal.site_ids is None else sorted(principal.site_ids),
        org_id=principal.org_id,
        requests_per_minute=principal.requests_per_minute or ctx.settings.rate_per_minute,
        permissions=sorted(a.value for a in PERMISSIONS[principal.role]),
    )

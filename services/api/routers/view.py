"""The live web view (``/view/``): a static page and its assets, and the one data route the page
needs beyond the live and flows routes (``/api/v1/sites/{site_id}/view/summary``).

The page and its assets contain no data and need no key: the page asks for an API key, keeps it
in its script's memory only (no storage, no cookie; a reload asks again) and sends it as
``Authorization: Bearer`` on every data call (the live
stream is read with ``fetch``, since ``EventSource`` cannot send headers). See docs/live-view.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, cast

import psycopg
import swagger_ui_bundle  # type: ignore[import-untyped]
from fastapi import APIRouter
from fastapi import Path as PathParam
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from carbonflow.domain.indicators.live import carbon_now
from carbonflow.storage import carbon as carbon_db
from carbonflow.storage import indicators as indicators_db
from carbonflow.storage import readings as readings_db
from services.api.deps import ConnDep, ContextDep, LiveSite
from services.api.middleware import OPENAPI_PATH
from services.api.problems import not_found, responses
from services.api.schemas_flows import KpiOut, RecentCarbonOut, ViewSummaryOut

STATIC = Path(__file__).resolve().parents[1] / "static"
# Served by name only: the files present when the module loads, nothing else (no traversal).
ASSETS: Mapping[str, Path] = {
    p.relative_to(STATIC).as_posix(): p
    for p in sorted(STATIC.rglob("*"))
    if p.is_file() and p.name != "index.html"
}
_MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css", ".json": "application/json"}
# The page loads only its own assets and talks only to its own origin.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
_PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
# How far back the newest calculated slots are looked for (calc may lag, or a site fall silent).
RECENT_LOOKBACK = timedelta(hours=6)
KPI_GRAINS = ("year", "month")
KPI_LOOKBACK = timedelta(days=800)

router = APIRouter(tags=["live view"])


# --------------------------------------------------------------------------------------------
# Pure
# --------------------------------------------------------------------------------------------


def recent_carbon(
    points: Sequence[carbon_db.SeriesPoint], complete_before: datetime | None = None
) -> RecentCarbonOut:
    """The newest calculated hour of complete slots
    (:func:`carbonflow.domain.indicators.live.carbon_now`)."""
    now = carbon_now(points, complete_before)
    share = now.zero_carbon_share
    return RecentCarbonOut(
        **asdict(now),
        zero_carbon_share_pct=None if share is None else 100.0 * share,
        complete_before=complete_before,
    )


def newest_kpis(rows: Iterable[Mapping[str, Any]]) -> list[KpiOut]:
    """For each (organisation, indicator), its row of the newest period of the coarsest grain
    present (year before month): the KPI against its annual target, year to date."""
    best: dict[tuple[str, str], Mapping[str, Any]] = {}
    for row in rows:
        key = (row["org_id"], row["indicator"])
        held = best.get(key)
        rank = (KPI_GRAINS.index(row["grain"]), -row["period_start"].timestamp())
        if held is None or rank < (
            KPI_GRAINS.index(held["grain"]),
            -held["period_start"].timestamp(),
        ):
            best[key] = row
    return [
        KpiOut(
            org_id=row["org_id"] or None,
            indicator=row["indicator"],
            grain=row["grain"],
            period_start=row["period_start"],
            period_end=row["period_end"],
            value=row["value"],
            unit=row["unit"],
            basis=row["basis"],
            target_threshold=row["target_threshold"],
            target_comparator=row["target_comparator"],
            target_unit=row["target_unit"],
            status=row["status"],
            explanation=row["explanation"],
            completeness=row["completeness"],
            days_with_data=(row.get("coverage") or {}).get("days_with_data"),
            reason_en=(row.get("coverage") or {}).get("reason_en"),
            reason_zh=(row.get("coverage") or {}).get("reason_zh"),
        )
        for _key, row in sorted(best.items())
    ]


# --------------------------------------------------------------------------------------------
# The page (no data, no key)
# --------------------------------------------------------------------------------------------


def _page() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html", headers=_PAGE_HEADERS)


@router.get("/view", include_in_schema=False)
@router.get("/view/", include_in_schema=False)
def view_index() -> FileResponse:
    return _page()


@router.get("/view/sites/{site_id}", include_in_schema=False)
def view_site(site_id: str) -> FileResponse:
    del site_id  # read by the page's script from its own address
    return _page()


@router.get("/view/assets/{name:path}", include_in_schema=False)
def view_asset(name: Annotated[str, PathParam(max_length=200)]) -> FileResponse:
    path = ASSETS.get(name)
    if path is None:
        raise not_found(f"no asset {name!r}")
    return FileResponse(
        path,
        media_type=_MEDIA_TYPES.get(path.suffix, "text/plain; charset=utf-8"),
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )


# --------------------------------------------------------------------------------------------
# /docs: Swagger UI from the package, no CDN (works offline)
# --------------------------------------------------------------------------------------------

# Swagger UI's files from the swagger-ui-bundle-v2 package (Apache-2.0), served by name.
SWAGGER_UI: Path = Path(str(swagger_ui_bundle.swagger_ui_path))
SWAGGER_ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png")
_DOCS_MEDIA = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


@router.get("/docs", include_in_schema=False)
def swagger_docs() -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url=OPENAPI_PATH,
        title="carbonflow API",
        swagger_js_url="/docs/assets/swagger-ui-bundle.js",
        swagger_css_url="/docs/assets/swagger-ui.css",
        swagger_favicon_url="/docs/assets/favicon-32x32.png",
    )


@router.get("/docs/assets/{name}", include_in_schema=False)
def swagger_asset(name: Annotated[str, PathParam(max_length=64)]) -> FileResponse:
    if name not in SWAGGER_ASSETS:
        raise not_found(f"no asset {name!r}")
    path = SWAGGER_UI / name
    return FileResponse(
        path,
        media_type=_DOCS_MEDIA[path.suffix],
        headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"},
    )


# --------------------------------------------------------------------------------------------
# The page's summary data
# --------------------------------------------------------------------------------------------


@router.get(
    "/api/v1/sites/{site_id}/view/summary",
    response_model=ViewSummaryOut,
    summary="For the live view: emission rate and zero-carbon share of the newest calculated "
    "hour, and the newest KPIs against their targets",
    responses=responses(401, 403, 404, 422, 429, 500),
)
def view_summary(site: LiveSite, conn: ConnDep, ctx: ContextDep) -> ViewSummaryOut:
    now = ctx.wall_clock()
    # Slots are complete up to the newest reading received (or the clock, if that is older).
    newest = readings_db.newest_reading_ts(conn, site.site_id, org_id=site.org_id)
    complete_before = now if newest is None else min(now, newest)
    raw = cast(psycopg.Connection[Any], conn.connection.driver_connection)
    points = carbon_db.site_series(
        raw, site.site_id, "15min", now - RECENT_LOOKBACK, now, org_id=site.org_id
    )
    # The site's own indicators (org "") or, for an enterprise, its organisation's only.
    rows = [
        r
        for grain in KPI_GRAINS
        for r in indicators_db.indicators(
            raw,
            site.site_id,
            grain=grain,
            start=now - KPI_LOOKBACK,
            end=now,
            org_id=site.org_id or "",
        )
    ]
    return ViewSummaryOut(
        site_id=site.site_id,
        org_id=site.org_id,
        as_of=now,
        recent=recent_carbon(points, complete_before),
        kpis=newest_kpis(rows),
    )

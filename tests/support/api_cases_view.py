"""Access-matrix rows for the flows route and the live view (see ``tests/support/api_support.py``).

Keys of the shared seed: operator and regulator of the mine, enterprise ``cathode-plant`` of
the park. The view's page and assets are public (they hold no data); its summary route is not.
"""

from __future__ import annotations

from tests.support.api_support import MINE, Case, M, P, S

#        method   path                                                   adm  op   ent  reg
CASES: tuple[Case, ...] = (
    Case("GET", f"{M}/flows",                                           200, 200, 404, 200),
    Case("GET", f"{P}/flows",                                           200, 404, 200, 404),
    Case("GET", f"{P}/flows?period=2026-11",                            200, 404, 200, 404),
    Case("GET", f"{M}/flows?period=month",                              200, 200, 404, 200),
    Case("GET", f"{M}/flows?start=2026-11-22T16:00:00Z&end=2026-11-23T16:00:00Z",
                                                                        200, 200, 404, 200),
    # Invalid periods: 422 for a key that sees the site, 404 for one that does not.
    Case("GET", f"{M}/flows?period=yesterday",                          422, 422, 404, 422),
    Case("GET", f"{M}/flows?start=2026-11-23T00:05:00Z&end=2026-11-23T16:00:00Z",
                                                                        422, 422, 404, 422),
    Case("GET", f"{S}/nowhere/flows",                                   404, 404, 404, 404),
    Case("POST", f"{M}/flows",                                          405, 405, 405, 405),
    Case("GET", f"{M}/view/summary",                                    200, 200, 404, 200),
    Case("GET", f"{P}/view/summary",                                    200, 404, 200, 404),
    Case("GET", f"{S}/nowhere/view/summary",                            404, 404, 404, 404),
    Case("GET", "/view/",                                               200, 200, 200, 200,
         public=True),
    Case("GET", f"/view/sites/{MINE}",                                  200, 200, 200, 200,
         public=True),
    Case("GET", "/view/assets/view.js",                                 200, 200, 200, 200,
         public=True),
    Case("GET", "/view/assets/vendor/d3-sankey.min.js",                 200, 200, 200, 200,
         public=True),
    Case("GET", "/view/assets/../routers/view.py",                      404, 404, 404, 404,
         public=True),
    Case("GET", "/view/assets/nope.js",                                 404, 404, 404, 404,
         public=True),
    # Swagger UI from the package (no CDN): the page and its three assets, nothing else.
    Case("GET", "/docs",                                                200, 200, 200, 200,
         public=True),
    Case("GET", "/docs/assets/swagger-ui-bundle.js",                    200, 200, 200, 200,
         public=True),
    Case("GET", "/docs/assets/swagger-ui.css",                          200, 200, 200, 200,
         public=True),
    Case("GET", "/docs/assets/index.html",                              404, 404, 404, 404,
         public=True),
    Case("GET", "/docs/assets/..%2Fswagger-ui.js",                      404, 404, 404, 404,
         public=True),
)  # fmt: skip

"""Access-matrix rows for the administration routes (see ``tests/support/api_support.py``).

Only admin keys manage keys; every other role gets 403 (the route exists for it, the action
never does). A successful write (None) runs in ``tests/services/api/test_keys.py``.
"""

from __future__ import annotations

from tests.support.api_support import MINE, Case, M, P, S

K = "/api/v1/keys"
_NEW = {"role": "operator", "site_ids": [MINE], "label": "matrix"}

#        method   path                                                   adm  op   ent  reg
KEY_CASES: tuple[Case, ...] = (
    Case("GET", K,                                                      200, 403, 403, 403),
    Case("POST", K,                                                    None, 403, 403, 403, _NEW),
    Case("POST", K,                                                     422, 403, 403, 403,
         {"role": "operator", "label": "no site"}),
    Case("GET", f"{K}/0123456789ab",                                    404, 403, 403, 403),
    Case("GET", f"{K}/not-a-key-id",                                    422, 403, 403, 403),
    Case("POST", f"{K}/0123456789ab/rotate",                            404, 403, 403, 403),
    Case("POST", f"{K}/0123456789ab/revoke",                            404, 403, 403, 403),
    Case("DELETE", K,                                                   405, 405, 405, 405),
)  # fmt: skip

# Site documents: admin everywhere, the operator at the mine; others 403 (never), unseen 404.
_DOC = {"document": {"site": {}}, "reason": "matrix"}
_DEVICE = {"device": {"id": "x"}, "reason": "matrix"}
_CHECK: dict[str, dict[str, dict[str, str]]] = {"document": {"site": {}}}
SITE_CASES: tuple[Case, ...] = (
    Case("POST", S,                                                     422, 403, 403, 403, _DOC),
    Case("GET", f"{M}/document",                                        200, 200, 403, 403),
    Case("GET", f"{P}/document",                                        200, 404, 403, 403),
    Case("GET", f"{M}/revisions",                                       200, 200, 403, 403),
    Case("GET", f"{M}/revisions/1",                                     200, 200, 403, 403),
    Case("GET", f"{M}/revisions/99",                                    404, 404, 403, 403),
    Case("POST", f"{M}/document/check",                                 200, 200, 403, 403,
         _CHECK),
    Case("PUT", f"{M}/document",                                        422, 422, 403, 403, _DOC),
    Case("POST", f"{M}/devices",                                        422, 422, 403, 403,
         _DEVICE),
    Case("PUT", f"{M}/devices/grid-line-1",                             422, 422, 403, 403,
         _DEVICE),
    Case("POST", f"{M}/devices/nowhere/retire",                         404, 404, 403, 403,
         {"reason": "matrix"}),
    Case("POST", f"{P}/devices/nowhere/retire",                         404, 404, 403, 403,
         {"reason": "matrix"}),
)  # fmt: skip

IMPORT_CASES: tuple[Case, ...] = (
    Case("POST", f"{M}/imports",                                        422, 422, 403, 403),
    Case("POST", f"{P}/imports",                                        422, 404, 403, 403),
    Case("GET", f"{M}/imports",                                         405, 405, 405, 405),
)  # fmt: skip

CASES = KEY_CASES + SITE_CASES + IMPORT_CASES

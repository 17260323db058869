"""Access-matrix rows for the administration routes (see ``tests/support/api_support.py``).

Only admin keys manage keys; every other role gets 403 (the route exists for it, the action
never does). A successful write (None) runs in ``tests/services/api/test_keys.py``.
"""

from __future__ import annotations

from tests.support.api_support import MINE, Case

K = "/api/v1/keys"
_NEW = {"role": "operator", "site_ids": [MINE], "label": "matrix"}

#        method   path                                                   adm  op   ent  reg
CASES: tuple[Case, ...] = (
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

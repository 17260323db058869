"""Access-matrix rows for the push status route (see ``tests/support/api_support.py``)."""

from __future__ import annotations

from tests.support.api_support import Case

#        method   path                                      adm  op   ent  reg
CASES: tuple[Case, ...] = (
    Case("GET", "/api/v1/push/status",                      200, 200, 403, 200),
    Case("POST", "/api/v1/push/status",                     405, 405, 405, 405),
)  # fmt: skip

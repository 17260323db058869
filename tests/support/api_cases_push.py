"""Access-matrix rows for the push routes (see ``tests/support/api_support.py``).

Operator and regulator keys are bound to the mine: the park is 404 for them. The shared seed has
no energy batch: reviewing one is 404 where allowed; enterprise keys never see push data and
regulators never review (403).
"""

from __future__ import annotations

from tests.support.api_support import MINE, PARK, Case

M, P = f"/api/v1/sites/{MINE}", f"/api/v1/sites/{PARK}"
NOTE = {"note": "checked with the meter log / 已核对"}

#        method   path                                                adm  op   ent  reg
CASES: tuple[Case, ...] = (
    Case("GET", "/api/v1/push/status",                                200, 200, 403, 200),
    Case("POST", "/api/v1/push/status",                               405, 405, 405, 405),
    Case("GET", f"{M}/push/energy-batches",                           200, 200, 403, 200),
    Case("GET", f"{M}/push/energy-batches?state=held&limit=5",        200, 200, 403, 200),
    Case("GET", f"{M}/push/energy-batches?state=lost",                422, 422, 403, 422),
    Case("GET", f"{M}/push/energy-batches?limit=0",                   422, 422, 403, 422),
    Case("GET", f"{P}/push/energy-batches",                           200, 404, 403, 404),
    Case("POST", f"{M}/push/energy-batches/99/release",               404, 404, 403, 403, NOTE),
    Case("POST", f"{M}/push/energy-batches/99/withdraw",              404, 404, 403, 403, NOTE),
    Case("POST", f"{M}/push/energy-batches/99/release",               422, 422, 403, 403, {}),
    Case("POST", f"{M}/push/energy-batches/0/release",                422, 422, 403, 403, NOTE),
    Case("POST", f"{P}/push/energy-batches/99/release",               404, 404, 403, 403, NOTE),
)  # fmt: skip

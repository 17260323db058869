"""Access-matrix rows for the certificate register's claim routes (docs/green.md).

Admins and enterprise keys (their own batches) claim, withdraw, cancel and transfer; operators and
regulators read only (403 on a write). The seeded instruments are period instruments (no
production month): a claim or cancellation is 409 where the key may write and see them; the
data centre's contract is another organisation's, which the enterprise probes: 404, never 403.
The register's rules are tested in ``tests/services/api/test_green_register.py``.
"""

from __future__ import annotations

from tests.support.api_support import Case, M, P

G = "green-instruments"
CLAIM = {"month": "2026-03", "serial_first": 1, "serial_last": 5}

#          method    path                                             adm  op   ent  reg
CASES: tuple[Case, ...] = (
    Case("GET", f"{P}/{G}/GEC-CATHODE-1/claims",                      200, 404, 200, 404),
    Case("GET", f"{P}/{G}/PPA-DC-1/claims",                           200, 404, 404, 404),
    Case("GET", f"{M}/{G}/GEC-MINE-1/claims",                         200, 200, 404, 200),
    Case("GET", f"{M}/{G}/NOTHING/claims",                            404, 404, 404, 404),
    Case("POST", f"{P}/{G}/GEC-CATHODE-1/claims",                     409, 403, 409, 403,
         CLAIM),
    Case("POST", f"{P}/{G}/PPA-DC-1/claims",                          409, 403, 404, 403,
         {"month": "2026-03", "mwh": 5.0}),
    Case("POST", f"{M}/{G}/GEC-MINE-1/claims",                        409, 403, 404, 403,
         CLAIM),
    Case("POST", f"{P}/{G}/GEC-CATHODE-1/claims/1/withdraw",          409, 403, 409, 403),
    Case("POST", f"{P}/{G}/GEC-CATHODE-1/cancel",                     409, 403, 409, 403),
    Case("POST", f"{P}/{G}/PPA-DC-1/cancel",                          409, 403, 404, 403),
    Case("POST", f"{P}/{G}/GEC-CATHODE-1/transfer",                   409, 403, 409, 403,
         {"to_org_id": "data-centre"}),
    Case("POST", f"{P}/{G}/PPA-DC-1/transfer",                        409, 403, 404, 403,
         {"to_org_id": "cathode-plant"}),
    Case("DELETE", f"{P}/{G}/GEC-CATHODE-1/claims",                   405, 405, 405, 405),
)  # fmt: skip

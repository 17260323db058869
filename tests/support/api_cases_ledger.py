"""Access-matrix rows for the ledger routes (see ``tests/support/api_support.py``).

The shared database has no closed ledger (its successful closes are the ``None`` cells, run in
``tests/services/api/test_ledgers.py`` on a database of their own), so every revision is 404
and every revise 409 ("not closed"). October 2026 has ended at the fixed ``NOW``; November not.
"""

from __future__ import annotations

from tests.support.api_support import Case, M, P

OCT, NOV = "2026-10", "2026-11"
CATHODE, DC = f"{P}/organisations/cathode-plant", f"{P}/organisations/data-centre"
COAL = f"{M}/organisations/jinzhong-coal"
REASON = {"reason": "late readings of the grid meters"}
EXPORT = "/api/v1/ledgers/export"

#          method  path                                               adm  op   ent  reg
CASES: tuple[Case, ...] = (
    Case("GET", f"{M}/ledgers/{OCT}",                                 200, 200, 404, 200),
    Case("GET", f"{P}/ledgers/{OCT}",                                 200, 404, 403, 404),
    Case("GET", f"{M}/ledgers/2026-13",                               422, 422, 404, 422),
    Case("GET", f"{COAL}/ledgers/{OCT}",                              200, 200, 404, 200),
    Case("GET", f"{CATHODE}/ledgers/{OCT}",                           200, 404, 200, 404),
    Case("GET", f"{DC}/ledgers/{OCT}",                                200, 404, 404, 404),
    Case("GET", f"{P}/organisations/nobody/ledgers/{OCT}",            404, 404, 404, 404),
    Case("GET", f"{M}/ledgers/{OCT}/draft",                           200, 200, 404, 200),
    Case("GET", f"{P}/ledgers/{OCT}/draft",                           200, 404, 403, 404),
    Case("GET", f"{CATHODE}/ledgers/{OCT}/draft",                     200, 404, 200, 404),
    Case("GET", f"{DC}/ledgers/{OCT}/draft",                          200, 404, 404, 404),
    Case("GET", f"{M}/ledgers/{OCT}/draft?format=pdf&lang=zh",        200, 200, 404, 200),
    Case("GET", f"{M}/ledgers/{OCT}/draft?format=docx",               422, 422, 404, 422),
    Case("GET", f"{M}/ledgers/{OCT}/draft?format=csv&lang=fr",        422, 422, 404, 422),
    Case("POST", f"{M}/ledgers/{OCT}/close",                         None, None, 404, 403),
    Case("POST", f"{M}/ledgers/{NOV}/close",                          409, 409, 404, 403),
    Case("POST", f"{P}/ledgers/{OCT}/close",                         None, 404, 403, 403),
    Case("POST", f"{CATHODE}/ledgers/{OCT}/close",                   None, 404, None, 403),
    Case("POST", f"{DC}/ledgers/{OCT}/close",                        None, 404, 404, 403),
    Case("POST", f"{COAL}/ledgers/{OCT}/close",                      None, None, 404, 403),
    Case("GET", f"{M}/ledgers/{OCT}/revisions",                       200, 200, 404, 200),
    Case("GET", f"{P}/ledgers/{OCT}/revisions",                       200, 404, 403, 404),
    Case("GET", f"{CATHODE}/ledgers/{OCT}/revisions",                 200, 404, 200, 404),
    Case("GET", f"{DC}/ledgers/{OCT}/revisions",                      200, 404, 404, 404),
    Case("POST", f"{M}/ledgers/{OCT}/revisions",                      409, 409, 404, 403, REASON),
    Case("POST", f"{M}/ledgers/{OCT}/revisions",                      422, 422, 404, 403, {}),
    Case("POST", f"{P}/ledgers/{OCT}/revisions",                      409, 404, 403, 403, REASON),
    Case("POST", f"{CATHODE}/ledgers/{OCT}/revisions",                409, 404, 409, 403, REASON),
    Case("POST", f"{DC}/ledgers/{OCT}/revisions",                     409, 404, 404, 403, REASON),
    Case("GET", f"{M}/ledgers/{OCT}/revisions/1",                     404, 404, 404, 404),
    Case("GET", f"{M}/ledgers/{OCT}/revisions/0",                     422, 422, 404, 422),
    Case("GET", f"{CATHODE}/ledgers/{OCT}/revisions/1",               404, 404, 404, 404),
    Case("GET", f"{DC}/ledgers/{OCT}/revisions/1",                    404, 404, 404, 404),
    Case("PUT", f"{M}/ledgers/{OCT}",                                 405, 405, 405, 405),
    Case("DELETE", f"{M}/ledgers/{OCT}/revisions/1",                  405, 405, 405, 405),
    Case("GET", EXPORT,                                               422, 422, 422, 422),
    Case("GET", f"{EXPORT}?from={OCT}&to={NOV}",                      200, 200, 200, 200),
    Case("GET", f"{EXPORT}?from={NOV}&to={OCT}",                      422, 422, 422, 422),
    Case("POST", EXPORT,                                              405, 405, 405, 405),
)  # fmt: skip

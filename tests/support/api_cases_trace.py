"""Access-matrix rows for the trace routes (see ``tests/support/api_support.py``).

The shared database has no calc results, so a line or indicator the key may see is 404 (the
ledger has no such line; no stored value): what the rows check is who gets past the access rules —
an enterprise key reads its own organisation's lines only (the site's own ledger: 403, as the
ledger; another organisation's: 404), and a malformed line id or grain is 422 for a key that sees
the site. The traces themselves are tested on real calc results in
``tests/services/api/test_trace.py``.
"""

from __future__ import annotations

from tests.support.api_support import Case, M, P

OCT = "2026-10"
CATHODE, DC = f"{P}/organisations/cathode-plant", f"{P}/organisations/data-centre"
LINE = "lines/purchased_electricity.electricity.scope_2/trace"

#          method  path                                               adm  op   ent  reg
CASES: tuple[Case, ...] = (
    Case("GET", f"{M}/ledgers/{OCT}/{LINE}",                          404, 404, 404, 404),
    Case("GET", f"{P}/ledgers/{OCT}/{LINE}",                          404, 404, 403, 404),
    Case("GET", f"{CATHODE}/ledgers/{OCT}/{LINE}",                    404, 404, 404, 404),
    Case("GET", f"{DC}/ledgers/{OCT}/{LINE}",                         404, 404, 404, 404),
    Case("GET", f"{M}/ledgers/{OCT}/lines/not-a-line/trace",          422, 422, 404, 422),
    Case("GET", f"{CATHODE}/ledgers/{OCT}/lines/not-a-line/trace",    422, 404, 422, 404),
    Case("GET", f"{M}/ledgers/2026-13/{LINE}",                        422, 422, 404, 422),
    Case("POST", f"{M}/ledgers/{OCT}/{LINE}",                         405, 405, 405, 405),
    Case("GET", f"{M}/indicators/co2_per_raw_coal/trace",             404, 404, 404, 404),
    Case("GET", f"{P}/indicators/co2_per_energy/trace",               404, 404, 404, 404),
    Case("GET", f"{P}/indicators/energy_tce/trace?org_id=cathode-plant",
                                                                      404, 404, 404, 404),
    Case("GET", f"{P}/indicators/energy_tce/trace?org_id=data-centre",
                                                                      404, 404, 404, 404),
    Case("GET", f"{M}/indicators/co2_per_raw_coal/trace?grain=week",  422, 422, 404, 422),
    Case("GET", f"{M}/indicators/co2_per_raw_coal/trace?period=1900-01-01",
                                                                      422, 422, 404, 422),
    Case("GET", f"{M}/indicators/Not%20one/trace",                    422, 422, 404, 422),
    Case("DELETE", f"{M}/indicators/co2_per_raw_coal/trace",          405, 405, 405, 405),
)  # fmt: skip

"""Access-matrix rows for the calc-result routes (see ``tests/support/api_support.py``):
carbon series, device energy, indicators, budgets, events, factor sets and library,
regulator aggregates.

In the seeded database the operator and regulator keys see the mine, the enterprise key the
park's cathode plant; the data centre (``data-centre``, ``dc-incomer-a``, ``dc-it-halls``) is
another organisation of the park, which the enterprise probes: 404, never 403. The routes only
read: a write is 405 for every role. The figures themselves are tested on real calc results in
``tests/services/api/test_carbon.py``.
"""

from __future__ import annotations

from tests.support.api_support import Case, M, P

A = "/api/v1/aggregates"

#          method    path                                             adm  op   ent  reg
CASES: tuple[Case, ...] = (
    Case("GET", f"{M}/carbon/series",                                 200, 200, 404, 200),
    Case("GET", f"{P}/carbon/series",                                 200, 404, 200, 404),
    Case("GET", f"{P}/carbon/series?org_id=cathode-plant",            200, 404, 200, 404),
    Case("GET", f"{P}/carbon/series?org_id=data-centre",              200, 404, 404, 404),
    Case("GET", f"{P}/carbon/series?node_id=dc-it-halls",             200, 404, 404, 404),
    Case("GET", f"{M}/carbon/series?org_id=nobody",                   404, 404, 404, 404),
    Case("GET", f"{M}/carbon/series?grain=week",                      422, 422, 404, 422),
    Case("GET", f"{M}/carbon/series?grain=15min&start=2026-01-01",    422, 422, 404, 422),
    Case("GET", f"{M}/devices/grid-line-1/energy",                    200, 200, 404, 200),
    Case("GET", f"{P}/devices/cathode-incomer-1/energy",              200, 404, 200, 404),
    Case("GET", f"{P}/devices/dc-incomer-a/energy",                   200, 404, 404, 404),
    Case("GET", f"{M}/indicators",                                    200, 200, 404, 200),
    Case("GET", f"{P}/indicators?grain=year",                         200, 404, 200, 404),
    Case("GET", f"{P}/indicators?org_id=data-centre",                 200, 404, 404, 404),
    # No factor library is stored in the seeded database: a range cannot be computed (409).
    Case("GET", f"{M}/indicators/range",                              409, 409, 404, 409),
    Case("GET", f"{P}/indicators/range",                              409, 404, 409, 404),
    Case("GET", f"{P}/indicators/range?org_id=data-centre",           409, 404, 404, 404),
    Case("GET", f"{M}/budgets",                                       200, 200, 404, 200),
    Case("GET", f"{P}/budgets",                                       200, 404, 200, 404),
    Case("GET", f"{P}/budgets?org_id=data-centre",                    200, 404, 404, 404),
    Case("GET", f"{M}/budgets?year=2026&burn_down=true",              200, 200, 404, 200),
    Case("GET", f"{M}/events",                                        200, 200, 404, 200),
    Case("GET", f"{P}/events?kind=budget",                            200, 404, 200, 404),
    Case("GET", f"{P}/events?org_id=data-centre",                     200, 404, 404, 404),
    Case("GET", "/api/v1/factor-sets/1",                              404, 404, 404, 404),
    Case("GET", "/api/v1/factor-sets/0",                              422, 422, 422, 422),
    Case("GET", "/api/v1/factors",                                    200, 200, 200, 200),
    Case("GET", "/api/v1/factors?confidence=A&status=all",            200, 200, 200, 200),
    Case("GET", f"{A}/totals",                                        200, 200, 403, 200),
    Case("GET", f"{A}/totals?site_id=inner-mongolia-ordos-park",      200, 404, 403, 404),
    Case("GET", f"{A}/compliance",                                    200, 200, 403, 200),
    Case("GET", f"{A}/compliance?site_id=shanxi-jinzhong-mine",       200, 200, 403, 200),
    Case("GET", f"{A}/completeness",                                  200, 200, 403, 200),
    Case("GET", f"{A}/completeness?site_id=nowhere",                  404, 404, 403, 404),
    # Read-only routes: no role may write (a regulator never writes).
    Case("POST", f"{M}/carbon/series",                                405, 405, 405, 405),
    Case("PUT", f"{P}/budgets",                                       405, 405, 405, 405),
    Case("DELETE", f"{M}/events",                                     405, 405, 405, 405),
    Case("DELETE", "/api/v1/factor-sets/1",                           405, 405, 405, 405),
    Case("POST", "/api/v1/factors",                                   405, 405, 405, 405),
    Case("POST", f"{A}/totals",                                       405, 405, 405, 405),
)  # fmt: skip

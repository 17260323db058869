"""Access-matrix rows for the alarm routes (see ``tests/support/api_support.py``).

Operators and admins read and acknowledge; regulators read; enterprise keys see no alarms (403:
alarms are the site's, not one organisation's); only admins read and write the configuration.
The shared seed has no alarms: acknowledging one that does not exist is 404 where allowed.
"""

from __future__ import annotations

from tests.support.api_support import Case, M, P, S

#        method   path                                                   adm  op   ent  reg
CASES: tuple[Case, ...] = (
    Case("GET", f"{M}/alarms",                                          200, 200, 403, 200),
    Case("GET", f"{P}/alarms",                                          200, 404, 403, 404),
    Case("GET", f"{M}/alarms?state=open&state=acknowledged",            200, 200, 403, 200),
    Case("GET", f"{M}/alarms?state=gone",                               422, 422, 403, 422),
    Case("GET", f"{S}/nowhere/alarms",                                  404, 404, 403, 404),
    Case("GET", f"{M}/alarms/deliveries",                               200, 200, 403, 200),
    Case("GET", f"{M}/alarms/deliveries?failed=true",                   200, 200, 403, 200),
    Case("POST", f"{M}/alarms/999/acknowledge",                         404, 404, 403, 403),
    Case("POST", f"{M}/alarms/999/resolve",                             404, 404, 403, 403),
    Case("POST", f"{M}/alarms/0/acknowledge",                           422, 422, 403, 403),
    Case("GET", f"{M}/alarms/config",                                   200, 403, 403, 403),
    Case("PUT", f"{M}/alarms/config",                                  None, 403, 403, 403,
         {"rules": []}),
    Case("PUT", f"{M}/alarms/config",                                   422, 403, 403, 403,
         {"channels": [{"kind": "sms"}]}),
    Case("DELETE", f"{M}/alarms/config",                                405, 405, 405, 405),
)  # fmt: skip

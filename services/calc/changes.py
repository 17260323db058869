"""Change detection: what changed since the results were computed becomes a recompute request.

- a device whose interval configuration changed (multiplier, modulus, metrics): an
  ``intervals`` request over its whole history;
- a site whose bookings or document changed (roles, nodes, province …): a ``carbon`` request
  over every year with results;
- an accounting year whose factor fingerprint differs from the one its results were computed
  with (a new factor version, a pin, an override, a new certificate): a ``carbon`` request over
  that year.

Each function returns the number of requests it added; the engine commits.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from carbonflow.domain.readings.device_intervals import ceil_to, floor_to
from carbonflow.domain.site.plan import SitePlan
from carbonflow.storage import calc_queue
from carbonflow.storage import readings as readings_db
from carbonflow.storage.db import Conn
from services.calc.context import log
from services.calc.reference import Reference, SiteYears
from services.calc.windows import SLOT

#: The key of the site's bookings in the stored device configuration.
BOOKING = "_booking"


def detect_changes(conn: Conn, plans: Mapping[str, SitePlan], documents: Mapping[str, str]) -> int:
    """Device configuration and site document changes (``documents``: the document SHA-256
    of every site) → requests; the state of every site saved."""
    states = calc_queue.site_states(conn)
    return sum(
        _site_changes(conn, plan, states.get(site_id), documents[site_id])
        for site_id, plan in plans.items()
    )


def _site_changes(
    conn: Conn, plan: SitePlan, state: calc_queue.SiteState | None, document_sha256: str
) -> int:
    config: dict[str, Any] = dict(plan.device_config())
    config[BOOKING] = plan.booking_hash()
    if state is None:
        calc_queue.save_site_state(
            conn, plan.site_id, document_sha256=document_sha256, device_config=config
        )
        return 0
    if state.device_config == config and state.document_sha256 == document_sha256:
        return 0
    old = state.device_config
    changed = [int(pk) for pk, h in config.items() if pk != BOOKING and pk in old and old[pk] != h]
    added = sum(_device_request(conn, plan.site_id, pk) for pk in changed)
    if old.get(BOOKING) != config[BOOKING] or state.document_sha256 != document_sha256:
        added += _document_request(conn, plan)
    calc_queue.save_site_state(
        conn, plan.site_id, document_sha256=document_sha256, device_config=config
    )
    return added


def _device_request(conn: Conn, site_id: str, pk: int) -> int:
    """An ``intervals`` request over the device's whole history (none without readings)."""
    first, last = readings_db.reading_span(conn, [pk])
    if first is None or last is None:
        return 0
    calc_queue.add_request(
        conn, site_id, "intervals", floor_to(first, SLOT), ceil_to(last, SLOT) + SLOT,
        reason="device configuration changed", device_pk=pk,
    )  # fmt: skip
    log.info("device %s of %s changed: recomputing its history", pk, site_id)
    return 1


def _document_request(conn: Conn, plan: SitePlan) -> int:
    """A ``carbon`` request over every year with results (none without results)."""
    years = calc_queue.years_with_results(conn, plan.site_id, plan.timezone)
    if not years:
        return 0
    calc_queue.add_request(
        conn, plan.site_id, "carbon", years[0][1], years[-1][2], reason="site document changed"
    )
    log.info("site %s changed: recomputing carbon and indicators", plan.site_id)
    return 1


def check_factors(conn: Conn, plans: Mapping[str, SitePlan], reference: Reference) -> int:
    """Years whose factor fingerprint changed → requests; the new fingerprints saved."""
    states = calc_queue.site_states(conn)
    added = 0
    for site_id, plan in plans.items():
        state = states.get(site_id)
        if state is not None:
            added += _site_factor_changes(conn, plan, reference, state)
    return added


def _site_factor_changes(
    conn: Conn, plan: SitePlan, reference: Reference, state: calc_queue.SiteState
) -> int:
    years = SiteYears.read(conn, reference, plan)
    changed: dict[str, str] = {}
    for year, start, end in calc_queue.years_with_results(conn, plan.site_id, plan.timezone):
        sha = years.year(year).fingerprint
        stored = state.factor_sets.get(str(year))
        if stored is not None and stored != sha:
            calc_queue.add_request(
                conn, plan.site_id, "carbon", start, end,
                reason=f"factors or green register of {year} changed",
            )  # fmt: skip
            log.info("factors of %s %s changed: recomputing carbon", plan.site_id, year)
            changed[str(year)] = sha
    if changed:
        calc_queue.save_site_state(conn, plan.site_id, factor_sets=changed)
    return len(changed)

"""Read-side functions for the API that need the calc service's pure modules on top of SQL.

Plain queries (time series, indicators, budgets, events, factor sets, green claims) are in
:mod:`carbonflow.storage` (``carbon``, ``indicators``, ``intervals``); the functions here combine
stored totals with a pure
computation:

- :func:`flows` — the energy–carbon–product graph of a site and period (computed on demand
  from the stored rollups; see :mod:`carbonflow.domain.flows.graph` for why it is not stored);
- :func:`live_intervals` — 1-min quantities of one device metric for live views, computed
  from the readings when asked (a view, not an accounting result: not stored);
- :func:`indicators_for_period` — every indicator for any period (rolling 12 months …);
- :func:`ledger_inputs` — what a monthly ledger (碳排放台账) of a site or enterprise lists:
  activity data by source, the factors with version and source, emissions by scope and gas,
  completeness, production and intensities.

All take an open psycopg connection (UTC session) and site-local, 15-min aligned periods.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from carbonflow.domain.factors.library import FactorLibrary
from carbonflow.domain.flows.graph import FlowGraph, build_flows
from carbonflow.domain.indicators.kpis import (
    Outcome,
    site_targets,
)
from carbonflow.domain.indicators.period import (
    accounting_keys,
    evaluate_period,
    period_coverage,
    period_inputs,
)
from carbonflow.domain.inventory.balance import (
    heat_export_surplus_gj,
    inventory_devices,
    settle_period,
)
from carbonflow.domain.inventory.lines import FIGURES, InventoryLine
from carbonflow.domain.inventory.site_factors import plan_factors
from carbonflow.domain.ledger.devices import SHARED_ROLES, DeviceMeter, feeds
from carbonflow.domain.ledger.document import LedgerInputs
from carbonflow.domain.readings.device_intervals import (
    IntervalRow,
    SerialSpan,
    StoredReading,
    ceil_to,
    floor_to,
    quantity_intervals,
)
from carbonflow.domain.readings.intervals import LIVE_INTERVAL, IntervalGrid
from carbonflow.domain.site.plan import DEFAULT_REPORT_PERIOD, SitePlan, quantity_keys
from carbonflow.storage import carbon as carbon_db
from carbonflow.storage import indicators as indicators_db
from carbonflow.storage import intervals
from carbonflow.storage import readings as readings_db
from carbonflow.storage import reference as ref
from carbonflow.storage import registry as registry_db

Conn = psycopg.Connection[Any]


class NotFound(LookupError):  # noqa: N818 — the API maps it to 404
    """The site, device or metric asked for does not exist."""


# Parsing a site document and building its plan is most of a flows or ledger request for a
# large site (≈ 60 % for 1 000 devices), and a plan only changes when the site file is loaded
# again: plans are kept per database and site, keyed by the site's version.
_PLAN_CACHE_SIZE = 64
_plans: dict[tuple[str, str], tuple[tuple[str, datetime], SitePlan]] = {}
_plans_lock = threading.Lock()


def site_plan(conn: Conn, site_id: str) -> SitePlan:
    """The site's plan from the registry (cached until the site file is loaded again)."""
    version = registry_db.site_version(conn, site_id)
    if version is None:
        raise NotFound(f"no site {site_id!r}")
    key = (f"{conn.info.host}:{conn.info.port}/{conn.info.dbname}", site_id)
    with _plans_lock:
        cached = _plans.get(key)
    if cached is not None and cached[0] == version:
        return cached[1]
    sites = registry_db.plan_sites(conn, site_id)
    if not sites:
        raise NotFound(f"no site {site_id!r}")
    plan = registry_db.build_plan(
        sites[0], registry_db.plan_devices(conn, site_id), DEFAULT_REPORT_PERIOD
    )
    # Stored under the version read before the rows: a load in between makes it stale, and the
    # next request sees a newer version and rebuilds.
    with _plans_lock:
        if len(_plans) >= _PLAN_CACHE_SIZE and key not in _plans:
            _plans.pop(next(iter(_plans)))
        _plans[key] = (version, plan)
    return plan


# Rebuilding the factor library from its stored rows is ≈ 10 ms a request; a stored version never
# changes content (``ref.sync_reference_files`` refuses that), so a library is kept per database
# and set of current versions, as the calc service keeps it (``services.calc.reference``).
_libraries: dict[str, tuple[dict[str, str], FactorLibrary]] = {}


def factor_library(conn: Conn) -> FactorLibrary:
    """The factor library of the current versions (cached until a version changes)."""
    versions = ref.current_versions(conn)
    key = f"{conn.info.host}:{conn.info.port}/{conn.info.dbname}"
    with _plans_lock:
        cached = _libraries.get(key)
    if cached is not None and cached[0] == versions:
        return cached[1]
    library = ref.library_from_db(conn)
    with _plans_lock:
        if len(_libraries) >= _PLAN_CACHE_SIZE and key not in _libraries:
            _libraries.pop(next(iter(_libraries)))
        _libraries[key] = (versions, library)
    return library


def flows(
    conn: Conn,
    site_id: str,
    start: datetime,
    end: datetime,
    *,
    totals: Sequence[InventoryLine] | None = None,
    plan: SitePlan | None = None,
) -> FlowGraph:
    """The flow graph of [start, end): link totals equal the period's inventory totals.

    ``totals``: the period's :func:`~carbonflow.storage.carbon.carbon_totals`, and ``plan``
    the site's plan, when the caller has read them already (they are read here otherwise).
    """
    if plan is None:
        plan = site_plan(conn, site_id)
    if totals is None:
        totals = carbon_db.carbon_totals(conn, site_id, start, end, plan.timezone)
    carbon, _surplus = settle_period(totals)
    devices = intervals.device_totals(
        conn, [d.device_pk for d in plan.devices], start, end, plan.timezone
    )
    library = factor_library(conn)
    year = start.astimezone(_zone(plan)).year
    factors = plan_factors(library, plan, year, ref.site_pins(conn, site_id))
    return build_flows(plan, carbon, {k: v.quantity for k, v in devices.items()}, factors)


def _zone(plan: SitePlan) -> ZoneInfo:
    return ZoneInfo(plan.timezone)


def live_intervals(
    conn: Conn,
    site_id: str,
    device_id: str,
    metric: str,
    *,
    start: datetime,
    end: datetime,
    interval: timedelta = LIVE_INTERVAL,
) -> tuple[IntervalRow, ...]:
    """Quantities of one counter or interval metric per ``interval`` (1 min) over [start, end)."""
    plan = site_plan(conn, site_id)
    device = next((d for d in plan.devices if d.device_id == device_id), None)
    if device is None:
        raise NotFound(f"no device {device_id!r} at {site_id!r}")
    spec = device.metric(metric)
    if spec is None or not spec.is_quantity:
        raise NotFound(f"{device_id!r} has no counter or interval metric {metric!r}")
    lo, hi = floor_to(start, interval), ceil_to(end, interval)
    rows = readings_db.readings_with_context(conn, [(device.device_pk, spec.metric_id, lo, hi)])[0]
    spans = readings_db.serial_spans(conn, [device.device_pk]).get(device.device_pk, [])
    result, _series = quantity_intervals(
        [StoredReading(ts, value, received) for ts, value, received in rows],
        IntervalGrid(lo, hi, interval),
        kind=spec.kind,
        multiplier=device.multiplier_for(spec),
        modulus=device.modulus,
        report_period=device.report_period,
        serials=[SerialSpan(*s) for s in spans],
    )
    return result


def ledger_inputs(
    conn: Conn,
    site_id: str,
    start: datetime,
    end: datetime,
    *,
    org_id: str | None = None,
    roles: frozenset[str] = frozenset(),
) -> LedgerInputs:
    """Everything a ledger of [start, end) shows, for the site or one of its organisations;
    ``roles``: the meters of these device roles too (an indicator's trace)."""
    plan = site_plan(conn, site_id)
    stored = carbon_db.carbon_totals(conn, site_id, start, end, plan.timezone)
    totals, surplus = settle_period(stored)
    lines = []
    sets: dict[int, tuple[dict[str, Any], ...]] = {}  # many lines share a factor set: read once
    for t in totals:
        if org_id is not None and t.org_id != org_id:
            continue
        set_id = t.factors.set_id
        if set_id and set_id not in sets:
            sets[set_id] = tuple(carbon_db.factor_set(conn, set_id))
        records = sets[set_id] if set_id else ()
        lines.append(replace(t, factors=replace(t.factors, records=records)))
    graph = flows(conn, site_id, start, end, totals=stored, plan=plan)
    attributed: dict[str, float] = {}
    if org_id is not None:
        vector = graph.orgs.get(org_id)
        if vector is not None:
            attributed = dict(zip(FIGURES, vector, strict=True))
    products = tuple(
        (p.product_id, p.output, p.unit, p.intensity_location.value)
        for p in graph.products
        if org_id is None or p.org_id == org_id
    )
    grain = "month" if (end - start) > timedelta(days=27) else "day"
    rows = indicators_db.indicators(conn, site_id, grain=grain, start=start, end=end)
    # An organisation's ledger shows its own indicators only, never the site's (org_id "").
    chosen = tuple(r for r in rows if org_id is None or r["org_id"] == org_id)
    completeness = math.fsum(t.completeness for t in totals) / len(totals) if totals else 0.0
    return LedgerInputs(
        site_id, org_id, start, end, tuple(lines), attributed, products, chosen, completeness,
        surplus, tuple(ledger_meters(conn, plan, start, end, org_id, roles, lines)),
        heat_export_surplus_gj(stored),
    )  # fmt: skip


def ledger_meters(
    conn: Conn,
    plan: SitePlan,
    start: datetime,
    end: datetime,
    org_id: str | None,
    roles: frozenset[str] = frozenset(),
    lines: Sequence[InventoryLine] | None = None,
) -> list[DeviceMeter]:
    """The inventory's device metrics over [start, end) with their serials, registers and
    interval qualities; for an organisation its own devices and the site's grid and purchased-
    heat meters (its purchased electricity and heat are a share of theirs). ``roles``: active
    devices of these roles too (of the organisation's, for an organisation).

    ``lines``: of the inventory's devices only those feeding one of these lines (by category and
    carrier, :func:`~carbonflow.domain.ledger.devices.feeds`). A ledger, a line's trace and an
    indicator's trace show the meters of their lines and of ``roles``, never others; reading
    the registers and interval qualities of the rest was most of an organisation ledger's SQL
    (docs/performance.md)."""
    inventory = inventory_devices(plan)
    listed = {d.device_pk for d in inventory}
    extra = tuple(d for d in plan.active_devices() if d.role in roles and d.device_pk not in listed)
    shown = None if lines is None else {(str(ln.category), ln.carrier) for ln in lines}
    devices = [
        d for d in (*inventory, *extra)
        if (org_id is None or d.org_id == org_id or d.role in SHARED_ROLES)
        and (
            shown is None or d.role in roles
            or any(feeds(d.role, d.carrier, category, carrier) for category, carrier in shown)
        )
    ]  # fmt: skip
    keys = quantity_keys(devices)
    bounds = readings_db.register_bounds(conn, keys, start, end)
    counts = intervals.quality_counts(conn, keys, start, end)
    spans = readings_db.serial_spans(conn, [d.device_pk for d in devices])
    expected = int((end - start) / timedelta(minutes=15))
    out = []
    for d in devices:
        serials = tuple(
            s for s, first, last in spans.get(d.device_pk, []) if first < end and last >= start
        )
        for m in d.quantity_metrics():
            b = bounds.get((d.device_pk, m.metric_id))
            out.append(
                DeviceMeter(
                    device_id=d.device_id, role=d.role, carrier=d.carrier, org_id=d.org_id,
                    metric=m.name, kind=m.kind, unit=m.unit, multiplier=d.multiplier_for(m),
                    serials=serials,
                    opening=b.opening if b else None, opening_at=b.opening_ts if b else None,
                    closing=b.closing if b else None, closing_at=b.closing_ts if b else None,
                    readings=b.readings if b else 0,
                    first_reading_at=b.first_ts if b else None,
                    last_reading_at=b.last_ts if b else None,
                    intervals=counts.get((d.device_pk, m.metric_id), {}),
                    expected_intervals=expected,
                )
            )  # fmt: skip
    return out


def indicators_for_period(
    conn: Conn, site_id: str, start: datetime, end: datetime
) -> list[Outcome]:
    """Every indicator of the site and its organisations for any period (e.g. a rolling
    12 months), with the target of the period's starting year and a status — computed now from
    the stored totals (the engine stores days, months and years)."""
    plan = site_plan(conn, site_id)
    year = start.astimezone(_zone(plan)).year
    factors = plan_factors(factor_library(conn), plan, year, ref.site_pins(conn, site_id))
    targets = site_targets(ref.targets_from_db(conn), plan.document, site_id)
    totals = carbon_db.carbon_totals(conn, site_id, start, end, plan.timezone)
    devices = intervals.device_totals(
        conn, [d.device_pk for d in plan.devices], start, end, plan.timezone
    )
    keys = accounting_keys(plan)
    coverage = period_coverage(
        plan, "range", (start, end), end, devices,
        intervals.data_presence(conn, keys, start, end),
    )  # fmt: skip
    inputs = period_inputs(plan, year, (start, end), totals, devices, coverage)
    return evaluate_period(inputs, targets, factors).outcomes

"""One calc cycle against the database: gather inputs, call the pure modules, store results.

:meth:`CalcEngine.run_once` is idempotent and safe with several calc instances:

1. **Reference data**: the current factor versions are read (and the data files stored once,
   :meth:`CalcEngine.sync_reference`).
2. **Change detection**: a device whose interval configuration changed (multiplier, modulus,
   metrics) gets an ``intervals`` request over its whole history; a site whose bookings changed
   (roles, nodes, province …) a ``carbon`` request; every ``factor_check_s`` the factors and
   green-power register entries each accounting year would use are fingerprinted, and a year
   whose fingerprint differs from the one its results were computed with gets a ``carbon``
   request (a new factor version, a pin, an override, a new certificate).
3. **Work, site by site**, each in one transaction under a per-site advisory lock
   (``pg_try_advisory_xact_lock``: another instance holding it means: skip the site):

   a. dirty device-hours (``dirty_hour``, written by ingest) and request chunks become reading
      windows; each is widened to the readings around it (a new reading changes the pairs on
      both sides), its 15-min grid recomputed with
      :mod:`carbonflow.domain.readings.device_intervals` and the rows replaced;
   b. the inventory of every affected 15-min interval is recomputed
      (:mod:`carbonflow.domain.inventory.balance`, green pool of
      :mod:`carbonflow.domain.inventory.green`) and replaced;
   c. hour, day and month rollups of the affected periods are rebuilt in SQL;
   d. indicators of the affected days, months and years, budgets of the affected years, and
      early-warning events (:mod:`carbonflow.domain.indicators.kpis`,
      :mod:`carbonflow.domain.flows.graph`);
   e. the dirty rows read are deleted **only where ``marked_at`` is unchanged**, so an hour
      re-marked by a concurrent ingest stays dirty; watermarks advance; commit.

Failure classes: a database outage raises (the service backs off and retries; nothing was
committed); a missing factor is a ``data`` event and the slots it concerns get no carbon rows
until the factor exists (its fingerprint then changes and they are recomputed); any other error
in one site rolls that site back, is logged once per message and raised as a ``data`` event,
and the other sites go on.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from carbonflow.domain.factors import FactorLibrary, FactorNotFound, TargetSet
from carbonflow.domain.factors.library import package_data_files
from carbonflow.domain.flows.graph import FlowGraph, build_flows
from carbonflow.domain.indicators.kpis import (
    Event,
    Outcome,
    PeriodInputs,
    budget_events,
    budget_outcomes,
    indicator_events,
    org_indicators,
    site_indicators,
    site_targets,
)
from carbonflow.domain.inventory.balance import (
    CarbonRow,
    Quantity,
    inventory_devices,
    settle_period,
    slot_inventory,
)
from carbonflow.domain.inventory.green import MonthPool, RegisterEntry, month_claims, month_pool
from carbonflow.domain.inventory.site_factors import SiteFactors, fingerprint, site_factors
from carbonflow.domain.readings.device_intervals import (
    DEFAULT_LATE_AFTER,
    SerialSpan,
    StoredReading,
    ceil_to,
    floor_to,
    quantity_intervals,
)
from carbonflow.domain.readings.intervals import ACCOUNTING_INTERVAL, IntervalGrid
from carbonflow.domain.site.plan import (
    DEFAULT_REPORT_PERIOD,
    SitePlan,
)
from carbonflow.storage import calc_queue, registry, rollup
from carbonflow.storage import carbon as carbon_db
from carbonflow.storage import indicators as indicators_db
from carbonflow.storage import intervals as intervals_db
from carbonflow.storage import readings as readings_db
from carbonflow.storage import reference as ref
from carbonflow.storage.db import connect

log = logging.getLogger(__name__)

SLOT = ACCOUNTING_INTERVAL
HOUR = timedelta(hours=1)
EVENT_GRAINS = ("month", "year")


@dataclass(frozen=True)
class EngineConfig:
    dirty_batch: int = 20_000  # dirty device-hours read per cycle
    request_chunk: timedelta = timedelta(days=31)  # of a recompute request per cycle
    # A request chunk is also cut so that one cycle writes at most about this many intervals
    # (memory and transaction size stay bounded for sites of thousands of devices).
    max_intervals_per_cycle: int = 400_000
    default_report_period: timedelta = DEFAULT_REPORT_PERIOD
    late_after: timedelta = DEFAULT_LATE_AFTER
    factor_check_s: float = 60.0
    reference_files: tuple[Path, ...] = field(default_factory=package_data_files)


@dataclass
class CycleReport:
    sites: int = 0
    sites_locked: int = 0
    site_errors: int = 0
    dirty_hours_read: int = 0
    dirty_hours_deleted: int = 0
    requests_advanced: int = 0
    intervals_written: int = 0
    carbon_rows_written: int = 0
    indicators_written: int = 0
    events_raised: int = 0
    seconds: float = 0.0
    # commit time − received_at of (up to 1 000 of) the readings processed [s]
    lag_seconds: list[float] = field(default_factory=list, repr=False)

    @property
    def did_work(self) -> bool:
        return bool(self.intervals_written or self.carbon_rows_written or self.requests_advanced)


def merge_ranges(ranges: Iterable[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """Overlapping or touching [start, end) ranges merged, sorted."""
    out: list[tuple[datetime, datetime]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


@dataclass
class _Reference:
    versions: dict[str, str]
    library: FactorLibrary
    targets: TargetSet


class CalcEngine:
    """The calc cycle over one long-lived connection (reconnects after a failure)."""

    def __init__(
        self,
        database_url: str,
        config: EngineConfig | None = None,
        *,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = database_url
        self.config = config or EngineConfig()
        self._wall = wall_clock
        self._monotonic = monotonic
        self._conn: psycopg.Connection[Any] | None = None
        self._reference: _Reference | None = None
        self._factor_sets = carbon_db.FactorSets()
        self._last_factor_check = float("-inf")
        self._logged: set[str] = set()

    # --- connection ------------------------------------------------------------------------

    def connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self.close()
            conn = connect(self._url)
            conn.execute("SET TIME ZONE 'UTC'")
            conn.commit()
            self._conn = conn
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def _log_once(self, key: str, message: str, *args: object, exc_info: bool = False) -> None:
        """Log a data or calc problem once per process, not once per cycle."""
        if key in self._logged:
            return
        if len(self._logged) > 10_000:
            self._logged.clear()
        self._logged.add(key)
        log.warning(message, *args, exc_info=exc_info)

    # --- reference data ------------------------------------------------------------------------

    def sync_reference(self) -> list[ref.FileSync]:
        """Store the reference data files not yet stored at their version (idempotent)."""
        conn = self.connection()
        try:
            result = ref.sync_reference_files(conn, self.config.reference_files)
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        inserted = [f"{s.file_name} {s.version}" for s in result if s.status == "inserted"]
        if inserted:
            log.info("reference data stored: %s", ", ".join(inserted))
            self._last_factor_check = float("-inf")
        return result

    def _load_reference(self, conn: psycopg.Connection[Any]) -> _Reference:
        versions = ref.current_versions(conn)
        if not versions:
            conn.commit()
            self.sync_reference()
            versions = ref.current_versions(conn)
        if self._reference is None or self._reference.versions != versions:
            self._reference = _Reference(
                versions, ref.library_from_db(conn), ref.targets_from_db(conn)
            )
            self._last_factor_check = float("-inf")
        return self._reference

    # --- requests ----------------------------------------------------------------------------

    def request_recompute(
        self, site_id: str, start: datetime, end: datetime, reason: str = "requested"
    ) -> int:
        """Recompute everything of a site in [start, end): intervals, carbon and above."""
        conn = self.connection()
        try:
            request_id = calc_queue.add_request(
                conn, site_id, "intervals", start, end, reason=reason, device_pk=None
            )
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        return request_id

    def pending(self) -> int:
        """Dirty hours plus open requests: 0 when the results are up to date."""
        conn = self.connection()
        try:
            dirty = calc_queue.count_dirty_hours(conn)
            row = conn.execute("SELECT count(*) FROM calc_request WHERE done_at IS NULL").fetchone()
            return dirty + (int(row[0]) if row else 0)
        finally:
            conn.rollback()

    def run_until_idle(self, max_cycles: int = 1000) -> list[CycleReport]:
        """Cycles until nothing is pending (for tests, benchmarks and ``recompute``)."""
        reports = []
        for _ in range(max_cycles):
            report = self.run_once()
            reports.append(report)
            if self.pending() == 0:
                break
        return reports

    # --- the cycle ---------------------------------------------------------------------------

    def run_once(self) -> CycleReport:
        started = self._monotonic()
        report = CycleReport()
        conn = self.connection()
        try:
            reference = self._load_reference(conn)
            sites = {s.site_id: s for s in registry.plan_sites(conn)}
            devices = registry.plan_devices(conn)
            conn.commit()
            by_site: dict[str, list[registry.DevicePlanRow]] = {}
            for d in devices:
                by_site.setdefault(d.site_id, []).append(d)
            plans = {
                sid: registry.build_plan(s, by_site.get(sid, []), self.config.default_report_period)
                for sid, s in sites.items()
            }
            self._detect_changes(conn, plans, sites)
            if self._monotonic() - self._last_factor_check >= self.config.factor_check_s:
                self._check_factors(conn, plans, reference)
                self._last_factor_check = self._monotonic()
            dirty = calc_queue.dirty_hours(conn, self.config.dirty_batch)
            requests = calc_queue.open_requests(conn)
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        for site_id in sorted(set(dirty) | set(requests)):
            plan = plans.get(site_id)
            if plan is None:
                continue
            hours = dirty.get(site_id, [])
            report.dirty_hours_read += len(hours)
            try:
                if not calc_queue.try_lock_site(conn, site_id):
                    report.sites_locked += 1
                    conn.rollback()
                    continue
                self._process_site(
                    conn, plan, reference=reference, hours=hours,
                    requests=requests.get(site_id, []), report=report,
                )  # fmt: skip
                conn.commit()
                self._factor_sets.commit()
                report.sites += 1
            except (psycopg.OperationalError, psycopg.InterfaceError):
                self._factor_sets.rollback()
                raise
            except Exception as exc:
                conn.rollback()
                self._factor_sets.rollback()
                report.site_errors += 1
                self._log_once(
                    f"{site_id}:{exc}", "calc of site %s failed: %s", site_id, exc, exc_info=True
                )
                self._data_event(conn, site_id, f"calc failed: {str(exc)[:500]}")
        report.seconds = self._monotonic() - started
        return report

    def _data_event(self, conn: psycopg.Connection[Any], site_id: str, message: str) -> None:
        day = self._wall().replace(hour=0, minute=0, second=0, microsecond=0)
        event = Event("", "data", "calc", "day", day, "error", None, None, None, message)
        try:
            indicators_db.insert_events(conn, [_event_row(site_id, event, self._wall())])
            conn.commit()
        except psycopg.Error:
            conn.rollback()

    # --- change detection ----------------------------------------------------------------------

    def _detect_changes(
        self,
        conn: psycopg.Connection[Any],
        plans: Mapping[str, SitePlan],
        sites: Mapping[str, registry.SitePlanRow],
    ) -> None:
        states = calc_queue.site_states(conn)
        for site_id, plan in plans.items():
            config: dict[str, Any] = dict(plan.device_config())
            config["_booking"] = plan.booking_hash()
            state = states.get(site_id)
            sha = sites[site_id].document_sha256
            if state is None:
                calc_queue.save_site_state(conn, site_id, document_sha256=sha, device_config=config)
                continue
            if state.device_config == config and state.document_sha256 == sha:
                continue
            old = state.device_config
            changed = [
                int(pk)
                for pk, h in config.items()
                if pk != "_booking" and pk in old and old[pk] != h
            ]
            for pk in changed:
                first, last = readings_db.reading_span(conn, [pk])
                if first is not None and last is not None:
                    calc_queue.add_request(
                        conn, site_id, "intervals", floor_to(first, SLOT),
                        ceil_to(last, SLOT) + SLOT, reason="device configuration changed",
                        device_pk=pk,
                    )  # fmt: skip
                    log.info("device %s of %s changed: recomputing its history", pk, site_id)
            if old.get("_booking") != config["_booking"] or state.document_sha256 != sha:
                years = calc_queue.years_with_results(conn, site_id, plan.timezone)
                if years:
                    calc_queue.add_request(
                        conn, site_id, "carbon", years[0][1], years[-1][2],
                        reason="site document changed",
                    )  # fmt: skip
                    log.info("site %s changed: recomputing carbon and indicators", site_id)
            calc_queue.save_site_state(conn, site_id, document_sha256=sha, device_config=config)
        conn.commit()

    def _year_factors(
        self,
        plan: SitePlan,
        reference: _Reference,
        pins: Mapping[str, Any],
        register: Sequence[RegisterEntry],
        year: int,
    ) -> tuple[SiteFactors | None, str, str | None]:
        """(factors, fingerprint, error) of one site and accounting year."""
        try:
            factors = site_factors(
                reference.library,
                province=plan.province,
                grid_region=plan.grid_region,
                year=year,
                pins=pins,
            )
            records: list[Any] = [f.record() for f in factors.fixed()]
            for carrier in sorted({d.carrier for d in plan.devices if d.role == "fuel_supply"}):
                try:
                    fuel = factors.fuel(carrier)
                    records.extend(f.record() for f in (fuel.ncv, fuel.cc, fuel.of))
                    records.append(factors.tce(carrier).record())
                except (FactorNotFound, ValueError) as exc:
                    records.append({"missing": str(exc)})
            records.append(factors.tce("electricity").record())
            start, end = date(year, 1, 1), date(year, 12, 31)
            records.extend(
                [e.instrument_id, e.kind, e.claimed_mwh, e.claim_start, e.claim_end, e.evidence,
                 e.volume_mwh, e.certificates, e.valid_from, e.valid_to]
                for e in register
                if e.claim_start <= end and e.claim_end >= start
            )  # fmt: skip
            return factors, fingerprint(records), None
        except (FactorNotFound, ValueError) as exc:
            return None, fingerprint({"error": str(exc)}), str(exc)

    def _check_factors(
        self,
        conn: psycopg.Connection[Any],
        plans: Mapping[str, SitePlan],
        reference: _Reference,
    ) -> None:
        states = calc_queue.site_states(conn)
        for site_id, plan in plans.items():
            state = states.get(site_id)
            if state is None:
                continue
            pins = ref.site_pins(conn, site_id)
            register = _register(conn, site_id)
            changed: dict[str, str] = {}
            for year, start, end in calc_queue.years_with_results(conn, site_id, plan.timezone):
                _f, sha, _err = self._year_factors(plan, reference, pins, register, year)
                stored = state.factor_sets.get(str(year))
                if stored is not None and stored != sha:
                    calc_queue.add_request(
                        conn, site_id, "carbon", start, end,
                        reason=f"factors or green register of {year} changed",
                    )  # fmt: skip
                    log.info("factors of %s %s changed: recomputing carbon", site_id, year)
                    changed[str(year)] = sha
            if changed:
                calc_queue.save_site_state(conn, site_id, factor_sets=changed)
        conn.commit()

    # --- one site ------------------------------------------------------------------------------

    def _process_site(
        self,
        conn: psycopg.Connection[Any],
        plan: SitePlan,
        *,
        reference: _Reference,
        hours: Sequence[calc_queue.DirtyHour],
        requests: Sequence[calc_queue.Request],
        report: CycleReport,
    ) -> None:
        now = self._wall()
        cfg = self.config
        windows: dict[tuple[int, int], list[tuple[datetime, datetime]]] = {}
        for h in hours:
            device = plan.by_pk.get(h.device_pk)
            if device is None:
                continue
            for m in device.quantity_metrics():
                windows.setdefault((device.device_pk, m.metric_id), []).append(
                    (h.hour_start, h.hour_start + HOUR)
                )
        carbon_ranges: list[tuple[datetime, datetime]] = []
        advanced: list[tuple[int, datetime, bool]] = []
        metrics = sum(len(d.quantity_metrics()) for d in plan.devices)
        budget = SLOT * max(4, cfg.max_intervals_per_cycle // max(1, metrics))
        for r in requests:
            chunk_end = min(r.range_end, r.cursor + min(cfg.request_chunk, budget))
            if r.layer == "intervals":
                one = plan.by_pk.get(r.device_pk) if r.device_pk is not None else None
                targets = list(plan.devices) if r.device_pk is None else [one] if one else []
                for device in targets:
                    for m in device.quantity_metrics():
                        windows.setdefault((device.device_pk, m.metric_id), []).append(
                            (r.cursor, chunk_end)
                        )
            else:
                carbon_ranges.append((floor_to(r.cursor, SLOT), ceil_to(chunk_end, SLOT)))
            advanced.append((r.request_id, chunk_end, chunk_end >= r.range_end))

        touched, slot_ranges, received = self._intervals(conn, plan, windows, now, report)
        carbon_ranges = merge_ranges([*carbon_ranges, *slot_ranges])
        carbon_done = self._carbon(
            conn, plan, reference=reference, ranges=carbon_ranges, now=now, report=report
        )
        for lo, hi in merge_ranges(slot_ranges):
            pks = sorted(
                pk for pk, ranges in touched.items() if any(a < hi and b > lo for a, b in ranges)
            )
            intervals_db.rollup_intervals(conn, pks, lo, hi, plan.timezone)
        for lo, hi in carbon_done:
            carbon_db.rollup_carbon(conn, plan.site_id, lo, hi, plan.timezone)
        if carbon_done:
            self._indicators(
                conn, plan, reference=reference, ranges=carbon_done, now=now, report=report
            )
        report.dirty_hours_deleted += calc_queue.delete_dirty_hours(conn, hours)
        for request_id, cursor, done in advanced:
            calc_queue.advance_request(conn, request_id, cursor, done)
            report.requests_advanced += 1
        through = max((hi for _lo, hi in carbon_done), default=None)
        calc_queue.save_site_state(
            conn, plan.site_id, results_through=through,
            last_received_at=max(received) if received else None,
        )  # fmt: skip
        commit_time = self._wall()
        report.lag_seconds.extend((commit_time - r).total_seconds() for r in received[-1000:])

    def _intervals(
        self,
        conn: psycopg.Connection[Any],
        plan: SitePlan,
        windows: Mapping[tuple[int, int], list[tuple[datetime, datetime]]],
        now: datetime,
        report: CycleReport,
    ) -> tuple[
        dict[int, list[tuple[datetime, datetime]]], list[tuple[datetime, datetime]], list[datetime]
    ]:
        flat = [
            (pk, mid, lo, hi)
            for (pk, mid), ranges in sorted(windows.items())
            for lo, hi in merge_ranges(ranges)
        ]
        grids: dict[tuple[int, int], list[tuple[datetime, datetime]]] = {}
        for b in readings_db.window_bounds(conn, flat):
            device = plan.by_pk[b.device_pk]
            metric = next(m for m in device.metrics if m.metric_id == b.metric_id)
            start = b.previous or b.first
            end = b.following or b.last
            if start is None or end is None:
                continue
            if metric.kind == "counter":
                # Look-ahead (intervals.counter_intervals): the reading two before can be the
                # start of a pair this window's readings decide, and one skipped reading after
                # the window joins the pairs around it.
                start = b.before_previous or start
                end = b.after_following or end
            if b.previous is None and metric.kind == "interval":
                start = start - device.report_period  # the first report covers the period before
            g0, g1 = floor_to(start, SLOT), ceil_to(end, SLOT)
            if g1 <= g0:
                continue
            grids.setdefault((b.device_pk, b.metric_id), []).append((g0, g1))
        final = [
            (pk, mid, lo, hi)
            for (pk, mid), ranges in sorted(grids.items())
            for lo, hi in merge_ranges(ranges)
        ]
        readings = readings_db.readings_with_context(conn, final)
        spans = readings_db.serial_spans(conn, sorted({w[0] for w in final}))
        results: list[tuple[int, int, datetime, datetime, list[intervals_db.IntervalTuple]]] = []
        touched: dict[int, list[tuple[datetime, datetime]]] = {}
        received: list[datetime] = []
        for (pk, mid, lo, hi), rows in zip(final, readings, strict=True):
            device = plan.by_pk[pk]
            metric = next(m for m in device.metrics if m.metric_id == mid)
            stored = [StoredReading(ts, value, rec) for ts, value, rec in rows]
            received.extend(r.received_at for r in stored if lo <= r.ts < hi)
            intervals, _series = quantity_intervals(
                stored,
                IntervalGrid(lo, hi, SLOT),
                kind=metric.kind,
                multiplier=device.multiplier_for(metric),
                modulus=device.modulus,
                report_period=device.report_period,
                serials=[SerialSpan(*s) for s in spans.get(pk, [])],
                late_after=self.config.late_after,
            )
            results.append(
                (pk, mid, lo, hi,
                 [(i.start, i.quantity, i.quality, i.completeness, i.late) for i in intervals])
            )  # fmt: skip
            touched.setdefault(pk, []).append((lo, hi))
        report.intervals_written += intervals_db.replace_intervals(conn, results, now)
        received.sort()
        return touched, merge_ranges(r for ranges in touched.values() for r in ranges), received

    def _carbon(
        self,
        conn: psycopg.Connection[Any],
        plan: SitePlan,
        *,
        reference: _Reference,
        ranges: Sequence[tuple[datetime, datetime]],
        now: datetime,
        report: CycleReport,
    ) -> list[tuple[datetime, datetime]]:
        if not ranges:
            return []
        zone = ZoneInfo(plan.timezone)
        pins = ref.site_pins(conn, plan.site_id)
        register = _register(conn, plan.site_id)
        years: dict[int, tuple[SiteFactors | None, str, str | None]] = {}
        pools: dict[date, MonthPool] = {}
        pks = [d.device_pk for d in inventory_devices(plan)]

        def factors_of(year: int) -> SiteFactors | None:
            if year not in years:
                years[year] = self._year_factors(plan, reference, pins, register, year)
                error = years[year][2]
                if error:
                    self._log_once(
                        f"{plan.site_id}:{year}:{error}", "%s %s: %s", plan.site_id, year, error
                    )
                    _insert_data_event(
                        conn,
                        plan.site_id,
                        f"missing factor for {year}: {error}",
                        date(year, 1, 1),
                        now,
                    )
            return years[year][0]

        def pool_of(month: date) -> MonthPool | None:
            if month not in pools:
                factors = factors_of(month.year)
                if factors is None:
                    return None
                pools[month] = month_pool(
                    register,
                    month,
                    residual=factors.residual,
                    zero=factors.green_zero,
                    gec=factors.gec,
                )
            return pools[month]

        # Extend a range to the end of the data of every month whose green pool it may shift.
        extended: list[tuple[datetime, datetime]] = []
        for lo, range_end in ranges:
            hi = range_end
            month = lo.astimezone(zone).date().replace(day=1)
            last_local = (hi - SLOT).astimezone(zone).date().replace(day=1)
            while month <= last_local:
                pool = pool_of(month)
                if pool is not None and pool.pool_mwh > 0:
                    # Coverage follows the month's cumulative net import: any change moves it
                    # for every later interval of the month.
                    m0, m1 = _month_utc(month, zone)
                    data_end = intervals_db.last_interval_end(conn, pks, max(lo, m0))
                    if data_end is not None:
                        hi = max(hi, min(m1, data_end))
                month = (month + timedelta(days=32)).replace(day=1)
            extended.append((lo, hi))
        done = merge_ranges(extended)

        problems: dict[str, date] = {}
        for lo, hi in done:
            quantities: dict[datetime, dict[tuple[int, int], Quantity]] = {}
            for row in intervals_db.intervals_in(conn, pks, lo, hi):
                quantities.setdefault(row.start, {})[(row.device_pk, row.metric_id)] = Quantity(
                    row.quantity, row.quality, row.completeness
                )
            net_before: dict[date, float] = {}  # the month's net grid import so far [MWh]
            out: list[tuple[datetime, carbon_db.CarbonTuple]] = []
            for slot in sorted(quantities):
                local = slot.astimezone(zone)
                factors = factors_of(local.year)
                if factors is None:
                    continue
                month = local.date().replace(day=1)
                pool = pool_of(month)
                pool_mwh = pool.pool_mwh if pool is not None else 0.0
                if month not in net_before:
                    net_before[month] = 0.0
                    if pool_mwh > 0:
                        m0, _m1 = _month_utc(month, zone)
                        net_before[month] = carbon_db.net_import_before(
                            conn, plan.site_id, m0, max(lo, m0)
                        )
                try:
                    result = slot_inventory(
                        plan, quantities[slot], factors, day=local.date(), pool_mwh=pool_mwh,
                        month_net_before_mwh=net_before[month],
                    )  # fmt: skip
                except (FactorNotFound, ValueError) as exc:
                    # Invalid data or configuration in one interval: no rows for it, a data
                    # event, and the rest of the site goes on (no poison interval).
                    problems.setdefault(f"interval not computed: {exc}", local.date())
                    continue
                net_before[month] += result.net_import_mwh
                for problem in result.problems:
                    problems.setdefault(problem, local.date())
                for r in result.rows:
                    out.append((slot, self._carbon_tuple(conn, r)))
            report.carbon_rows_written += carbon_db.replace_carbon(
                conn, plan.site_id, lo, hi, out, computed_at=now
            )
        for problem, day in problems.items():
            self._log_once(f"{plan.site_id}:{problem}", "%s: %s", plan.site_id, problem)
            _insert_data_event(conn, plan.site_id, problem, day, now)
        for month, pool in pools.items():
            if not pool.offered:
                continue
            m0, m1 = _month_utc(month, zone)
            covered = carbon_db.covered_before(conn, plan.site_id, m0, m1)
            carbon_db.replace_green_claims(
                conn, plan.site_id, m0,
                [(c.instrument_id, c.kind, c.accepted, c.offered_mwh, c.applied_mwh, c.unused_mwh,
                  c.reason) for c in month_claims(pool, covered)],
                now,
            )  # fmt: skip
        calc_queue.save_site_state(
            conn, plan.site_id,
            factor_sets={str(y): sha for y, (_f, sha, _e) in years.items()},
        )  # fmt: skip
        return done

    def _carbon_tuple(self, conn: psycopg.Connection[Any], r: CarbonRow) -> carbon_db.CarbonTuple:
        principal = r.factors[0] if r.factors else None
        set_id = (
            self._factor_sets.id_for(conn, [f.record() for f in r.factors]) if r.factors else None
        )
        return (
            r.org_id, r.node_id, r.carrier, r.category, r.basis, r.gas, r.scope, r.activity,
            r.activity_unit, r.energy_tce, r.zero_carbon_tce, r.gas_t, r.tco2e,
            principal.key if principal else None, principal.version if principal else None,
            principal.value if principal else None, principal.unit if principal else None,
            set_id, r.quality, r.completeness,
        )  # fmt: skip

    # --- indicators, budgets, events -------------------------------------------------------------

    def _indicators(
        self,
        conn: psycopg.Connection[Any],
        plan: SitePlan,
        *,
        reference: _Reference,
        ranges: Sequence[tuple[datetime, datetime]],
        now: datetime,
        report: CycleReport,
    ) -> None:
        tz = plan.timezone
        periods: dict[str, set[tuple[datetime, datetime]]] = {
            "day": set(),
            "month": set(),
            "year": set(),
        }
        for lo, hi in ranges:
            for grain, items in rollup.periods_touching(conn, lo, hi, tz).items():
                periods[grain].update(items)
        targets = site_targets(reference.targets, plan.document, plan.site_id)
        baseline = plan.document.baseline if plan.document is not None else None
        pins = ref.site_pins(conn, plan.site_id)
        register = _register(conn, plan.site_id)
        pks = [d.device_pk for d in plan.devices]
        rows: list[tuple[Any, ...]] = []
        events: list[Event] = []
        for grain in ("day", "month", "year"):
            starts = sorted(periods[grain])
            if not starts:
                continue
            previous = indicators_db.indicator_statuses(
                conn, plan.site_id, grain, [p for p, _q in starts]
            )
            for p0, p1 in starts:
                data_end = carbon_db.last_carbon_end(conn, plan.site_id, p0, p1)
                if data_end is None:
                    continue
                year = p0.astimezone(ZoneInfo(tz)).year
                factors, _sha, _err = self._year_factors(plan, reference, pins, register, year)
                if factors is None:
                    continue
                carbon, _surplus = settle_period(
                    carbon_db.carbon_totals(conn, plan.site_id, p0, data_end, tz)
                )
                devices = intervals_db.device_totals(conn, pks, p0, data_end, tz)
                quantities = {k: v.quantity for k, v in devices.items()}
                completeness = (
                    math.fsum(v.completeness for v in devices.values()) / len(devices)
                    if devices else 0.0
                )  # fmt: skip
                year_days = (date(year + 1, 1, 1) - date(year, 1, 1)).days
                inputs = PeriodInputs(
                    plan, year, (data_end - p0).total_seconds() / 86400.0, year_days, carbon,
                    quantities, completeness, period_start=p0, period_end=data_end,
                )  # fmt: skip
                outcomes = site_indicators(inputs, targets, factors, baseline)
                graph: FlowGraph | None = None
                if grain != "day" and plan.document is not None:
                    graph = build_flows(plan, carbon, quantities, factors)
                    outcomes.extend(
                        org_indicators(
                            graph, kind=plan.kind, year=year, targets=targets, doc=plan.document
                        )
                    )
                rows.extend(
                    _indicator_row(plan.site_id, grain, p0, p1, o, completeness) for o in outcomes
                )
                if grain in EVENT_GRAINS:
                    prev = {(o, i): s for (o, p, i), s in previous.items() if p == p0}
                    events.extend(indicator_events(outcomes, prev, grain=grain, period_start=p0))
                if grain == "year" and graph is not None:
                    consumed = {org: (v[0], v[5]) for org, v in graph.orgs.items()}
                    statuses = budget_outcomes(
                        plan.document, year, year_start=p0, year_end=p1, consumed=consumed,
                        as_of=data_end, band=reference.targets.at_risk_band,
                    )  # fmt: skip
                    before = indicators_db.budget_statuses(conn, plan.site_id, year)
                    indicators_db.upsert_budgets(
                        conn,
                        [_budget_row(plan.site_id, year, org, q, s) for org, q, s in statuses],
                        now,
                    )
                    events.extend(budget_events(statuses, before, period_start=p0))
        indicators_db.upsert_indicators(conn, rows, now)
        report.indicators_written += len(rows)
        report.events_raised += indicators_db.insert_events(
            conn, [_event_row(plan.site_id, e, now) for e in events]
        )
        for e in events:
            log.info("early warning %s/%s: %s", plan.site_id, e.org_id or "-", e.message)


def _month_utc(month: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    start = datetime(month.year, month.month, 1, tzinfo=zone)
    nxt = (month + timedelta(days=32)).replace(day=1)
    end = datetime(nxt.year, nxt.month, 1, tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def _register(conn: psycopg.Connection[Any], site_id: str) -> list[RegisterEntry]:
    return [
        RegisterEntry(
            r.instrument_id, r.kind, r.evidence, r.volume_mwh, r.valid_from, r.valid_to,
            r.claimed_mwh, r.claim_start, r.claim_end, r.certificates,
        )
        for r in ref.green_instruments(conn, site_id)
    ]  # fmt: skip


def _indicator_row(  # noqa: PLR0917 — one row of calc_indicator, positional like the table
    site_id: str, grain: str, p0: datetime, p1: datetime, o: Outcome, completeness: float
) -> tuple[Any, ...]:
    r = o.result
    target = r.target
    return (
        site_id, o.org_id, grain, p0, o.indicator, p1, r.value.value, r.value.unit,
        r.value.numerator, r.value.denominator, r.value.undefined_reason, o.basis,
        None if target is None else target.threshold,
        None if target is None else target.comparator.value,
        None if target is None else target.unit,
        None if target is None else target.basis,
        None if target is None else "; ".join(t.source for t in target.rows),
        r.status.value, r.explanation, completeness,
    )  # fmt: skip


def _budget_row(site_id: str, year: int, org: str, quantity: str, s: Any) -> tuple[Any, ...]:
    return (
        site_id, org, year, quantity, s.budget.unit, s.budget.budget, s.consumed, s.remaining,
        s.elapsed_fraction, s.used_fraction.value, s.projected_total, s.projected_overrun,
        s.projected_exhaustion, s.status.value, s.explanation, s.as_of,
    )  # fmt: skip


def _event_row(site_id: str, e: Event, raised_at: datetime) -> tuple[Any, ...]:
    return (
        site_id, e.org_id, e.kind, e.subject, e.grain, e.period_start, e.status,
        e.previous_status, e.value, e.threshold, e.message, raised_at, e.dedup_key(site_id),
    )  # fmt: skip


def _insert_data_event(
    conn: psycopg.Connection[Any], site_id: str, message: str, day: date, now: datetime
) -> None:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    event = Event("", "data", "calc", "day", start, "error", None, None, None, message[:1000])
    indicators_db.insert_events(conn, [_event_row(site_id, event, now)])

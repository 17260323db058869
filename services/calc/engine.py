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

The engine owns the connection, the transactions (it alone commits and rolls back, and keeps
the factor-set id cache in step with them) and the :class:`CycleReport`; the work is done by
``reference`` (1), ``changes`` (2), ``site_cycle`` (3, a, c, e) and ``steps.intervals``,
``steps.carbon``, ``steps.indicators`` (a, b, d), which take a
:class:`~services.calc.context.StepContext` and return what they did.

Failure classes: a database outage raises (the service backs off and retries; nothing was
committed); a missing factor is a ``data`` event and the slots it concerns get no carbon rows
until the factor exists (its fingerprint then changes and they are recomputed); any other error
in one site rolls that site back, is logged once per message and raised as a ``data`` event,
and the other sites go on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from carbonflow.domain.factors.library import package_data_files
from carbonflow.domain.indicators.kpis import Event
from carbonflow.domain.readings.device_intervals import DEFAULT_LATE_AFTER
from carbonflow.domain.site.plan import DEFAULT_REPORT_PERIOD, SitePlan
from carbonflow.logs import LogOnce
from carbonflow.storage import calc_queue, registry
from carbonflow.storage import carbon as carbon_db
from carbonflow.storage import indicators as indicators_db
from carbonflow.storage import reference as ref
from services.calc.changes import check_factors, detect_changes
from services.calc.context import StepContext
from services.calc.read_ahead import ReadAhead
from services.calc.reference import Reference, ReferenceCache
from services.calc.site_cycle import Limits, SiteWork, next_windows, process_site

log = logging.getLogger(__name__)


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
    # A recompute request's next chunk is read and computed on a second connection while this
    # one is written (services.calc.read_ahead); off: one connection, one thing at a time.
    read_ahead: bool = True
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
    read_ahead_used: int = 0  # sites whose intervals had been read and computed ahead
    seconds: float = 0.0
    # commit time − received_at of (up to 1 000 of) the readings processed [s]
    lag_seconds: list[float] = field(default_factory=list, repr=False)

    @property
    def did_work(self) -> bool:
        return bool(self.intervals_written or self.carbon_rows_written or self.requests_advanced)

    def add(self, work: SiteWork) -> None:
        """What one site's cycle wrote (also when it was rolled back)."""
        self.intervals_written += work.intervals_written
        self.carbon_rows_written += work.carbon_rows_written
        self.indicators_written += work.indicators_written
        self.events_raised += work.events_raised
        self.dirty_hours_deleted += work.dirty_hours_deleted
        self.requests_advanced += work.requests_advanced
        self.read_ahead_used += work.read_ahead_used


@dataclass(frozen=True)
class _Queue:
    """What a cycle found to do: the plan of every site, its dirty hours and open requests."""

    reference: Reference
    plans: dict[str, SitePlan]
    dirty: dict[str, list[calc_queue.DirtyHour]]
    requests: dict[str, list[calc_queue.Request]]

    def site_ids(self) -> list[str]:
        return sorted(set(self.dirty) | set(self.requests))


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
        self._reference = ReferenceCache(self.config.reference_files, self.config.factor_check_s)
        self._factor_sets = carbon_db.FactorSets()
        # Data and calc problems are logged once per process, not once per cycle (past 10 000
        # keys the memory is cleared).
        self._log_once = LogOnce(log, capacity=10_001, when_full="forget")
        self._limits = Limits(
            self.config.request_chunk, self.config.max_intervals_per_cycle, self.config.late_after
        )
        self._read_ahead = (
            ReadAhead(database_url, self._log_once) if self.config.read_ahead else None
        )
        self._plan_cache: (
            tuple[
                tuple[list[registry.SitePlanRow], list[registry.DevicePlanRow]],
                dict[str, SitePlan],
            ]
            | None
        ) = None

    # --- connection ------------------------------------------------------------------------

    def connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self.close()
            self._conn = calc_queue.open_session(self._url)
        return self._conn

    def close(self) -> None:
        try:
            if self._read_ahead is not None:
                self._read_ahead.close()
        finally:
            if self._conn is not None:
                try:
                    self._conn.close()
                finally:
                    self._conn = None

    # --- reference data ------------------------------------------------------------------------

    def sync_reference(self) -> list[ref.FileSync]:
        """Store the reference data files not yet stored at their version (idempotent)."""
        conn = self.connection()
        try:
            result = self._reference.store_files(conn)
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        inserted = [f"{s.file_name} {s.version}" for s in result if s.status == "inserted"]
        if inserted:
            log.info("reference data stored: %s", ", ".join(inserted))
            self._reference.recheck()
        return result

    def _load_reference(self, conn: psycopg.Connection[Any]) -> Reference:
        versions = self._reference.stored_versions(conn)
        if not versions:
            conn.commit()
            self.sync_reference()
            versions = self._reference.stored_versions(conn)
        return self._reference.load(conn, versions)

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
            return calc_queue.count_dirty_hours(conn) + calc_queue.count_open_requests(conn)
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
        queue = self._gather(conn)
        for site_id in queue.site_ids():
            plan = queue.plans.get(site_id)
            if plan is not None:
                self._run_site(conn, queue, plan, report)
        report.seconds = self._monotonic() - started
        return report

    def _gather(self, conn: psycopg.Connection[Any]) -> _Queue:
        """Reference data, plans, change detection and the queue, each part committed."""
        try:
            reference = self._load_reference(conn)
            sites = registry.plan_sites(conn)
            devices = registry.plan_devices(conn)
            conn.commit()
            plans = self._plans(sites, devices)
            detect_changes(conn, plans, {s.site_id: s.document_sha256 for s in sites})
            conn.commit()
            if self._reference.check_due(self._monotonic()):
                check_factors(conn, plans, reference)
                conn.commit()
                self._reference.checked(self._monotonic())
            dirty = calc_queue.dirty_hours(conn, self.config.dirty_batch)
            requests = calc_queue.open_requests(conn)
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        return _Queue(reference, plans, dirty, requests)

    def _plans(
        self, sites: list[registry.SitePlanRow], devices: list[registry.DevicePlanRow]
    ) -> dict[str, SitePlan]:
        """The plans of the registry rows: the last cycle's while the rows are equal (plans
        are immutable; validating every site document again cost ≈ 0.2 s a cycle for a
        1 000-device site, docs/performance.md)."""
        key = (sites, devices)
        if self._plan_cache is None or self._plan_cache[0] != key:
            plans = registry.build_plans(sites, devices, self.config.default_report_period)
            self._plan_cache = (key, plans)
        return self._plan_cache[1]

    def _run_site(
        self, conn: psycopg.Connection[Any], queue: _Queue, plan: SitePlan, report: CycleReport
    ) -> None:
        """One site in one transaction under its advisory lock (held elsewhere: skipped)."""
        hours = queue.dirty.get(plan.site_id, [])
        requests = queue.requests.get(plan.site_id, [])
        report.dirty_hours_read += len(hours)
        work = SiteWork()
        # Read ahead while no reading of the site changed since: else its hours are dirty.
        ahead = self._read_ahead.take(plan.site_id) if self._read_ahead else None
        try:
            if not calc_queue.try_lock_site(conn, plan.site_id):
                report.sites_locked += 1
                conn.rollback()
                return
            ctx = StepContext(
                conn, plan, queue.reference, self._wall(), self._log_once, self._factor_sets
            )
            if self._read_ahead is not None and requests:
                self._read_ahead.start(
                    plan, next_windows(plan, requests, self._limits), self._limits.late_after
                )
            process_site(ctx, hours, requests, self._limits, work, None if hours else ahead)
            commit_time = self._wall()
            report.lag_seconds.extend(
                (commit_time - r).total_seconds() for r in work.received[-1000:]
            )
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
                f"{plan.site_id}:{exc}", "calc of site %s failed: %s", plan.site_id, exc,
                exc_info=True,
            )  # fmt: skip
            self._data_event(conn, plan.site_id, f"calc failed: {str(exc)[:500]}")
        finally:
            report.add(work)

    def _data_event(self, conn: psycopg.Connection[Any], site_id: str, message: str) -> None:
        day = self._wall().replace(hour=0, minute=0, second=0, microsecond=0)
        event = Event("", "data", "calc", "day", day, "error", None, None, None, message)
        try:
            indicators_db.insert_events(
                conn, [indicators_db.event_row(site_id, event, self._wall())]
            )
            conn.commit()
        except psycopg.Error:
            conn.rollback()

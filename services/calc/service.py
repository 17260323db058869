"""The calc service: APScheduler runs :meth:`CalcEngine.run_once` every ``interval_s``.

In-process API (``carbonflow calc`` and ``carbonflow demo`` use it)::

    service = CalcService(CalcSettings())
    service.run(stop_event)        # blocks until stop_event is set; returns the exit code
    service.run_once()             # one cycle now (tests, ``calc recompute --run``)

Failure classes (STYLE.md): invalid data is a ``data`` event and the cycle goes on (engine);
a database outage is retried with exponential backoff (``retry_max_s``) while nothing is
committed — dirty hours stay dirty, so nothing is lost; anything else failing
``max_consecutive_failures`` cycles in a row is fatal: the service stops with exit code 1 for
the supervisor to restart it. Two instances may run at once: sites are locked one by one
(advisory locks), so they share the work and never compute the same site together.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import psycopg
from apscheduler.schedulers.background import BackgroundScheduler

from carbonflow.health_http import HealthServer, health_server
from services.calc.engine import CalcEngine, CycleReport
from services.calc.metrics import CalcMetrics
from services.calc.settings import CalcSettings

log = logging.getLogger(__name__)

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    psycopg.OperationalError,
    psycopg.InterfaceError,
)
JOB_ID = "calc-cycle"


class CalcService:
    def __init__(
        self,
        settings: CalcSettings,
        *,
        metrics: CalcMetrics | None = None,
        engine: CalcEngine | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if settings.database_url is None:
            raise ValueError("DATABASE_URL is not set")
        self.settings = settings
        self.metrics = metrics or CalcMetrics.create()
        self.engine = engine or CalcEngine(settings.database_url, settings.engine_config())
        self._clock = clock
        self._lock = threading.Lock()  # one cycle at a time, whoever asks
        self._stop = threading.Event()
        self._db_ok = False
        self._failures = 0
        self._retry_delay = 0.0
        self._not_before = 0.0
        self._last_ok: float | None = None
        self._last_report: CycleReport | None = None
        self.exit_code = 0
        self.http: HealthServer | None = health_server(
            settings.http_host,
            settings.http_port,
            self.metrics.registry,
            self.health,
            name="calc-http",
        )

    # --- lifecycle ------------------------------------------------------------------------------

    def request_stop(self) -> None:
        self._stop.set()

    def health(self) -> dict[str, Any]:
        age = None if self._last_ok is None else round(self._clock() - self._last_ok, 3)
        stale_after = max(10 * self.settings.interval_s, 60.0)
        report = self._last_report
        return {
            "ok": self._db_ok and age is not None and age <= stale_after,
            "database_ok": self._db_ok,
            "seconds_since_last_cycle": age,
            "last_cycle_seconds": None if report is None else round(report.seconds, 3),
            "consecutive_failures": self._failures,
        }

    def run(self, stop_event: threading.Event | None = None) -> int:
        """Run until ``stop_event`` (or :meth:`request_stop`); returns the process exit code."""
        if stop_event is not None:
            self._stop = stop_event
        self._prepare()
        if self._stop.is_set():
            return self.exit_code
        # APScheduler logs every run of the job at INFO: a line per second is a log flood.
        logging.getLogger("apscheduler").setLevel(max(logging.WARNING, log.getEffectiveLevel()))
        scheduler = BackgroundScheduler(timezone=UTC)
        scheduler.add_job(
            self._tick,
            "interval",
            seconds=self.settings.interval_s,
            id=JOB_ID,
            max_instances=1,
            coalesce=True,
            next_run_time=datetime.now(UTC),
        )
        if self.http is not None:
            self.http.start()
        scheduler.start()
        log.info("calc running: a cycle every %.3g s", self.settings.interval_s)
        try:
            while not self._stop.wait(0.5):
                pass
        finally:
            scheduler.shutdown(wait=True)
            self.engine.close()
            if self.http is not None:
                self.http.stop()
            log.info("calc stopped")
        return self.exit_code

    def _prepare(self) -> None:
        """Wait for the database and store the reference data (retrying while it is down)."""
        delay = 0.5
        while not self._stop.is_set():
            try:
                self.engine.sync_reference()
                self._db_ok = True
                self.metrics.database_up.set(1)
                return
            except TRANSIENT_ERRORS as exc:
                self._db_down(exc)
                if self._stop.wait(delay):
                    return
                delay = min(delay * 2, self.settings.retry_max_s)
            except psycopg.errors.UndefinedTable as exc:
                log.error(
                    "the database has no carbonflow schema (%s): run `carbonflow migrate`", exc
                )
                self.exit_code = 2
                self._stop.set()
                return

    def _db_down(self, exc: BaseException) -> None:
        self._db_ok = False
        self.metrics.database_up.set(0)
        self.engine.close()
        log.warning("database unavailable (%s)", str(exc).strip()[:200])

    # --- cycles ---------------------------------------------------------------------------------

    def _tick(self) -> None:
        if self._clock() < self._not_before or self._stop.is_set():
            return
        try:
            self.run_once()
        except TRANSIENT_ERRORS:
            self._retry_delay = min(
                max(self._retry_delay * 2, self.settings.interval_s), self.settings.retry_max_s
            )
            self._not_before = self._clock() + self._retry_delay
            log.info("retrying the calc cycle in %.1f s", self._retry_delay)
        except Exception:
            log.exception("calc cycle failed (%d in a row)", self._failures)
            if self._failures >= self.settings.max_consecutive_failures:
                log.error("%d calc cycles failed in a row: exiting", self._failures)
                self.exit_code = 1
                self._stop.set()

    def run_once(self) -> CycleReport:
        """One cycle now; updates health and metrics; database errors propagate."""
        with self._lock:
            started = self._clock()
            try:
                report = self.engine.run_once()
                pending = self.engine.pending()
            except TRANSIENT_ERRORS as exc:
                self.metrics.cycles.labels("database_unavailable").inc()
                self._db_down(exc)
                raise
            except Exception:
                self._failures += 1
                self.metrics.cycles.labels("failed").inc()
                raise
            self._failures = 0
            self._retry_delay = 0.0
            self._db_ok = True
            self._last_ok = self._clock()
            self._last_report = report
            m = self.metrics
            m.database_up.set(1)
            m.cycles.labels("ok").inc()
            m.cycle_seconds.observe(self._clock() - started)
            m.dirty_hours.inc(report.dirty_hours_deleted)
            m.intervals_written.inc(report.intervals_written)
            m.carbon_rows_written.inc(report.carbon_rows_written)
            m.indicators_written.inc(report.indicators_written)
            m.events_raised.inc(report.events_raised)
            m.site_errors.inc(report.site_errors)
            m.sites_locked.inc(report.sites_locked)
            m.pending.set(pending)
            m.last_cycle_unixtime.set(time.time())
            for lag in report.lag_seconds[:: max(1, len(report.lag_seconds) // 100)]:
                m.freshness_seconds.observe(max(0.0, lag))
            if report.did_work:
                log.debug(
                    "cycle: %d sites, %d intervals, %d carbon rows, %d indicators in %.3f s",
                    report.sites, report.intervals_written, report.carbon_rows_written,
                    report.indicators_written, report.seconds,
                )  # fmt: skip
            return report

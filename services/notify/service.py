"""The notify service's loop: a cycle every ``interval_s`` until stopped; a failing cycle is
logged and the next one tries again (the database may be down a while). ``/metrics`` and
``/healthz`` on ``CARBONFLOW_NOTIFY_HTTP_PORT`` (docs/alarms.md). One process per deployment:
two would each send every notification."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from carbonflow.domain.alarms.model import ConditionSource
from carbonflow.health_http import HealthServer, health_server
from carbonflow.storage.db import make_engine
from services.notify.metrics import NotifyMetrics
from services.notify.notifier import CycleReport, Notifier
from services.notify.senders import Senders
from services.notify.settings import NotifySettings

log = logging.getLogger(__name__)


def wall_clock() -> datetime:
    return datetime.now(UTC)


class NotifyService:
    def __init__(
        self,
        settings: NotifySettings,
        sources: Sequence[ConditionSource] = (),
        *,
        metrics: NotifyMetrics | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if settings.database_url is None:
            raise ValueError("the notify service needs DATABASE_URL")
        self.settings = settings
        self.engine: sa.Engine = make_engine(settings.database_url)
        self.senders = Senders(settings, os.environ, wall_clock)
        self.notifier = Notifier(self.engine, settings, self.senders, wall_clock, sources)
        self.metrics = metrics or NotifyMetrics()
        self._monotonic = monotonic
        self._stop = threading.Event()
        self._db_ok = False
        self._last_ok: float | None = None
        self.http: HealthServer | None = None  # bound by run(), not by a single --once cycle

    def request_stop(self) -> None:
        self._stop.set()

    def health(self) -> dict[str, Any]:
        """ok: the last cycle reached the database, recently (10 intervals, at least 60 s)."""
        age = None if self._last_ok is None else round(self._monotonic() - self._last_ok, 3)
        stale_after = max(10 * self.settings.interval_s, 60.0)
        return {
            "ok": self._db_ok and age is not None and age <= stale_after,
            "database_ok": self._db_ok,
            "seconds_since_last_cycle": age,
        }

    def cycle(self) -> CycleReport | None:
        """One cycle, counted; None when the database failed it."""
        try:
            report = self.notifier.run_once()
        except sa.exc.SQLAlchemyError:
            log.exception("notify cycle failed; retrying next interval")
            self._db_ok = False
            self.metrics.cycle_failures.inc()
            self.metrics.database_up.set(0)
            return None
        self._db_ok, self._last_ok = True, self._monotonic()
        self.metrics.database_up.set(1)
        self.metrics.cycles.inc()
        self.metrics.opened.inc(report.opened)
        self.metrics.resolved.inc(report.resolved)
        self.metrics.notifications.inc(report.notifications)
        self.metrics.sent.inc(report.sent)
        self.metrics.failed.inc(report.failed)
        return report

    def run(self) -> int:
        settings = self.settings
        self.http = health_server(
            settings.http_host, settings.http_port, self.metrics.registry, self.health,
            name="notify-http",
        )  # fmt: skip
        if self.http is not None:
            self.http.start()
        log.info("notify started (every %g s)", settings.interval_s)
        try:
            while not self._stop.is_set():
                report = self.cycle()
                if report is not None and (report.notifications or report.failed):
                    log.info("notify cycle: %s", report)
                self._stop.wait(self.settings.interval_s)
        finally:
            if self.http is not None:
                self.http.stop()
            self.engine.dispose()
            log.info("notify stopped")
        return 0

"""The notify service's loop: a cycle every ``interval_s`` until stopped; a failing cycle is
logged and the next one tries again (the database may be down a while)."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa

from carbonflow.domain.alarms.model import ConditionSource
from carbonflow.storage.db import make_engine
from services.notify.notifier import Notifier
from services.notify.senders import Senders
from services.notify.settings import NotifySettings

log = logging.getLogger(__name__)


def wall_clock() -> datetime:
    return datetime.now(UTC)


class NotifyService:
    def __init__(self, settings: NotifySettings, sources: Sequence[ConditionSource] = ()) -> None:
        if settings.database_url is None:
            raise ValueError("the notify service needs DATABASE_URL")
        self.settings = settings
        self.engine: sa.Engine = make_engine(settings.database_url)
        self.senders = Senders(settings, os.environ, wall_clock)
        self.notifier = Notifier(self.engine, settings, self.senders, wall_clock, sources)
        self._stop = threading.Event()

    def request_stop(self) -> None:
        self._stop.set()

    def run(self) -> int:
        log.info("notify started (every %g s)", self.settings.interval_s)
        try:
            while not self._stop.is_set():
                try:
                    report = self.notifier.run_once()
                    if report.notifications or report.failed:
                        log.info("notify cycle: %s", report)
                except sa.exc.SQLAlchemyError:
                    log.exception("notify cycle failed; retrying next interval")
                self._stop.wait(self.settings.interval_s)
        finally:
            self.engine.dispose()
            log.info("notify stopped")
        return 0

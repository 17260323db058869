"""A recompute's next chunk read and computed while this one is written.

A site's cycle is one transaction on one connection: while its database backend writes the
intervals of a recompute chunk and rolls them up (two thirds of the work), the calc process
waits, and while the calc process computes, the database waits. The reading windows of the
request's *next* chunk are known as soon as this chunk is cut, and reading and computing them
writes nothing, so a thread does it on a second connection meanwhile: the two cores work at
the same time.

What was read ahead is used only if it is exactly what the next cycle would read
(:meth:`PreparedIntervals.fits`: the same windows of the same devices) and only if no reading
of the site changed since: every reading stored after the read marks its hour dirty in the same
transaction (``storage.readings``), and a cycle that finds dirty hours of the site computes in
its own transaction as before. A dirty hour it does not read this time (a cycle reads a batch)
stays dirty and is recomputed later, so nothing read ahead can hide a reading.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta

import psycopg

from carbonflow.domain.site.plan import SitePlan
from carbonflow.logs import LogOnce
from carbonflow.storage import calc_queue
from carbonflow.storage.db import Conn
from services.calc.steps.intervals import PreparedIntervals, Windows, prepare_intervals

log = logging.getLogger(__name__)


class ReadAhead:
    """One background thread with its own connection; at most one site's chunk pending."""

    def __init__(self, database_url: str, log_once: LogOnce) -> None:
        self._url = database_url
        self._log_once = log_once
        self._conn: Conn | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._pending: dict[str, Future[PreparedIntervals]] = {}

    def start(self, plan: SitePlan, windows: Windows, late_after: timedelta) -> None:
        """Begin reading and computing ``windows`` of ``plan``'s site (replaces what was
        pending for it)."""
        self.take(plan.site_id)
        if windows:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="calc-ahead")
            self._pending[plan.site_id] = self._pool.submit(
                self._prepare, plan, windows, late_after
            )

    def take(self, site_id: str) -> PreparedIntervals | None:
        """What was read ahead for the site (waiting for it), or None; a failure is logged
        once and the cycle computes in its own transaction."""
        future = self._pending.pop(site_id, None)
        if future is None:
            return None
        try:
            return future.result()
        except Exception as exc:  # the cycle reads again and meets any real error itself
            self._log_once(f"read-ahead:{exc}", "calc read-ahead failed: %s", exc)
            return None

    def close(self) -> None:
        """Wait for and drop what is pending, end the thread and close the connection (the
        next :meth:`start` begins again)."""
        for site_id in list(self._pending):
            self.take(site_id)
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self._close_connection()

    def _prepare(
        self, plan: SitePlan, windows: Windows, late_after: timedelta
    ) -> PreparedIntervals:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._close_connection()
            self._conn = calc_queue.open_session(self._url)
        conn = self._conn
        try:
            return prepare_intervals(conn, plan, windows, late_after, hours=True)
        except (psycopg.OperationalError, psycopg.InterfaceError):
            self._close_connection()
            raise
        finally:
            if not conn.closed:
                conn.rollback()

    def _close_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error:
                log.debug("closing the read-ahead connection failed", exc_info=True)
            self._conn = None

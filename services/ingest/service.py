"""The ingest service loop: receive → batch → store (one transaction) → acknowledge.

Failure classes (STYLE.md): invalid data is quarantined with a reason and the loop goes on;
a transient fault (database unreachable) is retried with backoff while nothing is acknowledged,
so the broker holds the rest (backpressure); a fatal fault exits non-zero for the supervisor.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from carbonflow.domain.readings.contract import Reason, Rejection, device_topic
from carbonflow.health_http import HealthServer, health_server
from carbonflow.storage.readings import BatchStore, ReadingRow, RejectionRow
from carbonflow.storage.registry import RegistrySnapshot
from services.ingest.batch import Batch, FlushPolicy
from services.ingest.counter_guard import CounterGuard
from services.ingest.inbox import Inbox
from services.ingest.messages import InboundMessage
from services.ingest.metrics import IngestMetrics
from services.ingest.mqtt_client import MqttSubscriber
from services.ingest.pipeline import Pipeline, rejection_row
from services.ingest.settings import IngestSettings
from services.ingest.validate import ValidationPolicy

log = logging.getLogger(__name__)

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    psycopg.OperationalError,
    psycopg.InterfaceError,
)
# Registry reload when a message names something unknown, at most this often [s].
_UNKNOWN_RELOAD_MIN_S = 2.0
# After this many consecutive messages that fail to store on their own, the fault is not in the
# data: exit and let the supervisor restart (nothing is acknowledged, nothing is lost).
_MAX_CONSECUTIVE_STORE_FAILURES = 50
# A retiring worker ends its session after its backlog has been quiet this long [s].
_RETIRE_QUIET_S = 2.0
# The loop checks for a stop request at least this often [s].
_STOP_POLL_S = 0.2


_UNKNOWN_REASONS = frozenset(
    r.value
    for r in (Reason.UNKNOWN_SITE, Reason.UNKNOWN_DEVICE, Reason.WRONG_SITE, Reason.UNKNOWN_METRIC)
)


def _result(accepted: int, rejected: int) -> str:
    """A message's label: no reading accepted and none rejected is another slice's message."""
    if rejected:
        return "partly_rejected" if accepted else "rejected"
    return "stored" if accepted else "skipped"


class FatalIngestError(RuntimeError):
    pass


def is_data_error(exc: BaseException) -> bool:
    """Whether a non-transient failure to store is about the data, not the schema, the settings
    or a defect of ours.

    PostgreSQL's data exceptions (class 22: NUL in text, a number out of range), integrity
    violations (class 23), and what encoding a row for COPY raises on a value (an int beyond
    64 bits: OverflowError, ValueError and its UnicodeError) come from the message. Everything else
    (a missing table or privilege, an AttributeError in our own code) must not be blamed on the
    data: it counts toward the fatal limit, so a broken installation or release stops and is
    restarted rather than quarantining every reading as it arrives.
    """
    return isinstance(
        exc,
        psycopg.DataError | psycopg.IntegrityError | OverflowError | ValueError,
    )


@dataclass
class _RegistryCache:
    load: Callable[[], RegistrySnapshot]
    refresh_s: float
    clock: Callable[[], float]
    snapshot: RegistrySnapshot = field(default_factory=RegistrySnapshot.empty)
    loaded_at: float = float("-inf")

    def get(self) -> RegistrySnapshot:
        if self.clock() - self.loaded_at >= self.refresh_s:
            self.reload()
        return self.snapshot

    def reload(self) -> None:
        self.snapshot = self.load()
        self.loaded_at = self.clock()

    def reload_if_older_than(self, age_s: float) -> bool:
        if self.clock() - self.loaded_at < age_s:
            return False
        self.reload()
        return True


class IngestService:
    def __init__(
        self,
        settings: IngestSettings,
        *,
        metrics: IngestMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        retire: bool = False,
    ) -> None:
        """``retire``: drain this client id's session, then end it, and exit (scale-down)."""
        if settings.database_url is None:
            raise ValueError("DATABASE_URL is not set")
        self.settings = settings
        self.metrics = metrics or IngestMetrics.create()
        self._clock = clock
        self._wall = wall_clock
        self._inbox: Inbox[InboundMessage] = Inbox()
        self._store = BatchStore(settings.database_url)
        self._registry = _RegistryCache(self._store.registry, settings.registry_refresh_s, clock)
        self._guard = CounterGuard(self._store.latest_counter_values)
        self._pipeline = Pipeline(
            registry=self._registry.get,
            guard=self._guard,
            policy=ValidationPolicy(
                future_skew=timedelta(seconds=settings.future_skew_s),
                retention=timedelta(days=settings.readings_retention_days),
            ),
            max_payload_bytes=settings.max_payload_bytes,
            wall_clock=wall_clock,
        )
        self._flush = FlushPolicy(
            max_readings=settings.batch_max_readings,
            max_messages=settings.batch_max_messages,
            max_age_s=settings.batch_max_age_ms / 1000.0,
        )
        self._mqtt = MqttSubscriber(
            settings,
            client_id=settings.client_id,
            topic_filters=settings.topic_filters,
            session_expiry_s=settings.session_expiry_s,
            receive_maximum=settings.receive_maximum,
            sink=self._inbox.put,
            on_connection_change=lambda up: self.metrics.broker_connected.set(1 if up else 0),
            retire=retire,
        )
        self._retire = retire
        self._sliced = bool(settings.site_slice or settings.excluded_sites)
        self._stop = threading.Event()
        self._db_ok = False
        self._last_commit: float | None = None
        self._store_failures = 0
        self._batch_size = 0
        self.http: HealthServer | None = health_server(
            settings.http_host,
            settings.http_port,
            self.metrics.registry,
            self.health,
            name="ingest-http",
        )

    # ---- lifecycle -----------------------------------------------------------------------------

    def request_stop(self) -> None:
        self._stop.set()

    def health(self) -> dict[str, Any]:
        age = None if self._last_commit is None else round(self._clock() - self._last_commit, 3)
        connected = self._mqtt.connected
        subscribed = self._mqtt.subscribed
        return {
            "ok": subscribed and self._db_ok,
            "broker_connected": connected,
            "subscribed": subscribed,
            "database_ok": self._db_ok,
            "queue_depth": len(self._inbox),
            "pending_messages": len(self._inbox) + self._batch_size,
            "seconds_since_last_commit": age,
        }

    def run(self) -> int:  # noqa: C901, PLR0912 — the worker's life cycle: connect, consume, back off, retire, drain
        """Run until :meth:`request_stop`; returns the process exit code."""
        try:
            self._wait_for_database()
        except psycopg.errors.UndefinedTable as exc:
            log.error(
                "the database has no carbonflow schema (%s): run `carbonflow migrate`",
                str(exc).splitlines()[0],
            )
            self._store.close()
            return 2
        if self._stop.is_set():
            return 0
        if self.http is not None:
            self.http.start()
        self._mqtt.start()
        log.info(
            "ingest running: client id %s, filter %s",
            self.settings.client_id,
            ", ".join(self.settings.topic_filters),
        )
        batch = Batch(opened_at=self._clock())
        last_message = self._clock()
        try:
            while not self._stop.is_set():
                timeout = self._flush.wait_s(batch, self._clock())
                message = self._inbox.get(min(max(timeout, 0.001), _STOP_POLL_S))
                if message is None and self._retire_done(last_message):
                    break
                if message is not None:
                    last_message = self._clock()
                    if not batch.messages:
                        batch.opened_at = self._clock()
                    self._add(batch, message)
                    # Take what is already waiting without blocking, up to the batch limits.
                    while not self._flush.due(batch, self._clock()):
                        waiting = self._inbox.get_nowait()
                        if waiting is None:
                            break
                        self._add(batch, waiting)
                self.metrics.queue_depth.set(len(self._inbox))
                self._batch_size = len(batch.messages)
                if self._flush.due(batch, self._clock()):
                    if not self._commit(batch):
                        break  # stop requested while the database was down
                    batch = Batch(opened_at=self._clock())
                    self._batch_size = 0
            # Shutdown: store and acknowledge what has arrived, then disconnect.
            while (waiting := self._inbox.get_nowait()) is not None:
                self._add(batch, waiting)
            if batch.messages:
                self._commit(batch, final=True)
            return 0
        except FatalIngestError:
            log.exception("fatal error; exiting so that the supervisor restarts ingest")
            return 1
        finally:
            self._mqtt.stop(end_session=self._retire)
            self._store.close()
            if self.http is not None:
                self.http.stop()
            log.info("ingest stopped")

    def _retire_done(self, last_message: float) -> bool:
        """Retiring: unsubscribed, and the session has delivered nothing for a while."""
        return (
            self._retire
            and self._mqtt.unsubscribed.is_set()
            and len(self._inbox) == 0
            and self._clock() - last_message >= _RETIRE_QUIET_S
        )

    # ---- steps ---------------------------------------------------------------------------------

    def _add(self, batch: Batch, message: InboundMessage) -> None:
        if self._sliced and not self.settings.owns(message.topic):
            batch.skip(message)  # another worker's slice stores it; acknowledged in order
            return
        try:  # the common case without a closure per message; a fault goes round the retry loop
            self._pipeline_add(batch, message)
        except TRANSIENT_ERRORS:
            self._with_db_retry(lambda: self._pipeline_add(batch, message))

    def _pipeline_add(self, batch: Batch, message: InboundMessage) -> None:
        mark = batch.mark()
        try:
            self._pipeline.add(batch, message)
            if self._names_unknown(batch, mark.rejections) and self._registry.reload_if_older_than(
                _UNKNOWN_RELOAD_MIN_S
            ):
                # The registry may have changed since the last load (a site file was just loaded).
                batch.rollback(mark)
                self._pipeline.add(batch, message)
        except BaseException:
            batch.rollback(mark)  # a retry after a database fault must not add it twice
            raise

    @staticmethod
    def _names_unknown(batch: Batch, since: int) -> bool:
        return any(r.reason in _UNKNOWN_REASONS for r in batch.rejections[since:])

    def _wait_for_database(self) -> None:
        self._with_db_retry(self._registry.reload)

    def _with_db_retry(self, action: Callable[[], object]) -> bool:
        delay = self.settings.retry_initial_s
        while True:
            try:
                action()
                self._db_ok = True
                return True
            except TRANSIENT_ERRORS as exc:
                self._db_ok = False
                self._store.close()
                self.metrics.db_retries.inc()
                log.warning(
                    "database unavailable (%s); retrying in %.1f s", str(exc).strip()[:200], delay
                )
                if self._stop.wait(delay):
                    return False
                delay = min(delay * 2, self.settings.retry_max_s)

    def _commit(self, batch: Batch, *, final: bool = False) -> bool:
        """Store the batch, then acknowledge its messages. False if stopped before storing."""
        started = self._clock()
        stored = self._with_db_retry(lambda: self._seal_and_store(batch))
        if not stored:
            log.warning(
                "stopping with %d messages not stored; the broker redelivers them to this session",
                len(batch.messages),
            )
            return False
        self.metrics.write_seconds.observe(self._clock() - started)
        acked = self._mqtt.ack(batch.messages)
        if acked < sum(1 for m in batch.messages if m.qos > 0):
            log.info(
                "reconnected since %d messages arrived; the broker redelivers them",
                len(batch.messages) - acked,
            )
        self._last_commit = self._clock()
        self.metrics.last_commit_unixtime.set(time.time())
        now = self._wall()
        for ts in {row[2] for row in batch.rows[:: max(1, len(batch.rows) // 100)]}:
            self.metrics.lag_seconds.observe(max(0.0, (now - ts).total_seconds()))
        self.metrics.batch_readings.observe(len(batch.rows))
        for accepted, rejected in zip(batch.accepted, batch.rejected, strict=True):
            result = _result(accepted, rejected)
            self.metrics.messages.labels(result).inc()
        if final:
            log.info("stored and acknowledged %d messages before stopping", len(batch.messages))
        return True

    def _seal_and_store(self, batch: Batch) -> None:
        try:
            self._pipeline.seal(batch)
            result = self._store.store(
                batch.rows, batch.rejections, batch.serial_rows(), self._conflicts
            )
        except TRANSIENT_ERRORS:
            raise
        except Exception as exc:  # a message's content (COPY encoding, a text) or the schema
            log.error(
                "batch of %d messages failed to store (%s); storing one by one",
                len(batch.messages),
                exc,
            )
            self._isolate(batch)
            return
        self._count(result.inserted, result.staged, batch.rejections, result.conflicts)
        self._store_failures = 0

    def _isolate(self, batch: Batch) -> None:
        """Store the messages of a refused batch one by one.

        A message the database refuses on its own is that message's data: it is quarantined
        (``store_failed``), acknowledged, and does not count toward the fatal limit. A refusal
        that is not about data (a missing table or privilege: the schema or the configuration)
        counts; so many in a row, or a quarantine row refused too, is fatal.
        """
        for message in batch.messages:
            single = Batch(opened_at=self._clock())
            try:
                self._pipeline.add(single, message)
                self._pipeline.seal(single)
                result = self._store.store(
                    single.rows, single.rejections, single.serial_rows(), self._conflicts
                )
            except TRANSIENT_ERRORS:
                raise
            except Exception as exc:  # refused alone: this message's data, or the schema
                if not is_data_error(exc):
                    self._store_failures += 1
                    if self._store_failures >= _MAX_CONSECUTIVE_STORE_FAILURES:
                        raise FatalIngestError(
                            f"{self._store_failures} messages in a row failed to store"
                        ) from exc
                self._quarantine_store_failed(message, exc)
                continue
            self._store_failures = 0
            self._count(result.inserted, result.staged, single.rejections, result.conflicts)

    def _quarantine_store_failed(self, message: InboundMessage, exc: Exception) -> None:
        rejection = Rejection(
            Reason.STORE_FAILED,
            f"database refused the message: {type(exc).__name__}: {str(exc).strip()[:300]}",
        )
        self._pipeline.log_once(
            (message.topic, rejection.reason.value),
            "quarantining a message on %s: %s (logged once per topic and reason)",
            message.topic[:200],
            rejection.detail,
        )
        row = rejection_row(message, None, rejection)
        try:
            self._store.store([], [row], [], None)
        except TRANSIENT_ERRORS:
            raise
        except psycopg.Error as exc2:
            raise FatalIngestError("the database refuses even a quarantine row") from exc2
        self.metrics.rejected.labels(Reason.STORE_FAILED.value).inc()

    def _count(
        self,
        inserted: int,
        staged: int,
        rejections: list[RejectionRow],
        conflicts: list[ReadingRow],
    ) -> None:
        self.metrics.readings_written.inc(inserted)
        self.metrics.readings_duplicate.inc(staged - inserted - len(conflicts))
        for r in rejections:
            self.metrics.rejected.labels(r.reason).inc()
        if conflicts:
            self.metrics.rejected.labels(Reason.DUPLICATE_CONFLICT.value).inc(len(conflicts))

    def _conflicts(self, rows: list[ReadingRow]) -> list[RejectionRow]:
        snapshot = self._registry.snapshot
        out: list[RejectionRow] = []
        for device_pk, metric_id, ts, value, _seq, received_at in rows:
            device = snapshot.by_pk.get(device_pk)
            metric = (
                next((m.name for m in device.metrics.values() if m.metric_id == metric_id), None)
                if device
                else None
            )
            detail = (
                f"{metric} at {ts.isoformat()} is already stored with a different value; "
                "the first value is kept"
            )
            payload = f"{metric}={value!r}".encode()
            out.append(
                RejectionRow(
                    received_at=received_at,
                    reason=Reason.DUPLICATE_CONFLICT.value,
                    detail=detail,
                    topic=device_topic(device.site_id, device.device_id) if device else "",
                    site_id=device.site_id if device else None,
                    device_id=device.device_id if device else None,
                    metric=metric,
                    reading_ts=ts,
                    value=value,
                    payload_excerpt=payload.decode(),
                    payload_bytes=len(payload),
                    payload_sha256=hashlib.sha256(payload).hexdigest(),
                )
            )
        return out

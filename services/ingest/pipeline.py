"""parse → validate → batch → guard counters: turn inbound messages into a storable batch.

Pure except for the registry and counter look-ups it is handed; the service loop does the
writing and acknowledging. The counter guard runs once per batch (``seal``), so the newest
stored value of every counter in the batch is fetched in one query.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from datetime import datetime

from carbonflow.domain.readings.contract import Reason, Rejection, parse_message
from carbonflow.logs import LogOnce
from carbonflow.storage.readings import RejectionRow
from carbonflow.storage.registry import RegistrySnapshot
from services.ingest.batch import Batch
from services.ingest.counter_guard import CounterGuard
from services.ingest.messages import InboundMessage
from services.ingest.validate import ValidationPolicy, validate

log = logging.getLogger(__name__)

PAYLOAD_EXCERPT_CHARS = 1024
_MAX_LOGGED_KEYS = 10_000


def payload_excerpt(payload: bytes) -> str:
    """The payload as safe text: invalid UTF-8 escaped, NUL escaped, cut at a char boundary."""
    text = payload[: PAYLOAD_EXCERPT_CHARS * 4].decode("utf-8", errors="backslashreplace")
    text = text.replace("\x00", "\\x00")
    if len(text) > PAYLOAD_EXCERPT_CHARS or len(payload) > PAYLOAD_EXCERPT_CHARS * 4:
        text = text[:PAYLOAD_EXCERPT_CHARS] + "…"
    return text


def safe_text(text: str) -> str:
    """Text PostgreSQL accepts: NUL escaped (the only character ``text`` cannot hold)."""
    return text.replace("\x00", "\\x00")


def _safe(text: str | None) -> str | None:
    return None if text is None else safe_text(text)


def rejection_row(message: InboundMessage, site: str | None, rejection: Rejection) -> RejectionRow:
    return RejectionRow(
        received_at=message.received_at,
        reason=rejection.reason.value,
        detail=safe_text(rejection.detail),
        topic=safe_text(message.topic),
        site_id=_safe(site),
        device_id=_safe(rejection.device),
        metric=_safe(rejection.metric),
        reading_ts=rejection.ts,
        value=rejection.value,
        payload_excerpt=payload_excerpt(message.payload),
        payload_bytes=len(message.payload),
        payload_sha256=hashlib.sha256(message.payload).hexdigest(),
    )


def log_rejection(log_once: LogOnce, site: str | None, rejection: Rejection) -> None:
    """Log a data problem once per (site, device, reason), never once per message."""
    log_once(
        (site, rejection.device, rejection.reason.value),
        "rejecting %s from site=%s device=%s: %s (logged once per device and reason)",
        rejection.reason.value,
        site,
        rejection.device,
        rejection.detail,
    )


class Pipeline:
    def __init__(
        self,
        registry: Callable[[], RegistrySnapshot],
        guard: CounterGuard,
        policy: ValidationPolicy,
        max_payload_bytes: int,
        wall_clock: Callable[[], datetime],
    ) -> None:
        self._registry = registry
        self._guard = guard
        self._policy = policy
        self._max_payload_bytes = max_payload_bytes
        self._wall = wall_clock
        self.log_once = LogOnce(log, capacity=_MAX_LOGGED_KEYS, when_full="stop")

    def add(self, batch: Batch, message: InboundMessage) -> None:
        """Parse and validate one message into the batch; never raises for its content.

        The boundary of the failure classes: whatever the message's content makes a step raise
        becomes its quarantine row (``unprocessable``), logged once per device and reason,
        counted and acknowledged like any rejection. Only the registry look-up, which touches
        the database, may raise (a transient fault, retried by the service).
        """
        registry = self._registry()
        mark = batch.mark()
        try:
            self._add(batch, message, registry)
        except Exception as exc:  # the boundary: content errors are quarantined
            batch.rollback(mark)
            self._quarantine(batch, message, exc)

    def _quarantine(self, batch: Batch, message: InboundMessage, exc: Exception) -> None:
        rejection = Rejection(
            Reason.UNPROCESSABLE,
            f"processing raised {type(exc).__name__}: {str(exc)[:300]}",
        )
        self.log_once(
            (None, message.topic, rejection.reason.value),
            "quarantining a message on %s: %s (logged once per topic and reason)",
            message.topic[:200],
            rejection.detail,
            exc_info=True,
        )
        batch.messages.append(message)
        batch.rejections.append(rejection_row(message, None, rejection))
        batch.accepted.append(0)
        batch.rejected.append(1)

    def _add(self, batch: Batch, message: InboundMessage, registry: RegistrySnapshot) -> None:
        parsed = parse_message(
            message.topic, message.payload, message.received_at, self._max_payload_bytes
        )
        checked = validate(parsed, registry, self._wall(), self._policy)
        index = len(batch.messages)
        batch.messages.append(message)
        batch.candidates.extend(checked.candidates)
        batch.candidate_message.extend([index] * len(checked.candidates))
        for pk, serial, ts in checked.serials:
            batch.add_serial(pk, serial, ts)
        for r in checked.rejections:
            log_rejection(self.log_once, checked.site, r)
            batch.rejections.append(rejection_row(message, checked.site, r))
        batch.accepted.append(0)
        batch.rejected.append(len(checked.rejections))

    def seal(self, batch: Batch) -> None:
        """Run the counter guard over the whole batch and turn candidates into rows."""
        if not batch.candidates:
            return
        accepted, backwards = self._guard.filter(batch.candidates)
        for i in accepted:
            c = batch.candidates[i]
            message_index = batch.candidate_message[i]
            batch.rows.append(
                (
                    c.device.device_pk,
                    c.metric.metric_id,
                    c.ts,
                    c.value,
                    c.seq,
                    batch.messages[message_index].received_at,
                )
            )
            batch.accepted[message_index] += 1
        for i, rejection in backwards:
            message = batch.messages[batch.candidate_message[i]]
            site = batch.candidates[i].device.site_id
            log_rejection(self.log_once, site, rejection)
            batch.rejections.append(rejection_row(message, site, rejection))
            batch.rejected[batch.candidate_message[i]] += 1
        batch.candidates.clear()
        batch.candidate_message.clear()

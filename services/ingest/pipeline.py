"""parse → validate → guard counters → batch: turn inbound messages into a storable batch.

Pure except for the registry and counter look-ups it is handed; the service loop does the
writing and acknowledging.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from datetime import datetime

from carbonflow.domain.contract import Rejection, parse_message
from carbonflow.storage.ingest_store import ReadingRow, RegistrySnapshot, RejectionRow
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


class LogOnce:
    """Log a data problem once per (site, device, reason), never once per message."""

    def __init__(self) -> None:
        self._seen: set[tuple[str | None, str | None, str]] = set()

    def __call__(self, site: str | None, rejection: Rejection) -> None:
        key = (site, rejection.device, rejection.reason.value)
        if key in self._seen or len(self._seen) >= _MAX_LOGGED_KEYS:
            return
        self._seen.add(key)
        log.warning(
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
        self.log_once = LogOnce()

    def add(self, batch: Batch, message: InboundMessage) -> None:
        parsed = parse_message(
            message.topic, message.payload, message.received_at, self._max_payload_bytes
        )
        checked = validate(parsed, self._registry(), self._wall(), self._policy)
        accepted, backwards = self._guard.filter(checked.candidates)
        rejections = checked.rejections + backwards
        received = message.received_at
        for c in accepted:
            row: ReadingRow = (
                c.device.device_pk,
                c.metric.metric_id,
                c.ts,
                c.value,
                c.seq,
                received,
            )
            batch.rows.append(row)
        for pk, serial, ts in checked.serials:
            batch.add_serial(pk, serial, ts)
        if rejections:
            digest = hashlib.sha256(message.payload).hexdigest()
            excerpt = payload_excerpt(message.payload)
            for r in rejections:
                self.log_once(checked.site, r)
                batch.rejections.append(
                    RejectionRow(
                        received_at=received,
                        reason=r.reason.value,
                        detail=r.detail,
                        topic=message.topic,
                        site_id=checked.site,
                        device_id=r.device,
                        metric=r.metric,
                        reading_ts=r.ts,
                        value=r.value,
                        payload_excerpt=excerpt,
                        payload_bytes=len(message.payload),
                        payload_sha256=digest,
                    )
                )
        batch.messages.append(message)
        batch.message_results.append((len(accepted), len(rejections)))

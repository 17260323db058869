"""A batch of validated readings and rejections, flushed by size or by age (injected clock)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from carbonflow.storage.ingest_store import ReadingRow, RejectionRow
from services.ingest.messages import InboundMessage

Clock = Callable[[], float]  # monotonic seconds


@dataclass(slots=True)
class Batch:
    opened_at: float
    messages: list[InboundMessage] = field(default_factory=list)
    rows: list[ReadingRow] = field(default_factory=list)
    rejections: list[RejectionRow] = field(default_factory=list)
    serials: dict[tuple[int, str], tuple[datetime, datetime]] = field(default_factory=dict)
    # per message: (readings stored candidates, rejections) to report message results
    message_results: list[tuple[int, int]] = field(default_factory=list)

    def add_serial(self, device_pk: int, serial: str, ts: datetime) -> None:
        key = (device_pk, serial)
        seen = self.serials.get(key)
        self.serials[key] = (min(seen[0], ts), max(seen[1], ts)) if seen else (ts, ts)

    def serial_rows(self) -> list[tuple[int, str, datetime, datetime]]:
        return [(pk, serial, lo, hi) for (pk, serial), (lo, hi) in self.serials.items()]


@dataclass(frozen=True, slots=True)
class FlushPolicy:
    max_readings: int
    max_messages: int
    max_age_s: float

    def due(self, batch: Batch, now: float) -> bool:
        if not batch.messages:
            return False
        return (
            len(batch.rows) >= self.max_readings
            or len(batch.messages) >= self.max_messages
            or now - batch.opened_at >= self.max_age_s
        )

    def wait_s(self, batch: Batch, now: float) -> float:
        """How long the loop may block for the next message before this batch is due."""
        if not batch.messages:
            return self.max_age_s
        return max(0.0, self.max_age_s - (now - batch.opened_at))

"""A batch of validated readings and rejections, flushed by size or by age (injected clock)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from carbonflow.storage.readings import ReadingRow, RejectionRow
from services.ingest.messages import InboundMessage
from services.ingest.validate import Candidate


@dataclass(frozen=True, slots=True)
class BatchMark:
    messages: int
    candidates: int
    rejections: int
    serial_changes: int


@dataclass(slots=True)
class Batch:
    opened_at: float
    messages: list[InboundMessage] = field(default_factory=list)
    # validated readings and the index of the message each came in, until the batch is sealed
    candidates: list[Candidate] = field(default_factory=list)
    candidate_message: list[int] = field(default_factory=list)
    rows: list[ReadingRow] = field(default_factory=list)
    rejections: list[RejectionRow] = field(default_factory=list)
    serials: dict[tuple[int, str], tuple[datetime, datetime]] = field(default_factory=dict)
    # (key, span before the change or None): undo log for rollback, so a mark costs O(1)
    serial_changes: list[tuple[tuple[int, str], tuple[datetime, datetime] | None]] = field(
        default_factory=list
    )
    # per message: readings accepted, readings or parts rejected
    accepted: list[int] = field(default_factory=list)
    rejected: list[int] = field(default_factory=list)

    @property
    def readings(self) -> int:
        return len(self.candidates) + len(self.rows)

    def skip(self, message: InboundMessage) -> None:
        """Carry ``message`` only to acknowledge it in order (another worker's slice)."""
        self.messages.append(message)
        self.accepted.append(0)
        self.rejected.append(0)

    def add_serial(self, device_pk: int, serial: str, ts: datetime) -> None:
        key = (device_pk, serial)
        seen = self.serials.get(key)
        self.serial_changes.append((key, seen))
        self.serials[key] = (min(seen[0], ts), max(seen[1], ts)) if seen else (ts, ts)

    def serial_rows(self) -> list[tuple[int, str, datetime, datetime]]:
        return [(pk, serial, lo, hi) for (pk, serial), (lo, hi) in self.serials.items()]

    def mark(self) -> BatchMark:
        return BatchMark(
            len(self.messages),
            len(self.candidates),
            len(self.rejections),
            len(self.serial_changes),
        )

    def rollback(self, mark: BatchMark) -> None:
        """Undo what was added since ``mark`` (before the batch is sealed)."""
        del self.messages[mark.messages :]
        del self.accepted[mark.messages :]
        del self.rejected[mark.messages :]
        del self.candidates[mark.candidates :]
        del self.candidate_message[mark.candidates :]
        del self.rejections[mark.rejections :]
        while len(self.serial_changes) > mark.serial_changes:
            key, before = self.serial_changes.pop()
            if before is None:
                del self.serials[key]
            else:
                self.serials[key] = before


@dataclass(frozen=True, slots=True)
class FlushPolicy:
    max_readings: int
    max_messages: int
    max_age_s: float

    def due(self, batch: Batch, now: float) -> bool:
        if not batch.messages:
            return False
        return (
            batch.readings >= self.max_readings
            or len(batch.messages) >= self.max_messages
            or now - batch.opened_at >= self.max_age_s
        )

    def wait_s(self, batch: Batch, now: float) -> float:
        """How long the loop may block for the next message before this batch is due."""
        if not batch.messages:
            return self.max_age_s
        return max(0.0, self.max_age_s - (now - batch.opened_at))

"""What the MQTT adapter hands to the pipeline: a frozen, decoded message."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class InboundMessage:
    topic: str
    payload: bytes
    mid: int
    qos: int
    received_at: datetime  # wall clock, UTC, when the adapter got it
    generation: int  # which broker connection delivered it; acks go only to that connection

"""What the MQTT adapter hands to the pipeline: an immutable, decoded message."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple


class InboundMessage(NamedTuple):
    """One per MQTT message, made on the network thread: a named tuple is built in C."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    received_at: datetime  # wall clock, UTC, when the adapter got it
    generation: int  # which broker connection delivered it; acks go only to that connection

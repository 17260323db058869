"""Hand-over from the MQTT network thread to the pipeline thread.

A deque (append and popleft are atomic in CPython) instead of ``queue.Queue``: the producer pays
for a wake-up only when the consumer is actually waiting, not once per message. It needs no
bound of its own: the broker never has more than the announced Receive Maximum of
unacknowledged messages in flight to this client.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class Inbox(Generic[T]):
    def __init__(self) -> None:
        self._items: deque[T] = deque()
        self._wake = threading.Event()
        self._waiting = False

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: T) -> None:
        self._items.append(item)
        if self._waiting:
            self._wake.set()

    def get_nowait(self) -> T | None:
        try:
            return self._items.popleft()
        except IndexError:
            return None

    def get(self, timeout_s: float) -> T | None:
        """The oldest item, waiting up to ``timeout_s`` for one; None if none came."""
        item = self.get_nowait()
        if item is not None:
            return item
        # Announce the wait before looking again, so a put in between is never missed.
        self._wake.clear()
        self._waiting = True
        try:
            item = self.get_nowait()
            if item is not None:
                return item
            self._wake.wait(timeout_s)
            return self.get_nowait()
        finally:
            self._waiting = False

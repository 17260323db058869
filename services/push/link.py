"""One TCP connection to an authority's platform: bytes out, complete HJ 212 frames in."""

from __future__ import annotations

import contextlib
import socket
import time
from collections import deque

from carbonflow.domain.reporting.hj212 import read_frames

_RECEIVE_BYTES = 4096


class Link:
    """A connected TCP client. ``receive`` returns the next complete frame (CRC unchecked:
    :func:`~carbonflow.domain.reporting.hj212.parse` does that) or ``None`` after the timeout;
    a connection the peer closed raises :class:`ConnectionError`."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = b""
        self._frames: deque[bytes] = deque()
        self.dropped_bytes = 0

    @classmethod
    def open(cls, host: str, port: int, timeout_s: float) -> Link:
        sock = socket.create_connection((host, port), timeout=timeout_s)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(sock)

    def send(self, data: bytes) -> None:
        self._sock.sendall(data)

    def receive(self, timeout_s: float) -> bytes | None:
        deadline = time.monotonic() + timeout_s
        while not self._frames:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self._sock.settimeout(remaining)
            try:
                chunk = self._sock.recv(_RECEIVE_BYTES)
            except TimeoutError:
                return None
            if not chunk:
                raise ConnectionError("the platform closed the connection")
            frames, self._buffer, dropped = read_frames(self._buffer + chunk)
            self.dropped_bytes += dropped
            self._frames.extend(frames)
        return self._frames.popleft()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()

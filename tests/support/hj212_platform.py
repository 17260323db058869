"""A small HJ 212 monitoring centre (上位机) on a local TCP port, for the push tests.

This is a test double of the *authority's* server, which the project does not own or run: it
stands where a provincial platform stands, speaks the same protocol through the same codec
functions a real one must agree with (the codec itself is tested against REPORTING.md's
packets), and can misbehave on purpose: drop answers, close connections, go down.
"""

from __future__ import annotations

import contextlib
import random
import socket
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from carbonflow.domain.reporting.hj212 import (
    KNOWN_CNS_2025,
    Hj212Error,
    Packet,
    frame,
    parse,
    read_frames,
)
from carbonflow.domain.reporting.hj212_2025 import sm4_decode_cp
from carbonflow.domain.reporting.hj212_flow import Identity, data_answer


@dataclass(frozen=True)
class Received:
    number: int  # 1-based arrival number over the platform's life
    raw: bytes
    packet: Packet | None
    answered: bool


class FakePlatform:
    """Listens on 127.0.0.1; answers every data packet asking for it with 9014, except those
    it is told to drop (``drop_share`` of them, seeded) and those at whose arrival it closes the
    connection (``disconnect_at``: arrival numbers) or goes down altogether (``down_at``: then
    every connect is refused until :meth:`start`); the answers to ``corrupt_at`` arrivals have
    one byte changed."""

    def __init__(
        self,
        *,
        drop_share: float = 0.0,
        seed: int = 0,
        disconnect_at: Iterable[int] = (),
        down_at: int | None = None,
        corrupt_at: Iterable[int] = (),
        sm4_key: bytes | None = None,
    ) -> None:
        self.identity = Identity(st="91", pw="530719", mn="PLATFORM")
        self.drop_share = drop_share
        self._rng = random.Random(seed)
        self._disconnect_at = set(disconnect_at)
        self._down_at = down_at
        self._corrupt_at = set(corrupt_at)
        self._decode = sm4_decode_cp(sm4_key) if sm4_key else None
        self.went_down = threading.Event()
        self._lock = threading.Lock()
        self.received: list[Received] = []
        self.replies: list[Packet] = []  # packets we got that were not uploads (history replies)
        self.connections = 0
        self._listener: socket.socket | None = None
        self._clients: list[socket.socket] = []
        self.port = 0

    # --- life ----------------------------------------------------------------------------

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        """Down: the listener and every connection closed (connects are refused)."""
        with self._lock:
            listener, self._listener = self._listener, None
            clients, self._clients = self._clients, []
        if listener is not None:
            # shutdown wakes the thread blocked in accept(); close alone would not (Linux).
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for client in clients:
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)
            client.close()

    def _go_down(self) -> None:
        self.stop()
        self.went_down.set()

    def send(self, packet: bytes) -> None:
        """Send a request (e.g. a history request) to the connected field unit."""
        with self._lock:
            client = self._clients[-1]
        client.sendall(packet)

    # --- serving -------------------------------------------------------------------------

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                self._clients.append(client)
                self.connections += 1
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        buffer = b""
        with contextlib.suppress(OSError):
            while chunk := client.recv(4096):
                frames, buffer, _ = read_frames(buffer + chunk)
                for raw in frames:
                    if not self._handle(client, raw):
                        client.close()
                        return
        client.close()

    def _handle(self, client: socket.socket, raw: bytes) -> bool:
        """Record and maybe answer one packet; False: close the connection."""
        packet: Packet | None = None
        with contextlib.suppress(Hj212Error):
            packet = parse(raw, cns=KNOWN_CNS_2025)
        if packet is None and self._decode is not None:  # HJ 212-2025 data: CP encrypted
            with contextlib.suppress(Hj212Error):
                packet = parse(raw, cns=KNOWN_CNS_2025, decode_cp=self._decode)
        with self._lock:
            number = len(self.received) + 1
            if number in self._disconnect_at or number == self._down_at:
                self.received.append(Received(number, raw, packet, answered=False))
                if number == self._down_at:
                    threading.Thread(target=self._go_down, daemon=True).start()
                return False
            is_upload = packet is not None and packet.cn.startswith("2")
            if packet is not None and not packet.wants_answer:
                self.replies.append(packet)
            answer = (
                packet is not None
                and is_upload
                and packet.wants_answer
                and self._rng.random() >= self.drop_share
            )
            corrupt = number in self._corrupt_at
            self.received.append(Received(number, raw, packet, answered=answer and not corrupt))
        if answer and packet is not None:
            wire = frame(data_answer(packet, self.identity).segment())
            if corrupt:  # one byte of the segment changed: the CRC no longer matches
                wire = wire[:10] + bytes([wire[10] ^ 0x01]) + wire[11:]
            client.sendall(wire)
        return True

    # --- what arrived --------------------------------------------------------------------

    def uploads(self) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.packet is not None and r.packet.wants_answer]

    def count(self) -> int:
        with self._lock:
            return len(self.received)

"""A small HJ 212 monitoring centre (上位机): the authority's end, simulated.

It stands where a provincial platform stands — the project does not own or run one — and
speaks the same protocol through the same codec functions a real one must agree with (the codec
itself is tested against REPORTING.md's packets). Three users: ``carbonflow demo`` pushes to one
so the push path runs end to end on one machine; ``carbonflow hj212 receive`` gives integrators
one to point a field unit at; the suite's push tests make it misbehave on purpose (drop answers,
corrupt them, close connections, go down). With ``log_path`` every packet received is appended
as a JSON line (arrival, CN, QN, DataTime, answered, the raw packet).
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

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


@dataclass(frozen=True)
class Faults:
    """How the platform misbehaves: ``drop_share`` of the answers not sent (seeded); the
    connection closed at the ``disconnect_at`` arrivals (arrival numbers, 1-based); down at the
    ``down_at`` arrival (every connect refused until :meth:`AuthorityPlatform.start`); the
    answers to the ``corrupt_at`` arrivals with one byte changed."""

    drop_share: float = 0.0
    seed: int = 0
    disconnect_at: frozenset[int] = frozenset()
    down_at: int | None = None
    corrupt_at: frozenset[int] = frozenset()


class AuthorityPlatform:
    """Listens on ``host``:``port`` (a free port when 0); answers every data packet asking for
    it with 9014, unless :class:`Faults` say otherwise."""

    def __init__(
        self,
        faults: Faults = Faults(),
        *,
        sm4_key: bytes | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        log_path: Path | None = None,
        on_receive: Callable[[int, Packet | None, bool], None] | None = None,
    ) -> None:
        self.identity = Identity(st="91", pw="530719", mn="PLATFORM")
        self.drop_share = faults.drop_share
        self._rng = random.Random(faults.seed)
        self._disconnect_at = faults.disconnect_at
        self._down_at = faults.down_at
        self._corrupt_at = faults.corrupt_at
        self._decode = sm4_decode_cp(sm4_key) if sm4_key else None
        self.went_down = threading.Event()
        self._lock = threading.Lock()
        self.received: list[Received] = []
        self.replies: list[Packet] = []  # packets we got that were not uploads (history replies)
        self.connections = 0
        self._listener: socket.socket | None = None
        self._clients: list[socket.socket] = []
        self.host = host
        self.port = port
        self._log_path = log_path
        self._on_receive = on_receive

    # --- life ----------------------------------------------------------------------------

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
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
            self._log(self.received[-1])
        if answer and packet is not None:
            wire = frame(data_answer(packet, self.identity).segment())
            if corrupt:  # one byte of the segment changed: the CRC no longer matches
                wire = wire[:10] + bytes([wire[10] ^ 0x01]) + wire[11:]
            client.sendall(wire)
        return True

    def _log(self, received: Received) -> None:
        packet = received.packet
        if self._log_path is not None:
            _write_line(self._log_path, received, packet)
        # after the line is written: who is told of a packet may read the log
        if self._on_receive is not None:
            self._on_receive(received.number, packet, received.answered)

    # --- what arrived --------------------------------------------------------------------

    def uploads(self) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.packet is not None and r.packet.wants_answer]

    def count(self) -> int:
        with self._lock:
            return len(self.received)


def _write_line(path: Path, received: Received, packet: Packet | None) -> None:
    line = {
        "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "number": received.number,
        "cn": packet.cn if packet else None,
        "qn": packet.qn if packet else None,
        "data_time": packet.value("DataTime") if packet else None,
        "answered": received.answered,
        "valid": packet is not None,
        "raw": received.raw.decode("ascii", "replace").rstrip("\r\n"),
    }
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(line, ensure_ascii=False) + "\n")

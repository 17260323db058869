"""A provincial energy online monitoring platform (重点用能单位能耗在线监测), simulated.

The province's interface is not public (REPORTING.md §2.2), so this receiver takes the body
the project builds (docs/push.md §3) over HTTPS — with a self-signed certificate made at start,
whose file the sender is given as its CA — checks the bearer token, and answers 200. For the
suite it misbehaves on purpose: 503 at the ``unavailable_at`` requests, 400 for batch ids
containing one of ``refuse``, and down (connections refused) between :meth:`stop` and
:meth:`start`.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
import tempfile
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class EnergyFaults:
    unavailable_at: frozenset[int] = frozenset()  # request numbers (1-based) answered 503
    refuse: tuple[str, ...] = ()  # batch ids containing one of these are answered 400


@dataclass(frozen=True)
class Receipt:
    number: int
    batch_id: str
    authorized: bool
    status: int
    body: dict[str, Any] | None = field(default=None, compare=False)


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost and its key, as PEM files in ``directory``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "carbonflow test platform")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "platform.crt", directory / "platform.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class EnergyPlatform:
    """HTTPS on ``host``:``port`` (a free port when 0, kept across restarts)."""

    def __init__(
        self, token: str, faults: EnergyFaults = EnergyFaults(), *, host: str = "127.0.0.1"
    ) -> None:
        self.token = token
        self.faults = faults
        self.host = host
        self.port = 0
        self._dir = tempfile.TemporaryDirectory(prefix="cf-energy-platform-")
        self.ca_file, self._key_file = self_signed(Path(self._dir.name))
        self._receipts: list[Receipt] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}/energy/upload"

    def receipts(self) -> list[Receipt]:
        with self._lock:
            return list(self._receipts)

    def start(self) -> None:
        platform = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                platform._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                return

        server = ThreadingHTTPServer((self.host, self.port), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.ca_file, self._key_file)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def close(self) -> None:
        self.stop()
        self._dir.cleanup()

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length)
        batch_id = request.headers.get("Idempotency-Key", "")
        authorized = request.headers.get("Authorization") == f"Bearer {self.token}"
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        with self._lock:
            number = len(self._receipts) + 1
            if not authorized:
                status = 401
            elif number in self.faults.unavailable_at:
                status = 503
            elif body is None or any(r in batch_id for r in self.faults.refuse):
                status = 400
            else:
                status = 200
            self._receipts.append(Receipt(number, batch_id, authorized, status, body))
        answer = json.dumps({"code": status, "batchId": batch_id}).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(answer)))
        request.end_headers()
        request.wfile.write(answer)

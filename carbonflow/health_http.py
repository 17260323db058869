"""``/metrics`` (Prometheus text format) and ``/healthz`` (JSON) of a service, served by a small
background HTTP server. Shared by the ingest and calc services."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)


class HealthServer:
    def __init__(
        self,
        host: str,
        port: int,
        registry: CollectorRegistry,
        health: Callable[[], dict[str, Any]],
        *,
        name: str = "health-http",
    ) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/metrics":
                    self._send(200, CONTENT_TYPE_LATEST, generate_latest(registry))
                elif self.path in ("/healthz", "/health"):
                    state = health()
                    code = 200 if state.get("ok") else 503
                    self._send(code, "application/json", json.dumps(state, default=str).encode())
                else:
                    self._send(404, "text/plain", b"not found\n")

            def _send(self, code: int, ctype: str, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("http: " + format, *args)

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name=name, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def health_server(
    host: str,
    port: int | None,
    registry: CollectorRegistry,
    health: Callable[[], dict[str, Any]],
    *,
    name: str,
) -> HealthServer | None:
    """The service's ``/metrics`` + ``/healthz`` server; None when no port is set (0 or unset)."""
    return HealthServer(host, port, registry, health, name=name) if port else None

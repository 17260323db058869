"""The notify service's ``/healthz`` and ``/metrics`` (carbonflow/health_http.py), as the
deployments probe them: 503 while the database cannot be reached, 200 once a cycle ran."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from carbonflow.embedded.net import free_port
from services.notify.service import NotifyService
from services.notify.settings import NotifySettings
from tests.support.waiting import wait_until


def _get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return int(answer.status), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""  # not listening yet


@contextmanager
def _running(database_url: str) -> Iterator[tuple[NotifyService, int]]:
    port = free_port()
    settings = NotifySettings.model_validate(
        {"DATABASE_URL": database_url, "CARBONFLOW_NOTIFY_HTTP_PORT": port,
         "CARBONFLOW_NOTIFY_INTERVAL_S": 3600}
    )  # fmt: skip
    service = NotifyService(settings)
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    try:
        yield service, port
    finally:
        service.request_stop()
        thread.join(timeout=30)
    assert not thread.is_alive()


def _health(port: int) -> tuple[int, dict[str, Any]]:
    code, body = _get(port, "/healthz")
    return code, json.loads(body) if body else {}


def test_unreachable_database_answers_503_and_counts_the_failure() -> None:
    # Nothing listens on this port: every cycle fails with a connection error.
    url = f"postgresql://nobody:none@127.0.0.1:{free_port()}/none?connect_timeout=2"
    with _running(url) as (_service, port):
        metrics = wait_until(
            lambda: b"carbonflow_notify_cycle_failures_total 1.0" in _get(port, "/metrics")[1],
            timeout_s=30,
            message="the failed cycle is counted",
        )
        assert metrics
        code, health = _health(port)
        assert code == 503
        assert health["ok"] is False and health["database_ok"] is False
        assert health["seconds_since_last_cycle"] is None
        assert _get(port, "/nothing")[0] == 404


@pytest.mark.integration
def test_a_cycle_as_the_app_role_answers_200(app_role_url: str) -> None:
    """As deployed: the services' login role (grants of carbonflow_app only)."""
    with _running(app_role_url) as (_service, port):
        wait_until(lambda: _health(port)[0] == 200, timeout_s=30, message="healthy")
        _, health = _health(port)
        assert health["ok"] is True and health["database_ok"] is True
        _, metrics = _get(port, "/metrics")
        assert b"carbonflow_notify_cycles_total 1.0" in metrics
        assert b"carbonflow_notify_database_up 1.0" in metrics

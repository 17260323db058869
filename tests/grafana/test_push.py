"""``carbonflow grafana push`` against a local HTTP stand-in for Grafana.

The stand-in is NOT Grafana: it is a small in-memory server that answers the few HTTP API
routes the push uses (data sources, folders and dashboards by uid) the way Grafana documents
them, and records every call, so the tests can check what was sent and that a second push
updates in place instead of creating anything again. No Grafana server can run here.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from carbonflow.grafana.build import dashboards
from carbonflow.grafana.push import (
    GrafanaSettings,
    PushError,
    connect,
    datasource_payloads,
    push,
)
from cli.main import main

pytestmark = pytest.mark.integration

TOKEN = "glsa_test_token"
ENV = {
    "CARBONFLOW_GRAFANA_PG_HOST": "db.internal:5432",
    "CARBONFLOW_GRAFANA_PG_DATABASE": "carbonflow",
    "CARBONFLOW_GRAFANA_PG_USER": "grafana",
    "CARBONFLOW_GRAFANA_PG_PASSWORD": "pg-secret",
    "CARBONFLOW_PROMETHEUS_URL": "http://prometheus:9090",
}


@dataclass
class StandIn:
    """What the stand-in holds and every call it received: (method, path, JSON body)."""

    url: str = ""
    calls: list[tuple[str, str, Any]] = field(default_factory=list)
    datasources: dict[str, dict[str, Any]] = field(default_factory=dict)
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)

    def routes(self, method: str) -> list[str]:
        return [path for m, path, _ in self.calls if m == method]


def _handler(state: StandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet test output
            pass

        def _answer(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            state.calls.append((method, self.path, body))
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                self._answer(401, {"message": "Unauthorized"})
                return
            status, answer = self._route(method, self.path, body)
            self._answer(status, answer)

        def _route(self, method: str, path: str, body: Any) -> tuple[int, Any]:
            if m := re.fullmatch(r"/api/datasources/uid/([\w-]+)", path):
                uid = m[1]
                if uid not in state.datasources:
                    return 404, {"message": "Data source not found"}
                if method == "PUT":
                    state.datasources[uid] = body
                    return 200, {"message": "Datasource updated", "datasource": body}
                return 200, state.datasources[uid]
            if path == "/api/datasources" and method == "POST":
                if body["uid"] in state.datasources:
                    return 409, {"message": "data source with the same uid already exists"}
                state.datasources[body["uid"]] = body
                return 200, {"message": "Datasource added", "datasource": body}
            if m := re.fullmatch(r"/api/folders/([\w-]+)", path):
                if m[1] not in state.folders:
                    return 404, {"message": "folder not found"}
                return 200, state.folders[m[1]]
            if path == "/api/folders" and method == "POST":
                if body["uid"] in state.folders:
                    return 409, {"message": "a folder with the same uid already exists"}
                state.folders[body["uid"]] = body
                return 200, body
            if m := re.fullmatch(r"/api/dashboards/uid/([\w-]+)", path):
                if m[1] not in state.dashboards:
                    return 404, {"message": "Dashboard not found"}
                return 200, {"dashboard": state.dashboards[m[1]]["dashboard"]}
            if path == "/api/dashboards/db" and method == "POST":
                if body["folderUid"] not in state.folders:
                    return 400, {"message": "folder not found"}
                uid = body["dashboard"]["uid"]
                if uid in state.dashboards and not body.get("overwrite"):
                    return 412, {"message": "version-mismatch"}
                state.dashboards[uid] = body
                return 200, {"status": "success", "uid": uid, "version": 1}
            return 404, {"message": f"no route {method} {path}"}

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def do_PUT(self) -> None:
            self._handle("PUT")

    return Handler


@pytest.fixture
def grafana() -> Iterator[StandIn]:
    state = StandIn()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _settings(url: str, token: str = TOKEN) -> GrafanaSettings:
    return GrafanaSettings(CARBONFLOW_GRAFANA_URL=url, CARBONFLOW_GRAFANA_TOKEN=token)


def test_push_creates_then_updates_in_place(grafana: StandIn) -> None:
    sources = datasource_payloads(env=ENV)
    first = push(connect(_settings(grafana.url)), datasources=sources)
    boards = dashboards()
    assert len(first.created) == 2 + 5 + len(boards) and first.updated == []
    pg = grafana.datasources["carbonflow-pg"]
    assert pg["url"] == "db.internal:5432" and pg["user"] == "grafana"
    assert pg["jsonData"]["database"] == "carbonflow"
    assert pg["secureJsonData"] == {"password": "pg-secret"}
    assert grafana.datasources["carbonflow-prometheus"]["url"] == "http://prometheus:9090"
    for board in boards:
        stored = grafana.dashboards[board.uid]
        assert stored["folderUid"] == f"carbonflow-{board.folder}"
        assert stored["overwrite"] is True
        assert stored["dashboard"]["panels"] == board.to_json()["panels"]
    assert sorted(grafana.folders) == sorted(f"carbonflow-{b.folder}" for b in boards)

    posts_before = len(grafana.routes("POST"))
    second = push(connect(_settings(grafana.url)), datasources=sources)
    assert second.created == []
    assert sorted(second.updated) == sorted(
        ["datasource carbonflow-pg", "datasource carbonflow-prometheus"]
        + [f"dashboard {b.uid}" for b in boards]
    )
    assert len(second.unchanged) == 5  # folders: created once, kept
    new_posts = grafana.routes("POST")[posts_before:]
    assert new_posts == ["/api/dashboards/db"] * len(boards)  # no new data source or folder
    assert len(grafana.dashboards) == len(boards) and len(grafana.datasources) == 2


def test_a_refused_token_is_a_clear_error(grafana: StandIn) -> None:
    with pytest.raises(PushError, match=r"HTTP 401.*refused"):
        push(connect(_settings(grafana.url, "wrong")), datasources=datasource_payloads(env=ENV))


def test_missing_settings_are_named() -> None:
    with pytest.raises(PushError, match="CARBONFLOW_GRAFANA_PG_PASSWORD"):
        datasource_payloads(
            env={k: v for k, v in ENV.items() if k != "CARBONFLOW_GRAFANA_PG_PASSWORD"}
        )
    with pytest.raises(PushError, match="CARBONFLOW_GRAFANA_URL"):
        connect(GrafanaSettings(CARBONFLOW_GRAFANA_TOKEN=TOKEN))
    with pytest.raises(PushError, match="CARBONFLOW_GRAFANA_TOKEN"):
        connect(GrafanaSettings(CARBONFLOW_GRAFANA_URL="http://127.0.0.1:1"))


def test_nothing_listening_is_a_clear_error() -> None:
    from carbonflow.embedded.net import free_port

    api = connect(_settings(f"http://127.0.0.1:{free_port()}"))
    with pytest.raises(PushError, match="no answer"):
        push(api, datasources=datasource_payloads(env=ENV))


def test_the_command_pushes_with_settings_from_the_environment(
    grafana: StandIn, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("CARBONFLOW_GRAFANA_URL", grafana.url)
    monkeypatch.setenv("CARBONFLOW_GRAFANA_TOKEN", TOKEN)
    assert main(["grafana", "push"]) == 0
    assert "created" in capsys.readouterr().out
    monkeypatch.setenv("CARBONFLOW_GRAFANA_TOKEN", "wrong")
    assert main(["grafana", "push"]) == 1
    assert "grafana push failed" in capsys.readouterr().err

"""The embedded services and the fixtures built on them, against the real servers."""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psutil
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

import carbonflow.embedded.broker as broker_module
from carbonflow.embedded.amqtt_broker import EmbeddedAmqtt
from carbonflow.embedded.broker import (
    EmbeddedMosquitto,
    MosquittoNotFoundError,
    start_embedded_broker,
)
from carbonflow.embedded.postgres import EmbeddedPostgres, render_settings, shared_buffers_mb

pytestmark = pytest.mark.integration

TIMEOUT_S = 30.0
"""Bound on any single wait here [s]: a hang guard, not a speed expectation."""


# -- helpers -----------------------------------------------------------------------------


def _server_processes(data_dir: Path) -> list[psutil.Process]:
    """Live (non-zombie) processes of a PostgreSQL cluster: their working directory is it."""
    found = []
    for process in psutil.process_iter(["name", "cwd", "status"]):
        info = process.info
        if info["status"] == psutil.STATUS_ZOMBIE or not info["cwd"]:
            continue
        if Path(info["cwd"]) == data_dir and info["name"] in ("postgres", "postmaster"):
            found.append(process)
    return found


def _query(url: str, statement: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(statement)
        return cursor.fetchall() if cursor.description else []


class _Client:
    """A paho client that records what it receives; waits are bounded."""

    def __init__(self, port: int, client_id: str, *, clean_session: bool = True) -> None:
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.session_present: bool | None = None
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=clean_session,
            protocol=mqtt.MQTTv311,
        )
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        assert self._connected.wait(TIMEOUT_S), "no CONNACK"

    def _on_connect(self, _c: mqtt.Client, _u: Any, flags: Any, _rc: Any, _p: Any) -> None:
        self.session_present = bool(flags.session_present)
        self._connected.set()

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, _rc: Any, _p: Any) -> None:
        self._subscribed.set()

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        self.messages.put((message.topic, bytes(message.payload)))

    def subscribe(self, topic: str, qos: int = 1) -> None:
        self._subscribed.clear()
        self.client.subscribe(topic, qos=qos)
        assert self._subscribed.wait(TIMEOUT_S), "no SUBACK"

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        info = self.client.publish(topic, payload, qos=qos)
        info.wait_for_publish(timeout=TIMEOUT_S)
        assert info.is_published(), "no PUBACK"

    def next_message(self) -> tuple[str, bytes]:
        return self.messages.get(timeout=TIMEOUT_S)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@contextmanager
def _client(port: int, client_id: str, *, clean_session: bool = True) -> Iterator[_Client]:
    client = _Client(port, client_id, clean_session=clean_session)
    try:
        yield client
    finally:
        client.close()


# -- PostgreSQL --------------------------------------------------------------------------


@pytest.fixture
def cluster_dir(services_dir: Path, request: pytest.FixtureRequest) -> Path:
    """A data directory the server's user can reach, also when the suite runs as root."""
    return services_dir / f"test-{request.node.name}"


def test_a_durable_cluster_gets_an_eighth_of_memory_and_room_for_a_recompute_s_wal() -> None:
    gib = 2**30
    cases = ((24 * gib, 1024), (4 * gib, 512), (512 * 2**20, 128))
    assert [shared_buffers_mb(True, memory) for memory, _ in cases] == [mb for _, mb in cases]
    assert shared_buffers_mb(False, 24 * gib) == 128  # test clusters: many at once
    durable = render_settings(
        port=1, socket_dir=Path("/s"), durable=True, preload_timescaledb=False
    )
    throwaway = render_settings(
        port=1, socket_dir=Path("/s"), durable=False, preload_timescaledb=False
    )
    assert "max_wal_size = '4GB'" in durable and "max_wal_size" not in throwaway
    assert f"shared_buffers = '{shared_buffers_mb(True)}MB'" in durable
    assert "shared_buffers = '128MB'" in throwaway


def test_postgres_starts_stops_and_keeps_data_across_restart(cluster_dir: Path) -> None:
    server = EmbeddedPostgres(cluster_dir)
    with server:
        assert server.is_running()
        assert server.url == f"postgresql://postgres@127.0.0.1:{server.port}/carbonflow"
        assert _query(server.url, "SELECT 1") == [(1,)]
        _query(server.url, "CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)")
        pids = [p.pid for p in _server_processes(server.data_dir)]
        assert pids, "no server processes found by working directory"

    assert not server.is_running()
    assert _server_processes(server.data_dir) == []
    assert not any(psutil.pid_exists(pid) for pid in pids), "a server process outlived stop()"

    server.restart()  # stop() on a stopped server is a no-op, then start
    try:
        assert _query(server.url, "SELECT v FROM kept") == [(42,)]
    finally:
        server.stop()
    assert _server_processes(server.data_dir) == []


def test_postgres_recovers_after_kill(cluster_dir: Path) -> None:
    server = EmbeddedPostgres(cluster_dir, durable=True)
    server.start()
    try:
        _query(server.url, "CREATE TABLE committed (v int); INSERT INTO committed VALUES (7)")
        server.kill()
        assert not server.is_running()
        assert _server_processes(server.data_dir) == []
        log_size = server.log_path.stat().st_size

        server.start()
        assert _query(server.url, "SELECT v FROM committed") == [(7,)]
        recovery_log = server.log_path.read_bytes()[log_size:].decode()
        assert "automatic recovery in progress" in recovery_log
    finally:
        server.stop()
    assert _server_processes(server.data_dir) == []


def test_postgres_start_over_a_running_postmaster_restarts_it_cleanly(cluster_dir: Path) -> None:
    data_dir = cluster_dir
    first = EmbeddedPostgres(data_dir)
    first.start()
    second = EmbeddedPostgres(data_dir)
    try:
        _query(first.url, "CREATE TABLE t (v int); INSERT INTO t VALUES (1)")
        first.start()  # already running: nothing happens
        second.start()  # postmaster.pid is alive: the earlier server is shut down first
        assert not first.is_running()
        assert _query(second.url, "SELECT v FROM t") == [(1,)]
        postmaster_pid = int((data_dir / "postmaster.pid").read_text().splitlines()[0])
        assert postmaster_pid == second.pid
    finally:
        second.stop()
        first.stop()
    assert _server_processes(data_dir) == []


_ABANDON_SERVER = """
import os, sys
from pathlib import Path
import psycopg
from carbonflow.embedded.postgres import EmbeddedPostgres
server = EmbeddedPostgres(Path(sys.argv[1]))
server.start()
with psycopg.connect(server.url, autocommit=True) as conn:
    conn.execute("CREATE TABLE t (v int); INSERT INTO t VALUES (5)")
os._exit(0)  # no stop(): the postmaster outlives this process
"""


def test_postgres_start_stops_a_postmaster_left_by_a_dead_process(cluster_dir: Path) -> None:
    data_dir = cluster_dir
    subprocess.run(
        [sys.executable, "-c", _ABANDON_SERVER, str(data_dir)], check=True, timeout=TIMEOUT_S
    )
    orphans = _server_processes(data_dir)
    server = EmbeddedPostgres(data_dir)
    try:
        assert orphans, "the abandoned postmaster is not running"
        server.start()
        assert all(
            p.pid == server.pid or p.ppid() == server.pid for p in _server_processes(data_dir)
        )
        assert _query(server.url, "SELECT v FROM t") == [(5,)]
    finally:
        server.stop()
        for process in _server_processes(data_dir):  # only if the test failed
            process.kill()
    assert _server_processes(data_dir) == []


# -- fixtures ----------------------------------------------------------------------------


@pytest.mark.parametrize("attempt", [1, 2])
def test_database_url_is_fresh_and_migrated(database_url: str, attempt: int) -> None:
    # A table left over from the other parametrisation would make CREATE TABLE fail.
    _query(database_url, "CREATE TABLE probe (attempt int)")
    assert _query(database_url, "SELECT count(*) FROM alembic_version") == [(1,)]


def test_own_postgres_is_migrated_and_survives_restart(own_postgres: EmbeddedPostgres) -> None:
    assert _query(own_postgres.url, "SELECT count(*) FROM alembic_version") == [(1,)]
    _query(own_postgres.url, "CREATE TABLE kept (v int); INSERT INTO kept VALUES (3)")
    own_postgres.restart()
    assert _query(own_postgres.url, "SELECT v FROM kept") == [(3,)]


# -- Mosquitto ---------------------------------------------------------------------------


def test_mosquitto_relays_qos1(mosquitto: EmbeddedMosquitto) -> None:
    assert mosquitto.url == f"mqtt://127.0.0.1:{mosquitto.port}"
    with (
        _client(mosquitto.port, "sub") as subscriber,
        _client(mosquitto.port, "pub") as publisher,
    ):
        subscriber.subscribe("site/+/meter", qos=1)
        publisher.publish("site/a/meter", b"12.5", qos=1)
        assert subscriber.next_message() == ("site/a/meter", b"12.5")


def test_mosquitto_restart_delivers_queued_message_to_persistent_session(
    mosquitto: EmbeddedMosquitto,
) -> None:
    with _client(mosquitto.port, "ingest-1", clean_session=False) as subscriber:
        subscriber.subscribe("site/#", qos=1)
    with _client(mosquitto.port, "pub") as publisher:
        publisher.publish("site/b/meter", b"queued", qos=1)  # PUBACK: the broker has it

    mosquitto.restart()  # a clean stop writes the persistence file

    with _client(mosquitto.port, "ingest-1", clean_session=False) as subscriber:
        assert subscriber.session_present is True
        assert subscriber.next_message() == ("site/b/meter", b"queued")


def test_mosquitto_kill_and_start(mosquitto: EmbeddedMosquitto) -> None:
    pid = mosquitto.pid
    assert pid is not None
    mosquitto.kill()
    assert not mosquitto.is_running()
    assert not psutil.pid_exists(pid)
    mosquitto.start()
    with _client(mosquitto.port, "after-kill") as client:
        client.subscribe("x", qos=1)
        client.publish("x", b"1", qos=1)
        assert client.next_message() == ("x", b"1")


def test_missing_mosquitto_names_make_deps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(broker_module, "find_mosquitto", lambda: None)
    with pytest.raises(MosquittoNotFoundError, match="make deps"):
        EmbeddedMosquitto(tmp_path / "m").start()


# -- amqtt fallback ----------------------------------------------------------------------


def test_amqtt_fallback_relays_a_message(tmp_path: Path) -> None:
    with EmbeddedAmqtt(tmp_path / "amqtt") as broker:
        assert broker.url == f"mqtt://127.0.0.1:{broker.port}"
        with _client(broker.port, "sub") as subscriber, _client(broker.port, "pub") as publisher:
            subscriber.subscribe("site/#", qos=1)
            publisher.publish("site/c/meter", b"ok", qos=1)
            assert subscriber.next_message() == ("site/c/meter", b"ok")
    assert not broker.is_running()


def test_start_embedded_broker_chooses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chosen = start_embedded_broker(tmp_path / "with")
    try:
        assert isinstance(chosen, EmbeddedMosquitto)
    finally:
        chosen.stop()
    monkeypatch.setattr(broker_module, "find_mosquitto", lambda: None)
    fallback = start_embedded_broker(tmp_path / "without")
    try:
        assert isinstance(fallback, EmbeddedAmqtt)
        assert fallback.is_running()
    finally:
        fallback.stop()

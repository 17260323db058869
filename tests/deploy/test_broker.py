"""`carbonflow broker acl` against a real Mosquitto started with the generated files."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from carbonflow.broker_acl import parse_secrets
from carbonflow.embedded.broker import EmbeddedMosquitto
from carbonflow.sites.loader import EXAMPLES
from tests.support.seed import seed_site
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

INGEST_PASSWORD = "ingest-password-from-the-environment"


def _generate(out: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "broker", "acl", "--out", str(out), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class _Client:
    """A paho MQTT 5 client that records CONNACK, PUBACK reason codes and received messages."""

    def __init__(self, port: int, username: str | None, password: str | None) -> None:
        self.connack: ReasonCode | None = None
        self.pubacks: dict[int, ReasonCode] = {}
        self.received: list[tuple[str, bytes]] = []
        self.suback: list[ReasonCode] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_connect(
        self, _c: mqtt.Client, _u: object, _f: object, rc: ReasonCode, _p: Properties | None
    ) -> None:
        self.connack = rc

    def _on_publish(
        self, _c: mqtt.Client, _u: object, mid: int, rc: ReasonCode, _p: Properties
    ) -> None:
        with self._lock:
            self.pubacks[mid] = rc

    def _on_message(self, _c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.received.append((message.topic, bytes(message.payload)))

    def _on_subscribe(
        self, _c: mqtt.Client, _u: object, _mid: int, rcs: list[ReasonCode], _p: Properties
    ) -> None:
        self.suback = list(rcs)

    def publish(self, topic: str, payload: bytes) -> ReasonCode:
        """Publish at QoS 1 and return the broker's PUBACK reason code."""
        info = self.client.publish(topic, payload, qos=1)
        code = wait_until(lambda: self.pubacks.get(info.mid), 10, message=f"PUBACK for {topic}")
        assert code is not None
        return code

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@contextmanager
def _client(port: int, username: str | None, password: str | None) -> Iterator[_Client]:
    client = _Client(port, username, password)
    try:
        wait_until(lambda: client.connack is not None, 10, message="CONNACK")
        yield client
    finally:
        client.close()


def _broker(tmp_path: Path, auth: Path) -> EmbeddedMosquitto:
    return EmbeddedMosquitto(
        tmp_path / "mosquitto",
        extra_config=(
            f"allow_anonymous false\npassword_file {auth / 'passwd'}\nacl_file {auth / 'acl'}\n"
        ),
    )


def test_generated_acl_confines_devices_to_their_topics(tmp_path: Path) -> None:
    auth = tmp_path / "auth"
    result = _generate(
        auth,
        "--sites",
        str(EXAMPLES),
        "--gateway",
        "shanxi-jinzhong-mine/gw-shaft-1",
        CARBONFLOW_BROKER_INGEST_PASSWORD=INGEST_PASSWORD,
    )
    assert result.returncode == 0, result.stderr
    creds = parse_secrets((auth / "credentials").read_text())
    assert creds["ingest"] == INGEST_PASSWORD
    for name in ("passwd", "acl", "credentials"):
        assert (auth / name).stat().st_mode & 0o077 == 0, f"{name} readable by others"
    own, other = "shanxi-jinzhong-mine/aux-hoist", "shanxi-jinzhong-mine/compressors"
    assert own in creds and other in creds, sorted(creds)[:5]

    broker = _broker(tmp_path, auth)
    broker.start()
    try:
        with (
            _client(broker.port, "ingest", INGEST_PASSWORD) as ingest,
            _client(broker.port, own, creds[own]) as device,
            _client(
                broker.port,
                "shanxi-jinzhong-mine/gateway/gw-shaft-1",
                creds["shanxi-jinzhong-mine/gateway/gw-shaft-1"],
            ) as gateway,
        ):
            assert ingest.connack == 0 and device.connack == 0 and gateway.connack == 0
            ingest.client.subscribe("$share/carbonflow-ingest/carbonflow/v1/#", qos=1)
            wait_until(lambda: ingest.suback, 10, message="SUBACK")
            assert not ingest.suback[0].is_failure

            # Refused first, allowed second: the broker keeps one publisher's order, so once
            # the allowed message has arrived a delivered refused one would be there too.
            refused = device.publish(f"carbonflow/v1/{other}/telemetry", b"spoofed")
            assert refused.getName() == "Not authorized"
            wrong_gateway = gateway.publish(
                "carbonflow/v1/shanxi-jinzhong-mine/gateway/gw-other/telemetry", b"spoofed"
            )
            assert wrong_gateway.getName() == "Not authorized"
            assert device.publish(f"carbonflow/v1/{own}/telemetry", b"own").value == 0
            assert (
                gateway.publish(
                    "carbonflow/v1/shanxi-jinzhong-mine/gateway/gw-shaft-1/telemetry", b"gw"
                ).value
                == 0
            )
            wait_until(lambda: len(ingest.received) >= 2, 10, message="allowed messages")
            assert sorted(ingest.received) == [
                (f"carbonflow/v1/{own}/telemetry", b"own"),
                ("carbonflow/v1/shanxi-jinzhong-mine/gateway/gw-shaft-1/telemetry", b"gw"),
            ]
            # The ingest user may read only: its publish is refused too.
            assert ingest.publish(f"carbonflow/v1/{own}/telemetry", b"x").getName() == (
                "Not authorized"
            )

        with _client(broker.port, None, None) as anonymous:
            assert anonymous.connack is not None and anonymous.connack.is_failure
        with _client(broker.port, own, creds[other]) as wrong_password:
            assert wrong_password.connack is not None and wrong_password.connack.is_failure
    finally:
        broker.stop()

    # A second run with --keep keeps every password (with new salts); the gateway not asked
    # for again loses its account.
    again = _generate(auth, "--sites", str(EXAMPLES), "--keep")
    assert again.returncode == 0, again.stderr
    kept = parse_secrets((auth / "credentials").read_text())
    assert kept["ingest"] == INGEST_PASSWORD
    assert kept[own] == creds[own]
    assert "shanxi-jinzhong-mine/gateway/gw-shaft-1" not in kept


def test_registry_source_skips_decommissioned_devices(tmp_path: Path, database_url: str) -> None:
    seed_site(database_url, site="t1", devices=3)
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE device SET active = false WHERE device_id = 'm1'")
    auth = tmp_path / "auth"
    result = _generate(auth, "--publisher", "simulator", DATABASE_URL=database_url)
    assert result.returncode == 0, result.stderr
    users = set(parse_secrets((auth / "credentials").read_text()))
    assert users == {"t1/m0", "t1/m2", "ingest", "simulator"}


@pytest.mark.parametrize("args", [["--sites", "/nonexistent.yaml"], ["--gateway", "no-slash"]])
def test_bad_input_exits_2_and_writes_nothing(tmp_path: Path, args: list[str]) -> None:
    sites = [] if "--sites" in args else ["--sites", str(EXAMPLES)]
    result = _generate(tmp_path / "auth", *sites, *args)
    assert result.returncode == 2
    assert "carbonflow broker acl:" in result.stderr
    assert not (tmp_path / "auth").exists()

"""The compose stack's files with real tools: `docker compose config`, the shipped Mosquitto
configuration (password file, ACL, TLS listener) in a real Mosquitto 2."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from carbonflow.broker_acl import parse_secrets
from carbonflow.embedded.broker import find_mosquitto
from carbonflow.embedded.net import current_user_name, free_port
from tests.support import ROOT as ROOT_DIR
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

ROOT = ROOT_DIR
DEPLOY = ROOT / "deploy"
REQUIRED_SECRETS = (
    "POSTGRES_PASSWORD",
    "GRAFANA_DB_PASSWORD",
    "GRAFANA_ADMIN_PASSWORD",
    "MQTT_INGEST_PASSWORD",
    "MQTT_SIMULATOR_PASSWORD",
)


def _compose_command() -> list[str] | None:
    """`docker compose` (the plugin) or `docker-compose` (v1), whichever is installed."""
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, timeout=30, check=False
        )
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def _stack_copy(tmp_path: Path, secrets: dict[str, str]) -> Path:
    """deploy/ copied beside the directories compose.yml refers to, with a filled-in .env."""
    deploy = tmp_path / "deploy"
    shutil.copytree(DEPLOY, deploy)
    for relative in ("carbonflow/sites/examples", "dashboards/provisioning", "dashboards/json"):
        (tmp_path / relative).mkdir(parents=True)
    env = (DEPLOY / ".env.example").read_text()
    for name, value in secrets.items():
        env = env.replace(f"\n{name}=\n", f"\n{name}={value}\n")
    (deploy / ".env").write_text(env)
    return deploy


def test_docker_compose_config_accepts_the_stack(tmp_path: Path) -> None:
    compose = _compose_command()
    if compose is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    deploy = _stack_copy(tmp_path, {name: "s3cret-value" for name in REQUIRED_SECRETS})
    run = subprocess.run(
        [*compose, "--profile", "simulator", "--profile", "tls", "config"],
        cwd=deploy,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "postgresql://carbonflow:s3cret-value@timescaledb:5432/carbonflow" in run.stdout
    services = subprocess.run(
        [*compose, "--profile", "simulator", "--profile", "tls", "config", "--services"],
        cwd=deploy,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.split()
    assert {"migrate", "ingest-1", "calc", "api", "notify", "push", "simulator", "caddy"} <= set(
        services
    )
    # A required secret left empty stops compose before anything starts.
    (tmp_path / "again").mkdir()
    deploy = _stack_copy(tmp_path / "again", {n: "x" for n in REQUIRED_SECRETS[1:]})
    empty = subprocess.run(
        [*compose, "config"], cwd=deploy, capture_output=True, text=True, timeout=120, check=False
    )
    assert empty.returncode != 0
    assert "POSTGRES_PASSWORD" in empty.stderr


def _self_signed(certs: Path) -> None:
    """A CA and a server certificate for 127.0.0.1, made with the openssl command."""
    certs.mkdir()

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=certs, capture_output=True, check=True, timeout=60)

    openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
        "-keyout", "ca.key", "-out", "ca.crt",
    )  # fmt: skip
    openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", "server.key", "-out", "server.csr",
    )  # fmt: skip
    (certs / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.crt",
    )  # fmt: skip


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def _connack(port: int, username: str | None, password: str | None, ca: Path | None) -> int:
    """Connect once with MQTT 5 and return the CONNACK reason code's value."""
    result: list[ReasonCode] = []
    done = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    if username is not None:
        client.username_pw_set(username, password)
    if ca is not None:
        client.tls_set(ca_certs=str(ca), tls_version=ssl.PROTOCOL_TLS_CLIENT)

    def on_connect(*args: object) -> None:
        result.append(args[3])  # type: ignore[arg-type]
        done.set()

    client.on_connect = on_connect
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        wait_until(done.is_set, 15, message="CONNACK")
    finally:
        client.disconnect()
        client.loop_stop()
    return result[0].value


def test_shipped_mosquitto_config_with_generated_auth_and_tls(tmp_path: Path) -> None:
    binary = find_mosquitto()
    if binary is None:
        pytest.skip("mosquitto is not installed")
    auth, data, certs = tmp_path / "auth", tmp_path / "data", tmp_path / "certs"
    data.mkdir()
    generated = subprocess.run(
        [sys.executable, "-m", "cli.main", "broker", "acl", "--out", str(auth), "--sites",
         str(ROOT / "carbonflow" / "sites" / "examples"), "--publisher", "simulator"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert generated.returncode == 0, generated.stderr
    creds = parse_secrets((auth / "credentials").read_text())
    _self_signed(certs)
    plain_port, tls_port = free_port(), free_port()
    # The shipped files, with the container paths and ports moved into this test's directory.
    conf_d = tmp_path / "conf.d"
    conf_d.mkdir()
    tls = (DEPLOY / "mosquitto" / "conf.d" / "tls.conf.example").read_text()
    assert "listener 8883\n" in tls
    tls = tls.replace("listener 8883", f"listener {tls_port} 127.0.0.1")
    (conf_d / "tls.conf").write_text(tls.replace("/mosquitto/certs/", f"{certs}/"))
    conf = (DEPLOY / "mosquitto" / "mosquitto.conf").read_text()
    assert "listener 1883\n" in conf
    conf = conf.replace("listener 1883", f"listener {plain_port} 127.0.0.1")
    conf = conf.replace("/mosquitto/auth/", f"{auth}/").replace("/mosquitto/data/", f"{data}/")
    conf = conf.replace("/mosquitto/config/conf.d", str(conf_d))
    assert "/mosquitto/" not in conf
    # As root Mosquitto would switch to the "mosquitto" user, which cannot read 0600 files.
    conf += f"user {current_user_name()}\n"
    (tmp_path / "mosquitto.conf").write_text(conf)
    env = dict(os.environ)
    if binary.library_path:
        env["LD_LIBRARY_PATH"] = ":".join(str(p) for p in binary.library_path)
    log = (tmp_path / "mosquitto.log").open("wb")
    proc = subprocess.Popen(
        [str(binary.path), "-c", str(tmp_path / "mosquitto.conf")], stdout=log, stderr=log, env=env
    )
    try:
        wait_until(
            lambda: proc.poll() is not None or (_listening(plain_port) and _listening(tls_port)),
            30,
            message="mosquitto listening on both ports",
        )
        assert proc.poll() is None, (tmp_path / "mosquitto.log").read_text()
        assert _connack(plain_port, "ingest", creds["ingest"], None) == 0
        assert _connack(plain_port, "simulator", creds["simulator"], None) == 0
        assert _connack(plain_port, None, None, None) != 0  # anonymous
        assert _connack(plain_port, "ingest", "wrong", None) != 0
        device = "shanxi-jinzhong-mine/aux-hoist"
        assert _connack(tls_port, device, creds[device], certs / "ca.crt") == 0
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()

"""A private Mosquitto broker on ``127.0.0.1:<port>``, started and stopped by carbonflow itself.

Used by ``carbonflow demo`` when ``MQTT_URL`` is unset and by the test suite, which stops,
kills and restarts it to inject faults. The broker persists sessions and queued messages in
its data directory (written every ``autosave_interval_s`` and on a clean stop), so a
persistent-session subscriber gets its QoS 1 backlog after a restart.

Binary, in order: ``CARBONFLOW_MOSQUITTO``; ``mosquitto`` on ``PATH``; ``/usr/sbin/mosquitto``;
``<repo>/.cache/mosquitto/usr/sbin/mosquitto`` (unpacked there by ``make deps`` on machines
where the package cannot be installed). Without any, :func:`start_embedded_broker` falls back
to the pure-Python broker in :mod:`carbonflow.embedded.amqtt_broker`.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path

from carbonflow.embedded.amqtt_broker import EmbeddedAmqtt
from carbonflow.embedded.child import ChildServer
from carbonflow.embedded.net import LOCALHOST, current_user_name

logger = logging.getLogger(__name__)

MOSQUITTO_ENV = "CARBONFLOW_MOSQUITTO"
REPO_ROOT = Path(__file__).resolve().parents[2]
SYSTEM_MOSQUITTO = Path("/usr/sbin/mosquitto")
CACHE_ROOT = REPO_ROOT / ".cache" / "mosquitto"
CONF_FILE = "mosquitto.conf"
LOG_FILE = "mosquitto.log"
AUTOSAVE_INTERVAL_S = 2
"""How often Mosquitto writes its persistence file while running [s]; a kill loses at most this."""
STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 60.0
"""Bound on a clean stop, which writes the persistence file [s]; then SIGKILL."""


class MosquittoNotFoundError(RuntimeError):
    """No mosquitto binary on this machine."""


@dataclass(frozen=True)
class MosquittoBinary:
    path: Path
    library_path: tuple[Path, ...] = ()
    """Directories for ``LD_LIBRARY_PATH`` (only for the copy unpacked under ``.cache``)."""


def find_mosquitto() -> MosquittoBinary | None:
    """The mosquitto binary to use, in the documented search order; None when there is none."""
    env = os.environ.get(MOSQUITTO_ENV)
    if env:
        return MosquittoBinary(Path(env))
    on_path = shutil.which("mosquitto")
    if on_path:
        return MosquittoBinary(Path(on_path))
    if SYSTEM_MOSQUITTO.is_file():
        return MosquittoBinary(SYSTEM_MOSQUITTO)
    cached = CACHE_ROOT / "usr" / "sbin" / "mosquitto"
    if cached.is_file():
        lib_dirs = [
            *sorted(CACHE_ROOT.glob("usr/lib/*-linux-gnu*")),
            *sorted(CACHE_ROOT.glob("lib/*-linux-gnu*")),
            CACHE_ROOT / "usr" / "lib",
        ]
        return MosquittoBinary(cached, tuple(d for d in lib_dirs if d.is_dir()))
    return None


def render_config(
    *,
    port: int,
    data_dir: Path,
    user: str,
    autosave_interval_s: int = AUTOSAVE_INTERVAL_S,
    extra_config: str = "",
) -> str:
    """The contents of ``mosquitto.conf``; ``extra_config`` is appended verbatim."""
    lines = [
        "# Written by carbonflow.embedded.broker at every start; edits are overwritten.",
        "per_listener_settings false",
        f"listener {port} {LOCALHOST}",
        "allow_anonymous true",
        "persistence true",
        f"persistence_location {data_dir}/",
        "persistence_file mosquitto.db",
        f"autosave_interval {autosave_interval_s}",
        "max_queued_messages 1000000",
        "max_inflight_messages 0",
        "persistent_client_expiration 1d",
        "set_tcp_nodelay true",
        f"log_dest file {data_dir / LOG_FILE}",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "log_type information",
        "connection_messages true",
        "log_timestamp_format %Y-%m-%dT%H:%M:%S",
        # Mosquitto started as root drops to user "mosquitto" unless told otherwise, and then
        # cannot write its data directory; as any other user this line is a no-op.
        f"user {user}",
    ]
    text = "\n".join(lines) + "\n"
    if extra_config:
        text += extra_config.rstrip("\n") + "\n"
    return text


class EmbeddedMosquitto(ChildServer):
    """Mosquitto on ``127.0.0.1:<port>`` with its config, log and persistence in ``data_dir``.

    ``port=None`` picks a free port (and picks again if it is taken before Mosquitto binds
    it). ``extra_config`` is appended to the generated config (``password_file``,
    ``acl_file``, …); with ``per_listener_settings false`` those apply to the listener, and
    a repeated option overrides the generated one (``allow_anonymous false``).
    """

    NAME = "Mosquitto"
    LOG_FILE = LOG_FILE
    OUTPUT_FILE = "mosquitto.stderr"

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        extra_config: str = "",
        autosave_interval_s: int = AUTOSAVE_INTERVAL_S,
        startup_timeout_s: float = STARTUP_TIMEOUT_S,
        stop_timeout_s: float = STOP_TIMEOUT_S,
    ) -> None:
        super().__init__(
            data_dir, port, startup_timeout_s=startup_timeout_s, stop_timeout_s=stop_timeout_s
        )
        self.extra_config = extra_config
        self._autosave_interval_s = autosave_interval_s

    def save_now(self) -> None:
        """Ask the running broker to write its persistence file now (SIGUSR1), as it does at
        every ``autosave_interval``; the file's mtime changes when it is written."""
        if self.pid is not None:
            os.kill(self.pid, signal.SIGUSR1)

    def _prepare(self) -> tuple[list[str], dict[str, str] | None]:
        binary = find_mosquitto()
        if binary is None:
            raise MosquittoNotFoundError(
                "mosquitto not found: run `make deps` (or `sudo apt-get install mosquitto`), "
                f"or set {MOSQUITTO_ENV} to the binary"
            )
        conf = self._data_dir / CONF_FILE
        conf.write_text(
            render_config(
                port=self._port,
                data_dir=self._data_dir,
                user=current_user_name(),
                autosave_interval_s=self._autosave_interval_s,
                extra_config=self.extra_config,
            )
        )
        env = dict(os.environ)
        if binary.library_path:
            env["LD_LIBRARY_PATH"] = os.pathsep.join(
                [*(str(p) for p in binary.library_path), env.get("LD_LIBRARY_PATH", "")]
            ).rstrip(os.pathsep)
        return [str(binary.path), "-c", str(conf)], env


def start_embedded_broker(
    data_dir: Path, port: int | None = None
) -> EmbeddedMosquitto | EmbeddedAmqtt:
    """Start Mosquitto when there is one, else the pure-Python amqtt fallback (demo only)."""
    if find_mosquitto() is not None:
        mosquitto = EmbeddedMosquitto(data_dir, port)
        mosquitto.start()
        logger.info("embedded MQTT broker: mosquitto at %s", mosquitto.url)
        return mosquitto
    logger.warning(
        "mosquitto not found (run `make deps`); falling back to the pure-Python amqtt broker, "
        "which has no shared subscriptions and is meant for the demo only"
    )
    amqtt = EmbeddedAmqtt(data_dir, port)
    amqtt.start()
    logger.info("embedded MQTT broker: amqtt at %s", amqtt.url)
    return amqtt

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
import subprocess
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from carbonflow.embedded.amqtt_broker import EmbeddedAmqtt
from carbonflow.embedded.net import (
    LOCALHOST,
    ServerStartError,
    current_user_name,
    free_port,
    port_accepts,
    read_from,
    stop_process,
    tail,
    wait_for,
)

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
_PORT_RETRIES = 3


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


class EmbeddedMosquitto:
    """Mosquitto on ``127.0.0.1:<port>`` with its config, log and persistence in ``data_dir``.

    ``port=None`` picks a free port (and picks again if it is taken before Mosquitto binds
    it). ``extra_config`` is appended to the generated config (``password_file``,
    ``acl_file``, …); with ``per_listener_settings false`` those apply to the listener, and
    a repeated option overrides the generated one (``allow_anonymous false``).
    """

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
        self._data_dir = Path(data_dir).absolute()
        self._auto_port = port is None
        self._port = free_port() if port is None else port
        self.extra_config = extra_config
        self._autosave_interval_s = autosave_interval_s
        self._startup_timeout_s = startup_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None

    @property
    def data_dir(self) -> Path:
        return self._data_dir

    @property
    def host(self) -> str:
        return LOCALHOST

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        """``mqtt://127.0.0.1:<port>``."""
        return f"mqtt://{LOCALHOST}:{self._port}"

    @property
    def log_path(self) -> Path:
        return self._data_dir / LOG_FILE

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.is_running() and self._proc else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Write the config, start Mosquitto, wait until its port accepts TCP connections."""
        if self.is_running():
            return
        binary = find_mosquitto()
        if binary is None:
            raise MosquittoNotFoundError(
                "mosquitto not found: run `make deps` (or `sudo apt-get install mosquitto`), "
                f"or set {MOSQUITTO_ENV} to the binary"
            )
        self._data_dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(_PORT_RETRIES):
            try:
                self._launch(binary)
                break
            except ServerStartError as exc:
                if not (exc.port_in_use and self._auto_port and attempt + 1 < _PORT_RETRIES):
                    raise
                logger.info("port %d was taken, retrying on another", self._port)
                self._port = free_port()
        self._auto_port = False  # restarts keep the URL clients already have
        logger.info("Mosquitto listening on %s (data in %s)", self.url, self._data_dir)

    def stop(self) -> None:
        """SIGTERM (Mosquitto writes its persistence file and exits), then reap it."""
        if self._proc is not None:
            code = stop_process(self._proc, timeout_s=self._stop_timeout_s)
            logger.info("Mosquitto on port %d stopped (exit code %s)", self._port, code)
        self._release()

    def kill(self) -> None:
        """SIGKILL, as a crash would: messages since the last autosave are lost."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            logger.info("Mosquitto on port %d killed", self._port)
        self._release()

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _release(self) -> None:
        self._proc = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def _launch(self, binary: MosquittoBinary) -> None:
        self._release()
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
        # Errors before the log file is open (bad config, port in use) go to stderr.
        stderr_path = self._data_dir / "mosquitto.stderr"
        self._stderr = stderr_path.open("wb")
        log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._proc = subprocess.Popen(
            [str(binary.path), "-c", str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=self._stderr,
            stderr=subprocess.STDOUT,
            cwd=str(self._data_dir),
            env=env,
            start_new_session=True,
        )
        proc = self._proc

        def ready() -> bool:
            if proc.poll() is not None:
                output = tail(stderr_path) + read_from(self.log_path, log_offset)
                self._release()
                raise ServerStartError(
                    f"mosquitto exited with code {proc.returncode} during start-up:\n{output}",
                    port_in_use="Address already in use" in output,
                )
            return port_accepts(LOCALHOST, self._port)

        try:
            wait_for(
                ready,
                timeout_s=self._startup_timeout_s,
                what=f"mosquitto on port {self._port} to accept connections",
            )
        except TimeoutError:
            self.kill()
            raise


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

"""A pure-Python MQTT broker (amqtt), the fallback for ``make demo`` on machines without mosquitto.

Only for the demo: it speaks MQTT 3.1.1 only, has no shared subscriptions
(``$share/<group>/…``), so several ingest workers cannot split one stream, keeps no
sessions or queued messages across a restart, and is much slower than Mosquitto. The test
suite and deployments use Mosquitto (:mod:`carbonflow.embedded.broker`).

Run directly as ``python -m carbonflow.embedded.amqtt_broker --host 127.0.0.1 --port N``;
:class:`EmbeddedAmqtt` runs that as a child process with the same interface as
:class:`carbonflow.embedded.broker.EmbeddedMosquitto`. amqtt itself is imported only in the
child.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from carbonflow.embedded.net import (
    LOCALHOST,
    ServerStartError,
    free_port,
    port_accepts,
    read_from,
    stop_process,
    wait_for,
)

logger = logging.getLogger(__name__)

LOG_FILE = "amqtt.log"
STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
_PORT_RETRIES = 3


def broker_config(host: str, port: int) -> dict[str, Any]:
    """amqtt configuration: one TCP listener, anonymous clients, no $SYS or packet logging."""
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "plugins": {
            "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
        },
    }


async def serve(host: str, port: int, stop: asyncio.Event) -> None:
    """Run the broker until ``stop`` is set, then shut it down."""
    # Imported here: only the broker process needs amqtt, and importing it is slow.
    from amqtt.broker import Broker

    broker = Broker(broker_config(host, port))
    await broker.start()
    logger.info("amqtt broker listening on %s:%d", host, port)
    await stop.wait()
    await broker.shutdown()
    logger.info("amqtt broker stopped")


async def _run(host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await serve(host, port, stop)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default=LOCALHOST)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("transitions").setLevel(logging.WARNING)
    asyncio.run(_run(args.host, args.port))
    return 0


class EmbeddedAmqtt:
    """The amqtt broker as a child process on ``127.0.0.1:<port>``, logging to ``data_dir``."""

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        startup_timeout_s: float = STARTUP_TIMEOUT_S,
        stop_timeout_s: float = STOP_TIMEOUT_S,
    ) -> None:
        self._data_dir = Path(data_dir).absolute()
        self._auto_port = port is None
        self._port = free_port() if port is None else port
        self._startup_timeout_s = startup_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

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
        if self.is_running():
            return
        self._data_dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(_PORT_RETRIES):
            try:
                self._launch()
                break
            except ServerStartError as exc:
                if not (exc.port_in_use and self._auto_port and attempt + 1 < _PORT_RETRIES):
                    raise
                self._port = free_port()
        self._auto_port = False  # restarts keep the URL clients already have
        logger.info("amqtt broker listening on %s (log %s)", self.url, self.log_path)

    def stop(self) -> None:
        if self._proc is not None:
            stop_process(self._proc, timeout_s=self._stop_timeout_s)
            logger.info("amqtt broker on port %d stopped", self._port)
        self._release()

    def kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
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
        if self._log is not None:
            self._log.close()
            self._log = None

    def _launch(self) -> None:
        self._release()
        self._log = self.log_path.open("ab")
        log_offset = self._log.tell()
        command = [
            sys.executable,
            "-m",
            "carbonflow.embedded.amqtt_broker",
            "--host",
            LOCALHOST,
            "--port",
            str(self._port),
        ]
        self._proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        proc = self._proc

        def ready() -> bool:
            if proc.poll() is not None:
                output = read_from(self.log_path, log_offset)
                self._release()
                raise ServerStartError(
                    f"amqtt broker exited with code {proc.returncode} during start-up:\n{output}",
                    port_in_use="Address already in use" in output,
                )
            return port_accepts(LOCALHOST, self._port)

        try:
            wait_for(
                ready,
                timeout_s=self._startup_timeout_s,
                what=f"the amqtt broker on port {self._port} to accept connections",
            )
        except TimeoutError:
            self.kill()
            raise


if __name__ == "__main__":
    sys.exit(main())

"""The life cycle shared by the embedded brokers: a server run as a child process on
``127.0.0.1:<port>``, with its files in a data directory, started, stopped, killed and restarted
by carbonflow itself (the demo and the tests' fault injection)."""

from __future__ import annotations

import logging
import subprocess
from abc import ABC, abstractmethod
from pathlib import Path
from types import TracebackType
from typing import IO, ClassVar, Self

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

_PORT_RETRIES = 3


class ChildServer(ABC):
    """Subclasses say what to run (:meth:`_prepare`) and where its log is (``LOG_FILE``).

    ``port=None`` picks a free port, and picks again if another process takes it before the
    server binds it; once started, restarts keep the same port (and so the same URL).
    """

    NAME: ClassVar[str] = "server"
    LOG_FILE: ClassVar[str] = "server.log"
    OUTPUT_FILE: ClassVar[str] = "server.out"  # the child's stdout and stderr

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        startup_timeout_s: float,
        stop_timeout_s: float,
    ) -> None:
        self._data_dir = Path(data_dir).absolute()
        self._auto_port = port is None
        self._port = free_port() if port is None else port
        self._startup_timeout_s = startup_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._output: IO[bytes] | None = None

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
        return self._data_dir / self.LOG_FILE

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.is_running() and self._proc else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start the server and wait until its port accepts TCP connections."""
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
                logger.info("port %d was taken, retrying on another", self._port)
                self._port = free_port()
        self._auto_port = False  # restarts keep the URL clients already have
        logger.info("%s listening on %s (data in %s)", self.NAME, self.url, self._data_dir)

    def stop(self) -> None:
        """SIGTERM (a broker writes its persistence file and exits), then reap it."""
        if self._proc is not None:
            code = stop_process(self._proc, timeout_s=self._stop_timeout_s)
            logger.info("%s on port %d stopped (exit code %s)", self.NAME, self._port, code)
        self._release()

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            logger.info("%s on port %d killed", self.NAME, self._port)
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

    # ---- for subclasses ----------------------------------------------------------------------

    @abstractmethod
    def _prepare(self) -> tuple[list[str], dict[str, str] | None]:
        """Write whatever the server needs in the data directory; return (argv, env)."""

    def _release(self) -> None:
        self._proc = None
        if self._output is not None:
            self._output.close()
            self._output = None

    def _launch(self) -> None:
        self._release()
        command, env = self._prepare()
        output_path = self._data_dir / self.OUTPUT_FILE
        # Errors before the server's own log is open (bad config, port in use) go here.
        self._output = output_path.open("ab")
        output_offset = self._output.tell()
        log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self._output,
            stderr=subprocess.STDOUT,
            cwd=str(self._data_dir),
            env=env,
            start_new_session=True,
        )
        proc = self._proc

        def ready() -> bool:
            if proc.poll() is not None:
                output = read_from(output_path, output_offset)
                if self.log_path != output_path:
                    output += read_from(self.log_path, log_offset)
                self._release()
                raise ServerStartError(
                    f"{self.NAME} exited with code {proc.returncode} during start-up:\n{output}",
                    port_in_use="Address already in use" in output,
                )
            return port_accepts(LOCALHOST, self._port)

        try:
            wait_for(
                ready,
                timeout_s=self._startup_timeout_s,
                what=f"{self.NAME} on port {self._port} to accept connections",
            )
        except TimeoutError:
            self.kill()
            raise

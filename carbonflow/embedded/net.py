"""Socket and process helpers shared by the embedded services.

Nothing here knows about PostgreSQL or MQTT: free ports, "does this port accept TCP",
bounded waiting on a condition, stopping a child process with escalation, and reading the
tail of a log file for error messages.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import pwd
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

LOCALHOST = "127.0.0.1"

# Ports handed out by free_port() in this process; never handed out twice, so two services
# started back to back cannot be given the same port before either has bound it.
_handed_out: set[int] = set()
_handed_out_lock = threading.Lock()


def free_port(host: str = LOCALHOST) -> int:
    """A TCP port on ``host`` that nothing listens on right now.

    The port is free when this returns; another process may still take it before the
    caller binds it, so callers that chose the port themselves retry with a new one when
    their server reports the address in use.
    """
    with _handed_out_lock:
        for _ in range(50):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((host, 0))
                port: int = sock.getsockname()[1]
            if port not in _handed_out:
                _handed_out.add(port)
                return port
    raise RuntimeError(f"could not find a free TCP port on {host}")


def port_accepts(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """True when a TCP connection to ``host:port`` succeeds within ``timeout_s`` [s]."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def wait_for(
    predicate: Callable[[], bool],
    *,
    timeout_s: float,
    what: str,
    interval_s: float = 0.05,
) -> None:
    """Poll ``predicate`` until it returns True; raise ``TimeoutError`` after ``timeout_s`` [s].

    The predicate may raise to abort the wait early (for example when the process it waits
    for has exited); that exception propagates unchanged.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(interval_s)


def stop_process(
    proc: subprocess.Popen[bytes],
    *,
    sig: int = signal.SIGTERM,
    timeout_s: float = 30.0,
) -> int | None:
    """Send ``sig`` to a child process and reap it; SIGKILL it after ``timeout_s`` [s].

    Returns the exit code (None never happens after a successful wait, but a child that
    already exited returns its code without being signalled).
    """
    if proc.poll() is not None:
        return proc.returncode
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    try:
        return proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(timeout=timeout_s)


def tail(path: Path, max_bytes: int = 4000) -> str:
    """The last ``max_bytes`` of a text file, or an empty string when it does not exist."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - max_bytes))
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def read_from(path: Path, offset: int, max_bytes: int = 4000) -> str:
    """What was appended to a text file after byte ``offset``, at most its last ``max_bytes``."""
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            return handle.read()[-max_bytes:].decode("utf-8", errors="replace")
    except OSError:
        return ""


class ServerStartError(RuntimeError):
    """An embedded server exited during start-up; ``port_in_use`` when its port was taken."""

    def __init__(self, message: str, *, port_in_use: bool = False) -> None:
        super().__init__(message)
        self.port_in_use = port_in_use


def current_user_name() -> str:
    """The name of the effective user, falling back to the login name."""
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return getpass.getuser()

"""A private PostgreSQL cluster in a data directory, started and stopped by carbonflow itself.

Used by ``carbonflow demo`` when ``DATABASE_URL`` is unset and by the test suite. The
postmaster is a direct child of this process (so it is always reaped, even where PID 1 does
not reap orphans), listens on 127.0.0.1 only and trusts local connections: it is a
development and test server, not a deployment.

Binaries, in order: ``CARBONFLOW_PG_BIN`` (a directory holding ``initdb`` and ``postgres``);
the binaries bundled with the ``pgserver`` wheel; ``/usr/lib/postgresql/<major>/bin``
(major ≥ 15). An existing data directory is only ever started with binaries of the major
version that created it.

PostgreSQL refuses to run as root. When this process is root, ``initdb`` and ``postgres`` run
as the ``postgres`` user (``nobody`` when there is none): the data directory is chowned to
that user and every directory above it gets the search (x) bit that user needs to reach it.
Binaries that user cannot reach (pgserver installed under ``/root``) are replaced by system
binaries, else by a copy of the pgserver install tree in the system temporary directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Literal, Protocol, Self
from urllib.parse import quote, urlsplit, urlunsplit

import psutil
import psycopg
from psycopg import sql

from carbonflow.embedded.net import LOCALHOST, ServerStartError, free_port, read_from, wait_for

logger = logging.getLogger(__name__)

DATABASE_NAME = "carbonflow"
SUPERUSER = "postgres"
MIN_MAJOR_VERSION = 15
PG_BIN_ENV = "CARBONFLOW_PG_BIN"
SETTINGS_FILE = "carbonflow.conf"
LOG_FILE = "postgresql.log"
LOG_ROTATE_BYTES = 16 * 1024 * 1024
"""The server log is moved to ``postgresql.log.1`` at start when larger than this [B]."""
SOCKET_PATH_MAX = 100
"""Unix socket paths are limited to 107 bytes (``sun_path``); stay below with a margin [B]."""
STARTUP_TIMEOUT_S = 120.0
"""Bound on start-up, crash recovery included [s]."""
STOP_TIMEOUT_S = 60.0
"""Bound on a clean shutdown before escalating to an immediate one [s]."""
_PORT_RETRIES = 3
_SYSTEM_PG_ROOT = Path("/usr/lib/postgresql")

StopMode = Literal["smart", "fast", "immediate"]
_STOP_SIGNALS: dict[StopMode, signal.Signals] = {
    "smart": signal.SIGTERM,
    "fast": signal.SIGINT,
    "immediate": signal.SIGQUIT,
}


class PostgresServer(Protocol):
    """A PostgreSQL server as the rest of carbonflow sees it: a URL per database."""

    @property
    def url(self) -> str: ...

    def url_for(self, dbname: str) -> str: ...


@dataclass(frozen=True)
class ExternalPostgres:
    """A server someone else runs (``DATABASE_URL``); nothing is started or stopped."""

    url: str

    def url_for(self, dbname: str) -> str:
        return with_database(self.url, dbname)


def with_database(url: str, dbname: str) -> str:
    """``url`` with its database path replaced by ``dbname``; user, host and query are kept."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + quote(dbname, safe="")))


def parse_major_version(version_output: str) -> int:
    """The major version from ``postgres --version`` output, e.g. ``postgres (PostgreSQL) 16.2``."""
    match = re.search(r"\(PostgreSQL\)\s+(\d+)", version_output)
    if match is None:
        raise ValueError(f"not PostgreSQL version output: {version_output!r}")
    return int(match.group(1))


def shared_buffers_mb(durable: bool, memory_bytes: int | None = None) -> int:
    """PostgreSQL's buffer cache for an embedded cluster [MiB]: a durable one (the demo, the
    benchmarks) an eighth of the machine's memory within 128 MiB–1 GiB — at the default 128 MiB a
    year's recompute made backends write out their own dirty pages, 2.2 × as many (docs/
    performance.md); a throwaway test cluster the default (many run at once)."""
    if not durable:
        return 128
    if memory_bytes is None:
        memory_bytes = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return max(128, min(1024, memory_bytes // 8 // 2**20))


def render_settings(
    *,
    port: int,
    socket_dir: Path,
    durable: bool,
    preload_timescaledb: bool,
) -> str:
    """The contents of ``carbonflow.conf``, included at the end of ``postgresql.conf``."""
    durability = "on" if durable else "off"
    lines = [
        "# Written by carbonflow.embedded.postgres at every start; edits are overwritten.",
        f"listen_addresses = '{LOCALHOST}'",
        f"port = {port}",
        f"unix_socket_directories = '{_quote_setting(str(socket_dir))}'",
        "max_connections = 200",
        f"shared_buffers = '{shared_buffers_mb(durable)}MB'",
        "timezone = 'UTC'",
        "log_timezone = 'UTC'",
        "logging_collector = off",
        "log_destination = 'stderr'",
        "log_line_prefix = '%m [%p] %q%u@%d '",
        f"fsync = {durability}",
        f"synchronous_commit = {durability}",
        f"full_page_writes = {durability}",
    ]
    if durable:
        # A recompute writes gigabytes of 15-min rows and rollups: with the default 1 GB of WAL
        # between checkpoints it forced checkpoints and full-page images mid-recompute.
        lines += ["max_wal_size = '4GB'", "checkpoint_timeout = '15min'"]
    if preload_timescaledb:
        lines += ["shared_preload_libraries = 'timescaledb'", "timescaledb.telemetry_level = off"]
    return "\n".join(lines) + "\n"


def _quote_setting(value: str) -> str:
    return value.replace("'", "''")


@dataclass(frozen=True)
class _RunAs:
    """The unprivileged account the server runs as when this process is root."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]

    @classmethod
    def for_root(cls) -> _RunAs | None:
        """None when not root; else ``postgres`` if that user exists, else ``nobody``."""
        if os.geteuid() != 0:
            return None
        for name in ("postgres", "nobody"):
            try:
                entry = pwd.getpwnam(name)
            except KeyError:
                continue
            groups = tuple(os.getgrouplist(name, entry.pw_gid))
            return cls(name=name, uid=entry.pw_uid, gid=entry.pw_gid, groups=groups)
        raise RuntimeError("running as root, but neither a 'postgres' nor a 'nobody' user exists")

    def permission_bit(self, st: os.stat_result, owner: int, group: int, other: int) -> int:
        """Which of the three bits applies to this user for a file with status ``st``."""
        if st.st_uid == self.uid:
            return owner
        if st.st_gid in self.groups or st.st_gid == self.gid:
            return group
        return other

    def can_search(self, directory: Path) -> bool:
        st = directory.stat()
        return bool(st.st_mode & self.permission_bit(st, stat.S_IXUSR, stat.S_IXGRP, stat.S_IXOTH))

    def can_reach(self, path: Path) -> bool:
        """True when every directory from ``/`` down to ``path`` (inclusive) is searchable."""
        path = path.resolve()
        return all(self.can_search(d) for d in [*reversed(path.parents), path] if d.is_dir())

    def grant_reach(self, path: Path) -> None:
        """Add the search bit this user needs on ``path`` and each directory above it."""
        path = path.resolve()
        for directory in [*reversed(path.parents), path]:
            st = directory.stat()
            bit = self.permission_bit(st, stat.S_IXUSR, stat.S_IXGRP, stat.S_IXOTH)
            if not st.st_mode & bit:
                logger.warning("granting search permission on %s to user %s", directory, self.name)
                directory.chmod(stat.S_IMODE(st.st_mode) | bit)

    def chown_tree(self, root: Path) -> None:
        os.chown(root, self.uid, self.gid)
        for dirpath, dirnames, filenames in os.walk(root):
            for name in [*dirnames, *filenames]:
                os.lchown(os.path.join(dirpath, name), self.uid, self.gid)


def grant_server_reach(path: Path) -> None:
    """When this process is root, let the user the server runs as reach ``path`` (the search
    bit on it and every directory above, as the TimescaleDB kit's start.sh does for its
    binaries); nothing otherwise. For ``CARBONFLOW_PG_BIN`` under ``/root``."""
    run_as = _RunAs.for_root()
    if run_as is not None:
        run_as.grant_reach(path)


@dataclass(frozen=True)
class _Binaries:
    bin_dir: Path
    major: int

    def exe(self, name: str) -> str:
        return str(self.bin_dir / name)

    @property
    def has_timescaledb(self) -> bool:
        prefix = self.bin_dir.parent
        return any(
            (lib / "timescaledb.so").exists() for lib in (prefix / "lib", prefix / "lib/postgresql")
        )


def _uid(run_as: _RunAs | None) -> int | None:
    return None if run_as is None else run_as.uid


def _gid(run_as: _RunAs | None) -> int | None:
    return None if run_as is None else run_as.gid


def _groups(run_as: _RunAs | None) -> list[int] | None:
    return None if run_as is None else list(run_as.groups)


def _clean_env() -> dict[str, str]:
    """The environment minus libpq/PostgreSQL variables that would redirect the tools."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


def _binary_major(bin_dir: Path, run_as: _RunAs | None) -> int | None:
    """Major version of ``bin_dir``'s postgres and initdb as run by ``run_as``; None if unusable."""
    if not ((bin_dir / "postgres").is_file() and (bin_dir / "initdb").is_file()):
        return None
    try:
        majors = set()
        for name in ("postgres", "initdb"):
            result = subprocess.run(
                [str(bin_dir / name), "--version"],
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
                cwd="/",
                env=_clean_env(),
                user=_uid(run_as),
                group=_gid(run_as),
                extra_groups=_groups(run_as),
            )
            majors.add(parse_major_version(result.stdout))
        if len(majors) != 1:
            raise ValueError(f"postgres and initdb versions differ: {sorted(majors)}")
        return majors.pop()
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        logger.debug("PostgreSQL binaries in %s are not usable: %s", bin_dir, exc)
        return None


def _pgserver_bin_dir() -> Path | None:
    """pgserver's bundled binaries, found without importing pgserver (its import has effects)."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        return None
    bin_dir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return bin_dir if bin_dir.is_dir() else None


def _system_bin_dirs() -> list[Path]:
    """``/usr/lib/postgresql/<major>/bin`` with major ≥ 15, highest first."""
    if not _SYSTEM_PG_ROOT.is_dir():
        return []
    majors = [int(p.name) for p in _SYSTEM_PG_ROOT.iterdir() if p.name.isdigit()]
    return [
        _SYSTEM_PG_ROOT / str(m) / "bin"
        for m in sorted(majors, reverse=True)
        if m >= MIN_MAJOR_VERSION and (_SYSTEM_PG_ROOT / str(m) / "bin" / "postgres").is_file()
    ]


def _copy_install_tree(bin_dir: Path, run_as: _RunAs) -> Path:
    """A copy of pgserver's install tree that ``run_as`` can read; returns its ``bin``.

    pgserver's binaries find their shared libraries through an RPATH relative to
    themselves (``$ORIGIN/../../../pgserver.libs``), so the copy keeps that layout:
    ``<cache>/pgserver/pginstall`` and ``<cache>/pgserver.libs``.
    """
    install = bin_dir.parent  # …/pgserver/pginstall
    package = install.parent  # …/pgserver
    libs = package.with_name(package.name + ".libs")  # …/pgserver.libs (auditwheel)
    digest = hashlib.sha256(str(install.resolve()).encode()).hexdigest()[:12]
    cache = Path(tempfile.gettempdir()) / f"carbonflow-pginstall-{digest}"
    copied_bin = Path(package.name) / install.name / bin_dir.name
    if cache.exists():
        st = cache.lstat()
        trusted = stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o022
        if trusted and (cache / ".complete").exists():
            run_as.grant_reach(cache)
            return cache / copied_bin
        if trusted:
            shutil.rmtree(cache)
        else:
            # Someone else made this path: never execute what it holds.
            cache = Path(tempfile.mkdtemp(prefix="carbonflow-pginstall-"))
    logger.info(
        "copying PostgreSQL binaries from %s to %s for user %s", install, cache, run_as.name
    )
    staging = Path(tempfile.mkdtemp(prefix="carbonflow-pginstall-tmp-"))
    try:
        tree = staging / "tree"
        shutil.copytree(install, tree / package.name / install.name, symlinks=True)
        if libs.is_dir():
            shutil.copytree(libs, tree / libs.name, symlinks=True)
        _make_world_readable(tree)
        (tree / ".complete").touch()
        if cache.exists():
            shutil.rmtree(cache)
        tree.rename(cache)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    run_as.grant_reach(cache)
    return cache / copied_bin


def _make_world_readable(root: Path) -> None:
    """Directories 0755; files 0755 when executable, else 0644."""
    root.chmod(0o755)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            os.chmod(os.path.join(dirpath, name), 0o755)
        for name in filenames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                mode = stat.S_IMODE(os.lstat(path).st_mode)
                os.chmod(path, 0o755 if mode & stat.S_IXUSR else 0o644)


def _resolve_binaries(run_as: _RunAs | None, required_major: int | None) -> _Binaries:
    """The binaries to use, honouring ``CARBONFLOW_PG_BIN`` and an existing cluster's version."""
    wanted = (
        f"PostgreSQL {required_major}" if required_major else f"PostgreSQL ≥ {MIN_MAJOR_VERSION}"
    )
    env_dir = os.environ.get(PG_BIN_ENV)
    if env_dir:
        bin_dir = Path(env_dir)
        if run_as is not None and bin_dir.is_dir() and not run_as.can_reach(bin_dir):
            raise RuntimeError(
                f"{PG_BIN_ENV}={env_dir} is not reachable by user {run_as.name}, "
                "which PostgreSQL must run as when carbonflow runs as root"
            )
        major = _binary_major(bin_dir, run_as)
        if major is None:
            raise RuntimeError(f"{PG_BIN_ENV}={env_dir} holds no runnable initdb and postgres")
        if required_major is not None and major != required_major:
            raise RuntimeError(
                f"{PG_BIN_ENV}={env_dir} is PostgreSQL {major}, but the data directory "
                f"needs {wanted}"
            )
        return _Binaries(bin_dir, major)

    bundled = _pgserver_bin_dir()
    candidates: list[Path] = []
    if bundled is not None and (run_as is None or run_as.can_reach(bundled)):
        candidates.append(bundled)
    candidates += _system_bin_dirs()
    for bin_dir in candidates:
        major = _binary_major(bin_dir, run_as)
        if (
            major is not None
            and major >= MIN_MAJOR_VERSION
            and (required_major is None or major == required_major)
        ):
            return _Binaries(bin_dir, major)
    if bundled is not None and run_as is not None and bundled not in candidates:
        copied = _copy_install_tree(bundled, run_as)
        major = _binary_major(copied, run_as)
        if major is not None and (required_major is None or major == required_major):
            return _Binaries(copied, major)
    raise RuntimeError(
        f"no usable {wanted} binaries found: install carbonflow's dependencies "
        f"(`make deps`, which installs pgserver), install PostgreSQL ≥ {MIN_MAJOR_VERSION} "
        f"under {_SYSTEM_PG_ROOT}, or set {PG_BIN_ENV} to a bin directory"
    )


class EmbeddedPostgres:
    """A private PostgreSQL cluster in ``data_dir`` listening on ``127.0.0.1:<port>``.

    ``port=None`` picks a free port (and picks again if it is taken before the server binds
    it). ``durable=False`` turns off fsync, synchronous_commit and full_page_writes: for
    tests, where a crash of the machine may lose the data.
    """

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        durable: bool = True,
        *,
        startup_timeout_s: float = STARTUP_TIMEOUT_S,
        stop_timeout_s: float = STOP_TIMEOUT_S,
    ) -> None:
        self._data_dir = Path(data_dir).absolute()
        self._auto_port = port is None
        self._port = free_port() if port is None else port
        self._durable = durable
        self._startup_timeout_s = startup_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_handle: IO[bytes] | None = None
        self._socket_tmpdir: Path | None = None

    # -- addresses -----------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        return self._data_dir

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        """``postgresql://postgres@127.0.0.1:<port>/carbonflow``."""
        return self.url_for(DATABASE_NAME)

    def url_for(self, dbname: str) -> str:
        return f"postgresql://{SUPERUSER}@{LOCALHOST}:{self._port}/{quote(dbname, safe='')}"

    @property
    def log_path(self) -> Path:
        return self._data_dir / LOG_FILE

    @property
    def pid(self) -> int | None:
        """The postmaster's process id while running."""
        return self._proc.pid if self._proc is not None and self.is_running() else None

    # -- lifecycle -----------------------------------------------------------------------

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Initialise the cluster if needed, start it, wait until it accepts connections.

        A postmaster still running on this data directory from an earlier run is shut down
        cleanly first, so the settings of this start (port, durability) always apply.
        """
        if self.is_running():
            return
        self._release()
        run_as = _RunAs.for_root()
        self._prepare_data_dir(run_as)
        self._stop_stale_postmaster()
        binaries = _resolve_binaries(run_as, self._existing_major())
        logger.info(
            "PostgreSQL %d from %s%s",
            binaries.major,
            binaries.bin_dir,
            f" as user {run_as.name}" if run_as else "",
        )
        if not (self._data_dir / "PG_VERSION").exists():
            self._initdb(binaries, run_as)
        for attempt in range(_PORT_RETRIES):
            try:
                self._launch(binaries, run_as)
                break
            except ServerStartError as exc:
                if not (exc.port_in_use and self._auto_port and attempt + 1 < _PORT_RETRIES):
                    raise
                logger.info("port %d was taken, retrying on another", self._port)
                self._port = free_port()
        self._auto_port = False  # restarts keep the URL clients already have
        try:
            self._create_database(DATABASE_NAME)
        except BaseException:
            self.stop("immediate")
            raise
        logger.info(
            "PostgreSQL listening on %s:%d (data in %s)", LOCALHOST, self._port, self._data_dir
        )

    def stop(self, mode: StopMode = "fast") -> None:
        """Shut down (``fast``: roll back open transactions, checkpoint) and reap the server."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(_STOP_SIGNALS[mode])
            try:
                proc.wait(timeout=self._stop_timeout_s)
            except subprocess.TimeoutExpired:
                logger.warning(
                    "PostgreSQL did not stop in %g s; stopping it immediately", self._stop_timeout_s
                )
                proc.send_signal(signal.SIGQUIT)
                try:
                    proc.wait(timeout=self._stop_timeout_s)
                except subprocess.TimeoutExpired:
                    self.kill()
                    return
        logger.info("PostgreSQL on port %d stopped", self._port)
        self._release()

    def kill(self) -> None:
        """SIGKILL the postmaster and its backends, as a crash would; ``start()`` recovers."""
        proc = self._proc
        if proc is None:
            return
        children: list[psutil.Process] = []
        if proc.poll() is None:
            with contextlib.suppress(psutil.NoSuchProcess):
                children = psutil.Process(proc.pid).children(recursive=True)
            proc.kill()
        proc.wait()
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        wait_for(
            lambda: all(_gone(c) for c in children),
            timeout_s=self._stop_timeout_s,
            what="the killed PostgreSQL backends to exit",
        )
        logger.info("PostgreSQL on port %d killed", self._port)
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

    # -- steps ---------------------------------------------------------------------------

    def _release(self) -> None:
        """Forget a reaped server: close the log handle, remove a temporary socket dir."""
        if self._proc is not None and self._proc.poll() is None:
            raise RuntimeError("PostgreSQL is still running")
        self._proc = None
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None
        if self._socket_tmpdir is not None:
            shutil.rmtree(self._socket_tmpdir, ignore_errors=True)
            self._socket_tmpdir = None

    def _prepare_data_dir(self, run_as: _RunAs | None) -> None:
        if not self._data_dir.exists():
            self._data_dir.mkdir(mode=0o700, parents=True)
        if run_as is not None:
            run_as.grant_reach(self._data_dir.parent)
            if self._data_dir.stat().st_uid != run_as.uid:
                run_as.chown_tree(self._data_dir)
        # PostgreSQL refuses group- or world-writable (or -readable beyond 0750) data dirs.
        mode = stat.S_IMODE(self._data_dir.stat().st_mode)
        if mode & 0o027:
            self._data_dir.chmod(mode & 0o750)

    def _existing_major(self) -> int | None:
        version_file = self._data_dir / "PG_VERSION"
        if not version_file.exists():
            if any(self._data_dir.iterdir()):
                raise RuntimeError(
                    f"{self._data_dir} is neither empty nor a PostgreSQL data directory"
                )
            return None
        return int(version_file.read_text().strip().split(".")[0])

    def _stop_stale_postmaster(self) -> None:
        """Cleanly stop a postmaster left running on this data dir by an earlier process."""
        pid_file = self._data_dir / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return
        try:
            process = psutil.Process(pid)
            if _gone(process) or process.name() not in ("postgres", "postmaster"):
                return
            try:
                if Path(process.cwd()).resolve() != self._data_dir.resolve():
                    return
            except psutil.AccessDenied:
                pass
            logger.warning(
                "stopping PostgreSQL (pid %d) left running on %s by an earlier run",
                pid,
                self._data_dir,
            )
            process.send_signal(signal.SIGINT)
            try:
                wait_for(
                    lambda: _gone(process),
                    timeout_s=self._stop_timeout_s,
                    what=f"the earlier PostgreSQL (pid {pid}) to stop",
                )
            except TimeoutError:
                process.send_signal(signal.SIGQUIT)
                wait_for(
                    lambda: _gone(process),
                    timeout_s=self._stop_timeout_s,
                    what=f"the earlier PostgreSQL (pid {pid}) to stop immediately",
                )
        except psutil.NoSuchProcess:
            return

    def _initdb(self, binaries: _Binaries, run_as: _RunAs | None) -> None:
        logger.info("initialising a PostgreSQL cluster in %s", self._data_dir)
        command = [
            binaries.exe("initdb"),
            "-D",
            str(self._data_dir),
            "-A",
            "trust",
            "-U",
            SUPERUSER,
            "-E",
            "UTF8",
            "--locale=C",
        ]
        if not self._durable:
            command.append("--no-sync")
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            cwd=str(self._data_dir),
            env=_clean_env(),
            timeout=self._startup_timeout_s,
            check=False,
            user=_uid(run_as),
            group=_gid(run_as),
            extra_groups=_groups(run_as),
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"initdb failed with exit code {result.returncode}:\n"
                f"{result.stdout}\n{result.stderr}"
            )
        conf = self._data_dir / "postgresql.conf"
        with conf.open("a") as handle:
            handle.write(f"\ninclude_if_exists = '{SETTINGS_FILE}'\n")

    def _socket_dir(self, run_as: _RunAs | None) -> Path:
        if len(str(self._data_dir / ".s.PGSQL.65535.lock")) <= SOCKET_PATH_MAX:
            return self._data_dir
        base = Path("/tmp") if Path("/tmp").is_dir() else Path(tempfile.gettempdir())
        self._socket_tmpdir = Path(tempfile.mkdtemp(prefix="cfpg-", dir=base))
        if run_as is not None:
            os.chown(self._socket_tmpdir, run_as.uid, run_as.gid)
        return self._socket_tmpdir

    def _write_settings(self, binaries: _Binaries, run_as: _RunAs | None) -> None:
        settings = render_settings(
            port=self._port,
            socket_dir=self._socket_dir(run_as),
            durable=self._durable,
            preload_timescaledb=binaries.has_timescaledb,
        )
        path = self._data_dir / SETTINGS_FILE
        staging = path.with_suffix(".tmp")
        staging.write_text(settings)
        staging.chmod(0o600)
        if run_as is not None:
            os.chown(staging, run_as.uid, run_as.gid)
        staging.replace(path)

    def _open_log(self) -> IO[bytes]:
        if self.log_path.exists() and self.log_path.stat().st_size > LOG_ROTATE_BYTES:
            self.log_path.replace(self.log_path.with_name(LOG_FILE + ".1"))
        return self.log_path.open("ab")

    def _launch(self, binaries: _Binaries, run_as: _RunAs | None) -> None:
        self._release()
        self._write_settings(binaries, run_as)
        self._log_handle = self._open_log()
        log_offset = self._log_handle.tell()
        self._proc = subprocess.Popen(
            [binaries.exe("postgres"), "-D", str(self._data_dir)],
            stdin=subprocess.DEVNULL,
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            cwd=str(self._data_dir),
            env=_clean_env(),
            start_new_session=True,
            user=_uid(run_as),
            group=_gid(run_as),
            extra_groups=_groups(run_as),
        )
        try:
            wait_for(
                lambda: self._accepts_connections(log_offset),
                timeout_s=self._startup_timeout_s,
                what=f"PostgreSQL on port {self._port} to accept connections",
            )
        except TimeoutError:
            self.stop("immediate")
            raise

    def _accepts_connections(self, log_offset: int) -> bool:
        proc = self._proc
        assert proc is not None
        if proc.poll() is not None:
            log = read_from(self.log_path, log_offset)
            self._release()
            port_in_use = "could not bind" in log or "Address already in use" in log
            raise ServerStartError(
                f"PostgreSQL exited with code {proc.returncode} during start-up; "
                f"log {self.log_path}:\n{log}",
                port_in_use=port_in_use,
            )
        try:
            with psycopg.connect(self.url_for("postgres"), connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.OperationalError:
            return False

    def _create_database(self, dbname: str) -> None:
        with psycopg.connect(self.url_for("postgres"), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)
            ).fetchone()
            if exists is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
                logger.info("created database %s", dbname)


def _gone(process: psutil.Process) -> bool:
    """True when a process has exited (a zombie nobody reaps counts as exited)."""
    try:
        return bool(process.status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True

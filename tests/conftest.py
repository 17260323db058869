"""Fixtures for the integration tests: real PostgreSQL and Mosquitto, started by the suite.

- ``pg_server`` (session): the PostgreSQL server: ``DATABASE_URL``'s when set, else an
  embedded, non-durable one on a private port. Not to be stopped by tests.
- ``migrated_template`` (session): URL of ``cf_template``, migrated to the newest schema.
- ``database_url``: a fresh migrated database per test, copied from the template.
- ``app_role_url``: ``database_url`` as the services' login role (a member of
  ``carbonflow_app``, migration 0005): no ownership, only the application's grants.
- ``timescaledb_url``: ``database_url`` when the server has TimescaleDB (its layout is the
  hypertables'); the test skips otherwise, and fails instead under
  ``CARBONFLOW_REQUIRE_TIMESCALEDB=1`` (``make test-timescaledb``), as does the whole session
  when its template is not on TimescaleDB.
- ``mosquitto``: a fresh Mosquitto per test; tests may stop, kill and restart it.
- ``own_postgres``: a private, durable, migrated PostgreSQL per test, for tests that stop or
  kill the database under a running service.

Nothing here starts unless a test asks for it, so unit tests never pay for these services.
Helpers tests import live in ``tests/support/waiting.py`` (conftest modules are not importable).

As root, PostgreSQL runs as the ``postgres`` user, which must be able to reach its data
directory. pytest keeps its base temporary directory private to root and re-tightens it
whenever any other pytest session starts, so clusters then live in a world-searchable
directory of their own instead (``services_dir``).
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Generator, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from carbonflow.embedded.broker import EmbeddedMosquitto
from carbonflow.embedded.postgres import EmbeddedPostgres, ExternalPostgres, PostgresServer
from tests.support.timescale import REQUIRE_TIMESCALEDB, no_timescaledb, uses_timescaledb

TEMPLATE_DB = "cf_template"
_database_numbers = itertools.count(1)
_cluster_numbers = itertools.count(1)
_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Remember failures, so fixtures can keep a failed test's server data for inspection."""
    report = yield
    if report.failed:
        item.stash[_FAILED] = True
    return report


def _admin(server: PostgresServer, statement: sql.Composed) -> None:
    """Run one statement outside a transaction (CREATE/DROP DATABASE need that)."""
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute(statement)


def _drop_database(server: PostgresServer, name: str) -> None:
    _admin(
        server,
        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)),
    )


@pytest.fixture(scope="session")
def services_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Where the embedded PostgreSQL clusters of this session live."""
    if os.geteuid() != 0:
        yield tmp_path_factory.mktemp("services")
        return
    base = Path(tempfile.mkdtemp(prefix="carbonflow-tests-"))
    base.chmod(0o711)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server(services_dir: Path) -> Iterator[PostgresServer]:
    """The session's PostgreSQL: ``DATABASE_URL``'s server, else an embedded one."""
    external = os.environ.get("DATABASE_URL")
    if external:
        yield ExternalPostgres(external)
        return
    server = EmbeddedPostgres(services_dir / "session-pg", durable=False)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def migrated_template(pg_server: PostgresServer) -> Iterator[str]:
    """URL of ``cf_template``, migrated; closed to connections so it can be copied."""
    from carbonflow.storage.migrate import upgrade

    name = sql.Identifier(TEMPLATE_DB)
    _drop_database(pg_server, TEMPLATE_DB)
    _admin(pg_server, sql.SQL("CREATE DATABASE {}").format(name))
    url = pg_server.url_for(TEMPLATE_DB)
    upgrade(url)
    if REQUIRE_TIMESCALEDB and not uses_timescaledb(url):
        pytest.fail("CARBONFLOW_REQUIRE_TIMESCALEDB=1 but the migrated template is plain")
    # CREATE DATABASE … TEMPLATE fails while anyone is connected to the template.
    _admin(pg_server, sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(name))
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (TEMPLATE_DB,),
        )
    try:
        yield url
    finally:
        _drop_database(pg_server, TEMPLATE_DB)


@pytest.fixture
def database_url(pg_server: PostgresServer, migrated_template: str) -> Iterator[str]:
    """A fresh, migrated database for this test (a copy of the template), dropped after it."""
    name = f"cf_test_{next(_database_numbers)}"
    _drop_database(pg_server, name)
    _admin(
        pg_server,
        sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(TEMPLATE_DB)
        ),
    )
    try:
        yield pg_server.url_for(name)
    finally:
        _drop_database(pg_server, name)


@pytest.fixture
def timescaledb_url(database_url: str) -> str:
    """``database_url`` on TimescaleDB; skips without it (fails when it is required)."""
    if not uses_timescaledb(database_url):
        no_timescaledb("no TimescaleDB on this PostgreSQL server (make test-timescaledb)")
    return database_url


APP_LOGIN = "cf_test_app"
APP_PASSWORD = "cf-test-app-password-0123456789"


@pytest.fixture
def app_role_url(database_url: str) -> str:
    """``database_url`` as a LOGIN role whose only rights are those of ``carbonflow_app``."""
    from urllib.parse import quote, urlsplit, urlunsplit

    from carbonflow.storage.migrate import ensure_app_login

    ensure_app_login(database_url, APP_LOGIN, APP_PASSWORD)
    parts = urlsplit(database_url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{APP_LOGIN}:{quote(APP_PASSWORD, safe='')}@{host}"))


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[EmbeddedMosquitto]:
    """A fresh Mosquitto on a free port with its data in ``tmp_path``; stopped after the test."""
    broker = EmbeddedMosquitto(tmp_path / "mosquitto")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def own_postgres_seed(services_dir: Path) -> Path:
    """A cleanly stopped, durable cluster whose ``carbonflow`` database is migrated.

    ``own_postgres`` copies it instead of running initdb and the migrations for every test.
    """
    from carbonflow.storage.migrate import upgrade

    data_dir = services_dir / "seed-pg"
    with EmbeddedPostgres(data_dir, durable=True) as seed:
        upgrade(seed.url)
    return data_dir


@pytest.fixture
def own_postgres(
    request: pytest.FixtureRequest, services_dir: Path, own_postgres_seed: Path
) -> Iterator[EmbeddedPostgres]:
    """A private, durable, migrated PostgreSQL for this test, which may stop or kill it.

    Its data directory is removed after a passing test and kept after a failing one.
    """
    data_dir = services_dir / f"own-pg-{next(_cluster_numbers)}"
    shutil.copytree(
        own_postgres_seed,
        data_dir,
        symlinks=True,
        ignore=shutil.ignore_patterns("postgresql.log*", "postmaster.pid"),
    )
    server = EmbeddedPostgres(data_dir, durable=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()
    if not request.node.stash.get(_FAILED, False):
        shutil.rmtree(data_dir, ignore_errors=True)

"""deploy/timescaledb/initdb/10-grafana-role.sh, run as the TimescaleDB image runs it (psql,
POSTGRES_USER, POSTGRES_DB, GRAFANA_DB_PASSWORD): Grafana's role reads every table, those the
migrations create later included, and writes none."""

from __future__ import annotations

import os
import subprocess
from urllib.parse import urlsplit

import psycopg
import pytest

from carbonflow.embedded.postgres import PostgresServer
from tests.support import ROOT as ROOT_DIR
from tests.support.deploy_support import pg_client_bin_dir, server_major

pytestmark = pytest.mark.integration

SCRIPT = ROOT_DIR / "deploy" / "timescaledb" / "initdb"
PASSWORD = "grafana-test-password"


def test_grafana_role_reads_everything_and_writes_nothing(
    database_url: str, pg_server: PostgresServer
) -> None:
    bin_dir = pg_client_bin_dir(server_major(database_url))
    if bin_dir is None or not (bin_dir / "psql").is_file():
        pytest.skip("no psql of the server's version")
    parts = urlsplit(database_url)
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'grafana'").fetchone()
    if exists:
        pytest.skip("a role named grafana already exists on this server")
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "PGHOST": parts.hostname or "127.0.0.1",
        "PGPORT": str(parts.port or 5432),
        "POSTGRES_USER": parts.username or "postgres",
        "POSTGRES_DB": parts.path.lstrip("/"),
        "GRAFANA_DB_PASSWORD": PASSWORD,
    }
    try:
        run = subprocess.run(
            ["sh", str(SCRIPT / "10-grafana-role.sh")],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert run.returncode == 0, run.stderr
        with psycopg.connect(database_url, autocommit=True) as owner:
            owner.execute("CREATE TABLE later_migration (x int)")  # as a later migration would
            owner.execute("INSERT INTO later_migration VALUES (1)")
        grafana_url = parts._replace(
            netloc=f"grafana:{PASSWORD}@{env['PGHOST']}:{env['PGPORT']}"
        ).geturl()
        with psycopg.connect(grafana_url, autocommit=True) as grafana:
            grafana.execute("SELECT count(*) FROM reading").fetchone()
            grafana.execute("SELECT count(*) FROM calc_carbon_rollup").fetchone()
            assert grafana.execute("SELECT x FROM later_migration").fetchone() == (1,)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                grafana.execute("INSERT INTO later_migration VALUES (2)")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                grafana.execute("DELETE FROM reading")
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS later_migration")
            conn.execute("DROP OWNED BY grafana")
        with psycopg.connect(pg_server.url, autocommit=True) as conn:
            conn.execute("DROP ROLE IF EXISTS grafana")

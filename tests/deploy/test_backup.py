"""Backup and restore as docs/operations.md documents them: `pg_dump -Fc`, `pg_restore` into a
fresh database (between `timescaledb_pre_restore()` and `timescaledb_post_restore()` when the
dump holds TimescaleDB), and the restored database gives the same ledger inputs, carbon rollups
and table contents, and accepts `carbonflow migrate` (no-op) and the calc engine afterwards.
On TimescaleDB the test also compresses a chunk of readings first, so compressed data is
restored too.

The commands run with the client binaries of the server's own major version (the embedded
server is PostgreSQL 16 from the pgserver wheel while the system's may be 15; a pg_dump older
than the server refuses to dump it).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from carbonflow.embedded.postgres import PostgresServer
from services.api.reads import ledger_inputs
from services.calc.engine import CalcEngine
from tests.support.calc_generator import (
    computed_small_site,
)
from tests.support.deploy_support import pg_client_bin_dir, server_major

pytestmark = pytest.mark.integration


def _table_digests(url: str) -> dict[str, tuple[int, str]]:
    """Every public table → (rows, md5 of its rows as text in a fixed order)."""
    with psycopg.connect(url) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
            )
        ]
        digests = {}
        for table in tables:
            query = sql.SQL(
                "SELECT count(*), coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '')"
                " FROM {} t"
            ).format(sql.Identifier(table))
            row = conn.execute(query).fetchone()
            assert row is not None
            digests[table] = (int(row[0]), str(row[1]))
    return digests


def _run(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, f"{' '.join(argv)}\n{result.stderr}"


def _restore(bin_dir: Path, dump: Path, url: str) -> None:
    """docs/operations.md, "Restore", step by step."""
    listing = subprocess.run(
        [str(bin_dir / "pg_restore"), "--list", str(dump)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    timescaledb = " EXTENSION - timescaledb" in listing
    psql = [str(bin_dir / "psql"), "--set=ON_ERROR_STOP=1", "--quiet", url]
    if timescaledb:
        _run([*psql, "-c", _CREATE_EXTENSION, "-c", "SELECT timescaledb_pre_restore()"])
    _run(
        [
            str(bin_dir / "pg_restore"),
            "--exit-on-error",
            "--no-owner",
            # TimescaleDB's catalog tables reference each other: one job restores them in order.
            "--jobs=1" if timescaledb else "--jobs=2",
            f"--dbname={url}",
            str(dump),
        ]
    )
    if timescaledb:
        _run([*psql, "-c", "SELECT timescaledb_post_restore()"])


_CREATE_EXTENSION = "CREATE EXTENSION IF NOT EXISTS timescaledb"


def _compressed_chunks(url: str) -> int:
    with psycopg.connect(url) as conn:
        if conn.execute("SELECT timescaledb FROM storage_mode").fetchone() != (True,):
            return 0
        row = conn.execute(
            "SELECT count(*) FROM timescaledb_information.chunks WHERE is_compressed"
        ).fetchone()
    assert row is not None
    return int(row[0])


def _compress_readings(url: str) -> int:
    """On TimescaleDB: the oldest chunk of readings compressed; the number of compressed chunks."""
    with psycopg.connect(url) as conn:
        if conn.execute("SELECT timescaledb FROM storage_mode").fetchone() != (True,):
            return 0
        # The policy jobs may have compressed it already (the test data is old).
        conn.execute(
            "SELECT compress_chunk(min(c), if_not_compressed => true) FROM show_chunks('reading') c"
        )
    compressed = _compressed_chunks(url)
    assert compressed >= 1
    return compressed


def test_pg_dump_and_restore_reproduce_the_results(
    database_url: str, pg_server: PostgresServer, tmp_path: Path
) -> None:
    bin_dir = pg_client_bin_dir(server_major(database_url))
    if bin_dir is None:
        pytest.skip(f"no pg_dump of PostgreSQL {server_major(database_url)} on this machine")
    doc, start, end = computed_small_site(database_url)
    site = doc.site.id
    with psycopg.connect(database_url) as conn:
        before_ledger = ledger_inputs(conn, site, start, end)
    compressed = _compress_readings(database_url)
    before = _table_digests(database_url)
    assert before["calc_carbon_rollup"][0] > 0 and before["reading"][0] > 0

    # docs/operations.md, "Backup": a consistent snapshot, compressed, restorable in parallel.
    dump = tmp_path / "carbonflow.dump"
    _run([str(bin_dir / "pg_dump"), "--format=custom", f"--file={dump}", database_url])
    restored = "cf_restore_" + database_url.rsplit("/", 1)[1]
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(restored)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(restored)))
    restored_url = pg_server.url_for(restored)
    try:
        _restore(bin_dir, dump, restored_url)
        assert _table_digests(restored_url) == before
        # Compressed chunks come back compressed (the restored database's own compression
        # policy may compress more of the old test data as soon as its jobs run).
        assert _compressed_chunks(restored_url) >= compressed
        with psycopg.connect(restored_url) as conn:
            assert ledger_inputs(conn, site, start, end) == before_ledger
        # The restored database is a working carbonflow database: migrate is a no-op and
        # the calc engine finds nothing left to do.
        migrate = subprocess.run(
            [sys.executable, "-m", "cli.main", "migrate"],
            env={**os.environ, "DATABASE_URL": restored_url},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert migrate.returncode == 0, migrate.stderr
        engine = CalcEngine(restored_url)
        engine.run_until_idle()
        engine.close()
        assert _table_digests(restored_url)["calc_carbon_rollup"] == before["calc_carbon_rollup"]
    finally:
        with psycopg.connect(pg_server.url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(restored))
            )

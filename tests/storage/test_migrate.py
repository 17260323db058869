"""Migrations: idempotent, and the migrated schema is exactly carbonflow/storage/schema.py."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from carbonflow.storage.db import make_engine
from carbonflow.storage.migrate import head_revision, upgrade
from carbonflow.storage.schema import READING_TS_BRIN, metadata
from cli.main import main

pytestmark = pytest.mark.integration


def test_migrated_schema_matches_the_metadata(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn), metadata)
            mode = conn.execute(sa.text("SELECT timescaledb, detail FROM storage_mode")).one()
            indexes = {r[0] for r in conn.execute(sa.text("SELECT indexname FROM pg_indexes"))}
    finally:
        engine.dispose()
    # The BRIN index is the plain-PostgreSQL layout of readings, not part of the logical schema.
    diffs = [d for d in diffs if not (d[0] == "remove_index" and d[1].name == READING_TS_BRIN)]
    assert diffs == []
    if not mode.timescaledb:
        assert READING_TS_BRIN in indexes
        assert "BRIN" in mode.detail


def test_upgrade_twice_changes_nothing(database_url: str) -> None:
    report = upgrade(database_url)
    assert report.before == report.after == head_revision()
    assert not report.changed


def test_migrate_command(database_url: str, monkeypatch, capsys) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    assert main(["migrate"]) == 0
    assert "already at revision" in capsys.readouterr().out


def test_migrate_command_without_timescaledb_refuses_when_required(
    database_url: str, monkeypatch, capsys
) -> None:
    """--timescaledb on a server without the extension fails with a clear message."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    engine = make_engine(database_url)
    with engine.connect() as conn:
        available = conn.execute(
            sa.text("SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'")
        ).scalar_one()
    engine.dispose()
    if available:
        assert main(["migrate", "--timescaledb"]) == 0
    else:
        # Already migrated: required-but-missing only matters on a fresh database.
        fresh = database_url.rsplit("/", 1)[0] + "/postgres"
        with sa.create_engine(
            "postgresql+psycopg://" + fresh.split("://", 1)[1], isolation_level="AUTOCOMMIT"
        ).connect() as conn:
            conn.execute(sa.text("DROP DATABASE IF EXISTS cf_require_ts"))
            conn.execute(sa.text("CREATE DATABASE cf_require_ts"))
        target = database_url.rsplit("/", 1)[0] + "/cf_require_ts"
        monkeypatch.setenv("DATABASE_URL", target)
        try:
            assert main(["migrate", "--timescaledb"]) == 1
            assert "TimescaleDB was required" in capsys.readouterr().err
        finally:
            with sa.create_engine(
                "postgresql+psycopg://" + fresh.split("://", 1)[1], isolation_level="AUTOCOMMIT"
            ).connect() as conn:
                conn.execute(sa.text("DROP DATABASE cf_require_ts WITH (FORCE)"))

"""TimescaleDB layout and policies (carbonflow/storage/timescale.py, docs/operations.md).

The sizing rule is pure and tested here on worked numbers; the rest needs a server with
TimescaleDB (``make test-timescaledb``) and skips without one (fails under
``CARBONFLOW_REQUIRE_TIMESCALEDB=1``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from psycopg import sql

from carbonflow.embedded.postgres import EmbeddedPostgres
from carbonflow.storage.db import make_engine
from carbonflow.storage.migrate import upgrade
from carbonflow.storage.timescale import (
    DAY_S,
    HOUR_S,
    READING,
    RESULTS,
    StoragePolicy,
    chunk_interval_s,
    compress_due,
    describe_s,
    policy_states,
    row_counts,
    table_sizes,
)
from cli.main import main
from services.calc.engine import CalcEngine
from tests.support.calc_generator import computed_small_site, registry_ids
from tests.support.timescale import no_timescaledb, uses_timescaledb

GIB = 2**30


# --- the chunk interval rule (pure) ------------------------------------------------------------


def test_chunk_interval_of_a_fast_fleet_is_a_few_hours() -> None:
    # 10 000 devices × 4 metrics per minute = 666.67 readings/s × 101 B = 67 333 B/s;
    # 8 GiB × 25 % × 1/2 (reading's share) = 1 073 741 824 B → 15 947 s = 4.43 h → 4 h.
    policy = StoragePolicy(readings_per_s=10_000 * 4 / 60, memory_gib=8)
    assert policy.chunk_s(READING) == 4 * HOUR_S
    # The result tables: 8 GiB × 25 % × 1/4 = 536 870 912 B / (666.67 × 129 B/s = 86 000 B/s)
    # = 6 243 s = 1.7 h, below their 1-day floor.
    assert [policy.chunk_s(r) for r in RESULTS] == [DAY_S, DAY_S]


def test_chunk_interval_of_a_slow_fleet_is_capped() -> None:
    # 1 reading/s × 101 B; 4 GiB × 25 % × 1/2 = 536 870 912 B → 5 315 553 s = 61.5 d → 7 d cap.
    policy = StoragePolicy(readings_per_s=1.0, memory_gib=4)
    assert policy.chunk_s(READING) == 7 * DAY_S
    # 4 GiB × 25 % × 1/4 = 268 435 456 B / 129 B/s = 2 080 895 s = 24.08 d → whole days: 24 d.
    assert [policy.chunk_s(r) for r in RESULTS] == [24 * DAY_S, 24 * DAY_S]


def test_chunk_interval_bounds_and_unknown_rate() -> None:
    # 1 GiB at 1 M rows/s × 100 B = 10.7 s: below the floor of 1 h.
    assert chunk_interval_s(
        rows_per_s=1e6, bytes_per_row=100, budget_bytes=GIB, min_s=HOUR_S, max_s=DAY_S
    ) == (HOUR_S)
    # 36 000 B at 1 row/s × 1 B = 10 h, within bounds: whole hours.
    assert (
        chunk_interval_s(
            rows_per_s=1, bytes_per_row=1, budget_bytes=36_000, min_s=HOUR_S, max_s=7 * DAY_S
        )
        == 10 * HOUR_S
    )
    # No expected rate: the largest interval.
    assert (
        chunk_interval_s(rows_per_s=0, bytes_per_row=101, budget_bytes=GIB, min_s=1, max_s=DAY_S)
        == DAY_S
    )
    assert [describe_s(s) for s in (HOUR_S, 4 * HOUR_S, DAY_S, 7 * DAY_S)] == [
        "1 hour",
        "4 hours",
        "1 day",
        "7 days",
    ]


# --- on a server with TimescaleDB ---------------------------------------------------------------


def _scalar(url: str, query: str, *params: object) -> object:
    with psycopg.connect(url) as conn:
        row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def _jobs(url: str) -> dict[tuple[str, str], tuple[int, str]]:
    """(hypertable, policy) → (job id, its age setting)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT hypertable_name, proc_name, job_id, "
            "coalesce(config->>'compress_after', config->>'drop_after') "
            "FROM timescaledb_information.jobs WHERE hypertable_schema = 'public'"
        ).fetchall()
    return {(str(t), str(p)): (int(j), str(a)) for t, p, j, a in rows}


@pytest.mark.integration
def test_hypertables_have_only_their_declared_indexes(timescaledb_url: str) -> None:
    """No TimescaleDB default index (``reading_ts_idx``): each hypertable keeps its primary key
    alone, and compression and the policies are in place (the schema-drift test in
    test_migrate.py compares the rest with schema.py)."""
    with psycopg.connect(timescaledb_url) as conn:
        tables = {
            r[0]
            for r in conn.execute(
                "SELECT hypertable_name FROM timescaledb_information.hypertables "
                "WHERE compression_enabled"
            )
        }
        indexes = {
            (r[0], r[1])
            for r in conn.execute(
                "SELECT tablename, indexname FROM pg_indexes "
                "WHERE schemaname = 'public' AND tablename = ANY(%s)",
                (sorted(tables),),
            )
        }
    assert tables == {"reading", "calc_interval", "calc_carbon"}
    assert indexes == {(t, f"{t}_pkey") for t in tables}
    jobs = _jobs(timescaledb_url)
    policy = StoragePolicy()
    assert {k: a for k, (_j, a) in jobs.items()} == {
        ("reading", "policy_compression"): f"{policy.compress_after_days} days",
        ("reading", "policy_retention"): f"{policy.retention_days} days",
        ("calc_interval", "policy_compression"): f"{policy.results_compress_after_days} days",
        ("calc_carbon", "policy_compression"): f"{policy.results_compress_after_days} days",
    }


@pytest.mark.integration
def test_every_migrate_applies_the_settings_to_the_policies(
    timescaledb_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _jobs(timescaledb_url)
    monkeypatch.setenv("DATABASE_URL", timescaledb_url)
    monkeypatch.setenv("CARBONFLOW_READINGS_RETENTION_DAYS", "400")
    monkeypatch.setenv("CARBONFLOW_READINGS_COMPRESS_AFTER_DAYS", "3")
    monkeypatch.setenv("CARBONFLOW_READINGS_PER_S", str(10_000 * 4 / 60))
    monkeypatch.setenv("CARBONFLOW_DB_MEMORY_GIB", "8")
    monkeypatch.setenv("CARBONFLOW_RESULTS_COMPRESS_AFTER_DAYS", "60")
    assert main(["migrate"]) == 0
    assert "already at revision" in capsys.readouterr().out
    after = _jobs(timescaledb_url)
    assert {k: a for k, (_j, a) in after.items()} == {
        ("reading", "policy_compression"): "3 days",
        ("reading", "policy_retention"): "400 days",
        ("calc_interval", "policy_compression"): "60 days",
        ("calc_carbon", "policy_compression"): "60 days",
    }
    engine = make_engine(timescaledb_url)
    try:
        with engine.connect() as conn:
            states = {s.table: s for s in policy_states(conn)}
    finally:
        engine.dispose()
    # 4 h for reading and the results' 1-day floor (test_chunk_interval_of_a_fast_fleet…).
    assert states["reading"].chunk_interval == "04:00:00"
    assert states["calc_interval"].chunk_interval == states["calc_carbon"].chunk_interval == "1 day"
    assert states["reading"].drop_after == "400 days"

    # The same settings again: nothing replaced, the jobs (and their history) stay.
    assert main(["migrate"]) == 0
    assert _jobs(timescaledb_url) == after
    assert after[("reading", "policy_retention")][0] != before[("reading", "policy_retention")][0]

    assert main(["db", "policies"]) == 0
    out = capsys.readouterr().out
    for line in ("reading ", "04:00:00", "400 days", "calc_interval", "60 days", "4 hours"):
        assert line in out


@pytest.mark.integration
def test_db_policies_on_plain_postgresql(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """On plain PostgreSQL the command says there are no policies; on TimescaleDB it lists the
    three hypertables."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    assert main(["db", "policies"]) == 0
    out = capsys.readouterr().out
    if uses_timescaledb(database_url):
        assert all(t in out for t in ("reading", "calc_interval", "calc_carbon"))
    else:
        assert "no TimescaleDB policies" in out
        assert "BRIN" in out


_RESULTS_DIGEST = """
SELECT count(*), md5(string_agg((to_jsonb(t) - 'computed_at')::text, '|'
                                ORDER BY (to_jsonb(t) - 'computed_at')::text))
FROM {} t
"""
_RESULT_TABLES = (
    "calc_interval",
    "calc_interval_rollup",
    "calc_carbon",
    "calc_carbon_rollup",
    "calc_green_claim",
    "calc_indicator",
    "calc_budget",
)


def result_digests(url: str) -> dict[str, tuple[int, str]]:
    """Every calc result table → (rows, md5 of its rows without ``computed_at``)."""
    out = {}
    with psycopg.connect(url) as conn:
        for table in _RESULT_TABLES:
            row = conn.execute(sql.SQL(_RESULTS_DIGEST).format(sql.Identifier(table))).fetchone()
            assert row is not None
            out[table] = (int(row[0]), str(row[1]))
    return out


def _run_compression_policies(url: str) -> int:
    """Run every compression policy job now (as the scheduler would; the test data is older than
    their ages); every run succeeds. How many chunks are compressed."""
    with psycopg.connect(url, autocommit=True) as conn:
        jobs = [
            r[0]
            for r in conn.execute(
                "SELECT job_id FROM timescaledb_information.jobs "
                "WHERE proc_name = 'policy_compression' AND hypertable_schema = 'public'"
            )
        ]
        assert len(jobs) == 3
        for job in jobs:
            conn.execute("CALL run_job(%s)", (job,))
    return int(
        str(_scalar(url, "SELECT count(*) FROM timescaledb_information.chunks WHERE is_compressed"))
    )


@pytest.mark.integration
def test_recompute_into_compressed_chunks_as_the_app_role(
    timescaledb_url: str, app_role_url: str
) -> None:
    """Closed periods are compressed by their policies; a recompute of them (a changed factor,
    late data) by the services' role deletes and rewrites rows in compressed chunks and gives the
    same results; late readings land in compressed chunks, duplicates are still refused."""
    _doc, start, end = computed_small_site(timescaledb_url)
    # TimescaleDB's default refuses a transaction that decompresses over 100 000 rows (a month
    # of a large site); lowered here so that this small site meets it too: the calc session
    # must lift it.
    with psycopg.connect(timescaledb_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "ALTER DATABASE {} SET timescaledb.max_tuples_decompressed_per_dml_transaction = 10"
            ).format(sql.Identifier(timescaledb_url.rsplit("/", 1)[1]))
        )
    before = result_digests(timescaledb_url)
    assert before["calc_interval"][0] > 0 and before["calc_carbon"][0] > 0
    # May 2025: older than the 7 and 45 days: a chunk of each hypertable at least.
    assert _run_compression_policies(timescaledb_url) >= 3

    engine = CalcEngine(app_role_url)
    try:
        engine.request_recompute("small-plant", start, end, reason="test")
        reports = engine.run_until_idle()
        assert all(r.site_errors == 0 for r in reports)
        assert engine.pending() == 0
    finally:
        engine.close()
    assert result_digests(timescaledb_url) == before

    # Late data into a compressed chunk, as ingest writes it; a duplicate is ignored.
    (pk, metric_id), *_ = registry_ids(timescaledb_url, "small-plant").values()
    late = start + timedelta(hours=5, minutes=7)
    existing = _scalar(
        timescaledb_url,
        "SELECT ts FROM reading WHERE device_pk = %s AND metric_id = %s ORDER BY ts LIMIT 1",
        pk,
        metric_id,
    )
    rows = int(str(_scalar(timescaledb_url, "SELECT count(*) FROM reading")))
    with psycopg.connect(app_role_url) as conn:
        for ts in (late, existing):
            conn.execute(
                "INSERT INTO reading (device_pk, metric_id, ts, value, seq, received_at) "
                "VALUES (%s, %s, %s, 1.0, NULL, %s) ON CONFLICT DO NOTHING",
                (pk, metric_id, ts, datetime.now(UTC)),
            )
    assert int(str(_scalar(timescaledb_url, "SELECT count(*) FROM reading"))) == rows + 1


@pytest.mark.integration
def test_migrate_refuses_cleanly_when_timescaledb_is_not_preloaded(
    services_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Extension installed, not in shared_preload_libraries: a clear message, exit 1, nothing
    migrated; ``--no-timescaledb`` then gives the plain layout."""
    with EmbeddedPostgres(services_dir / "no-preload-pg", durable=False) as server:
        with psycopg.connect(server.url, autocommit=True) as conn:
            if (
                conn.execute(
                    "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
                ).fetchone()
                is None
            ):
                no_timescaledb("the embedded PostgreSQL has no TimescaleDB (CARBONFLOW_PG_BIN)")
            # postgresql.auto.conf is read last: it overrides the embedded server's preload
            # (with a library that every PostgreSQL ships; an empty list is not accepted here).
            conn.execute("ALTER SYSTEM SET shared_preload_libraries = 'auto_explain'")
        server.stop()
        server.start()
        # As an operator runs it: its own process, its own stderr.
        refused = subprocess.run(
            [sys.executable, "-m", "cli.main", "migrate"],
            env={**os.environ, "DATABASE_URL": server.url},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert refused.returncode == 1
        assert "not preloaded" in refused.stderr and "shared_preload_libraries" in refused.stderr
        assert "Traceback" not in refused.stderr
        monkeypatch.setenv("DATABASE_URL", server.url)
        with psycopg.connect(server.url) as conn:
            assert conn.execute(
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
            ).fetchone() == (0,)
            assert conn.execute(
                "SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'"
            ).fetchone() == (0,)
        assert main(["migrate", "--no-timescaledb"]) == 0
        assert "plain PostgreSQL" in capsys.readouterr().out
        engine = make_engine(server.url)
        try:
            with engine.connect() as conn:
                assert (
                    conn.execute(sa.text("SELECT timescaledb FROM storage_mode")).scalar_one()
                    is False
                )
        finally:
            engine.dispose()
        assert upgrade(server.url).before is not None


@pytest.mark.integration
def test_table_sizes_and_compress_due(database_url: str) -> None:
    """``table_sizes`` measures every table on both layouts (hypertables with their chunks);
    ``compress_due`` compresses what the policies would and leaves the rows as they were
    (``bench/sizes.py`` builds on both)."""
    computed_small_site(database_url)
    before = result_digests(database_url)
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            sizes = {s.table: s for s in table_sizes(conn)}
            rows = row_counts(conn, ["reading", "calc_interval"])
            conn.commit()
            compressed = compress_due(conn)
            after = {s.table: s for s in table_sizes(conn)}
    finally:
        engine.dispose()
    hypertables = {t for t, s in sizes.items() if s.hypertable}
    assert rows["reading"] > 0 and rows["calc_interval"] > 0
    assert sizes["reading"].heap_bytes > 0 and sizes["reading"].index_bytes > 0
    assert sizes["site"].total_bytes > 0 and not sizes["site"].hypertable
    if not uses_timescaledb(database_url):
        assert hypertables == set() and compressed == {}
        return
    assert hypertables == {"reading", "calc_interval", "calc_carbon"}
    # May 2025: older than the 7 and 45 days, so every chunk with rows is compressed.
    assert compressed.keys() == hypertables and all(n > 0 for n in compressed.values())
    assert (
        _scalar(
            database_url,
            "SELECT count(*) FROM timescaledb_information.chunks WHERE NOT is_compressed",
        )
        == 0
    )
    assert after["reading"].total_bytes < sizes["reading"].total_bytes
    assert result_digests(database_url) == before
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            assert compress_due(conn) == dict.fromkeys(hypertables, 0)
    finally:
        engine.dispose()

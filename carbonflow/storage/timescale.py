"""TimescaleDB when present, plain PostgreSQL when not — with identical query results.

With the extension: ``reading`` becomes a hypertable (7-day chunks), compressed after
``compress_after_days`` (segmented by device and metric) and dropped after ``retention_days``.
Without it: the same table with its primary-key B-tree for per-device range scans plus a BRIN
index on ``ts`` for site-wide time ranges (cheap because rows arrive roughly in time order).
Either way every query reads the same rows; only their physical layout differs.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa

log = logging.getLogger(__name__)

CHUNK_INTERVAL = "7 days"


def available_version(conn: sa.Connection) -> str | None:
    """The installable TimescaleDB version on this server, or None."""
    row = conn.execute(
        sa.text("SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'")
    ).first()
    return None if row is None else str(row[0])


def installed_version(conn: sa.Connection) -> str | None:
    row = conn.execute(
        sa.text("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")
    ).first()
    return None if row is None else str(row[0])


def setup_readings(
    conn: sa.Connection,
    *,
    use_timescaledb: bool | None = None,
    retention_days: int = 3650,
    compress_after_days: int = 7,
) -> str:
    """Set up the physical layout of ``reading``; returns a one-line description.

    ``use_timescaledb=None`` means: use it when the server can install it.
    """
    wanted = use_timescaledb
    version = installed_version(conn)
    if version is None and wanted is not False and available_version(conn) is not None:
        try:
            with conn.begin_nested():
                conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS timescaledb"))
            version = installed_version(conn)
        except sa.exc.DBAPIError as exc:
            # Usually: not in shared_preload_libraries. Fall back and say so.
            log.warning("TimescaleDB is available but could not be created: %s", exc.orig)
    if wanted is True and version is None:
        raise RuntimeError("TimescaleDB was required but the extension is not installable here")

    if version is not None and wanted is not False:
        conn.execute(
            sa.text(
                "SELECT create_hypertable('reading', 'ts', "
                f"chunk_time_interval => INTERVAL '{CHUNK_INTERVAL}', migrate_data => true)"
            )
        )
        conn.execute(
            sa.text(
                "ALTER TABLE reading SET (timescaledb.compress, "
                "timescaledb.compress_segmentby = 'device_pk, metric_id', "
                "timescaledb.compress_orderby = 'ts')"
            )
        )
        conn.execute(
            sa.text(
                "SELECT add_compression_policy('reading', "
                f"INTERVAL '{int(compress_after_days)} days')"
            )
        )
        conn.execute(
            sa.text(
                f"SELECT add_retention_policy('reading', INTERVAL '{int(retention_days)} days')"
            )
        )
        detail = (
            f"TimescaleDB {version}: reading is a hypertable ({CHUNK_INTERVAL} chunks), "
            f"compressed after {compress_after_days} d, retained {retention_days} d"
        )
        mode = True
    else:
        conn.execute(sa.text("CREATE INDEX reading_ts_brin ON reading USING brin (ts)"))
        detail = "plain PostgreSQL: reading with primary-key B-tree and BRIN(ts); no compression"
        mode = False
    conn.execute(
        sa.text(
            "INSERT INTO storage_mode (singleton, timescaledb, timescaledb_version, detail) "
            "VALUES (true, :mode, :version, :detail) "
            "ON CONFLICT (singleton) DO UPDATE SET timescaledb = excluded.timescaledb, "
            "timescaledb_version = excluded.timescaledb_version, detail = excluded.detail, "
            "updated_at = now()"
        ),
        {"mode": mode, "version": version if mode else None, "detail": detail},
    )
    return detail


log = logging.getLogger(__name__)


# 15-min rows: ~35 000 per device metric and year; 30-day chunks keep a month in one chunk.
RESULT_CHUNK_INTERVAL = "30 days"


HYPERTABLES = ("calc_interval", "calc_carbon")


def timescaledb_in_use(conn: sa.Connection) -> bool:
    """Whether revision 0001 set up ``reading`` as a hypertable on this database."""
    row = conn.execute(sa.text("SELECT timescaledb FROM storage_mode")).first()
    return bool(row[0]) if row is not None else False


def setup_results(conn: sa.Connection) -> str:
    """Make the big result tables hypertables when TimescaleDB is in use; describe the layout."""
    if not timescaledb_in_use(conn):
        return "plain PostgreSQL: calc result tables with primary-key B-trees"
    for table in HYPERTABLES:
        # No default index: the primary key (…, start_ts) already serves time-range scans, and
        # the migrated schema must equal carbonflow/storage/schema.py on both layouts.
        conn.execute(
            sa.text(
                f"SELECT create_hypertable('{table}', 'start_ts', "
                f"chunk_time_interval => INTERVAL '{RESULT_CHUNK_INTERVAL}', "
                "create_default_indexes => false, migrate_data => true)"
            )
        )
    detail = f"TimescaleDB: {', '.join(HYPERTABLES)} are hypertables ({RESULT_CHUNK_INTERVAL})"
    log.info("%s", detail)
    return detail

"""Physical layout of the calc result tables: hypertables with TimescaleDB, plain tables without.

Only the two large 15-min tables (``calc_interval``, ``calc_carbon``) become hypertables, and
only when ``reading`` is one (``storage_mode.timescaledb``), so one database has one layout.
Either way the tables, their keys and every query the calc service and the API run are the
same: no query uses a TimescaleDB-only function (``time_bucket`` …); periods are built with
``date_trunc(…, ts, zone)`` of core PostgreSQL, so results are identical on both.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa

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

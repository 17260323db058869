"""TimescaleDB layout without undeclared indexes, and compression of the calc result tables.

Revision 0001 used to create ``reading`` as a hypertable with TimescaleDB's default time index
``reading_ts_idx``, which ``carbonflow/storage/schema.py`` does not declare (the primary key
``(device_pk, metric_id, ts)`` and chunk exclusion serve every query); it is dropped here, and
new databases never get it (``create_default_indexes => false``).

``calc_interval`` and ``calc_carbon`` get a compression layout (per device and metric, per
site); the compression policy itself, like those of ``reading``, is set after every migration
from the configured ages (``carbonflow.storage.timescale.apply_policies``). A recompute of a
compressed period deletes and inserts into compressed chunks, which TimescaleDB supports.

Nothing changes on plain PostgreSQL.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

from carbonflow.storage import timescale

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    conn = op.get_bind()
    if not timescale.timescaledb_in_use(conn):
        return
    op.execute("DROP INDEX IF EXISTS reading_ts_idx")
    for hypertable in timescale.RESULTS:
        timescale.enable_compression(conn, hypertable)


def downgrade() -> None:
    conn = op.get_bind()
    if not timescale.timescaledb_in_use(conn):
        return
    for table in timescale.HYPERTABLES:
        op.execute(f"SELECT remove_compression_policy('{table}', if_exists => true)")
        op.execute(
            f"SELECT decompress_chunk(c, if_compressed => true) FROM show_chunks('{table}') c"
        )
        op.execute(f"ALTER TABLE {table} SET (timescaledb.compress = false)")

"""Rollup reads by period: an index on the day and month rows of ``calc_interval_rollup``.

A month's flows and an organisation's month ledger read one month row per device metric
(``storage.intervals.device_totals``). The primary key (device_pk, metric_id, grain,
period_start) cannot reach them directly — nothing pins metric_id — so every device's index
range was read through all its hour rows: 1 000 devices × a year of hours ≈ 9 M entries, over
600 ms a request (docs/performance.md). This index finds the rows of one grain and period
directly, for any number of devices. Day and month rows only (≈ 4 % of the table): hour rows are
read for partial days, a short range. Same on plain PostgreSQL and TimescaleDB (the rollup tables
are plain tables in both layouts). No new table: no grants.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX IF NOT EXISTS calc_interval_rollup_period_idx "
        "ON calc_interval_rollup (grain, period_start, device_pk) "
        "WHERE grain IN ('day', 'month')"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS calc_interval_rollup_period_idx")

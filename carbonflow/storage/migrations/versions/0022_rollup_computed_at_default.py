"""``calc_interval_rollup.computed_at`` defaults to ``now()`` (issue 20).

The calc computes the hour rows of a recompute's next chunk on a second connection while it
writes the current one (``services.calc.read_ahead``) and copies them in without this column:
the default gives them the writing transaction's time, as the rows its SQL inserts get.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE calc_interval_rollup ALTER COLUMN computed_at SET DEFAULT now()")


def downgrade() -> None:
    op.execute("ALTER TABLE calc_interval_rollup ALTER COLUMN computed_at DROP DEFAULT")

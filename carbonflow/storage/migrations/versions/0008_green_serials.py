"""Green certificates carry their serial range: ``green_instrument.serial_first`` and
``serial_last`` (inclusive, both or neither), so that the API can refuse a batch whose serials
overlap any batch registered anywhere on the platform (issue 15: 1 certificate = 1 MWh, each
with a unique number; the same certificates under a new id or at a second site were accepted).

The overlap check runs in the API's transaction under a transaction-level advisory lock (a
range exclusion constraint would need btree_gist for the other columns); the index below serves
its range query.

Self-contained: only adds two nullable columns, a check and an index to ``green_instrument``;
``down_revision`` is the revision it was written on (the lead re-chains it after 0006/0007).

Revision ID: 0008
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("green_instrument", sa.Column("serial_first", sa.BigInteger))
    op.add_column("green_instrument", sa.Column("serial_last", sa.BigInteger))
    op.create_check_constraint(
        "green_instrument_serial_check",
        "green_instrument",
        "(serial_first IS NULL) = (serial_last IS NULL) "
        "AND (serial_first IS NULL OR (serial_first >= 0 AND serial_last >= serial_first))",
    )
    op.create_index("green_instrument_serials", "green_instrument", ["serial_first", "serial_last"])


def downgrade() -> None:
    op.drop_index("green_instrument_serials", table_name="green_instrument")
    op.drop_constraint("green_instrument_serial_check", "green_instrument", type_="check")
    op.drop_column("green_instrument", "serial_last")
    op.drop_column("green_instrument", "serial_first")

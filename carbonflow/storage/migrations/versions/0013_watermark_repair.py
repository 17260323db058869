"""Calc watermarks that passed "now" brought back (issue 16, docs/ledgers.md).

Before this revision the calc service set a site's ``results_through`` to the end of every
recomputed range, and a green-power change recomputes whole years: the watermark (the ledger
header's "calculated through") jumped to the end of the year. The calc now caps it at the cycle's
time and the end of the site's newest interval; this revision repairs the stored values once.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

from carbonflow.storage.calc_queue import REPAIR_WATERMARKS

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # No new table; calc_site_state keeps its grants.
    op.execute(REPAIR_WATERMARKS)


def downgrade() -> None:
    # The future watermarks were wrong: nothing to restore.
    pass

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

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

# Frozen here, as every migration's SQL: a later change to the storage code must not change what
# this revision did. The end of a site's newest interval (15-min grid); ``least`` ignores NULL.
_NEWEST_INTERVAL_END = (
    "(SELECT max(i.start_ts) + INTERVAL '15 minutes' FROM calc_interval i "
    "JOIN device d ON d.device_pk = i.device_pk WHERE d.site_id = s.site_id)"
)
REPAIR_WATERMARKS = (
    f"UPDATE calc_site_state s SET results_through = least(now(), {_NEWEST_INTERVAL_END}) "
    f"WHERE s.results_through > least(now(), {_NEWEST_INTERVAL_END})"
)


def upgrade() -> None:
    # No new table; calc_site_state keeps its grants.
    op.execute(REPAIR_WATERMARKS)


def downgrade() -> None:
    # The future watermarks were wrong: nothing to restore.
    pass

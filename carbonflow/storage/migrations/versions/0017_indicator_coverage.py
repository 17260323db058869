"""Coverage-aware indicators (issue 16, docs/accounting.md "Coverage and conclusive statuses"):
each stored indicator carries its period's coverage (label, local bounds, share, days with data,
quality shares, the reason when not conclusive, en and zh); early warnings keep their state
between calc cycles for hysteresis and a minimum duration (``calc_alert_state``). The status
``undefined`` becomes ``insufficient_data``.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

from carbonflow.storage.migrations.grants import grant_to_app_role

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

# Frozen DDL of revision 0017; a test checks the migrated database against schema.py.
_CREATE = (
    "ALTER TABLE calc_indicator ADD COLUMN coverage JSONB",
    "UPDATE calc_indicator SET status = 'insufficient_data' WHERE status = 'undefined'",
    "UPDATE calc_budget SET status = 'insufficient_data' WHERE status = 'undefined'",
    """
CREATE TABLE calc_alert_state (
    site_id TEXT NOT NULL,
    org_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    grain TEXT NOT NULL,
    period_start TIMESTAMP WITH TIME ZONE NOT NULL,
    is_open BOOLEAN NOT NULL,
    status TEXT,
    pending_since TIMESTAMP WITH TIME ZONE,
    crossings INTEGER DEFAULT 0 NOT NULL,
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
    PRIMARY KEY (site_id, org_id, kind, subject, grain, period_start),
    CONSTRAINT calc_alert_state_kind CHECK (kind IN ('indicator', 'budget'))
)
""",
)

# The calc service keeps the state (upsert), as calc_indicator.
GRANTS: dict[str, str] = {"calc_alert_state": "SELECT, INSERT, UPDATE"}


def upgrade() -> None:
    for statement in _CREATE:
        op.execute(statement)
    grant_to_app_role(GRANTS)


def downgrade() -> None:
    op.execute("DROP TABLE calc_alert_state")
    op.execute("ALTER TABLE calc_indicator DROP COLUMN coverage")

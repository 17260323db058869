"""Push: versions of a period's packet after late data (REPORTING.md §5 item 3, docs/push.md).

A period already queued whose calc results change is queued again as version 2, 3 … with new
QNs; the logical key of a packet becomes (destination, CN, DataTime, PNO, version). Each packet
records the digest of the values it carries and when it was last compared with the results.
Packets queued before this revision get version 1 and no digest (their first comparison records
it without re-sending).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# No new table: push_outbox keeps the grants of 0007 (SELECT, INSERT, UPDATE).
_UPGRADE = (
    "ALTER TABLE push_outbox ADD COLUMN version INTEGER DEFAULT 1 NOT NULL",
    "ALTER TABLE push_outbox ADD COLUMN values_digest TEXT",
    "ALTER TABLE push_outbox ADD COLUMN checked_at TIMESTAMP WITH TIME ZONE",
    "ALTER TABLE push_outbox DROP CONSTRAINT push_outbox_key",
    "ALTER TABLE push_outbox ADD CONSTRAINT push_outbox_key "
    "UNIQUE (destination, cn, data_time, pno, version)",
)


def upgrade() -> None:
    for statement in _UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DELETE FROM push_outbox WHERE version > 1")
    op.execute("ALTER TABLE push_outbox DROP CONSTRAINT push_outbox_key")
    op.execute(
        "ALTER TABLE push_outbox ADD CONSTRAINT push_outbox_key "
        "UNIQUE (destination, cn, data_time, pno)"
    )
    for column in ("checked_at", "values_digest", "version"):
        op.execute(f"ALTER TABLE push_outbox DROP COLUMN {column}")

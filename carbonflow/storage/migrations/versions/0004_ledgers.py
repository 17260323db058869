"""Ledgers: closed monthly emission ledgers and their revisions, write-once (docs/api.md).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Frozen DDL of revision 0004; a test checks the migrated database against schema.py.
_CREATE = (
    """
CREATE TABLE ledger_revision (
    site_id TEXT NOT NULL,
    org_id TEXT NOT NULL,
    month DATE NOT NULL,
    revision INTEGER NOT NULL,
    document TEXT NOT NULL,
    document_sha256 TEXT NOT NULL,
    content_sha256 TEXT NOT NULL,
    reason TEXT,
    created_by TEXT NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL,
    PRIMARY KEY (site_id, org_id, month, revision),
    CONSTRAINT ledger_revision_number_check CHECK (revision >= 1),
    CONSTRAINT ledger_revision_reason_check CHECK ((revision = 1) = (reason IS NULL)),
    CONSTRAINT ledger_revision_month_check CHECK (extract(day FROM month) = 1)
)
""",
    # A closed revision is evidence: it is never updated or deleted (a correction is a new
    # revision). Not part of schema.py (triggers are not compared), enforced here.
    """
CREATE FUNCTION ledger_revision_write_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger revisions are write-once: % of %/%/% refused',
        TG_OP, OLD.site_id, OLD.org_id, OLD.month
        USING ERRCODE = 'restrict_violation';
END
$$
""",
    """
CREATE TRIGGER ledger_revision_write_once BEFORE UPDATE OR DELETE ON ledger_revision
FOR EACH ROW EXECUTE FUNCTION ledger_revision_write_once()
""",
)


def upgrade() -> None:
    for statement in _CREATE:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE ledger_revision")
    op.execute("DROP FUNCTION ledger_revision_write_once()")

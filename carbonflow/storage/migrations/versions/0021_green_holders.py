"""Every green instrument has one holder (issue 15, docs/green.md "Batches").

Period instruments (no production month) registered before holders existed were stored without
one and covered the whole site. Each gets its site's default holder: the site's one
organisation, else the park's common account (the one ``common`` organisation of the site file's
``attribution``). An entry of a site with neither keeps no holder; the calc refuses it and an
admin re-registers it with ``org_id``. No schema change.

Revision ID: 0021
Revises: 0016
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

from carbonflow.storage.certificates import ASSIGN_HOLDERS

revision = "0021"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # No new table; green_instrument keeps its grants.
    op.execute(ASSIGN_HOLDERS)


def downgrade() -> None:
    # Which entries had no holder is not kept: the holders stay. The calc gives a holderless
    # entry the same default holder, so the figures are the same either way.
    pass

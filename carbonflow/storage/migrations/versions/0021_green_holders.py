"""Every green instrument has one holder (issue 15, docs/green.md "Batches").

Period instruments (no production month) registered before holders existed were stored without
one and covered the whole site. Each gets its site's default holder: the site's one
organisation, else the park's common account (the one ``common`` organisation of the site file's
``attribution``). An entry of a site with neither keeps no holder; the calc refuses it and an
admin re-registers it with ``org_id``. No schema change.

Revision ID: 0021
Revises: 0017
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0021"
down_revision = "0017"
branch_labels = None
depends_on = None

# Frozen here, as every migration's SQL: a later change to the storage code must not change
# what this revision did.
ASSIGN_HOLDERS = """
UPDATE green_instrument g SET org_id = h.org_id, updated_at = now()
FROM (
    SELECT s.site_id,
        CASE WHEN (SELECT count(*) FROM organisation o WHERE o.site_id = s.site_id) = 1
            THEN (SELECT o.org_id FROM organisation o WHERE o.site_id = s.site_id)
            ELSE (
                SELECT min(a ->> 'common')
                FROM jsonb_array_elements(
                    CASE WHEN jsonb_typeof(s.document -> 'attribution') = 'array'
                        THEN s.document -> 'attribution' ELSE '[]'::jsonb END
                ) AS a
                HAVING count(DISTINCT a ->> 'common') = 1
            )
        END AS org_id
    FROM site s
) h
WHERE g.site_id = h.site_id AND g.org_id IS NULL AND g.production_month IS NULL
    AND EXISTS (
        SELECT 1 FROM organisation o WHERE o.site_id = h.site_id AND o.org_id = h.org_id
    )
"""


def upgrade() -> None:
    # No new table; green_instrument keeps its grants.
    op.execute(ASSIGN_HOLDERS)


def downgrade() -> None:
    # Which entries had no holder is not kept: the holders stay. The calc gives a holderless
    # entry the same default holder, so the figures are the same either way.
    pass

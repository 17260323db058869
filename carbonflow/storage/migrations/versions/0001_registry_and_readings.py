"""Registry, raw readings, rejected readings; readings as a hypertable when TimescaleDB is present.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from carbonflow.storage import timescale
from carbonflow.storage.schema import (
    device,
    device_metric,
    dirty_hour,
    flow_edge,
    meter_serial,
    metric,
    node,
    organisation,
    product,
    reading,
    rejected_reading,
    site,
    storage_mode,
)

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_TABLES = (
    site,
    organisation,
    node,
    flow_edge,
    product,
    metric,
    device,
    device_metric,
    reading,
    rejected_reading,
    meter_serial,
    dirty_hour,
    storage_mode,
)


def upgrade() -> None:
    bind = op.get_bind()
    for table in _TABLES:
        table.create(bind)
    op.create_index("rejected_reading_received_idx", "rejected_reading", ["received_at"])
    op.create_index("rejected_reading_reason_idx", "rejected_reading", ["reason", "received_at"])
    op.create_index("rejected_reading_device_idx", "rejected_reading", ["site_id", "device_id"])
    op.create_index("device_site_idx", "device", ["site_id"])
    options = op.get_context().config.attributes.get("timescale_options", {})
    timescale.setup_readings(bind, **options)


def downgrade() -> None:
    for table in reversed(_TABLES):
        op.drop_table(table.name)
    _ = sa  # keep the import for future revisions written from the template

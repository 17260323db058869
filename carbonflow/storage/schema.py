"""SQLAlchemy Core table definitions: the one description of the schema that queries use.

The migrations in ``carbonflow/storage/migrations`` create these tables; a test checks that the
migrated database matches this metadata, so the two cannot drift.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

metadata = sa.MetaData()

SITE_KINDS = ("park", "mine", "enterprise")

site = sa.Table(
    "site",
    metadata,
    sa.Column("site_id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("name_zh", sa.Text),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("timezone", sa.Text, nullable=False, server_default="Asia/Shanghai"),
    sa.Column("province", sa.Text, nullable=False),
    sa.Column("grid_region", sa.Text, nullable=False),
    sa.Column("latitude_deg", sa.Float),
    sa.Column("longitude_deg", sa.Float),
    sa.Column("baseline_year", sa.Integer, nullable=False, server_default="2020"),
    sa.Column("document", pg.JSONB, nullable=False),
    sa.Column("document_sha256", sa.Text, nullable=False),
    sa.Column(
        "loaded_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.CheckConstraint("kind IN ('park', 'mine', 'enterprise')", name="site_kind_check"),
)

organisation = sa.Table(
    "organisation",
    metadata,
    sa.Column(
        "site_id", sa.Text, sa.ForeignKey("site.site_id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("org_id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("name_zh", sa.Text),
    sa.Column("industry", sa.Text),
)

node = sa.Table(
    "node",
    metadata,
    sa.Column(
        "site_id", sa.Text, sa.ForeignKey("site.site_id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("node_id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("name_zh", sa.Text),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("org_id", sa.Text),
    sa.Column("production_system", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.ForeignKeyConstraint(
        ["site_id", "org_id"], ["organisation.site_id", "organisation.org_id"], ondelete="CASCADE"
    ),
)

flow_edge = sa.Table(
    "flow_edge",
    metadata,
    sa.Column("site_id", sa.Text, primary_key=True),
    sa.Column("source_node", sa.Text, primary_key=True),
    sa.Column("target_node", sa.Text, primary_key=True),
    sa.Column("carrier", sa.Text, primary_key=True),
    sa.ForeignKeyConstraint(
        ["site_id", "source_node"], ["node.site_id", "node.node_id"], ondelete="CASCADE"
    ),
    sa.ForeignKeyConstraint(
        ["site_id", "target_node"], ["node.site_id", "node.node_id"], ondelete="CASCADE"
    ),
)

product = sa.Table(
    "product",
    metadata,
    sa.Column(
        "site_id", sa.Text, sa.ForeignKey("site.site_id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("product_id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("name_zh", sa.Text),
    sa.Column("unit", sa.Text, nullable=False),
    sa.Column("node_id", sa.Text, nullable=False),
    sa.Column("org_id", sa.Text),
    sa.ForeignKeyConstraint(
        ["site_id", "node_id"], ["node.site_id", "node.node_id"], ondelete="CASCADE"
    ),
)

metric = sa.Table(
    "metric",
    metadata,
    sa.Column("metric_id", sa.SmallInteger, sa.Identity(), primary_key=True),
    sa.Column("name", sa.Text, nullable=False, unique=True),
    sa.Column("unit", sa.Text, nullable=False),
)

device = sa.Table(
    "device",
    metadata,
    sa.Column("device_pk", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column(
        "site_id", sa.Text, sa.ForeignKey("site.site_id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("device_id", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("carrier", sa.Text, nullable=False),
    sa.Column("role", sa.Text, nullable=False),
    sa.Column("node_id", sa.Text),
    sa.Column("org_id", sa.Text),
    sa.Column("multiplier", sa.Float, nullable=False, server_default="1"),
    sa.Column("counter_modulus", sa.Float),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("attributes", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.UniqueConstraint("site_id", "device_id", name="device_site_device_key"),
)

device_metric = sa.Table(
    "device_metric",
    metadata,
    sa.Column(
        "device_pk",
        sa.Integer,
        sa.ForeignKey("device.device_pk", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("metric_id", sa.SmallInteger, sa.ForeignKey("metric.metric_id"), primary_key=True),
    # counter: cumulative register; interval: quantity since the previous report;
    # gauge: instantaneous value
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("rated_max", sa.Float),
    sa.CheckConstraint("kind IN ('counter', 'interval', 'gauge')", name="device_metric_kind_check"),
)

# Raw readings: one row per (device, metric, ts), whatever the number of deliveries.
# Values are stored in the metric's canonical unit, before the device multiplier (CT/PT ratio),
# so a corrected multiplier recomputes without re-ingesting.
reading = sa.Table(
    "reading",
    metadata,
    sa.Column("device_pk", sa.Integer, primary_key=True),
    sa.Column("metric_id", sa.SmallInteger, primary_key=True),
    sa.Column("ts", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("value", sa.Float(precision=53), nullable=False),
    sa.Column("seq", sa.BigInteger),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
)

rejected_reading = sa.Table(
    "rejected_reading",
    metadata,
    sa.Column("rejection_id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("topic", sa.Text, nullable=False),
    sa.Column("site_id", sa.Text),
    sa.Column("device_id", sa.Text),
    sa.Column("metric", sa.Text),
    sa.Column("reading_ts", sa.DateTime(timezone=True)),
    sa.Column("value", sa.Float(precision=53)),
    sa.Column("payload_excerpt", sa.Text, nullable=False),
    sa.Column("payload_bytes", sa.Integer, nullable=False),
    sa.Column("dedup_key", sa.Text, nullable=False, unique=True),
)

# Meter serial numbers as reported in telemetry: a change of serial marks a meter replacement,
# which the calc service uses to split a counter series. Order-independent (first/last seen).
meter_serial = sa.Table(
    "meter_serial",
    metadata,
    sa.Column(
        "device_pk",
        sa.Integer,
        sa.ForeignKey("device.device_pk", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("serial", sa.Text, primary_key=True),
    sa.Column("first_ts", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_ts", sa.DateTime(timezone=True), nullable=False),
)

# Hours that received new readings, written in the ingest transaction; the calc service
# consumes them, so late data recomputes exactly the intervals it touches.
dirty_hour = sa.Table(
    "dirty_hour",
    metadata,
    sa.Column("device_pk", sa.Integer, primary_key=True),
    sa.Column("hour_start", sa.DateTime(timezone=True), primary_key=True),
    sa.Column(
        "marked_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
)

# What the migration found and did about TimescaleDB, for operators and for `carbonflow migrate`.
storage_mode = sa.Table(
    "storage_mode",
    metadata,
    sa.Column("singleton", sa.Boolean, primary_key=True, server_default=sa.true()),
    sa.Column("timescaledb", sa.Boolean, nullable=False),
    sa.Column("timescaledb_version", sa.Text),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column(
        "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.CheckConstraint("singleton", name="storage_mode_singleton"),
)

sa.Index("rejected_reading_received_idx", rejected_reading.c.received_at)
sa.Index("rejected_reading_reason_idx", rejected_reading.c.reason, rejected_reading.c.received_at)
sa.Index("rejected_reading_device_idx", rejected_reading.c.site_id, rejected_reading.c.device_id)
sa.Index("device_site_idx", device.c.site_id)
# Plain-PostgreSQL layout only (carbonflow/storage/timescale.py); a hypertable has its own.
READING_TS_BRIN = "reading_ts_brin"

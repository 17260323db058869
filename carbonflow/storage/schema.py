"""SQLAlchemy Core table definitions: the one description of the schema that queries use.

The migrations in ``carbonflow/storage/migrations`` create these tables; a test checks that the
migrated database matches this metadata, so the two cannot drift.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

metadata = sa.MetaData()


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

# ---------------------------------------------------------------------------------------------
# Calc service (revision 0002): reference data, green-power register, results, state.
# See docs/calc.md. Results are rebuilt from readings + registry + factors at any time.
# ---------------------------------------------------------------------------------------------

_NOW = sa.func.now()

# Reference data files (factors, geography, targets), versioned: (file, version) is immutable.
# ``superseded_at`` is NULL for the version in use; older versions stay for traceability.
factor_file = sa.Table(
    "factor_file",
    metadata,
    sa.Column("file_name", sa.Text, primary_key=True),
    sa.Column("version", sa.Text, primary_key=True),
    sa.Column("schema", sa.Text, nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("sha256", sa.Text, nullable=False),
    sa.Column("document", pg.JSONB, nullable=False),
    sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
    sa.Column("superseded_at", sa.DateTime(timezone=True)),
)

factor_value = sa.Table(
    "factor_value",
    metadata,
    sa.Column("file_name", sa.Text, primary_key=True),
    sa.Column("version", sa.Text, primary_key=True),
    sa.Column("factor_key", sa.Text, primary_key=True),
    sa.Column("value", sa.Float(precision=53), nullable=False),
    sa.Column("unit", sa.Text, nullable=False),
    sa.Column("confidence", sa.Text, nullable=False),
    sa.Column("data_year", sa.Integer),
    sa.Column("valid_from", sa.Date),
    sa.Column("valid_to", sa.Date),
    sa.Column("source_id", sa.Text, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("note", sa.Text, nullable=False, server_default=""),
    sa.Column("tags", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.ForeignKeyConstraint(
        ["file_name", "version"],
        ["factor_file.file_name", "factor_file.version"],
        ondelete="CASCADE",
    ),
    sa.CheckConstraint("confidence IN ('A', 'B+', 'B', 'U')", name="factor_value_confidence_check"),
)

# A site pins a library key, or overrides a factor with its own value and source, for one
# purpose (electricity.location, fuel.diesel.ncv, methane.gwp, …;
# carbonflow/domain/inventory/site_factors.py).
factor_pin = sa.Table(
    "factor_pin",
    metadata,
    sa.Column(
        "site_id", sa.Text, sa.ForeignKey("site.site_id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("purpose", sa.Text, primary_key=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("factor_key", sa.Text, nullable=False),
    sa.Column("value", sa.Float(precision=53)),
    sa.Column("unit", sa.Text),
    sa.Column("source", sa.Text),
    sa.Column("confidence", sa.Text),
    sa.Column("version", sa.Text),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("valid_from", sa.Date),
    sa.Column("valid_to", sa.Date),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
    sa.CheckConstraint("kind IN ('pin', 'override')", name="factor_pin_kind_check"),
    sa.CheckConstraint(
        "kind = 'pin' OR (value IS NOT NULL AND unit IS NOT NULL AND source IS NOT NULL "
        "AND confidence IS NOT NULL AND version IS NOT NULL)",
        name="factor_pin_override_check",
    ),
)

# Green-power register: contracts (绿电交易), direct supply (绿电直连), certificates (绿证).
# ``claimed_mwh`` is the volume claimed for the accounting period [claim_start, claim_end].
green_instrument = sa.Table(
    "green_instrument",
    metadata,
    sa.Column(
        "site_id", sa.Text, sa.ForeignKey("site.site_id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("instrument_id", sa.Text, primary_key=True),
    sa.Column("org_id", sa.Text),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("evidence", sa.Text, nullable=False),
    sa.Column("certificates", sa.Integer),
    sa.Column("volume_mwh", sa.Float(precision=53), nullable=False),
    sa.Column("valid_from", sa.Date, nullable=False),
    sa.Column("valid_to", sa.Date, nullable=False),
    sa.Column("claimed_mwh", sa.Float(precision=53), nullable=False),
    sa.Column("claim_start", sa.Date, nullable=False),
    sa.Column("claim_end", sa.Date, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
    sa.CheckConstraint(
        "kind IN ('green_power_contract', 'direct_supply', 'certificate')",
        name="green_instrument_kind_check",
    ),
    sa.CheckConstraint(
        "volume_mwh >= 0 AND claimed_mwh >= 0 AND claimed_mwh <= volume_mwh",
        name="green_instrument_volume_check",
    ),
    sa.CheckConstraint(
        "valid_to >= valid_from AND claim_end >= claim_start", name="green_instrument_dates_check"
    ),
    # revision 0008: a certificate batch's serial range, inclusive (both or neither)
    sa.Column("serial_first", sa.BigInteger),
    sa.Column("serial_last", sa.BigInteger),
    sa.CheckConstraint(
        "(serial_first IS NULL) = (serial_last IS NULL) "
        "AND (serial_first IS NULL OR (serial_first >= 0 AND serial_last >= serial_first))",
        name="green_instrument_serial_check",
    ),
    sa.Index("green_instrument_serials", "serial_first", "serial_last"),
    # revision 0015: the certificate register's batch fields (NULL on legacy period entries)
    sa.Column("production_month", sa.Date),
    sa.Column("source_project", sa.Text),
    sa.Column("tradable", sa.Boolean),
    sa.Column("evidence_sha256", sa.Text),
    sa.Column("cancelled_at", sa.DateTime(timezone=True)),
)

# Claims of a register batch on one month of its holder's own consumption (revision 0015);
# withdrawn claims keep their row (``withdrawn_at``).
green_claim = sa.Table(
    "green_claim",
    metadata,
    sa.Column("claim_id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("site_id", sa.Text, nullable=False),
    sa.Column("instrument_id", sa.Text, nullable=False),
    sa.Column("org_id", sa.Text, nullable=False),
    sa.Column("month", sa.Date, nullable=False),
    sa.Column("mwh", sa.Float(precision=53), nullable=False),
    sa.Column("serial_first", sa.BigInteger),
    sa.Column("serial_last", sa.BigInteger),
    sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("claimed_by", sa.Text, nullable=False),
    sa.Column("withdrawn_at", sa.DateTime(timezone=True)),
    sa.Column("withdrawn_by", sa.Text),
    sa.ForeignKeyConstraint(
        ["site_id", "instrument_id"],
        ["green_instrument.site_id", "green_instrument.instrument_id"],
        ondelete="CASCADE",
        name="green_claim_instrument_fkey",
    ),
    sa.CheckConstraint("mwh > 0", name="green_claim_mwh_check"),
    sa.CheckConstraint("extract(day FROM month) = 1", name="green_claim_month_check"),
    sa.CheckConstraint(
        "(serial_first IS NULL) = (serial_last IS NULL) "
        "AND (serial_first IS NULL OR serial_last >= serial_first)",
        name="green_claim_serial_check",
    ),
    sa.Index("green_claim_instrument_idx", "site_id", "instrument_id"),
    sa.Index("green_claim_holder_month_idx", "org_id", "month"),
)

# 15-min quantities per device metric (counter / interval metrics), after the multiplier.
calc_interval = sa.Table(
    "calc_interval",
    metadata,
    sa.Column("device_pk", sa.Integer, primary_key=True),
    sa.Column("metric_id", sa.SmallInteger, primary_key=True),
    sa.Column("start_ts", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("quantity", sa.Float(precision=53), nullable=False),
    sa.Column("quality", sa.Text, nullable=False),
    sa.Column("completeness", sa.Float(precision=53), nullable=False),
    sa.Column("late", sa.Boolean, nullable=False),
    sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
)

calc_interval_rollup = sa.Table(
    "calc_interval_rollup",
    metadata,
    sa.Column("device_pk", sa.Integer, primary_key=True),
    sa.Column("metric_id", sa.SmallInteger, primary_key=True),
    sa.Column("grain", sa.Text, primary_key=True),
    sa.Column("period_start", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("quantity", sa.Float(precision=53), nullable=False),
    sa.Column("quality", sa.Text, nullable=False),
    sa.Column("completeness", sa.Float(precision=53), nullable=False),
    sa.Column("late", sa.Boolean, nullable=False),
    sa.Column("intervals", sa.Integer, nullable=False),
    # Hour rows computed ahead are copied in without it (migration 0022).
    sa.Column(
        "computed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.CheckConstraint("grain IN ('hour', 'day', 'month')", name="calc_interval_rollup_grain"),
)

# The factors used by carbon rows, deduplicated: one row per distinct set of SelectedFactors.
calc_factor_set = sa.Table(
    "calc_factor_set",
    metadata,
    sa.Column("factor_set_id", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column("sha256", sa.Text, nullable=False, unique=True),
    sa.Column("factors", pg.JSONB, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
)


def _carbon_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("org_id", sa.Text, primary_key=True),
        sa.Column("node_id", sa.Text, primary_key=True),
        sa.Column("carrier", sa.Text, primary_key=True),
        sa.Column("category", sa.Text, primary_key=True),
        sa.Column("basis", sa.Text, primary_key=True),
        sa.Column("gas", sa.Text, primary_key=True),
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("activity", sa.Float(precision=53), nullable=False),
        sa.Column("activity_unit", sa.Text, nullable=False),
        sa.Column("energy_tce", sa.Float(precision=53), nullable=False),
        sa.Column("zero_carbon_tce", sa.Float(precision=53), nullable=False),
        sa.Column("gas_t", sa.Float(precision=53), nullable=False),
        sa.Column("tco2e", sa.Float(precision=53), nullable=False),
        sa.Column("factor_key", sa.Text),
        sa.Column("factor_version", sa.Text),
        sa.Column("factor_value", sa.Float(precision=53)),
        sa.Column("factor_unit", sa.Text),
        sa.Column("factor_set_id", sa.Integer),
        sa.Column("quality", sa.Text, nullable=False),
        sa.Column("completeness", sa.Float(precision=53), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
    ]


# Inventory by source, per site and 15-min interval: where an emission is metered (grid
# connection, burner, shaft), its activity, tce, gas mass, CO2e and the factor used.
# basis: location | market (scope-2 views) | both (scope 1 and heat count in both).
calc_carbon = sa.Table(
    "calc_carbon",
    metadata,
    sa.Column("site_id", sa.Text, primary_key=True),
    sa.Column("start_ts", sa.DateTime(timezone=True), primary_key=True),
    *_carbon_columns(),
    sa.CheckConstraint("basis IN ('location', 'market', 'both')", name="calc_carbon_basis_check"),
)

calc_carbon_rollup = sa.Table(
    "calc_carbon_rollup",
    metadata,
    sa.Column("site_id", sa.Text, primary_key=True),
    sa.Column("grain", sa.Text, primary_key=True),
    sa.Column("period_start", sa.DateTime(timezone=True), primary_key=True),
    *_carbon_columns(),
    sa.CheckConstraint("grain IN ('hour', 'day', 'month')", name="calc_carbon_rollup_grain"),
)

# Green instruments applied to a month's market-based purchased electricity.
calc_green_claim = sa.Table(
    "calc_green_claim",
    metadata,
    sa.Column("site_id", sa.Text, primary_key=True),
    sa.Column("month_start", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("instrument_id", sa.Text, primary_key=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("accepted", sa.Boolean, nullable=False),
    sa.Column("offered_mwh", sa.Float(precision=53), nullable=False),
    sa.Column("applied_mwh", sa.Float(precision=53), nullable=False),
    sa.Column("unused_mwh", sa.Float(precision=53), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
)

calc_indicator = sa.Table(
    "calc_indicator",
    metadata,
    sa.Column("site_id", sa.Text, primary_key=True),
    sa.Column("org_id", sa.Text, primary_key=True),
    sa.Column("grain", sa.Text, primary_key=True),
    sa.Column("period_start", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("indicator", sa.Text, primary_key=True),
    sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
    sa.Column("value", sa.Float(precision=53)),
    sa.Column("unit", sa.Text, nullable=False),
    sa.Column("numerator", sa.Float(precision=53), nullable=False),
    sa.Column("denominator", sa.Float(precision=53), nullable=False),
    sa.Column("undefined_reason", sa.Text),
    sa.Column("basis", sa.Text, nullable=False),
    sa.Column("target_threshold", sa.Float(precision=53)),
    sa.Column("target_comparator", sa.Text),
    sa.Column("target_unit", sa.Text),
    sa.Column("target_basis", sa.Text),
    sa.Column("target_source", sa.Text),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("explanation", sa.Text, nullable=False),
    sa.Column("completeness", sa.Float(precision=53), nullable=False),
    sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
    # The period's coverage (label, local bounds, share, days with data, quality shares, the
    # reason when insufficient_data, en and zh); NULL for rows stored before revision 0017.
    sa.Column("coverage", pg.JSONB),
    sa.CheckConstraint("grain IN ('day', 'month', 'year')", name="calc_indicator_grain"),
)

calc_budget = sa.Table(
    "calc_budget",
    metadata,
    sa.Column("site_id", sa.Text, primary_key=True),
    sa.Column("org_id", sa.Text, primary_key=True),
    sa.Column("year", sa.Integer, primary_key=True),
    sa.Column("quantity", sa.Text, primary_key=True),
    sa.Column("unit", sa.Text, nullable=False),
    sa.Column("budget", sa.Float(precision=53), nullable=False),
    sa.Column("consumed", sa.Float(precision=53), nullable=False),
    sa.Column("remaining", sa.Float(precision=53), nullable=False),
    sa.Column("elapsed_fraction", sa.Float(precision=53), nullable=False),
    sa.Column("used_fraction", sa.Float(precision=53)),
    sa.Column("projected_total", sa.Float(precision=53)),
    sa.Column("projected_overrun", sa.Float(precision=53)),
    sa.Column("projected_exhaustion", sa.DateTime(timezone=True)),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("explanation", sa.Text, nullable=False),
    sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
    sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("quantity IN ('energy_tce', 'co2_t')", name="calc_budget_quantity"),
)

# Early warnings: an indicator or budget entering at_risk / off_track (or back on track).
calc_event = sa.Table(
    "calc_event",
    metadata,
    sa.Column("event_id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("site_id", sa.Text, nullable=False),
    sa.Column("org_id", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("grain", sa.Text, nullable=False),
    sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("previous_status", sa.Text),
    sa.Column("value", sa.Float(precision=53)),
    sa.Column("threshold", sa.Float(precision=53)),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("dedup_key", sa.Text, nullable=False, unique=True),
    sa.CheckConstraint("kind IN ('indicator', 'budget', 'data')", name="calc_event_kind_check"),
)

# Early-warning state between calc cycles: hysteresis and minimum duration (revision 0017).
calc_alert_state = sa.Table(
    "calc_alert_state",
    metadata,
    sa.Column("site_id", sa.Text, primary_key=True),
    sa.Column("org_id", sa.Text, primary_key=True),
    sa.Column("kind", sa.Text, primary_key=True),
    sa.Column("subject", sa.Text, primary_key=True),
    sa.Column("grain", sa.Text, primary_key=True),
    sa.Column("period_start", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("is_open", sa.Boolean, nullable=False),
    sa.Column("status", sa.Text),
    sa.Column("pending_since", sa.DateTime(timezone=True)),
    sa.Column("crossings", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('indicator', 'budget')", name="calc_alert_state_kind"),
)

# Forced or derived recomputation of a range: a device's intervals (and everything above) or a
# site's carbon (and everything above). ``cursor`` is how far it has been processed.
calc_request = sa.Table(
    "calc_request",
    metadata,
    sa.Column("request_id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("site_id", sa.Text, nullable=False),
    sa.Column("device_pk", sa.Integer),
    sa.Column("layer", sa.Text, nullable=False),
    sa.Column("range_start", sa.DateTime(timezone=True), nullable=False),
    sa.Column("range_end", sa.DateTime(timezone=True), nullable=False),
    sa.Column("cursor", sa.DateTime(timezone=True), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
    sa.Column("done_at", sa.DateTime(timezone=True)),
    sa.CheckConstraint("layer IN ('intervals', 'carbon')", name="calc_request_layer_check"),
)

# Per-site watermarks and the configuration the results were computed with.
calc_site_state = sa.Table(
    "calc_site_state",
    metadata,
    sa.Column("site_id", sa.Text, primary_key=True),
    sa.Column("document_sha256", sa.Text, nullable=False),
    sa.Column("device_config", pg.JSONB, nullable=False),
    sa.Column("factor_sets", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("results_through", sa.DateTime(timezone=True)),
    sa.Column("last_received_at", sa.DateTime(timezone=True)),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
)

sa.Index("factor_value_key_idx", factor_value.c.factor_key)
sa.Index("calc_event_site_idx", calc_event.c.site_id, calc_event.c.raised_at)
sa.Index("calc_request_open_idx", calc_request.c.site_id, calc_request.c.done_at)
# A period's day or month rows of any set of devices (month flows, ledgers; revision 0012).
sa.Index(
    "calc_interval_rollup_period_idx",
    calc_interval_rollup.c.grain,
    calc_interval_rollup.c.period_start,
    calc_interval_rollup.c.device_pk,
    postgresql_where=sa.text("grain IN ('day', 'month')"),
)

# ---------------------------------------------------------------------------------------------
# API access (revision 0003): keys, the sites each key may see, and the audit log.
# See docs/api.md. A key's secret is never stored: only the SHA-256 of the whole token.
# ---------------------------------------------------------------------------------------------


api_key = sa.Table(
    "api_key",
    metadata,
    sa.Column("key_id", sa.Text, primary_key=True),
    sa.Column("secret_sha256", sa.Text, nullable=False),
    sa.Column("role", sa.Text, nullable=False),
    sa.Column("org_id", sa.Text),
    sa.Column("label", sa.Text, nullable=False),
    sa.Column("requests_per_minute", sa.Integer),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
    sa.Column("expires_at", sa.DateTime(timezone=True)),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
    sa.Column("last_used_at", sa.DateTime(timezone=True)),
    sa.CheckConstraint(
        "role IN ('admin', 'operator', 'enterprise', 'regulator')", name="api_key_role_check"
    ),
    sa.CheckConstraint("(role = 'enterprise') = (org_id IS NOT NULL)", name="api_key_org_check"),
    sa.CheckConstraint(
        "requests_per_minute IS NULL OR requests_per_minute > 0", name="api_key_rate_check"
    ),
)

# The sites a non-admin key may see (an enterprise key: exactly one, with ``api_key.org_id``).
api_key_site = sa.Table(
    "api_key_site",
    metadata,
    sa.Column(
        "key_id", sa.Text, sa.ForeignKey("api_key.key_id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column(
        "site_id", sa.Text, sa.ForeignKey("site.site_id", ondelete="CASCADE"), primary_key=True
    ),
)

# Who asked what, when: every regulator request and every write, whatever its outcome.
# No foreign key: the log outlives keys and sites.
api_audit = sa.Table(
    "api_audit",
    metadata,
    sa.Column("audit_id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("key_id", sa.Text, nullable=False),
    sa.Column("role", sa.Text, nullable=False),
    sa.Column("method", sa.Text, nullable=False),
    sa.Column("route", sa.Text, nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("path_params", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("query", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("status", sa.SmallInteger, nullable=False),
    sa.Column("client", sa.Text),
)

sa.Index("api_key_site_site_idx", api_key_site.c.site_id)
sa.Index("api_audit_key_idx", api_audit.c.key_id, api_audit.c.at)
sa.Index("api_audit_at_idx", api_audit.c.at)

# ---------------------------------------------------------------------------------------------
# Ledgers (revision 0004): closed monthly emission ledgers (碳排放台账) and their revisions.
# See docs/api.md (Ledgers). A row is written once: a trigger of the migration refuses UPDATE
# and DELETE, so revision 1 of a month never changes. ``org_id`` '' is the site's own ledger.
# No foreign key to ``site``: like the audit log, a closed ledger outlives registry changes.
# ---------------------------------------------------------------------------------------------

ledger_revision = sa.Table(
    "ledger_revision",
    metadata,
    sa.Column("site_id", sa.Text, primary_key=True),
    sa.Column("org_id", sa.Text, primary_key=True),
    sa.Column("month", sa.Date, primary_key=True),
    sa.Column("revision", sa.Integer, primary_key=True),
    sa.Column("document", sa.Text, nullable=False),
    sa.Column("document_sha256", sa.Text, nullable=False),
    sa.Column("content_sha256", sa.Text, nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("created_by", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("revision >= 1", name="ledger_revision_number_check"),
    sa.CheckConstraint("(revision = 1) = (reason IS NULL)", name="ledger_revision_reason_check"),
    sa.CheckConstraint("extract(day FROM month) = 1", name="ledger_revision_month_check"),
)

# ---------------------------------------------------------------------------------------------
# Push to the authorities (revision 0007, docs/push.md): the outbox of built packets, each
# destination's next period per data command, and the audit of every packet sent or received.
# A packet is stored as the bytes that go on the wire and resent unchanged (same QN).
# ---------------------------------------------------------------------------------------------

push_outbox = sa.Table(
    "push_outbox",
    metadata,
    sa.Column("outbox_id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("destination", sa.Text, nullable=False),
    sa.Column("site_id", sa.Text, nullable=False),
    sa.Column("cn", sa.Text, nullable=False),
    sa.Column("data_time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("pno", sa.Integer, nullable=False),
    sa.Column("pnum", sa.Integer, nullable=False),
    sa.Column("qn", sa.Text, nullable=False),
    sa.Column("packet", sa.LargeBinary, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_sent_at", sa.DateTime(timezone=True)),
    sa.Column("acked_at", sa.DateTime(timezone=True)),
    sa.Column("last_error", sa.Text),
    # 0011: the version of the period's packet (late data), the digest of its values, and when
    # they were last compared with the calc results
    sa.Column("version", sa.Integer, nullable=False, server_default=sa.text("1")),
    sa.Column("values_digest", sa.Text),
    sa.Column("checked_at", sa.DateTime(timezone=True)),
    sa.UniqueConstraint("destination", "cn", "data_time", "pno", "version", name="push_outbox_key"),
    sa.CheckConstraint("state IN ('pending', 'acked')", name="push_outbox_state_check"),
)
sa.Index("push_outbox_pending_idx", push_outbox.c.destination, push_outbox.c.state,
         push_outbox.c.outbox_id)  # fmt: skip

push_cursor = sa.Table(
    "push_cursor",
    metadata,
    sa.Column("destination", sa.Text, primary_key=True),
    sa.Column("cn", sa.Text, primary_key=True),
    sa.Column("next_start", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

push_audit = sa.Table(
    "push_audit",
    metadata,
    sa.Column("audit_id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("destination", sa.Text, nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("direction", sa.Text, nullable=False),
    sa.Column("outbox_id", sa.BigInteger),
    sa.Column("qn", sa.Text),
    sa.Column("cn", sa.Text),
    sa.Column("raw", sa.LargeBinary, nullable=False),
    sa.Column("outcome", sa.Text, nullable=False),
    sa.CheckConstraint("direction IN ('sent', 'received')", name="push_audit_direction_check"),
)
sa.Index("push_audit_destination_idx", push_audit.c.destination, push_audit.c.at)

# Energy online monitoring (revision 0016, docs/push.md §3): batches for the provincial
# platforms as the bytes POSTed, with their quality checks; a batch failing one is held until
# a reviewer releases or withdraws it.
energy_outbox = sa.Table(
    "energy_outbox",
    metadata,
    sa.Column("outbox_id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("destination", sa.Text, nullable=False),
    sa.Column("site_id", sa.Text, nullable=False),
    sa.Column("grain", sa.Text, nullable=False),
    sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
    sa.Column("version", sa.Integer, nullable=False, server_default=sa.text("1")),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("values_digest", sa.Text, nullable=False),
    sa.Column("checks", pg.JSONB, nullable=False),
    sa.Column("reasons", pg.JSONB, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_sent_at", sa.DateTime(timezone=True)),
    sa.Column("sent_at", sa.DateTime(timezone=True)),
    sa.Column("http_status", sa.Integer),
    sa.Column("last_error", sa.Text),
    sa.Column("reviewed_by", sa.Text),
    sa.Column("reviewed_at", sa.DateTime(timezone=True)),
    sa.Column("review_note", sa.Text),
    sa.UniqueConstraint("destination", "grain", "period_start", "version",
                        name="energy_outbox_key"),
    sa.CheckConstraint("state IN ('held', 'pending', 'sent', 'refused', 'withdrawn')",
                       name="energy_outbox_state_check"),
)  # fmt: skip
sa.Index("energy_outbox_state_idx", energy_outbox.c.destination, energy_outbox.c.state,
         energy_outbox.c.outbox_id)  # fmt: skip

# Alarms (revision 0010): one alarm model for threshold rules, calc's early warnings, stale
# data, rejection spikes and pluggable sources; open → acknowledged → resolved with who and
# when; the notifications sent for them. See docs/alarms.md. At most one unresolved alarm per
# (site, rule, subject): a partial unique index of the migration.
# ---------------------------------------------------------------------------------------------

alarm_config = sa.Table(
    "alarm_config",
    metadata,
    sa.Column("site_id", sa.Text, primary_key=True),
    sa.Column("document", pg.JSONB, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_by", sa.Text, nullable=False),
)

alarm = sa.Table(
    "alarm",
    metadata,
    sa.Column("alarm_id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("site_id", sa.Text, nullable=False),
    sa.Column("rule_id", sa.Text, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("severity", sa.Text, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("message_en", sa.Text, nullable=False),
    sa.Column("message_zh", sa.Text, nullable=False),
    sa.Column("value", sa.Float(precision=53)),
    sa.Column("threshold", sa.Float(precision=53)),
    sa.Column("unit", sa.Text, nullable=False, server_default=""),
    sa.Column("acknowledged_at", sa.DateTime(timezone=True)),
    sa.Column("acknowledged_by", sa.Text),
    sa.Column("resolved_at", sa.DateTime(timezone=True)),
    sa.Column("resolved_by", sa.Text),
    sa.Column("last_notified_at", sa.DateTime(timezone=True)),
    sa.Column("notifications", sa.Integer, nullable=False, server_default="0"),
    sa.Column("escalated_at", sa.DateTime(timezone=True)),
    sa.CheckConstraint(
        "source IN ('threshold', 'early_warning', 'stale', 'rejections', 'push')",
        name="alarm_source_check",
    ),
    sa.CheckConstraint("severity IN ('info', 'warning', 'critical')", name="alarm_severity_check"),
    sa.CheckConstraint("state IN ('open', 'acknowledged', 'resolved')", name="alarm_state_check"),
)
sa.Index(
    "alarm_unresolved_key",
    alarm.c.site_id,
    alarm.c.rule_id,
    alarm.c.subject,
    unique=True,
    postgresql_where=sa.text("state <> 'resolved'"),
)
sa.Index("alarm_site_opened_idx", alarm.c.site_id, alarm.c.opened_at)

alarm_delivery = sa.Table(
    "alarm_delivery",
    metadata,
    sa.Column("delivery_id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("site_id", sa.Text, nullable=False),
    sa.Column("rule_id", sa.Text, nullable=False),
    sa.Column("alarm_ids", pg.ARRAY(sa.BigInteger), nullable=False),
    sa.Column("channel", sa.Text, nullable=False),
    sa.Column("escalation", sa.Boolean, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True)),
    sa.Column("sent_at", sa.DateTime(timezone=True)),
    sa.CheckConstraint(
        "status IN ('pending', 'sent', 'failed')", name="alarm_delivery_status_check"
    ),
)
sa.Index("alarm_delivery_site_idx", alarm_delivery.c.site_id, alarm_delivery.c.created_at)


# ---------------------------------------------------------------------------------------------
# Site document revisions and reading imports (revision 0009). A site revision is written once
# (a trigger refuses UPDATE and DELETE); the registry tables above are derived from the newest.
# ``reading_origin`` names the import of each reading that did not come over MQTT.
# ---------------------------------------------------------------------------------------------

site_revision = sa.Table(
    "site_revision",
    metadata,
    sa.Column("site_id", sa.Text, sa.ForeignKey("site.site_id"), primary_key=True),
    sa.Column("revision", sa.Integer, primary_key=True),
    sa.Column("document", pg.JSONB, nullable=False),
    sa.Column("document_sha256", sa.Text, nullable=False),
    sa.Column("author", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("diff", pg.JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.CheckConstraint("revision >= 1", name="site_revision_number_check"),
    sa.CheckConstraint(
        "source IN ('file', 'api', 'demo', 'migration')", name="site_revision_source_check"
    ),
)

reading_import = sa.Table(
    "reading_import",
    metadata,
    sa.Column("import_id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("site_id", sa.Text, sa.ForeignKey("site.site_id"), nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("filename", sa.Text, nullable=False),
    sa.Column("file_sha256", sa.Text, nullable=False),
    sa.Column("author", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("rows_read", sa.Integer, nullable=False, server_default="0"),
    sa.Column("rows_stored", sa.Integer, nullable=False, server_default="0"),
    sa.Column("rows_unchanged", sa.Integer, nullable=False, server_default="0"),
    sa.Column("rows_rejected", sa.Integer, nullable=False, server_default="0"),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.CheckConstraint("source IN ('import', 'manual')", name="reading_import_source_check"),
    sa.UniqueConstraint("site_id", "file_sha256", name="reading_import_file_key"),
)

reading_origin = sa.Table(
    "reading_origin",
    metadata,
    sa.Column("device_pk", sa.Integer, primary_key=True),
    sa.Column("metric_id", sa.SmallInteger, primary_key=True),
    sa.Column("ts", sa.DateTime(timezone=True), primary_key=True),
    sa.Column(
        "import_id", sa.BigInteger, sa.ForeignKey("reading_import.import_id"), nullable=False
    ),
)

sa.Index("reading_origin_import_idx", reading_origin.c.import_id)

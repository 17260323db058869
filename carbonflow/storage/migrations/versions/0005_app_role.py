"""The application role: a NOLOGIN group role ``carbonflow_app`` with only the grants the
services (ingest, calc, api) and the operator commands (sites, keys, factors) need.

The migrations run as the owner role (it owns every table, sequence and trigger); the services
connect as a LOGIN role that is a member of ``carbonflow_app`` (``carbonflow migrate
--app-role NAME``, docs/operations.md "Database roles"). Closed ledgers stay evidence: the
application may only INSERT and SELECT ``ledger_revision``, and as it owns nothing it can
neither TRUNCATE a table nor ALTER or DISABLE a trigger.

Roles belong to the server, not to one database: the role is created when missing (the owner
needs CREATEROLE for that, or a DBA creates it first) and kept on downgrade.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

APP_ROLE = "carbonflow_app"

# Frozen grants of revision 0005, table → privileges. What writes each table:
#   registry (`carbonflow sites load`): upserts, deactivates and deletes what a site file drops;
#   ingest: readings (INSERT … ON CONFLICT DO NOTHING), rejections and meter serials (upserts),
#           dirty hours (upsert), through a TEMP staging table (COPY);
#   calc: dirty hours and requests consumed, results replaced (DELETE + COPY/INSERT), indicator
#         and budget upserts, events (INSERT … DO NOTHING), factor sets;
#   api: keys (create, revoke: UPDATE), key sites, audit (INSERT), factor pins and green
#        instruments (upsert, delete), ledger revisions (INSERT only: write-once evidence);
#   reference (`carbonflow factors load`): factor files (upsert by UPDATE), factor values.
_S, _SI, _SIU, _SID, _SIUD = (
    "SELECT",
    "SELECT, INSERT",
    "SELECT, INSERT, UPDATE",
    "SELECT, INSERT, DELETE",
    "SELECT, INSERT, UPDATE, DELETE",
)
GRANTS: dict[str, str] = {
    # registry
    "site": _SIUD,
    "organisation": _SIUD,
    "node": _SIUD,
    "flow_edge": _SIUD,
    "product": _SIUD,
    "device": _SIUD,
    "device_metric": _SIUD,
    "metric": _SI,
    # readings
    "reading": _SI,
    "rejected_reading": _SIU,
    "meter_serial": _SIU,
    "dirty_hour": _SIUD,
    "storage_mode": _S,
    "alembic_version": _S,
    # reference data
    "factor_file": _SIU,
    "factor_value": _SI,
    "factor_pin": _SIUD,
    "green_instrument": _SIUD,
    # calc results and queue
    "calc_interval": _SID,
    "calc_interval_rollup": _SID,
    "calc_factor_set": _SI,
    "calc_carbon": _SID,
    "calc_carbon_rollup": _SID,
    "calc_green_claim": _SID,
    "calc_indicator": _SIU,
    "calc_budget": _SIU,
    "calc_event": _SI,
    "calc_request": _SIU,
    "calc_site_state": _SIU,
    # api access
    "api_key": _SIU,
    "api_key_site": _SI,
    "api_audit": _SI,
    # ledgers: write-once
    "ledger_revision": _SI,
}

_CREATE_ROLE = f"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
        CREATE ROLE {APP_ROLE} NOLOGIN;
    END IF;
END
$$
"""

# CONNECT and TEMPORARY (ingest's staging table) are PUBLIC's by default; granted explicitly so
# a hardened server (REVOKE … FROM PUBLIC) still works. Only the database's owner (or a
# superuser) may grant them; another migrating role relies on the defaults.
_DATABASE_GRANTS = f"""
DO $$
BEGIN
    IF pg_has_role(current_user, (SELECT datdba FROM pg_database
                                  WHERE datname = current_database()), 'USAGE') THEN
        EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO {APP_ROLE}',
                       current_database());
    END IF;
END
$$
"""


def upgrade() -> None:
    op.execute(_CREATE_ROLE)
    op.execute(_DATABASE_GRANTS)
    op.execute(f"GRANT USAGE ON SCHEMA public TO {APP_ROLE}")
    # Start from nothing: whatever was granted before is replaced by the table below.
    op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {APP_ROLE}")
    for table, privileges in GRANTS.items():
        op.execute(f"GRANT {privileges} ON TABLE {table} TO {APP_ROLE}")
    # Identity columns (rejections, devices, events, requests, audit, factor sets) draw from
    # sequences: nextval needs USAGE.
    op.execute(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {APP_ROLE}")
    # Tables later migrations create (as this owner) are readable and appendable; a migration
    # that needs UPDATE or DELETE for the application grants it on purpose, so a new
    # write-once table is not writable by accident.
    op.execute(
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT ON TABLES TO {APP_ROLE}"
    )
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE ON SEQUENCES TO {APP_ROLE}")


def downgrade() -> None:
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM {APP_ROLE}")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON SEQUENCES FROM {APP_ROLE}")
    op.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {APP_ROLE}")
    op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {APP_ROLE}")
    op.execute(f"REVOKE ALL ON SCHEMA public FROM {APP_ROLE}")

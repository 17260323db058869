"""The one way a migration grants its new tables to the services' role (created by 0005).

Each revision that creates tables lists their privileges in ``GRANTS`` (tests/storage/
test_app_role.py reads every revision's) and calls :func:`grant_to_app_role`. Granted only if
the role exists: a database migrated by hand without it stays usable by its owner.
"""

from __future__ import annotations

from collections.abc import Mapping

from alembic import op

from carbonflow.storage.migrate import APP_ROLE

_GRANT = """
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN
        EXECUTE 'REVOKE ALL ON TABLE {table} FROM {role}';
        EXECUTE 'GRANT {privileges} ON TABLE {table} TO {role}';
    END IF;
END
$$
"""


def grant_to_app_role(grants: Mapping[str, str]) -> None:
    """Exactly ``privileges`` on each ``table`` for the services' role, nothing more."""
    for table, privileges in grants.items():
        op.execute(_GRANT.format(role=APP_ROLE, table=table, privileges=privileges))

"""Schema migrations (Alembic), run in-process by ``carbonflow migrate`` and at service start."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from psycopg import sql

from carbonflow.storage import timescale
from carbonflow.storage.db import connect, make_engine
from carbonflow.storage.timescale import StoragePolicy

# The NOLOGIN group role of the services (migration 0005): its members connect as the app.
APP_ROLE = "carbonflow_app"

log = logging.getLogger(__name__)

_MIGRATIONS = Path(__file__).with_name("migrations")
# One lock id for "a migration is running": two services starting together migrate once.
_MIGRATION_LOCK = 0x63_66_6D_67  # "cfmg"


@dataclass(frozen=True, slots=True)
class MigrationReport:
    before: str | None
    after: str | None
    storage_detail: str

    @property
    def changed(self) -> bool:
        return self.before != self.after


def _config(connection: sa.Connection, timescale_options: dict[str, object]) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = connection
    config.attributes["timescale_options"] = timescale_options
    return config


def head_revision() -> str | None:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    return ScriptDirectory.from_config(config).get_current_head()


def current_revision(connection: sa.Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def stored_revision(connection: sa.Connection) -> str | None:
    """The revision in ``alembic_version``, read without Alembic (whose context logs at INFO on
    every use); raises when the table is missing, as a database never migrated has none."""
    revision: str | None = connection.execute(
        sa.text("SELECT version_num FROM alembic_version")
    ).scalar_one_or_none()
    return revision


def upgrade(
    database_url: str,
    *,
    use_timescaledb: bool | None = None,
    policy: StoragePolicy | None = None,
) -> MigrationReport:
    """Bring the database to the newest schema, then the TimescaleDB policies to ``policy``
    (defaults when None); a second run changes nothing.

    Raises :class:`~carbonflow.storage.timescale.TimescaleNotPreloadedError` (a RuntimeError) before
    touching anything when the TimescaleDB layout is wanted but cannot be created.
    """
    engine = make_engine(database_url, poolclass=sa.pool.NullPool)
    options: dict[str, object] = {"use_timescaledb": use_timescaledb}
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK})
            try:
                conn.commit()
                before = current_revision(conn)
                if before is None:
                    timescale.check_preload(conn, use_timescaledb=use_timescaledb)
                    conn.commit()
                command.upgrade(_config(conn, options), "head")
                conn.commit()
                after = current_revision(conn)
                detail = timescale.apply_policies(conn, policy or StoragePolicy())
                conn.commit()
            finally:
                conn.rollback()
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK})
                conn.commit()
    finally:
        engine.dispose()
    if before != after:
        log.info("migrated database from %s to %s (%s)", before, after, detail)
    return MigrationReport(before=before, after=after, storage_detail=detail)


def ensure_app_login(database_url: str, name: str, password: str) -> bool:
    """Create (or update) the LOGIN role ``name`` as a member of ``carbonflow_app``.

    Runs as the owner role (which needs CREATEROLE) after the migrations; the password is set
    again on every run, so rotating it is: change the secret, run ``carbonflow migrate`` again.
    True when the role was created. The role gets nothing but the membership: it owns nothing,
    so it cannot TRUNCATE, ALTER or DROP a table nor disable a trigger.
    """
    role = sql.Identifier(name)
    with connect(database_url) as conn:
        row = conn.execute(
            "SELECT current_user, count(*) FILTER (WHERE rolname = %s) FROM pg_roles", (name,)
        ).fetchone()
        assert row is not None
        owner, exists = row
        if name == owner:
            raise ValueError(f"the app role {name!r} must not be the migrating owner role")
        conn.execute(
            sql.SQL("{} ROLE {} LOGIN INHERIT PASSWORD {}").format(
                sql.SQL("ALTER" if exists else "CREATE"), role, sql.Literal(password)
            )
        )
        conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(APP_ROLE), role))
    if not exists:
        log.info("created the login role %s (member of %s)", name, APP_ROLE)
    return not exists

"""The services' database role (migration 0005): no ownership, only the grants they need.

As a member of ``carbonflow_app`` the services cannot change a closed ledger (no UPDATE,
DELETE or TRUNCATE of ``ledger_revision``, no trigger changes: they own nothing), while every
normal path still works: registry load, ingest's BatchStore, the calc engine, the API's keys,
audit and ledgers.
"""

from __future__ import annotations

import importlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from psycopg import errors

from carbonflow.storage.access import revoke_key
from carbonflow.storage.db import make_engine
from carbonflow.storage.migrate import APP_ROLE
from carbonflow.storage.readings import BatchStore, RejectionRow
from carbonflow.storage.schema import metadata
from cli.main import main
from tests.support.api_support import grant_keys, make_app
from tests.support.calc_generator import computed_small_site

pytestmark = pytest.mark.integration


def _all_grants() -> dict[str, str]:
    """The grants of 0005, and of every later revision that creates tables (``GRANTS``)."""
    grants: dict[str, str] = {}
    versions = Path(
        importlib.import_module("carbonflow.storage.migrations.versions").__file__ or ""
    )
    for path in sorted(versions.parent.glob("[0-9][0-9][0-9][0-9]_*.py")):
        module = importlib.import_module(f"carbonflow.storage.migrations.versions.{path.stem}")
        grants.update(getattr(module, "GRANTS", {}))
    return grants


GRANTS = _all_grants()
_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
SITE = "small-plant"


def _privileges(conn: psycopg.Connection[tuple[object, ...]], table: str) -> set[str]:
    return {
        p
        for p in _PRIVILEGES
        if conn.execute(
            "SELECT has_table_privilege(%s, %s, %s)", (APP_ROLE, f"public.{table}", p)
        ).fetchone()
        == (True,)
    }


def test_the_app_role_has_exactly_its_grants_and_owns_nothing(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        tables = {
            r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname='public'")
        }
        # Every table has a line in the grants of 0005 or of the revision that created it (a new
        # table must be thought about).
        assert tables == set(GRANTS)
        assert set(metadata.tables) <= set(GRANTS)
        for table, granted in GRANTS.items():
            assert _privileges(conn, table) == set(granted.split(", ")), table
        assert _privileges(conn, "ledger_revision") == {"SELECT", "INSERT"}
        role = conn.execute(
            "SELECT rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls "
            "FROM pg_roles WHERE rolname = %s",
            (APP_ROLE,),
        ).fetchone()
        assert role == (False, False, False, False, False)
        owned = conn.execute(
            "SELECT count(*) FROM pg_class WHERE relowner = %s::regrole", (APP_ROLE,)
        ).fetchone()
        assert owned == (0,)


def _ledger_row(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    conn.execute(
        "INSERT INTO ledger_revision (site_id, org_id, month, revision, document, "
        "document_sha256, content_sha256, reason, created_by, created_at) "
        "VALUES ('s', '', '2025-05-01', 1, '{}', 'd', 'c', NULL, 'k', now())"
    )


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_revision SET document = 'forged'",
        "DELETE FROM ledger_revision",
        "TRUNCATE ledger_revision",
        "ALTER TABLE ledger_revision DISABLE TRIGGER ledger_revision_write_once",
        "ALTER TABLE ledger_revision DISABLE TRIGGER ALL",
        "DROP TRIGGER ledger_revision_write_once ON ledger_revision",
        "CREATE OR REPLACE FUNCTION ledger_revision_write_once() RETURNS trigger "
        "LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$",
        "ALTER TABLE ledger_revision ADD COLUMN note text",
        "DROP TABLE ledger_revision",
        "SET session_replication_role = replica",
        "TRUNCATE reading",
        "DELETE FROM reading",
        "UPDATE api_audit SET status = 200",
    ],
)
def test_the_app_role_cannot_change_a_closed_ledger(
    app_role_url: str, database_url: str, statement: str
) -> None:
    with psycopg.connect(app_role_url) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("cf_test_app",)
        _ledger_row(conn)  # INSERT is the one write it has
    with psycopg.connect(app_role_url) as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute(statement)
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT document FROM ledger_revision").fetchall()
        triggers = conn.execute(
            "SELECT tgenabled FROM pg_trigger WHERE tgname = 'ledger_revision_write_once'"
        ).fetchall()
    assert rows == [("{}",)]
    assert triggers == [("O",)]


def test_registry_ingest_and_calc_work_as_the_app_role(app_role_url: str) -> None:
    doc, _start, end = computed_small_site(app_role_url, days=2)
    with psycopg.connect(app_role_url) as conn:
        results = conn.execute("SELECT count(*) FROM calc_interval").fetchone()
    assert results is not None and results[0] > 0

    store = BatchStore(app_role_url)
    try:
        registry = store.registry()
        device = next(d for d in registry.devices.values() if d.site_id == doc.site.id)
        metric = next(iter(device.metrics.values()))
        ts = end + timedelta(hours=1)
        received = datetime.now(UTC)
        rejection = RejectionRow(
            received, "unknown_device", "test", "t/x", doc.site.id, "nobody", None, None, None,
            "{}", 2, "0" * 64,
        )  # fmt: skip
        result = store.store(
            [(device.device_pk, metric.metric_id, ts, 1.0, None, received)],
            [rejection],
            [(device.device_pk, "SN-APP-ROLE", ts, ts)],
        )
        assert (result.inserted, result.rejections_written) == (1, 1)
        again = store.store(
            [(device.device_pk, metric.metric_id, ts, 1.0, None, received)],
            [rejection],
            [(device.device_pk, "SN-APP-ROLE", ts, ts + timedelta(minutes=1))],
        )
        assert again.inserted == 0  # ON CONFLICT DO NOTHING, upserts of rejection and serial
        assert store.latest_counter_values([(device.device_pk, metric.metric_id)]) is not None
    finally:
        store.close()


def test_keys_audit_and_ledgers_through_the_api_as_the_app_role(app_role_url: str) -> None:
    computed_small_site(app_role_url, days=2)
    keys = grant_keys(app_role_url, {"operator": ("operator", [SITE], None)})
    headers = {"Authorization": f"Bearer {keys['operator'].token}"}
    app = make_app(app_role_url, settings={"CARBONFLOW_API_KEY_CACHE_S": 0})
    base = f"/api/v1/sites/{SITE}/ledgers/2025-05"
    with TestClient(app, raise_server_exceptions=True) as client:
        assert client.get("/health").status_code == 200
        closed = client.post(f"{base}/close", headers=headers)
        assert closed.status_code == 201, closed.text
        assert client.get(base, headers=headers).status_code == 200
        engine = make_engine(app_role_url)
        try:
            with engine.begin() as conn:
                assert revoke_key(conn, keys["operator"].key_id)
                audited = conn.execute(sa.text("SELECT count(*) FROM api_audit")).scalar_one()
        finally:
            engine.dispose()
        assert audited >= 1
        assert client.get(base, headers=headers).status_code == 401


def _members(database_url: str, role: str) -> list[tuple[object, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT r.rolcanlogin, pg_has_role(r.oid, %s, 'USAGE') FROM pg_roles r "
            "WHERE r.rolname = %s",
            (APP_ROLE, role),
        ).fetchall()


def test_migrate_creates_the_app_login_role(
    database_url: str, app_role_url: str, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    # The services' URL (the app role) in DATABASE_URL, the owner's for the migrations.
    monkeypatch.setenv("DATABASE_URL", app_role_url)
    monkeypatch.setenv("CARBONFLOW_MIGRATE_DATABASE_URL", database_url)
    monkeypatch.delenv("CARBONFLOW_APP_DB_PASSWORD", raising=False)
    assert main(["migrate", "--app-role", "cf_cli_app"]) == 2
    assert "CARBONFLOW_APP_DB_PASSWORD" in capsys.readouterr().err

    monkeypatch.setenv("CARBONFLOW_APP_DB_PASSWORD", "a-real-password-of-the-app-role")
    assert main(["migrate", "--app-role", "cf_cli_app"]) == 0
    out = capsys.readouterr().out
    assert "already at revision" in out
    assert "login role cf_cli_app (member of carbonflow_app)" in out
    assert _members(database_url, "cf_cli_app") == [(True, True)]
    assert main(["migrate", "--app-role", "cf_cli_app"]) == 0  # again: password updated
    assert "updated login role cf_cli_app" in capsys.readouterr().out

    with psycopg.connect(database_url) as conn:
        owner = conn.execute("SELECT current_user").fetchone()
    assert owner is not None
    assert main(["migrate", "--app-role", str(owner[0])]) == 1
    assert "must not be the migrating owner role" in capsys.readouterr().err

"""Shared by the API tests: the seeded database (both example sites, readings, rejections,
green instruments, one key per role), the app with a fixed wall clock, and the access-matrix
``Case`` each route module's cases are written in.

Route modules add their rows to the access matrix in ``tests/support/api_cases_*.py``; the
matrix test in ``tests/services/api/test_app.py`` runs them all and fails when a route has no
row.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from psycopg import sql

from carbonflow.embedded.postgres import PostgresServer
from carbonflow.sites.loader import EXAMPLES, load_site_file
from carbonflow.storage.access import create_key
from carbonflow.storage.db import make_engine
from carbonflow.storage.registry_load import load_sites
from services.api.app import create_app
from services.api.settings import ApiSettings
from services.api.tokens import NewKey, new_key

MINE = "shanxi-jinzhong-mine"
PARK = "inner-mongolia-ordos-park"
NOW = datetime(2026, 11, 23, 6, 15, tzinfo=UTC)
ADMIN_KEY = "bootstrap-admin-key-for-tests-0123456789abcdef"
PROBLEM = "application/problem+json"
_numbers = itertools.count(1)


# --------------------------------------------------------------------------------------------
# Seed: both example sites, readings, rejections, green instruments, one key per role
# --------------------------------------------------------------------------------------------


@dataclass
class Seeded:
    url: str
    tokens: dict[str, str] = field(default_factory=dict)  # principal name → bearer token
    key_ids: dict[str, str] = field(default_factory=dict)


GRANTS: Mapping[str, tuple[str, list[str], str | None]] = {
    "admin": ("admin", [], None),
    "operator": ("operator", [MINE], None),
    "enterprise": ("enterprise", [PARK], "cathode-plant"),
    "regulator": ("regulator", [MINE], None),
}

# (site, device, metric, seconds before NOW, raw value as stored)
READINGS = (
    (MINE, "grid-line-1", "power_kw", 65, 0.03),  # older: not the latest
    (MINE, "grid-line-1", "power_kw", 5, 0.05),  # 0.05 × 132 000 = 6 600 kW
    (MINE, "grid-line-2", "power_kw", 10, 0.04),  # 0.04 × 132 000 = 5 280 kW
    (MINE, "pv-subsidence-a", "power_kw", 3600, 0.1),  # stale: an hour old
    (MINE, "pv-subsidence-b", "power_kw", 5, 0.1),  # 0.1 × 28 000 = 2 800 kW
    (MINE, "grid-line-1", "energy_import_kwh", 5, 1_000.0),
    (MINE, "drainage-high", "mixture_flow_nm3_min", 5, 160.0),  # × 32 % = 51.2
    (MINE, "drainage-high", "ch4_pct", 5, 32.0),
    (MINE, "drainage-low", "mixture_flow_nm3_min", 5, 140.0),  # × 12 % = 16.8
    (MINE, "drainage-low", "ch4_pct", 5, 12.0),
    (MINE, "methane-to-engines", "mixture_flow_nm3_min", 5, 85.0),  # × 32 % = 27.2
    (MINE, "methane-to-engines", "ch4_pct", 5, 32.0),
    (PARK, "cathode-incomer-1", "power_kw", 5, 0.5),  # 0.5 × 28 000 = 14 000 kW
    (PARK, "dc-incomer-a", "power_kw", 5, 0.25),  # data centre: not the enterprise's
)

GREEN = (
    (PARK, "GEC-CATHODE-1", "cathode-plant", "certificate", 5000),
    (PARK, "PPA-DC-1", "data-centre", "green_power_contract", None),
    (PARK, "DIRECT-PARK", None, "direct_supply", None),
    (MINE, "GEC-MINE-1", "jinzhong-coal", "certificate", 1200),
)


def _admin_sql(server: PostgresServer, statement: sql.Composed) -> None:
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute(statement)


@dataclass
class _Database:
    server: PostgresServer
    name: str

    def drop(self) -> None:
        _admin_sql(
            self.server,
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name)),
        )


def _database(server: PostgresServer, template_url: str) -> _Database:
    """A fresh copy of the migrated template (like the ``database_url`` fixture, any scope)."""
    name = f"cf_api_{next(_numbers)}"
    template = template_url.rsplit("/", 1)[1]
    db = _Database(server, name)
    db.drop()
    _admin_sql(
        server,
        sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template)
        ),
    )
    return db


def seed(url: str) -> Seeded:
    docs = [load_site_file(p) for p in sorted(EXAMPLES.glob("*.yaml"))]
    load_sites(url, docs)
    with psycopg.connect(url) as conn:
        for site, device, metric, age_s, value in READINGS:
            ts = NOW - timedelta(seconds=age_s)
            inserted = conn.execute(
                "INSERT INTO reading (device_pk, metric_id, ts, value, received_at)"
                " SELECT d.device_pk, m.metric_id, %s, %s, %s FROM device d, metric m"
                " WHERE d.site_id = %s AND d.device_id = %s AND m.name = %s",
                (ts, value, ts + timedelta(milliseconds=200), site, device, metric),
            ).rowcount
            assert inserted == 1, (site, device, metric)
        rejections: tuple[tuple[str | None, str | None, str | None, str, int], ...] = (
            (MINE, "grid-line-1", "energy_import_kwh", "counter_backwards", 60),
            (MINE, "grid-line-2", "frequency_hz", "unknown_metric", 120),
            (MINE, "grid-line-1", "power_kw", "invalid_value", 7200),
            (PARK, "cathode-kilns", "power_kw", "unit_mismatch", 30),
            (None, None, None, "unknown_topic", 10),
        )
        for i, (r_site, r_device, r_metric, reason, r_age_s) in enumerate(rejections):
            at = NOW - timedelta(seconds=r_age_s)
            conn.execute(
                "INSERT INTO rejected_reading (received_at, last_seen_at, reason, detail, topic,"
                " site_id, device_id, metric, reading_ts, value, payload_excerpt, payload_bytes,"
                " dedup_key) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (at, at, reason, f"{reason} (test)", f"carbonflow/v1/{r_site}/{r_device}/telemetry",
                 r_site, r_device, r_metric, at, 1.5, "{}", 2, f"k{i}"),
            )  # fmt: skip
        for site, instrument, org, kind, certificates in GREEN:
            volume = float(certificates or 1000)
            conn.execute(
                "INSERT INTO green_instrument (site_id, instrument_id, org_id, kind, evidence,"
                " certificates, volume_mwh, valid_from, valid_to, claimed_mwh, claim_start,"
                " claim_end) VALUES (%s, %s, %s, %s, 'evidence', %s, %s, '2026-01-01',"
                " '2026-12-31', %s, '2026-01-01', '2026-06-30')",
                (site, instrument, org, kind, certificates, volume, volume / 2),
            )
    seeded = Seeded(url)
    for name, key in grant_keys(url, GRANTS, label="test {name}").items():
        seeded.tokens[name] = key.token
        seeded.key_ids[name] = key.key_id
    seeded.tokens["bootstrap"] = ADMIN_KEY
    return seeded


Grant = tuple[str, list[str], str | None]  # role, sites, organisation


def grant_keys(
    url: str, grants: Mapping[str, Grant], *, label: str = "{name}"
) -> dict[str, NewKey]:
    """A new API key per name with its role, sites and organisation, in one transaction."""
    keys: dict[str, NewKey] = {}
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            for name, (role, sites, org) in grants.items():
                key = keys[name] = new_key()
                create_key(
                    conn, key_id=key.key_id, secret_sha256=key.secret_sha256, role=role,
                    label=label.format(name=name), site_ids=sites, org_id=org,
                )  # fmt: skip
    finally:
        engine.dispose()
    return keys


async def _no_wait(_seconds: float) -> None:
    return None


def make_app(url: str, **overrides: Any) -> FastAPI:
    settings: dict[str, Any] = {
        "DATABASE_URL": url,
        "CARBONFLOW_ENV": "test",
        "CARBONFLOW_API_ADMIN_KEY": ADMIN_KEY,
        "CARBONFLOW_API_RATE_BURST": 1_000_000,
        "CARBONFLOW_API_AUTH_FAILURE_BURST": 1_000_000,
        "CARBONFLOW_API_STREAM_INTERVAL_S": 1,
        "CARBONFLOW_API_STREAM_MAX_S": 2,
    }
    settings.update(overrides.pop("settings", {}))
    return create_app(
        ApiSettings(**settings),
        wall_clock=overrides.pop("wall_clock", lambda: NOW),
        stream_sleep=overrides.pop("stream_sleep", _no_wait),
        **overrides,
    )


@dataclass
class Api:
    client: TestClient
    seeded: Seeded
    app: FastAPI

    def headers(self, who: str) -> dict[str, str]:
        if who == "anonymous":
            return {}
        if who == "bad":
            return {"Authorization": "Bearer cf_0123456789ab_" + "x" * 43}
        return {"Authorization": f"Bearer {self.seeded.tokens[who]}"}

    def get(self, who: str, path: str, **kw: Any) -> Any:
        return self.client.get(path, headers=self.headers(who), **kw)


@pytest.fixture(scope="module")
def api(pg_server: PostgresServer, migrated_template: str) -> Iterator[Api]:
    """One seeded database and app for the read-only tests of this module."""
    db = _database(pg_server, migrated_template)
    try:
        seeded = seed(pg_server.url_for(db.name))
        app = make_app(seeded.url)
        with TestClient(app, raise_server_exceptions=False) as client:
            yield Api(client, seeded, app)
    finally:
        db.drop()


@pytest.fixture
def fresh(database_url: str) -> Iterator[Api]:
    """A seeded database and app of this test's own (it may write)."""
    seeded = seed(database_url)
    app = make_app(database_url, settings={"CARBONFLOW_API_KEY_CACHE_S": 0})
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Api(client, seeded, app)


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert {"type", "title", "status", "detail", "instance"} <= set(body)
    assert body["instance"] == response.request.url.path
    return body


# --------------------------------------------------------------------------------------------
# The access matrix: every route, every role
# --------------------------------------------------------------------------------------------

ROLES = ("admin", "bootstrap", "operator", "enterprise", "regulator", "anonymous", "bad")
GREEN_BODY = {
    "kind": "certificate",
    "evidence": "GEC batch 2026-000001",
    "certificates": 100,
    "volume_mwh": 100.0,
    "valid_from": "2026-01-01",
    "valid_to": "2026-12-31",
    "claimed_mwh": 50.0,
    "claim_start": "2026-01-01",
    "claim_end": "2026-03-31",
}


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    # None: not run in the shared database (a successful write), see the write tests
    admin: int | None
    operator: int | None
    enterprise: int | None
    regulator: int | None
    body: Mapping[str, Any] | None = None
    public: bool = False  # no key needed

    def expected(self, who: str) -> int | None:
        if who in ("anonymous", "bad"):
            return (self.admin or 200) if self.public else 401
        if who == "bootstrap":
            return self.admin
        status: int | None = getattr(self, who)
        return status


S, M, P = "/api/v1/sites", f"/api/v1/sites/{MINE}", f"/api/v1/sites/{PARK}"

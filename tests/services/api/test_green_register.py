"""The green-certificate register through the API and the calc service (issue 15,
docs/green.md): batches with holder and production month, claims on the holder's own
consumption of a month, withdrawal while the ledger is open, cancellation, expiry; market-based
Scope 2 changes only for the holder.

Twin works (tests/services/api/test_carbon.py): plant-co and other-co each buy their own grid
electricity; three days of May 2025 computed. The API's wall clock is 2025-06-15.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from carbonflow.embedded.postgres import PostgresServer
from carbonflow.sites.loader import parse_site_text
from carbonflow.storage.registry_load import load_site
from tests.services.api.test_carbon import SITE, SITE_B, TWIN_SITE, TWIN_SITE_B
from tests.support.api_support import ADMIN_KEY, _database, assert_problem, grant_keys, make_app
from tests.support.calc_generator import generate, month_start, run_calc, store_readings

pytestmark = pytest.mark.integration

START = month_start(2025, 5)
END = START + timedelta(days=3)
NOW = datetime(2025, 6, 15, 4, 0, tzinfo=UTC)
GRANTS = {
    "admin": ("admin", [], None),
    "operator": ("operator", [SITE], None),
    "plant": ("enterprise", [SITE], "plant-co"),
    "other": ("enterprise", [SITE], "other-co"),
    "regulator": ("regulator", [SITE], None),
}
G = f"/api/v1/sites/{SITE}/green-instruments"
RESIDUAL = 0.6096  # national residual mix [tCO2/MWh] used for 2025 (docs/accounting.md)


def batch(first: int, last: int, **kw: Any) -> dict[str, Any]:
    """A GEC batch of serials first…last (1 certificate = 1 MWh) produced in April 2025."""
    n = last - first + 1
    return {
        "kind": "certificate", "evidence": f"GEC {first}-{last}", "certificates": n,
        "volume_mwh": float(n), "valid_from": "2025-04-01", "valid_to": "2027-03-31",
        "claimed_mwh": 0.0, "claim_start": "2025-04-01", "claim_end": "2027-03-31",
        "serial_first": first, "serial_last": last, "production_month": "2025-04",
        "source_project": "Ordos wind farm II", "tradable": True,
        "evidence_sha256": "ab" * 32, **kw,
    }  # fmt: skip


@dataclass
class Env:
    url: str
    client: TestClient
    tokens: dict[str, str]

    def call(self, who: str, method: str, path: str, body: Any = None) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"}
        return self.client.request(method, path, headers=headers, json=body)


@pytest.fixture(scope="module")
def env(pg_server: PostgresServer, migrated_template: str) -> Iterator[Env]:
    db = _database(pg_server, migrated_template)
    try:
        url = pg_server.url_for(db.name)
        for text in (TWIN_SITE, TWIN_SITE_B):
            doc = parse_site_text(text, "twin.yaml")
            load_site(url, doc)
            store_readings(url, doc.site.id, generate(doc, START, END, period=timedelta(hours=1)))
        run_calc(url)
        keys = grant_keys(url, GRANTS, label="test {name}")
        tokens = {"bootstrap": ADMIN_KEY, **{name: key.token for name, key in keys.items()}}
        with TestClient(
            make_app(url, wall_clock=lambda: NOW), raise_server_exceptions=False
        ) as client:
            yield Env(url, client, tokens)
    finally:
        db.drop()


def _may(url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        return conn.execute(sql, (SITE, START, START + timedelta(days=31), *args)).fetchall()


def market_by_org(url: str) -> dict[str, float]:
    rows = _may(
        url,
        "SELECT org_id, sum(tco2e) FROM calc_carbon WHERE site_id = %s AND start_ts >= %s "
        "AND start_ts < %s AND basis IN ('market', 'both') GROUP BY org_id",
    )
    return {org: float(t) for org, t in rows}


def consumption(url: str, org: str) -> float:
    rows = _may(
        url,
        "SELECT sum(activity) FROM calc_carbon WHERE site_id = %s AND start_ts >= %s "
        "AND start_ts < %s AND category = 'purchased_electricity' AND basis = 'location' "
        "AND org_id = %s",
        org,
    )
    return float(rows[0][0])


def test_overlapping_batches_are_refused_platform_wide(env: Env) -> None:
    made = env.call("plant", "PUT", f"{G}/GEC-A", batch(1, 100))
    assert made.status_code == 201, made.text
    out = made.json()
    assert out["org_id"] == "plant-co" and out["status"] == "held"
    assert out["expires_on"] == "2027-04-01" and out["held_mwh"] == 100.0
    assert out["production_month"] == "2025-04" and out["evidence_sha256"] == "ab" * 32
    # same serials under a new id, and at another site: 409 naming the holding batch
    for path in (f"{G}/GEC-A2", f"/api/v1/sites/{SITE_B}/green-instruments/GEC-A"):
        problem = assert_problem(
            env.call("admin", "PUT", path, batch(50, 60, org_id="plant-co")), 409
        )
        assert "'GEC-A' at site 'twin-works'" in problem["detail"] and "GEC-A" in problem["detail"]
    assert env.call("admin", "GET", f"{G}/GEC-A").json()["volume_mwh"] == 100.0  # kept
    # a register batch needs a holder, and is applied by claims only
    assert_problem(env.call("admin", "PUT", f"{G}/GEC-NOHOLDER", batch(500, 509)), 422)
    assert_problem(env.call("plant", "PUT", f"{G}/GEC-X", batch(600, 609, claimed_mwh=5.0)), 422)


def test_claims_change_market_based_only_for_the_holder(env: Env) -> None:
    used = consumption(env.url, "plant-co")
    assert used > 10.0
    # a batch larger than the works' May consumption: serials 1 001 … 1 000 + used + 100
    size = math.ceil(used) + 100
    made = env.call("plant", "PUT", f"{G}/GEC-B", batch(1_001, 1_000 + size))
    assert made.status_code == 201, made.text
    # beyond the holder's own consumption of May: 409 with the numbers, nothing stored
    problem = assert_problem(
        env.call("plant", "POST", f"{G}/GEC-B/claims", {"month": "2025-05"}), 409
    )
    assert "exceeds the holder's own purchased electricity" in problem["detail"]
    assert "超过持有者" in problem["detail"]
    before = market_by_org(env.url)
    claimed = env.call(
        "plant", "POST", f"{G}/GEC-B/claims",
        {"month": "2025-05", "serial_first": 1_001, "serial_last": 1_010},
    )  # fmt: skip
    assert claimed.status_code == 201, claimed.text
    claim = claimed.json()
    assert (claim["mwh"], claim["org_id"], claim["state"]) == (10.0, "plant-co", "active")
    # the same serials twice → 409; the rest of the batch stays held
    twice = env.call(
        "plant", "POST", f"{G}/GEC-B/claims",
        {"month": "2025-05", "serial_first": 1_010, "serial_last": 1_012},
    )  # fmt: skip
    assert "already claimed" in assert_problem(twice, 409)["detail"]
    state = env.call("plant", "GET", f"{G}/GEC-B").json()
    assert (state["status"], state["register_claimed_mwh"], state["held_mwh"]) == (
        "held", 10.0, size - 10.0,
    )  # fmt: skip
    run_calc(env.url)
    after = market_by_org(env.url)
    # plant-co: 10 MWh at 0 instead of the residual factor: − 10 × 0.6096 = − 6.096 t
    assert after["plant-co"] == pytest.approx(before["plant-co"] - 10 * RESIDUAL, abs=1e-9)
    assert after["other-co"] == pytest.approx(before["other-co"], abs=1e-9)
    site_total = _may(
        env.url,
        "SELECT sum(tco2e) FROM calc_carbon WHERE site_id = %s AND start_ts >= %s "
        "AND start_ts < %s AND basis IN ('market', 'both')",
    )[0][0]
    assert math.fsum(after.values()) == pytest.approx(float(site_total), abs=1e-9)
    rows = _may(
        env.url,
        "SELECT instrument_id, applied_mwh FROM calc_green_claim WHERE site_id = %s "
        "AND month_start >= %s AND month_start < %s",
    )
    assert rows == [(f"GEC-B/claim-{claim['claim_id']}", pytest.approx(10.0))]
    # the holder's ledger draft lists the claim; the other organisation's does not
    ledger = f"/api/v1/sites/{SITE}/organisations/{{}}/ledgers/2025-05/draft"
    draft = env.call("plant", "GET", ledger.format("plant-co"))
    assert draft.status_code == 200, draft.text
    green = draft.json()["green_power"]
    assert [(g["instrument_id"], g["applied_mwh"]) for g in green] == [
        (f"GEC-B/claim-{claim['claim_id']}", 10.0)
    ]
    assert env.call("other", "GET", ledger.format("other-co")).json()["green_power"] == []
    # ... and the register's claim row, which the purchased-electricity line names
    entry = f"GEC-B/claim-{claim['claim_id']}"
    rows = draft.json()["green_claims"]
    assert rows == [
        {"claim_ref": entry, "claim_id": claim["claim_id"], "batch_id": "GEC-B",
         "org_id": "plant-co", "evidence_kind": "certificate", "serial_first": 1_001,
         "serial_last": 1_010, "mwh": 10.0, "production_month": "2025-04"},
    ]  # fmt: skip
    lines = {a["category"]: a for a in draft.json()["activity"]}
    assert lines["purchased_electricity"]["green_claims"] == entry
    assert env.call("other", "GET", ledger.format("other-co")).json()["green_claims"] == []
    site_draft = env.call("regulator", "GET", f"/api/v1/sites/{SITE}/ledgers/2025-05/draft")
    assert site_draft.status_code == 200, site_draft.text
    assert [r["org_id"] for r in site_draft.json()["green_claims"]] == ["plant-co"]
    # withdrawn while May's ledger is open: back to held, market-based as before
    path = f"{G}/GEC-B/claims/{claim['claim_id']}/withdraw"
    assert env.call("regulator", "POST", path).status_code == 403
    back = env.call("plant", "POST", path)
    assert back.status_code == 200 and back.json()["state"] == "withdrawn"
    assert_problem(env.call("plant", "POST", path), 409)
    run_calc(env.url)
    assert market_by_org(env.url)["plant-co"] == pytest.approx(before["plant-co"], abs=1e-9)
    listed = env.call("plant", "GET", f"{G}/GEC-B/claims").json()["items"]
    assert [c["state"] for c in listed] == ["withdrawn"]
    # another enterprise neither sees nor claims it
    assert env.call("other", "GET", f"{G}/GEC-B").status_code == 404
    assert env.call("other", "POST", f"{G}/GEC-B/claims", {"month": "2025-05"}).status_code == 404
    with psycopg.connect(env.url) as conn:
        audited = conn.execute(
            "SELECT method, status FROM api_audit WHERE path LIKE %s ORDER BY at",
            (f"{G}/GEC-B/%",),
        ).fetchall()
    assert ("POST", 201) in audited and ("POST", 200) in audited


def test_a_closed_ledger_makes_claims_final(env: Env) -> None:
    env.call("plant", "PUT", f"{G}/GEC-C", batch(20_000_001, 20_000_010))
    claim = env.call(
        "plant", "POST", f"{G}/GEC-C/claims", {"month": "2025-05", "serial_last": 20_000_002}
    ).json()
    with psycopg.connect(env.url) as conn:
        conn.execute(
            "INSERT INTO ledger_revision (site_id, org_id, month, revision, document, "
            "document_sha256, content_sha256, reason, created_by, created_at) "
            "VALUES (%s, 'plant-co', %s, 1, '{}', 'd', 'c', NULL, 'k', now())",
            (SITE, date(2025, 5, 1)),
        )
    path = f"{G}/GEC-C/claims/{claim['claim_id']}/withdraw"
    assert "台账已关闭" in assert_problem(env.call("plant", "POST", path), 409)["detail"]
    more = env.call(
        "plant", "POST", f"{G}/GEC-C/claims", {"month": "2025-05", "serial_first": 20_000_003}
    )
    assert "closed" in assert_problem(more, 409)["detail"]
    # with a claim the batch can be neither cancelled, replaced nor removed
    assert_problem(env.call("plant", "POST", f"{G}/GEC-C/cancel"), 409)
    assert_problem(env.call("plant", "PUT", f"{G}/GEC-C", batch(20_000_001, 20_000_010)), 409)
    assert_problem(env.call("plant", "DELETE", f"{G}/GEC-C"), 409)


def test_cancel_is_final_and_expiry_is_a_date(env: Env) -> None:
    env.call("plant", "PUT", f"{G}/GEC-D", batch(30_000_001, 30_000_010))
    assert env.call("operator", "POST", f"{G}/GEC-D/cancel").status_code == 403
    cancelled = env.call("plant", "POST", f"{G}/GEC-D/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["held_mwh"] == 0.0
    assert_problem(env.call("plant", "POST", f"{G}/GEC-D/cancel"), 409)
    assert_problem(env.call("plant", "POST", f"{G}/GEC-D/claims", {"month": "2025-05"}), 409)
    assert_problem(env.call("plant", "DELETE", f"{G}/GEC-D"), 409)  # serials stay registered
    # produced 2023-05: expired from 2025-05-01 (the API's today is 2025-06-15)
    old = batch(40_000_001, 40_000_005, production_month="2023-05")
    assert env.call("plant", "PUT", f"{G}/GEC-OLD", old).json()["status"] == "expired"
    expired = env.call("plant", "POST", f"{G}/GEC-OLD/claims", {"month": "2025-05"})
    assert "expired on 2025-05-01" in assert_problem(expired, 409)["detail"]
    # a consumption month before the production month is outside the validity: 422
    early = env.call("plant", "POST", f"{G}/GEC-A/claims", {"month": "2025-03"})
    assert_problem(early, 422)


def test_a_tradable_held_batch_moves_whole_to_another_organisation(env: Env) -> None:
    made = env.call("other", "PUT", f"{G}/GEC-T", batch(50_000_001, 50_000_005))
    assert made.status_code == 201, made.text
    fixed = env.call("other", "PUT", f"{G}/GEC-N", batch(50_000_006, 50_000_007, tradable=False))
    assert fixed.status_code == 201, fixed.text
    move = {"to_org_id": "plant-co"}
    # only the holder's own: another enterprise does not see it, readers may not write
    assert env.call("plant", "POST", f"{G}/GEC-T/transfer", move).status_code == 404
    assert env.call("regulator", "POST", f"{G}/GEC-T/transfer", move).status_code == 403
    assert (
        "not tradable"
        in assert_problem(env.call("other", "POST", f"{G}/GEC-N/transfer", move), 409)["detail"]
    )
    unknown = env.call("other", "POST", f"{G}/GEC-T/transfer", {"to_org_id": "nobody"})
    assert "unknown organisation" in assert_problem(unknown, 422)["detail"]
    assert_problem(env.call("other", "POST", f"{G}/GEC-T/transfer", {"to_org_id": "other-co"}), 422)
    # part of it claimed: not held whole → 409 until the claim is withdrawn
    claim = env.call(
        "other", "POST", f"{G}/GEC-T/claims",
        {"month": "2025-05", "serial_first": 50_000_001, "serial_last": 50_000_001},
    )  # fmt: skip
    assert claim.status_code == 201, claim.text
    assert (
        "claimed"
        in assert_problem(env.call("other", "POST", f"{G}/GEC-T/transfer", move), 409)["detail"]
    )
    path = f"{G}/GEC-T/claims/{claim.json()['claim_id']}/withdraw"
    assert env.call("other", "POST", path).status_code == 200
    moved = env.call("other", "POST", f"{G}/GEC-T/transfer", move)
    assert moved.status_code == 200, moved.text
    assert (moved.json()["org_id"], moved.json()["status"]) == ("plant-co", "held")
    # the new holder sees and may claim it; the old one no longer sees it
    assert env.call("other", "GET", f"{G}/GEC-T").status_code == 404
    assert env.call("plant", "GET", f"{G}/GEC-T").json()["org_id"] == "plant-co"
    with psycopg.connect(env.url) as conn:
        audited = conn.execute(
            "SELECT role, status FROM api_audit WHERE path = %s ORDER BY at",
            (f"{G}/GEC-T/transfer",),
        ).fetchall()
    assert ("enterprise", 200) in audited

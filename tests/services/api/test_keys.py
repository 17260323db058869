"""``/api/v1/keys``: create (token once), list, read, rotate, revoke — admin only, audited; and
failed authentications throttled per client with 429."""

from __future__ import annotations

import psycopg
import pytest
from fastapi.testclient import TestClient

from tests.support.api_support import MINE, PARK, Api, assert_problem, fresh, make_app, seed

__all__ = ["fresh"]  # fixtures, used by name

pytestmark = pytest.mark.integration

OPERATOR_KEY = {"role": "operator", "site_ids": [MINE], "label": "control room"}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _audited(url: str, key_id: str) -> list[tuple[str, str, int]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT method, route, status FROM api_audit WHERE key_id = %s ORDER BY audit_id",
            (key_id,),
        ).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


def test_create_shows_the_token_once_and_the_key_works(fresh: Api) -> None:
    admin = fresh.headers("admin")
    created = fresh.client.post("/api/v1/keys", headers=admin, json=OPERATOR_KEY)
    assert created.status_code == 201, created.text
    body = created.json()
    key, token = body["key"], body["token"]
    assert token.startswith(f"cf_{key['key_id']}_")
    assert key | {"created_at": None} == {
        "key_id": key["key_id"],
        "role": "operator",
        "label": "control room",
        "site_ids": [MINE],
        "org_id": None,
        "requests_per_minute": None,
        "state": "active",
        "created_at": None,
        "expires_at": None,
        "revoked_at": None,
        "last_used_at": None,
    }
    me = fresh.client.get("/api/v1/me", headers=_bearer(token))
    assert me.status_code == 200 and me.json()["site_ids"] == [MINE]
    # listed and readable, never with the token; last use recorded
    listing = fresh.client.get("/api/v1/keys", headers=admin)
    assert token not in listing.text
    one = fresh.client.get(f"/api/v1/keys/{key['key_id']}", headers=admin).json()
    assert one["last_used_at"] is not None
    admin_id = fresh.seeded.key_ids["admin"]
    assert _audited(fresh.seeded.url, admin_id) == [("POST", "/api/v1/keys", 201)]


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({**OPERATOR_KEY, "site_ids": []}, "needs at least one --site"),
        ({**OPERATOR_KEY, "site_ids": ["no-such-site"]}, "unknown site"),
        ({"role": "enterprise", "site_ids": [PARK], "org_id": "nobody", "label": "x"}, "nobody"),
        ({**OPERATOR_KEY, "expires_at": "2020-01-01T00:00:00Z"}, "future"),
    ],
)
def test_invalid_grants_are_422_and_store_nothing(
    fresh: Api, body: dict[str, object], detail: str
) -> None:
    response = fresh.client.post("/api/v1/keys", headers=fresh.headers("admin"), json=body)
    assert detail in assert_problem(response, 422)["detail"]
    listing = fresh.client.get("/api/v1/keys", headers=fresh.headers("admin")).json()
    assert len(listing["items"]) == 4  # the seed's four keys only


def test_rotate_replaces_the_secret_and_revoke_ends_the_key(fresh: Api) -> None:
    admin = fresh.headers("admin")
    created = fresh.client.post("/api/v1/keys", headers=admin, json=OPERATOR_KEY).json()
    key_id, old = created["key"]["key_id"], created["token"]
    rotated = fresh.client.post(
        f"/api/v1/keys/{key_id}/rotate",
        headers=admin,
        json={"expires_at": "2030-01-01T00:00:00Z"},
    )
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["token"]
    assert new != old and new.startswith(f"cf_{key_id}_")
    assert rotated.json()["key"]["expires_at"].startswith("2030-01-01")
    assert fresh.client.get("/api/v1/me", headers=_bearer(old)).status_code == 401
    assert fresh.client.get("/api/v1/me", headers=_bearer(new)).status_code == 200

    revoked = fresh.client.post(f"/api/v1/keys/{key_id}/revoke", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["state"] == "revoked"
    assert fresh.client.get("/api/v1/me", headers=_bearer(new)).status_code == 401
    assert_problem(fresh.client.post(f"/api/v1/keys/{key_id}/revoke", headers=admin), 409)
    assert_problem(fresh.client.post(f"/api/v1/keys/{key_id}/rotate", headers=admin), 404)
    assert [r[1] for r in _audited(fresh.seeded.url, fresh.seeded.key_ids["admin"])] == [
        "/api/v1/keys",
        "/api/v1/keys/{key_id}/rotate",
        "/api/v1/keys/{key_id}/revoke",
    ]


def test_failed_authentications_get_429_after_the_allowance(database_url: str) -> None:
    seeded = seed(database_url)
    app = make_app(
        database_url,
        settings={
            "CARBONFLOW_API_AUTH_FAILURE_BURST": 3,
            "CARBONFLOW_API_AUTH_FAILURES_PER_MINUTE": 1,
        },
        clock=lambda: 100.0,  # time stands still: no attempt comes back
    )
    bad = _bearer("cf_0123456789ab_" + "x" * 43)
    with TestClient(app, raise_server_exceptions=False) as client:
        statuses = [client.get("/api/v1/me", headers=bad).status_code for _ in range(5)]
        assert statuses == [401, 401, 401, 401, 429]
        refused = client.get("/api/v1/me", headers=_bearer(seeded.tokens["admin"]))
        body = assert_problem(refused, 429)
        assert refused.headers["retry-after"] == "60"
        assert "failed authentications" in body["detail"]
        # a request without any key is answered 401 as before: it is not a guess
        assert client.get("/api/v1/me").status_code == 401

"""``carbonflow keys`` (create, list, revoke, audit, secret) and ``carbonflow api`` settings."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from carbonflow.sites.loader import EXAMPLES, load_site_file
from carbonflow.storage.registry_load import load_sites
from cli.main import main
from services.api.tokens import key_id_of, token_sha256
from tests.support.api_support import MINE, PARK, make_app

pytestmark = pytest.mark.integration


@pytest.fixture
def sites(database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    load_sites(database_url, [load_site_file(p) for p in sorted(EXAMPLES.glob("*.yaml"))])
    monkeypatch.setenv("DATABASE_URL", database_url)
    return database_url


def _create(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["keys", "create", *args])
    captured = capsys.readouterr()
    return code, captured.out.strip(), captured.err


def test_create_list_use_revoke(sites: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, token, err = _create(
        capsys, "--role", "regulator", "--site", MINE, "--site", PARK, "--label", "Shanxi DRC"
    )
    assert code == 0 and "shown once" in err
    key_id = key_id_of(token)
    assert key_id is not None and key_id in err
    with psycopg.connect(sites) as conn:
        stored = conn.execute(
            "SELECT secret_sha256, role, label FROM api_key WHERE key_id = %s", (key_id,)
        ).fetchone()
        granted = [r[0] for r in conn.execute("SELECT site_id FROM api_key_site ORDER BY 1")]
    assert stored == (token_sha256(token), "regulator", "Shanxi DRC")
    assert token not in str(stored)  # only the hash is stored
    assert granted == [PARK, MINE]

    app = make_app(sites, settings={"CARBONFLOW_API_KEY_CACHE_S": 0})
    with TestClient(app) as client:
        me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200 and me.json()["site_ids"] == [PARK, MINE]

        assert main(["keys", "list"]) == 0
        listing = capsys.readouterr().out
        assert f"{key_id}\tregulator\tactive\t{PARK},{MINE}\t-\t" in listing
        assert token not in listing

        assert main(["keys", "audit", "--key", key_id]) == 0
        assert "/api/v1/me\t200" in capsys.readouterr().out

        assert main(["keys", "revoke", key_id]) == 0
        assert main(["keys", "revoke", key_id]) == 1
        me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 401
    assert main(["keys", "list"]) == 0
    assert f"{key_id}\tregulator\trevoked" in capsys.readouterr().out


def test_enterprise_and_admin_keys(sites: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, token, _ = _create(
        capsys,
        "--role", "enterprise", "--site", PARK, "--org", "cathode-plant",
        "--label", "cathode plant", "--rate-per-minute", "120", "--expires-days", "30",
    )  # fmt: skip
    assert code == 0
    code, admin_token, _ = _create(capsys, "--role", "admin", "--label", "ops")
    assert code == 0
    app = make_app(sites)
    with TestClient(app) as client:
        me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).json()
        assert (me["org_id"], me["requests_per_minute"]) == ("cathode-plant", 120)
        admin = client.get("/api/v1/me", headers={"Authorization": f"Bearer {admin_token}"})
        assert admin.json()["site_ids"] is None


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--role", "enterprise", "--site", PARK], 2, "needs its --org"),
        (["--role", "operator"], 2, "at least one --site"),
        (["--role", "admin", "--site", MINE], 2, "give no --site"),
        (["--role", "operator", "--site", MINE, "--org", "x"], 2, "only an enterprise key"),
        (["--role", "operator", "--site", "atlantis"], 1, "unknown site(s): atlantis"),
        (["--role", "enterprise", "--site", MINE, "--org", "cathode-plant"], 1, "not registered"),
        (["--role", "operator", "--site", MINE, "--rate-per-minute", "0"], 2, "at least 1"),
    ],
)
def test_bad_keys_are_refused_and_nothing_is_stored(
    sites: str, capsys: pytest.CaptureFixture[str], args: list[str], code: int, message: str
) -> None:
    result, out, err = _create(capsys, *args, "--label", "x")
    assert result == code and out == "" and message in err
    with psycopg.connect(sites) as conn:
        assert conn.execute("SELECT count(*) FROM api_key").fetchone() == (0,)


def test_secret_and_api_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keys", "secret"]) == 0
    secret = capsys.readouterr().out.strip()
    assert len(secret) == 43
    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert main(["api"]) == 2
    assert "DATABASE_URL" in capsys.readouterr().err
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@127.0.0.1:1/x")
    monkeypatch.setenv("CARBONFLOW_ENV", "production")
    monkeypatch.setenv("CARBONFLOW_API_ADMIN_KEY", "changeme")
    assert main(["api"]) == 2
    assert "CARBONFLOW_API_ADMIN_KEY" in capsys.readouterr().err


def test_rotate_gives_a_new_token_for_the_same_key(
    sites: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, old, _ = _create(capsys, "--role", "operator", "--site", MINE, "--label", "ops")
    assert code == 0
    key_id = key_id_of(old)
    assert key_id is not None
    assert main(["keys", "rotate", key_id, "--expires-days", "10"]) == 0
    new = capsys.readouterr().out.strip()
    assert key_id_of(new) == key_id and new != old
    app = make_app(sites, settings={"CARBONFLOW_API_KEY_CACHE_S": 0})
    with TestClient(app) as client:
        for token, status in ((old, 401), (new, 200)):
            me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
            assert me.status_code == status
    assert main(["keys", "list"]) == 0
    assert "no expiry" not in capsys.readouterr().out.split(key_id)[1].split("\n")[0]
    assert main(["keys", "rotate", "0123456789ab"]) == 1

"""The OpenAPI document (served = checked in) and errors without a database. No services."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cli.main import main
from services.api.app import create_app
from services.api.openapi import CHECKED_IN, render
from services.api.settings import ApiSettings

# Nothing listens on port 1: every database call fails at once.
NO_DATABASE = "postgresql://nobody@127.0.0.1:1/none"
ADMIN_KEY = "unit-test-bootstrap-admin-key-0123456789"
PROBLEM = "application/problem+json"


@pytest.fixture
def client() -> Iterator[TestClient]:
    settings = ApiSettings(DATABASE_URL=NO_DATABASE, CARBONFLOW_API_ADMIN_KEY=ADMIN_KEY)
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def document(client: TestClient) -> dict[str, Any]:
    served: dict[str, Any] = client.get("/api/v1/openapi.json").json()
    return served


def test_served_document_is_the_checked_in_file(document: dict[str, Any]) -> None:
    """Regenerate with `carbonflow api --write-openapi services/api/openapi.json`."""
    checked_in = json.loads(CHECKED_IN.read_text(encoding="utf-8"))
    assert document == checked_in, (
        "services/api/openapi.json is out of date: run "
        "`carbonflow api --write-openapi services/api/openapi.json` and review the diff"
    )
    assert render(document) == CHECKED_IN.read_text(encoding="utf-8")


def test_write_openapi_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["api", "--write-openapi", "-"]) == 0
    assert capsys.readouterr().out == CHECKED_IN.read_text(encoding="utf-8")


def test_every_api_operation_needs_a_key_and_documents_its_problems(
    document: dict[str, Any],
) -> None:
    assert document["components"]["securitySchemes"]["ApiKey"]["scheme"] == "bearer"
    assert document["info"]["version"] == "1.5.0"
    for path, item in document["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            for status, response in responses.items():
                if status.startswith(("4", "5")):
                    schema = response["content"][PROBLEM]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Problem"}, (path, status)
                    assert "application/json" not in response["content"]
            if path.startswith("/api/v1/"):
                assert operation["security"] == [{"ApiKey": []}], (method, path)
                assert {"401", "429", "500"} <= set(responses), (method, path)
                if "{site_id}" in path:
                    assert "404" in responses and "403" in responses, (method, path)
    assert "HTTPValidationError" not in document["components"]["schemas"]
    assert set(document["components"]["schemas"]["Problem"]["required"]) == {"title", "status"}


def test_main_routes_have_examples(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for name in (
        "SiteOut",
        "DeviceOut",
        "LatestReadingOut",
        "PowerNowOut",
        "MethaneNowOut",
        "RejectionOut",
        "GreenInstrumentIn",
        "MeOut",
        "Problem",
    ):
        assert schemas[name].get("examples"), name


def test_without_a_key_every_api_route_is_401_even_unknown_ones(client: TestClient) -> None:
    for path in ("/api/v1/sites", "/api/v1/sites/x/devices", "/api/v1/whatever"):
        response = client.get(path)
        assert response.status_code == 401
        assert response.headers["content-type"] == PROBLEM
        assert response.headers["www-authenticate"] == 'Bearer realm="carbonflow"'
        assert response.json()["instance"] == path


def test_database_down_is_a_503_problem_and_the_bootstrap_key_still_works(
    client: TestClient,
) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    assert client.get("/api/v1/me", headers=admin).json()["role"] == "admin"
    down = client.get("/api/v1/sites", headers=admin)
    assert down.status_code == 503 and down.headers["content-type"] == PROBLEM
    assert down.headers["retry-after"] == "5"
    assert down.json()["type"] == "urn:carbonflow:problem:unavailable"
    health = client.get("/health")
    assert health.status_code == 503 and health.json()["detail"].startswith("database unavailable")
    # A database key cannot be checked either: 503, not 401 (the key may well be valid).
    unknown = client.get(
        "/api/v1/me", headers={"Authorization": "Bearer cf_0123456789ab_" + "a" * 43}
    )
    assert unknown.status_code == 503


def test_unknown_route_and_wrong_method_are_problems(client: TestClient) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    missing = client.get("/nowhere")
    assert missing.status_code == 404 and missing.headers["content-type"] == PROBLEM
    assert missing.json()["type"] == "urn:carbonflow:problem:not-found"
    wrong = client.post("/api/v1/me", headers=admin)
    assert wrong.status_code == 405 and wrong.headers["allow"] == "GET"
    assert wrong.json() == {
        "type": "about:blank",
        "title": "Method Not Allowed",
        "status": 405,
        "detail": "POST is not allowed on /api/v1/me",
        "instance": "/api/v1/me",
    }

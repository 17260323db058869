"""Property-based run of schemathesis against the served OpenAPI document: no 5xx, and every
response conforms to the document (status codes, content types, schemas, headers).

Bounded: a fixed number of examples per operation and mode (a few hundred requests in all),
derandomised so a run is repeatable. The requests carry an admin key (every operation is
reachable) against one seeded database; valid ids come from the document's examples.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from carbonflow.embedded.postgres import PostgresServer
from tests.support.api_support import MINE, _database, make_app, seed

pytestmark = pytest.mark.integration

# Examples per operation and generation mode: 18 operations × 2 modes × 8 = 288 at most.
EXAMPLES = 8
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@dataclass
class Target:
    app: FastAPI
    token: str


@pytest.fixture(scope="module")
def target(pg_server: PostgresServer, migrated_template: str) -> Iterator[Target]:
    db = _database(pg_server, migrated_template)
    try:
        seeded = seed(pg_server.url_for(db.name))
        yield Target(make_app(seeded.url), seeded.tokens["admin"])
    finally:
        db.drop()


def _httpx_kwargs(client: TestClient, case: Case[Any], headers: dict[str, str]) -> dict[str, Any]:
    """The case as arguments of ``TestClient.request``.

    Schemathesis' own ASGI transport is built on ``requests`` and breaks with urllib3 2.8
    (``TrafficPolice`` pools); the Starlette test client sends the same request instead.
    """
    given = case.as_transport_kwargs(base_url="http://testserver", headers=headers)
    kwargs: dict[str, Any] = {
        k: given[k] for k in ("method", "url", "headers", "params") if k in given
    }
    if given.get("cookies"):
        client.cookies.update(given["cookies"])
    if "json" in given:
        kwargs["json"] = given["json"]
    elif isinstance(given.get("data"), (bytes, str)):
        kwargs["content"] = given["data"]
    elif given.get("data") is not None:
        kwargs["data"] = given["data"]
    return kwargs


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_api_conforms_to_its_openapi_document(target: Target, mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", target.app)
    client = TestClient(target.app, raise_server_exceptions=False)
    headers = {"Authorization": f"Bearer {target.token}"}
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    sent: list[int] = []
    assert len(operations) >= 18
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Case[Any]) -> None:
            response = client.request(**_httpx_kwargs(client, case, headers))
            sent.append(response.status_code)
            case.validate_response(response, checks=CHECKS, headers=headers)

        try:
            run()
        except Unsatisfiable:
            # Nothing to make invalid: the operation takes no parameters and no body.
            assert mode is GenerationMode.NEGATIVE, operation.label
    print(f"{mode.value}: {len(sent)} requests, statuses {sorted(set(sent))}")
    assert len(sent) >= 80


# Every month-like parameter, with the example mine and its organisation in the path so the
# request reaches the ledger, indicator and flow code: years 1…9999 (the 2020 baseline, 1999,
# years without a published factor), and text of any shape.
MONTHS = st.one_of(
    st.builds(lambda y, m: f"{y:04d}-{m:02d}", st.integers(1, 9999), st.integers(1, 12)),
    st.sampled_from(["2020-01", "2020-12", "1999-01", "2024-06", "2020-13", "2020-00", "0000-01"]),
    # printable text: a client cannot put control characters in a URL at all
    st.text(st.characters(min_codepoint=32, blacklist_categories=("Cc", "Cs")), max_size=12),
)
PERIOD_PARAMETERS = ("month", "period", "year", "start", "end")


def _with_months(case: Case[Any], value: str) -> Case[Any]:
    for where in (case.path_parameters, case.query):
        if where is None:
            continue
        for name in PERIOD_PARAMETERS:
            if name in where:
                where[name] = value
        if "site_id" in where:
            where["site_id"] = MINE
        if "org_id" in where:
            where["org_id"] = "jinzhong-coal"
    return case


def test_no_month_or_period_value_gives_a_server_error(target: Target) -> None:
    """Issue 15: ledgers, indicators and flows for any month — 2020, 1999 or 9999 — answer
    without a 5xx (a fallback factor is flagged, a malformed month is a 4xx)."""
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", target.app)
    client = TestClient(target.app, raise_server_exceptions=False)
    headers = {"Authorization": f"Bearer {target.token}"}
    operations = [
        op
        for op in (result.ok() for result in schema.get_all_operations())  # type: ignore[union-attr]
        if op.method.upper() == "GET"
        and any(p.name in PERIOD_PARAMETERS for p in op.iter_parameters())
    ]
    statuses: list[int] = []
    assert len(operations) >= 12
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=GenerationMode.POSITIVE), month=MONTHS)
        @settings(
            max_examples=25,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Case[Any], month: str) -> None:
            response = client.request(**_httpx_kwargs(client, _with_months(case, month), headers))
            statuses.append(response.status_code)
            assert response.status_code < 500, (case.operation.label, month, response.text[:300])

        run()
    print(f"months: {len(statuses)} requests, statuses {sorted(set(statuses))}")
    assert 200 in statuses and any(400 <= s < 500 for s in statuses)

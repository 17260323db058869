"""The OpenAPI document: FastAPI's, plus the problem-details schema every error response uses.

The served document (``/api/v1/openapi.json``) and the checked-in ``services/api/openapi.json``
must be equal (a test checks it); ``carbonflow api --write-openapi`` rewrites the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from services.api.problems import Problem

CHECKED_IN = Path(__file__).with_name("openapi.json")

TAGS: list[dict[str, Any]] = [
    {"name": "access", "description": "The key making the request."},
    {"name": "registry", "description": "Sites, organisations, nodes and devices."},
    {
        "name": "live",
        "description": "Latest readings with their age, power and methane now, a live stream.",
    },
    {"name": "rejections", "description": "Readings ingest refused, with the stated reason."},
    {
        "name": "green power",
        "description": "The green-power register: contracts, direct supply, certificates.",
    },
    {
        "name": "carbon",
        "description": "Energy, tce and carbon time series by site, organisation, node, carrier"
        " and scope; per-device energy.",
    },
    {
        "name": "flows",
        "description": "The energy → carbon → product graph of a period, ready for a Sankey.",
    },
    {
        "name": "indicators",
        "description": "Indicators against their targets with status and trend, budgets and"
        " early-warning events.",
    },
    {"name": "factors", "description": "The emission-factor library and the factor sets used."},
    {
        "name": "ledgers",
        "description": "Monthly emission ledgers (碳排放台账): draft, close, revisions, exports.",
    },
    {
        "name": "regulator",
        "description": "Aggregates, compliance and completeness across the granted sites.",
    },
    {"name": "live view", "description": "Data of the live web page served at /view/."},
    {"name": "service", "description": "Health (no key needed)."},
]


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """The document served at ``/api/v1/openapi.json`` (built once per app)."""
    if app.openapi_schema:
        return app.openapi_schema
    document = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
        tags=TAGS,
    )
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(problem.pop("$defs", {}))
    schemas["Problem"] = problem
    app.openapi_schema = document
    return document


def render(document: dict[str, Any]) -> str:
    """The checked-in form: 2-space indent, UTF-8 text as is, a final newline."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"

"""The API against a real PostgreSQL: the access matrix (every route × every role), what each
key sees, live values, rejections, the green register, audit log, rate limits, problems.

Most tests share one seeded database and app (``api``), read-only; tests that write get their
own (``fresh``). The wall clock is fixed at ``NOW`` so ages and freshness are exact.
"""

from __future__ import annotations

import gc
import importlib
import json
from dataclasses import fields
from datetime import date, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from carbonflow.domain.indicators.live import LIVE_METRICS, DeviceFreshness, LatestValue
from carbonflow.storage import readings as readings_db
from carbonflow.storage.access import create_key, revoke_key
from carbonflow.storage.db import make_engine
from services.api.app import freeze_startup_heap
from services.api.schemas import DeviceFreshnessOut, LiveSnapshotOut
from services.api.tokens import new_key
from tests.support.api_cases_admin import CASES as ADMIN_CASES
from tests.support.api_cases_alarms import CASES as ALARM_CASES
from tests.support.api_cases_carbon import CASES as CARBON_CASES
from tests.support.api_cases_green import CASES as GREEN_CASES
from tests.support.api_cases_ledger import CASES as LEDGER_CASES
from tests.support.api_cases_push import CASES as PUSH_CASES
from tests.support.api_cases_trace import CASES as TRACE_CASES
from tests.support.api_cases_view import CASES as VIEW_CASES
from tests.support.api_support import (
    GREEN_BODY,
    MINE,
    NOW,
    PARK,
    ROLES,
    Api,
    Case,
    M,
    P,
    S,
    api,
    assert_problem,
    fresh,
    make_app,
    seed,
)

pytestmark = pytest.mark.integration

# The frozen SQL of revision 0021 (the module's name starts with a digit).
ASSIGN_HOLDERS: str = importlib.import_module(
    "carbonflow.storage.migrations.versions.0021_green_holders"
).ASSIGN_HOLDERS

__all__ = ["api", "fresh"]  # fixtures, used by name


# The core routes; the calc, ledger and view routes add theirs (tests/api_cases_*.py).
#          method    path                                             adm  op   ent  reg
CORE_CASES = (
    Case("GET", "/api/v1/me",                                         200, 200, 200, 200),
    Case("GET", S,                                                    200, 200, 200, 200),
    Case("GET", f"{S}/nowhere",                                       404, 404, 404, 404),
    Case("GET", f"{S}/Not_A_Site",                                    422, 422, 422, 422),
    Case("GET", M,                                                    200, 200, 404, 200),
    Case("GET", P,                                                    200, 404, 200, 404),
    Case("GET", f"{M}/organisations",                                 200, 200, 404, 200),
    Case("GET", f"{P}/organisations",                                 200, 404, 200, 404),
    Case("GET", f"{P}/organisations/cathode-plant",                   200, 404, 200, 404),
    Case("GET", f"{P}/organisations/data-centre",                     200, 404, 404, 404),
    Case("GET", f"{M}/nodes",                                         200, 200, 404, 200),
    Case("GET", f"{P}/nodes/cathode-line",                            200, 404, 200, 404),
    Case("GET", f"{P}/nodes/dc-it-halls",                             200, 404, 404, 404),
    Case("GET", f"{P}/nodes/grid-220kv",                              200, 404, 404, 404),
    Case("GET", f"{M}/devices",                                       200, 200, 404, 200),
    Case("GET", f"{M}/devices/grid-line-1",                           200, 200, 404, 200),
    Case("GET", f"{P}/devices/cathode-kilns",                         200, 404, 200, 404),
    Case("GET", f"{P}/devices/dc-incomer-a",                          200, 404, 404, 404),
    Case("GET", f"{M}/live",                                          200, 200, 404, 200),
    Case("GET", f"{P}/live",                                          200, 404, 200, 404),
    Case("GET", f"{M}/live/readings",                                 200, 200, 404, 200),
    Case("GET", f"{P}/live/readings",                                 200, 404, 200, 404),
    Case("GET", f"{M}/live/power",                                    200, 200, 404, 200),
    Case("GET", f"{P}/live/power",                                    200, 404, 200, 404),
    Case("GET", f"{M}/live/methane",                                  200, 200, 404, 200),
    Case("GET", f"{P}/live/methane",                                  404, 404, 404, 404),
    Case("GET", f"{M}/live/stream",                                   200, 200, 404, 200),
    Case("GET", f"{M}/rejections",                                    200, 200, 403, 200),
    Case("GET", f"{P}/rejections",                                    200, 404, 403, 404),
    Case("GET", "/api/v1/rejections/summary",                         200, 200, 403, 200),
    Case("GET", "/api/v1/rejections/unassigned",                      200, 403, 403, 403),
    Case("GET", f"{M}/green-instruments",                             200, 200, 404, 200),
    Case("GET", f"{P}/green-instruments",                             200, 404, 200, 404),
    Case("GET", f"{P}/green-instruments/GEC-CATHODE-1",               200, 404, 200, 404),
    Case("GET", f"{P}/green-instruments/PPA-DC-1",                    200, 404, 404, 404),
    Case("GET", f"{M}/green-instruments/GEC-MINE-1",                  200, 200, 404, 200),
    Case("PUT", f"{M}/green-instruments/NEW-1",                      None, 403, 404, 403,
         {**GREEN_BODY, "org_id": "jinzhong-coal"}),
    Case("PUT", f"{P}/green-instruments/PPA-DC-1",                    422, 403, 409, 403,
         GREEN_BODY),
    Case("PUT", f"{P}/green-instruments/GEC-CATHODE-1",               422, 403, None, 403,
         GREEN_BODY),
    Case("DELETE", f"{P}/green-instruments/PPA-DC-1",                None, 403, 404, 403),
    Case("DELETE", f"{M}/green-instruments/GEC-MINE-1",              None, 403, 404, 403),
    Case("POST", S,                                                   422, 403, 403, 403),
    Case("DELETE", M,                                                 405, 405, 405, 405),
    Case("PATCH", f"{M}/green-instruments/GEC-MINE-1",                405, 405, 405, 405),
    Case("GET", "/api/v1/nowhere",                                    404, 404, 404, 404),
    Case("GET", "/health",                                            200, 200, 200, 200,
         public=True),
    Case("GET", "/api/v1/openapi.json",                               200, 200, 200, 200,
         public=True),
)  # fmt: skip


MATRIX = (
    CORE_CASES
    + CARBON_CASES
    + LEDGER_CASES
    + VIEW_CASES
    + PUSH_CASES
    + ALARM_CASES
    + ADMIN_CASES
    + GREEN_CASES
    + TRACE_CASES
)

# A cell whose expectation is None is a successful write: it would change the shared fixture,
# so it is left out here and covered by the write tests, each on a database of its own.
_CELLS = [(case, who) for case in MATRIX for who in ROLES if case.expected(who) is not None]


@pytest.mark.parametrize(
    ("case", "who"), _CELLS, ids=[f"{c.method} {c.path}-{w}" for c, w in _CELLS]
)
def test_access_matrix(api: Api, case: Case, who: str) -> None:
    expected = case.expected(who)
    assert expected is not None
    response = api.client.request(
        case.method,
        case.path,
        headers=api.headers(who),
        json=case.body,
    )
    assert response.status_code == expected, response.text
    if expected >= 400:
        body = assert_problem(response, expected)
        if expected == 401:
            assert response.headers["www-authenticate"].startswith("Bearer")
        if expected == 405:
            assert "allow" in response.headers
        assert (
            body["type"]
            == {
                401: "urn:carbonflow:problem:unauthorized",
                403: "urn:carbonflow:problem:forbidden",
                404: "urn:carbonflow:problem:not-found",
                405: "about:blank",
                409: "urn:carbonflow:problem:conflict",
                422: "urn:carbonflow:problem:validation",
            }[expected]
        )


def test_the_matrix_covers_every_route_and_method(api: Api) -> None:
    document = api.client.get("/api/v1/openapi.json").json()
    templates = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in ("get", "put", "post", "delete", "patch")
    }
    covered = set()
    for case in MATRIX:
        for method, template in templates:
            parts, concrete = template.split("/"), case.path.split("/")
            if (
                method == case.method
                and len(parts) == len(concrete)
                and all(p == c or p.startswith("{") for p, c in zip(parts, concrete, strict=True))
            ):
                covered.add((method, template))
    assert templates - covered == set()


# --------------------------------------------------------------------------------------------
# What each key sees
# --------------------------------------------------------------------------------------------


def _ids(response: Any, key: str) -> list[str]:
    assert response.status_code == 200, response.text
    return [item[key] for item in response.json()["items"]]


def test_sites_listed_are_the_keys_sites_with_counts_of_what_it_may_see(api: Api) -> None:
    assert _ids(api.get("admin", S), "site_id") == [PARK, MINE]
    assert _ids(api.get("operator", S), "site_id") == [MINE]
    assert _ids(api.get("regulator", S), "site_id") == [MINE]
    park = api.get("enterprise", S).json()["items"]
    assert [s["site_id"] for s in park] == [PARK]
    # The cathode plant: 1 organisation, 3 nodes, 8 devices (of 4, 26 and 44 in the park).
    assert (park[0]["organisation_count"], park[0]["node_count"], park[0]["device_count"]) == (
        1,
        3,
        8,
    )
    whole = api.get("admin", P).json()
    assert (whole["organisation_count"], whole["node_count"], whole["device_count"]) == (4, 26, 44)


def test_enterprise_lists_only_its_own_organisation_nodes_devices(api: Api) -> None:
    assert _ids(api.get("enterprise", f"{P}/organisations"), "org_id") == ["cathode-plant"]
    nodes = _ids(api.get("enterprise", f"{P}/nodes"), "node_id")
    assert nodes == ["cathode-line", "cathode-substation", "cathode-utilities"]
    devices = api.get("enterprise", f"{P}/devices").json()["items"]
    assert len(devices) == 8 and {d["org_id"] for d in devices} == {"cathode-plant"}
    # Asking for another organisation's rows gives nothing, not an error that confirms them.
    assert (
        _ids(api.get("enterprise", f"{P}/devices", params={"org_id": "data-centre"}), "device_id")
        == []
    )
    readings = api.get("enterprise", f"{P}/live/readings", params={"device_id": "dc-incomer-a"})
    assert _ids(readings, "device_id") == []
    assert _ids(api.get("enterprise", f"{P}/green-instruments"), "instrument_id") == [
        "GEC-CATHODE-1"
    ]
    power = api.get("enterprise", f"{P}/live/power").json()["groups"]
    # 0.5 × 28 000 = 14 000 kW of the cathode incomer; the data centre's 0.25 × 42 000 is not
    # here. The plant's heat meter has not reported: 0 kW from 0 of 1 devices.
    assert [(g["carrier"], g["role"], g["power_kw"], g["devices_reporting"]) for g in power] == [
        ("electricity", "consumption", 14_000.0, 1),
        ("heat", "consumption", 0.0, 0),
    ]


def test_device_has_its_metrics_with_units(api: Api) -> None:
    device = api.get("operator", f"{M}/devices/drainage-high").json()
    assert device["counter_modulus"] == 100_000_000
    metrics = {m["name"]: m for m in device["metrics"]}
    assert metrics["mixture_flow_nm3_min"] == {
        "name": "mixture_flow_nm3_min",
        "unit": "Nm3/min",
        "kind": "gauge",
        "rated_max": 300.0,
    }
    assert metrics["ch4_nm3"]["unit"] == "Nm3" and metrics["ch4_nm3"]["kind"] == "counter"


def test_device_filters(api: Api) -> None:
    methane = api.get("admin", f"{M}/devices", params={"carrier": "coal_mine_methane"})
    assert len(_ids(methane, "device_id")) == 8
    drained = api.get("admin", f"{M}/devices", params={"role": "methane_drained"})
    assert _ids(drained, "device_id") == ["drainage-high", "drainage-low"]
    assert _ids(api.get("admin", f"{M}/devices", params={"status": "inactive"}), "device_id") == []
    assert_problem(api.get("admin", f"{M}/devices", params={"role": "nonsense"}), 422)


def test_pagination_walks_every_device_once_with_links(api: Api) -> None:
    seen: list[str] = []
    path: str | None = f"{M}/devices?role=consumption&limit=7"
    pages = 0
    while path is not None:
        body = api.get("admin", path).json()
        seen += [d["device_id"] for d in body["items"]]
        assert body["links"]["self"] == path or pages == 0
        assert "role=consumption" in body["links"]["self"]
        assert (body["links"]["prev"] is None) == (body["offset"] == 0)
        path = body["links"]["next"]
        pages += 1
    # 18 consumption devices at the mine: pages of 7, 7, 4.
    assert pages == 3 and len(seen) == 18 and len(set(seen)) == 18 and seen == sorted(seen)
    zero = assert_problem(api.get("admin", f"{M}/devices", params={"limit": 0, "offset": -1}), 422)
    assert zero["type"] == "urn:carbonflow:problem:validation"
    assert [e["location"] for e in zero["errors"]] == [["query", "limit"], ["query", "offset"]]
    assert_problem(api.get("admin", f"{M}/devices", params={"limit": 1001}), 422)


# --------------------------------------------------------------------------------------------
# Live
# --------------------------------------------------------------------------------------------


def test_latest_readings_with_age_and_multiplier(api: Api) -> None:
    body = api.get("operator", f"{M}/live/readings", params={"device_id": "grid-line-1"}).json()
    items = {r["metric"]: r for r in body["items"]}
    assert set(items) == {"energy_export_kwh", "energy_import_kwh", "power_kw"}
    power = items["power_kw"]
    # The newest of two readings (5 s and 65 s old): 0.05 × 132 000 = 6 600 kW.
    assert power["raw_value"] == 0.05 and power["multiplier"] == 132_000
    assert power["value"] == pytest.approx(6_600.0)
    assert power["unit"] == "kW" and power["age_s"] == 5.0
    assert items["energy_export_kwh"]["ts"] is None  # never reported
    assert items["energy_export_kwh"]["age_s"] is None
    ch4 = api.get(
        "operator", f"{M}/live/readings", params={"device_id": "drainage-high", "metric": "ch4_pct"}
    ).json()["items"]
    assert [(r["value"], r["unit"], r["multiplier"]) for r in ch4] == [(32.0, "%", 1.0)]
    gauges = api.get("operator", f"{M}/live/readings", params={"metric_kind": "counter"}).json()
    assert {r["metric_kind"] for r in gauges["items"]} == {"counter"}


def test_site_power_now(api: Api) -> None:
    body = api.get("regulator", f"{M}/live/power").json()
    assert body["as_of"] == "2026-11-23T06:15:00Z" and body["stale_after_s"] == 900
    groups = {g["role"]: g for g in body["groups"]}
    # grid import: 0.05 × 132 000 + 0.04 × 132 000 = 6 600 + 5 280 = 11 880 kW
    assert groups["grid_import"]["power_kw"] == pytest.approx(11_880.0)
    assert groups["grid_import"]["devices_reporting"] == 2
    # PV: pv-subsidence-b 0.1 × 28 000 = 2 800 kW; pv-subsidence-a is an hour old (stale),
    # the three rooftop inverters never reported.
    pv = groups["generation_pv"]
    assert pv["power_kw"] == pytest.approx(2_800.0)
    assert (pv["devices"], pv["devices_reporting"]) == (5, 1)
    assert "pv-subsidence-a" in pv["stale_device_ids"]


def test_methane_now(api: Api) -> None:
    body = api.get("operator", f"{M}/live/methane").json()
    # drained 160 × 32 % + 140 × 12 % = 51.2 + 16.8 = 68.0; utilised 85 × 32 % = 27.2
    assert body["drained_ch4_nm3_min"] == pytest.approx(68.0)
    assert body["utilised_ch4_nm3_min"] == pytest.approx(27.2)
    assert body["utilisation_rate"] == pytest.approx(27.2 / 68.0)  # 0.4
    # Nothing reports from the shafts, flare or vent: their devices are listed as unmeasured.
    assert body["ventilation_ch4_nm3_min"] == 0.0 and body["drainage_rate"] == pytest.approx(1.0)
    flows = {f["role"]: f for f in body["flows"]}
    assert flows["methane_utilised"]["unmeasured_device_ids"] == ["methane-to-boiler"]
    assert flows["methane_ventilation"]["devices_reporting"] == 0


def test_live_snapshot_and_stream(api: Api) -> None:
    snapshot = LiveSnapshotOut.model_validate(api.get("regulator", f"{M}/live").json())
    assert snapshot.methane is not None and snapshot.methane.drained_ch4_nm3_min == 68.0
    # 12 mine readings on 11 device metrics, all within 900 s but pv-subsidence-a's.
    assert snapshot.freshness.fresh == 10 and snapshot.freshness.stale == 1
    with api.client.stream("GET", f"{M}/live/stream", headers=api.headers("operator")) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        text = "".join(r.iter_text())
    events = [e for e in text.split("\n\n") if e]
    assert events[0] == "retry: 1000"
    # interval 1 s, at most 2 s: two snapshots, then the stream ends by itself.
    snapshots = [e for e in events[1:] if e.startswith("event: snapshot")]
    assert len(snapshots) == 2
    for number, event in enumerate(snapshots, start=1):
        lines = dict(line.split(": ", 1) for line in event.split("\n"))
        assert lines["id"] == str(number)
        assert LiveSnapshotOut.model_validate_json(lines["data"]) == snapshot


@pytest.mark.parametrize(
    ("site", "org", "metrics"),
    [
        (MINE, None, None),
        (MINE, None, LIVE_METRICS),
        (PARK, "cathode-plant", None),
        (PARK, None, ()),
    ],
)
def test_latest_values_are_the_latest_readings_as_the_domain_reads_them(
    api: Api, site: str, org: str | None, metrics: tuple[str, ...] | None
) -> None:
    # latest_values has its own lean query (storage/readings.py): the same rows, same order.
    engine = make_engine(api.seeded.url)
    try:
        with engine.connect() as conn:
            values = readings_db.latest_values(conn, site, org_id=org, limit=500, metrics=metrics)
            rows = readings_db.latest_readings(
                conn, site, org_id=org, limit=500, offset=0, metrics=metrics
            )
    finally:
        engine.dispose()
    assert values == [
        LatestValue(
            r.device_id, r.carrier, r.role, r.metric, r.ts, r.value, r.multiplier,
            r.report_interval_s,
        )
        for r in rows
    ]  # fmt: skip
    assert (values != []) == (metrics != ())
    assert any(v.ts is not None for v in values) == (metrics != ())


def test_a_snapshot_device_carries_every_field_of_the_domains_device_freshness() -> None:
    # The route copies them one by one (services/api/routers/live.py): none may be forgotten.
    assert list(DeviceFreshnessOut.model_fields) == [f.name for f in fields(DeviceFreshness)]


def test_the_heap_at_startup_is_frozen_once_per_process() -> None:
    # Out of the full collections' reach (docs/performance.md, "The live snapshot").
    freeze_startup_heap()
    frozen = gc.get_freeze_count()
    assert frozen > 0
    freeze_startup_heap()
    assert gc.get_freeze_count() == frozen


def test_too_many_streams_is_a_503(api: Api) -> None:
    context = api.app.state.api
    context.open_streams = context.settings.stream_max_open
    try:
        response = api.get("operator", f"{M}/live/stream")
    finally:
        context.open_streams = 0
    assert_problem(response, 503)
    assert response.headers["retry-after"] == "1"


# --------------------------------------------------------------------------------------------
# Rejections
# --------------------------------------------------------------------------------------------


def test_rejection_summary_counts_per_site_reason_and_device(api: Api) -> None:
    # Seeded: 3 rejections at the mine (one device each), 1 at the park, 1 on an unknown topic.
    admin = api.get("admin", "/api/v1/rejections/summary").json()
    groups = {(g["site_id"], g["reason"], g["device_id"]): g for g in admin["groups"]}
    assert admin["total_rejections"] == 5 and not admin["truncated"]
    assert (MINE, "counter_backwards", "grid-line-1") in groups
    assert (PARK, "unit_mismatch", "cathode-kilns") in groups
    unknown = groups[(None, "unknown_topic", None)]
    assert unknown["topic"] == "carbonflow/v1/None/None/telemetry" and unknown["rejections"] == 1
    assert groups[(MINE, "counter_backwards", "grid-line-1")]["topic"] is None
    # The admin reads the message itself.
    unassigned = api.get("admin", "/api/v1/rejections/unassigned").json()["items"]
    assert [(r["reason"], r["topic"]) for r in unassigned] == [
        ("unknown_topic", "carbonflow/v1/None/None/telemetry")
    ]
    assert unassigned[0]["payload_excerpt"] == "{}"
    # An operator of the mine sees the mine's only: no park, no topic of no site.
    operator = api.get("operator", "/api/v1/rejections/summary").json()
    assert {g["site_id"] for g in operator["groups"]} == {MINE}
    assert operator["total_rejections"] == 3
    recent = api.get(
        "regulator",
        "/api/v1/rejections/summary",
        params={"since": (NOW - timedelta(hours=1)).isoformat()},
    ).json()
    assert sorted(g["reason"] for g in recent["groups"]) == ["counter_backwards", "unknown_metric"]
    backwards = api.get(
        "admin",
        "/api/v1/rejections/summary",
        params={"since": NOW.isoformat(), "until": "2026-01-01T00:00Z"},
    )
    assert_problem(backwards, 422)


def test_rejections_newest_first_and_filtered(api: Api) -> None:
    body = api.get("operator", f"{M}/rejections").json()
    assert [r["reason"] for r in body["items"]] == [
        "counter_backwards",
        "unknown_metric",
        "invalid_value",
    ]
    first = body["items"][0]
    assert first["unit"] == "kWh" and first["value"] == 1.5 and first["device_id"] == "grid-line-1"
    assert body["items"][1]["unit"] is None  # frequency_hz has no unit the platform knows
    by_reason = api.get("regulator", f"{M}/rejections", params={"reason": "unknown_metric"})
    assert _ids(by_reason, "device_id") == ["grid-line-2"]
    by_device = api.get("admin", f"{M}/rejections", params={"device_id": "grid-line-1"})
    assert [r["reason"] for r in by_device.json()["items"]] == [
        "counter_backwards",
        "invalid_value",
    ]
    recent = api.get(
        "admin",
        f"{M}/rejections",
        params={"since": (NOW - timedelta(hours=1)).isoformat(), "until": NOW.isoformat()},
    )
    assert [r["reason"] for r in recent.json()["items"]] == ["counter_backwards", "unknown_metric"]
    assert_problem(api.get("admin", f"{M}/rejections", params={"reason": "nonsense"}), 422)
    naive = api.get("admin", f"{M}/rejections", params={"since": "2026-11-23T06:00:00"})
    assert_problem(naive, 422)
    backwards = api.get(
        "admin", f"{M}/rejections", params={"since": NOW.isoformat(), "until": "2026-01-01T00:00Z"}
    )
    assert_problem(backwards, 422)


# --------------------------------------------------------------------------------------------
# Green register
# --------------------------------------------------------------------------------------------


def test_green_register_reads_and_filters(api: Api) -> None:
    listed = api.get("admin", f"{P}/green-instruments").json()["items"]
    assert [i["instrument_id"] for i in listed] == ["DIRECT-PARK", "GEC-CATHODE-1", "PPA-DC-1"]
    certificate = api.get("regulator", f"{M}/green-instruments/GEC-MINE-1").json()
    assert certificate["volume_mwh"] == 1200.0 and certificate["claimed_mwh"] == 600.0
    assert certificate["certificates"] == 1200 and certificate["valid_to"] == "2026-12-31"
    kinds = api.get("admin", f"{P}/green-instruments", params={"kind": "direct_supply"})
    assert _ids(kinds, "instrument_id") == ["DIRECT-PARK"]
    assert (
        _ids(
            api.get("admin", f"{P}/green-instruments", params={"valid_on": "2027-01-01"}),
            "instrument_id",
        )
        == []
    )


def test_admin_creates_replaces_and_deletes_instruments_audited(fresh: Api) -> None:
    path = f"{M}/green-instruments/GEC-2026-NEW"
    body = {**GREEN_BODY, "org_id": "jinzhong-coal"}
    created = fresh.client.put(path, headers=fresh.headers("admin"), json=body)
    assert created.status_code == 201, created.text
    assert created.json()["org_id"] == "jinzhong-coal" and created.json()["claimed_mwh"] == 50.0
    replaced = fresh.client.put(
        path, headers=fresh.headers("admin"), json={**body, "claimed_mwh": 80.0}
    )
    assert replaced.status_code == 200 and replaced.json()["claimed_mwh"] == 80.0
    # The calc service reads the same register.
    from carbonflow.storage.reference import green_instruments

    with psycopg.connect(fresh.seeded.url) as conn:
        records = {r.instrument_id: r for r in green_instruments(conn, MINE)}
    assert records["GEC-2026-NEW"].claimed_mwh == 80.0
    assert records["GEC-2026-NEW"].claim_end == date(2026, 3, 31)
    deleted = fresh.client.delete(path, headers=fresh.headers("admin"))
    assert deleted.status_code == 204
    assert_problem(fresh.get("admin", path), 404)
    assert_problem(fresh.client.delete(path, headers=fresh.headers("admin")), 404)
    with psycopg.connect(fresh.seeded.url) as conn:
        audit = conn.execute(
            "SELECT method, route, status, key_id FROM api_audit ORDER BY audit_id"
        ).fetchall()
    admin_id = fresh.seeded.key_ids["admin"]
    template = "/api/v1/sites/{site_id}/green-instruments/{instrument_id}"
    assert audit == [
        ("PUT", template, 201, admin_id),
        ("PUT", template, 200, admin_id),
        ("DELETE", template, 204, admin_id),
    ]


def test_every_instrument_has_one_holder(fresh: Api) -> None:
    # The mine has one organisation: an admin's entry without org_id is held by it.
    mine = fresh.client.put(
        f"{M}/green-instruments/GEC-2026-ONE", headers=fresh.headers("admin"), json=GREEN_BODY
    )
    assert mine.status_code == 201, mine.text
    assert mine.json()["org_id"] == "jinzhong-coal"
    # The park has several: without a holder the entry is refused (never site-wide), in
    # English and Chinese; naming the common account (park-energy) is accepted.
    path = f"{P}/green-instruments/PPA-COMMON-1"
    refused = fresh.client.put(path, headers=fresh.headers("admin"), json=GREEN_BODY)
    assert_problem(refused, 422)
    assert "holder" in refused.json()["detail"] and "持有者" in refused.json()["detail"]
    assert_problem(fresh.get("admin", path), 404)  # nothing written
    common = {**GREEN_BODY, "org_id": "park-energy"}
    held = fresh.client.put(path, headers=fresh.headers("admin"), json=common)
    assert held.status_code == 201, held.text
    assert held.json()["org_id"] == "park-energy"


def test_legacy_entries_without_holder_get_their_sites_default_holder(fresh: Api) -> None:
    # Revision 0021's update: the park's DIRECT-PARK (no holder) goes to the common account
    # (attribution common: park-energy), a mine's entry to its one organisation; entries with a
    # holder keep theirs; a second run changes nothing.
    with psycopg.connect(fresh.seeded.url) as conn:
        conn.execute(
            "INSERT INTO green_instrument (site_id, instrument_id, org_id, kind, evidence, "
            "volume_mwh, valid_from, valid_to, claimed_mwh, claim_start, claim_end) VALUES "
            "(%s, 'PPA-OLD', NULL, 'green_power_contract', 'settlement', 5, '2026-01-01', "
            "'2026-12-31', 5, '2026-01-01', '2026-12-31')",
            (MINE,),
        )
        assert conn.execute(ASSIGN_HOLDERS).rowcount == 2
        assert conn.execute(ASSIGN_HOLDERS).rowcount == 0
        rows = conn.execute("SELECT instrument_id, org_id FROM green_instrument").fetchall()
    assert {str(i): o for i, o in rows} == {
        "DIRECT-PARK": "park-energy", "GEC-CATHODE-1": "cathode-plant",
        "PPA-DC-1": "data-centre", "GEC-MINE-1": "jinzhong-coal", "PPA-OLD": "jinzhong-coal",
    }  # fmt: skip


def test_enterprise_writes_only_its_own_instruments(fresh: Api) -> None:
    path = f"{P}/green-instruments/GEC-CATHODE-2"
    created = fresh.client.put(path, headers=fresh.headers("enterprise"), json=GREEN_BODY)
    assert created.status_code == 201, created.text
    assert created.json()["org_id"] == "cathode-plant"  # its own, without saying so
    other = {**GREEN_BODY, "org_id": "data-centre"}
    assert_problem(fresh.client.put(path, headers=fresh.headers("enterprise"), json=other), 403)
    # Its own existing entry: replaced.
    own = fresh.client.put(
        f"{P}/green-instruments/GEC-CATHODE-1", headers=fresh.headers("enterprise"), json=GREEN_BODY
    )
    assert own.status_code == 200
    # Another organisation's entry: a conflict, and it is unchanged.
    taken = fresh.client.put(
        f"{P}/green-instruments/PPA-DC-1", headers=fresh.headers("enterprise"), json=GREEN_BODY
    )
    assert_problem(taken, 409)
    dc = fresh.get("admin", f"{P}/green-instruments/PPA-DC-1").json()
    assert dc["org_id"] == "data-centre" and dc["kind"] == "green_power_contract"
    assert fresh.client.delete(path, headers=fresh.headers("enterprise")).status_code == 204


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"claimed_mwh": 150.0}, "exceeds volume_mwh"),
        ({"valid_to": "2025-12-31"}, "valid_to is before valid_from"),
        ({"claim_end": "2025-12-31"}, "claim_end is before claim_start"),
        ({"volume_mwh": -1.0}, "volume_mwh"),
        ({"evidence": ""}, "evidence"),
        ({"kind": "offset"}, "kind"),
        ({"surprise": 1}, "surprise"),
        ({"org_id": "no-such-org"}, "not registered"),
    ],
)
def test_invalid_instruments_are_422_problems(
    fresh: Api, change: dict[str, Any], where: str
) -> None:
    body = {**GREEN_BODY, **change}
    response = fresh.client.put(
        f"{P}/green-instruments/BAD-1", headers=fresh.headers("admin"), json=body
    )
    problem = assert_problem(response, 422)
    assert problem["type"] == "urn:carbonflow:problem:validation"
    assert where in json.dumps(problem)
    assert_problem(fresh.get("admin", f"{P}/green-instruments/BAD-1"), 404)


def test_bad_instrument_id_and_bad_json(fresh: Api) -> None:
    bad_id = fresh.client.put(
        f"{P}/green-instruments/has%20space", headers=fresh.headers("admin"), json=GREEN_BODY
    )
    problem = assert_problem(bad_id, 422)
    assert problem["errors"][0]["location"] == ["path", "instrument_id"]
    not_json = fresh.client.put(
        f"{P}/green-instruments/OK-1",
        headers={**fresh.headers("admin"), "Content-Type": "application/json"},
        content=b"{not json",
    )
    assert_problem(not_json, 422)


# --------------------------------------------------------------------------------------------
# Audit log, key life cycle, rate limits, failures
# --------------------------------------------------------------------------------------------


def test_every_regulator_request_is_audited_with_its_parameters(fresh: Api) -> None:
    r = fresh.get("regulator", f"{M}/rejections", params={"reason": "unknown_metric", "limit": 5})
    assert r.status_code == 200
    assert fresh.get("regulator", f"{P}/devices").status_code == 404
    assert (
        fresh.client.put(
            f"{M}/green-instruments/X-1", headers=fresh.headers("regulator"), json=GREEN_BODY
        ).status_code
        == 403
    )
    assert fresh.client.delete(S, headers=fresh.headers("regulator")).status_code == 405
    assert fresh.get("operator", f"{M}/devices").status_code == 200  # not a regulator
    with psycopg.connect(fresh.seeded.url) as conn:
        rows = conn.execute(
            "SELECT at, key_id, role, method, route, path, path_params, query, status, client"
            " FROM api_audit ORDER BY audit_id"
        ).fetchall()
    regulator = fresh.seeded.key_ids["regulator"]
    assert [(r[1], r[2], r[3], r[4], r[8]) for r in rows] == [
        (regulator, "regulator", "GET", "/api/v1/sites/{site_id}/rejections", 200),
        (regulator, "regulator", "GET", "/api/v1/sites/{site_id}/devices", 404),
        (regulator, "regulator", "PUT",
         "/api/v1/sites/{site_id}/green-instruments/{instrument_id}", 403),
        (regulator, "regulator", "DELETE", "/api/v1/sites", 405),
    ]  # fmt: skip
    first = rows[0]
    assert first[0] == NOW
    assert first[5] == f"{M}/rejections"
    assert first[6] == {"site_id": MINE}
    assert first[7] == {"reason": ["unknown_metric"], "limit": ["5"]}
    assert first[9] == "testclient"
    assert rows[2][6] == {"site_id": MINE, "instrument_id": "X-1"}


def test_a_regulator_request_that_cannot_be_audited_is_refused(
    fresh: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    import services.api.app as app_module

    def broken(_conn: object, _entry: object) -> None:
        raise RuntimeError("audit table is gone")

    monkeypatch.setattr(app_module, "write_audit", broken)
    refused = fresh.get("regulator", f"{M}/devices")
    body = assert_problem(refused, 503)
    assert "audit" in body["detail"] and "items" not in refused.text
    assert fresh.get("operator", f"{M}/devices").status_code == 200
    metrics = fresh.client.get("/metrics").text
    assert "carbonflow_api_audit_failures_total 1.0" in metrics


def test_revoked_and_expired_keys_are_refused(fresh: Api) -> None:
    assert fresh.get("operator", "/api/v1/me").status_code == 200
    engine = make_engine(fresh.seeded.url)
    try:
        with engine.begin() as conn:
            assert revoke_key(conn, fresh.seeded.key_ids["operator"])
            assert not revoke_key(conn, fresh.seeded.key_ids["operator"])
            key = new_key()
            create_key(
                conn,
                key_id=key.key_id,
                secret_sha256=key.secret_sha256,
                role="operator",
                label="expired",
                site_ids=[MINE],
                expires_at=NOW - timedelta(seconds=1),
            )
    finally:
        engine.dispose()
    assert_problem(fresh.get("operator", "/api/v1/me"), 401)  # cache of 0 s: at once
    expired = fresh.client.get("/api/v1/me", headers={"Authorization": f"Bearer {key.token}"})
    assert_problem(expired, 401)
    # The token of one key with the key id of another is refused.
    forged = fresh.seeded.tokens["admin"][:16] + fresh.seeded.tokens["regulator"][16:]
    assert_problem(
        fresh.client.get("/api/v1/me", headers={"Authorization": f"Bearer {forged}"}), 401
    )
    assert_problem(fresh.client.get("/api/v1/me", headers={"Authorization": "Basic abc"}), 401)


def test_me_describes_the_key(api: Api) -> None:
    me = api.get("enterprise", "/api/v1/me").json()
    assert me["role"] == "enterprise" and me["site_ids"] == [PARK]
    assert me["org_id"] == "cathode-plant" and "write_green" in me["permissions"]
    assert "read_rejections" not in me["permissions"]
    admin = api.get("bootstrap", "/api/v1/me").json()
    assert admin["key_id"] == "bootstrap-admin" and admin["site_ids"] is None


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_rate_limit_429_with_retry_after_then_refill(database_url: str) -> None:
    seeded = seed(database_url)
    clock = FakeClock()
    app = make_app(
        database_url,
        settings={"CARBONFLOW_API_RATE_BURST": 2, "CARBONFLOW_API_RATE_PER_MINUTE": 30},
        clock=clock,
    )
    headers = {"Authorization": f"Bearer {seeded.tokens['regulator']}"}
    with TestClient(app, raise_server_exceptions=False) as client:
        assert [client.get("/api/v1/me", headers=headers).status_code for _ in range(2)] == [
            200,
            200,
        ]
        limited = client.get("/api/v1/me", headers=headers)
        body = assert_problem(limited, 429)
        assert body["type"] == "urn:carbonflow:problem:rate-limited"
        # 30 /min = 0.5 token/s; an empty bucket needs 1 / 0.5 = 2 s for one token.
        assert limited.headers["retry-after"] == "2"
        # Another key is not affected.
        other = {"Authorization": f"Bearer {seeded.tokens['operator']}"}
        assert client.get("/api/v1/me", headers=other).status_code == 200
        clock.t += 2.0
        assert client.get("/api/v1/me", headers=headers).status_code == 200
        assert client.get("/health").status_code == 200  # never limited
        metrics = client.get("/metrics").text
    assert (
        'carbonflow_api_requests_total{method="GET",route="/api/v1/me",status="429"} 1.0' in metrics
    )
    with psycopg.connect(database_url) as conn:
        statuses = [r[0] for r in conn.execute("SELECT status FROM api_audit ORDER BY audit_id")]
    assert statuses == [200, 200, 429, 200]  # the regulator's refused request is audited too


def test_unexpected_errors_are_500_problems_and_logged(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from carbonflow.storage import registry

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(registry, "list_sites", broken)
    body = assert_problem(api.get("admin", S), 500)
    assert body["type"] == "urn:carbonflow:problem:internal" and "boom" not in body["detail"]
    assert "boom" in caplog.text


def test_health_and_metrics(api: Api) -> None:
    health = api.client.get("/health").json()
    assert health["status"] == "ok" and health["schema_revision"] == health["expected_revision"]
    api.get("operator", f"{M}/devices/grid-line-1")
    metrics = api.client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert (
        'carbonflow_api_requests_total{method="GET",'
        'route="/api/v1/sites/{site_id}/devices/{device_id}",status="200"}' in metrics.text
    )
    assert "carbonflow_api_request_seconds_bucket" in metrics.text


def test_docs_load_swagger_ui_from_the_package_not_a_cdn(api: Api) -> None:
    import re

    page = api.client.get("/docs")
    assert page.status_code == 200
    # Every script, style sheet and icon of the page is served by this API (works offline).
    urls = re.findall(r"""(?:src|href)\s*[=:]\s*['"]([^'"]+)['"]""", page.text)
    assert urls and all(u.startswith("/") for u in urls), urls
    assert "cdn" not in page.text.lower()
    for url in urls:
        if url.startswith("/docs/assets/"):
            asset = api.client.get(url)
            assert asset.status_code == 200 and len(asset.content) > 500, url
    assert "swagger-ui-bundle.js" in page.text


def test_certificate_serials_are_unique_across_the_platform(fresh: Api) -> None:
    """Issue 15: the same certificates under a new id, or at a second site, are refused (409)
    naming the batch that holds them; 1 certificate = 1 MWh; a batch may be replaced."""
    # 100 certificates, held by the cathode plant (the park has several organisations)
    batch = {**GREEN_BODY, "serial_first": 1_000, "serial_last": 1_099, "org_id": "cathode-plant"}
    first = fresh.client.put(
        f"{P}/green-instruments/GEC-SERIAL-A", headers=fresh.headers("admin"), json=batch
    )
    assert first.status_code == 201, first.text
    assert (first.json()["serial_first"], first.json()["serial_last"]) == (1_000, 1_099)
    # the same batch replaced under its own id: not a conflict with itself
    again = fresh.client.put(
        f"{P}/green-instruments/GEC-SERIAL-A", headers=fresh.headers("admin"), json=batch
    )
    assert again.status_code == 200, again.text
    # one serial in common (1 099), under a new id at the same site, or at another site
    overlap = {**batch, "serial_first": 1_099, "serial_last": 1_198}
    for path, holder in (
        (f"{P}/green-instruments/GEC-SERIAL-B", "cathode-plant"),
        (f"{M}/green-instruments/GEC-SERIAL-A", "jinzhong-coal"),
    ):
        body = {**overlap, "org_id": holder}
        refused = fresh.client.put(path, headers=fresh.headers("admin"), json=body)
        problem = assert_problem(refused, 409)
        assert "'GEC-SERIAL-A' at site 'inner-mongolia-ordos-park'" in problem["detail"]
        assert "1000–1099" in problem["detail"]
    # adjacent serials are another batch
    adjacent = {**batch, "serial_first": 1_100, "serial_last": 1_199, "org_id": "jinzhong-coal"}
    ok = fresh.client.put(
        f"{M}/green-instruments/GEC-SERIAL-C", headers=fresh.headers("admin"), json=adjacent
    )
    assert ok.status_code == 201, ok.text
    # 100 serials are 100 certificates of 1 MWh: a batch saying otherwise is refused
    for wrong in ({"certificates": 99}, {"volume_mwh": 99.0}, {"serial_last": 999}):
        body = {**batch, "serial_first": 5_000, "serial_last": 5_099, **wrong}
        if "serial_last" in wrong:
            body["serial_first"] = 1_000
        refused = fresh.client.put(
            f"{P}/green-instruments/GEC-SERIAL-D", headers=fresh.headers("admin"), json=body
        )
        assert_problem(refused, 422)

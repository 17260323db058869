"""Site documents by API: every change a revision (who, when, why, diff), optimistic concurrency
with ETag / If-Match, every problem of an invalid document listed with nothing stored, devices
added, replaced and retired without losing history."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from carbonflow.sites.loader import EXAMPLES, load_site_file
from carbonflow.storage.registry_load import load_site
from tests.support.api_support import MINE, Api, assert_problem, fresh

pytestmark = pytest.mark.integration
__all__ = ["fresh"]  # fixtures, used by name

M = f"/api/v1/sites/{MINE}"
NEW_METER: dict[str, Any] = {
    "id": "feeder-7",
    "name": "6 kV feeder 7 meter",
    "kind": "electricity_meter",
    "carrier": "electricity",
    "role": "consumption",
    "node": "main-substation",
    "org": "jinzhong-coal",
    "serial": "3310099990001",
    "metrics": {"energy_import_kwh": "counter", "power_kw": {}},
}


def _device(url: str, device_id: str) -> tuple[bool, int] | None:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT d.active, count(dm.metric_id) FROM device d "
            "LEFT JOIN device_metric dm ON dm.device_pk = d.device_pk "
            "WHERE d.site_id = %s AND d.device_id = %s GROUP BY d.active",
            (MINE, device_id),
        ).fetchone()
    return None if row is None else (bool(row[0]), int(row[1]))


def test_a_device_added_by_api_is_registered_with_a_revision(fresh: Api) -> None:
    operator = fresh.headers("operator")
    current = fresh.client.get(f"{M}/document", headers=operator)
    assert current.status_code == 200 and current.headers["etag"] == '"r1"'
    added = fresh.client.post(
        f"{M}/devices",
        headers={**operator, "If-Match": '"r1"'},
        json={"device": NEW_METER, "reason": "new feeder commissioned"},
    )
    assert added.status_code == 201, added.text
    body = added.json()
    assert added.headers["etag"] == '"r2"' and body["revision"] == 2
    assert body["author"] == f"{fresh.seeded.key_ids['operator']} (test operator)"
    assert body["reason"] == "new feeder commissioned" and body["source"] == "api"
    assert [(c["path"], c["op"]) for c in body["diff"]] == [("devices[feeder-7]", "added")]
    assert _device(fresh.seeded.url, "feeder-7") == (True, 2)  # in the registry, two metrics
    listing = fresh.client.get(f"{M}/revisions", headers=operator).json()["items"]
    assert [(r["revision"], r["source"], r["changes"]) for r in listing] == [
        (2, "api", 1),
        (1, "file", 0),
    ]
    # the write is in the audit log
    with psycopg.connect(fresh.seeded.url) as conn:
        audit = conn.execute("SELECT method, route, status FROM api_audit").fetchall()
    assert audit == [("POST", "/api/v1/sites/{site_id}/devices", 201)]


def test_a_stale_etag_is_412_and_a_missing_one_428(fresh: Api) -> None:
    admin = fresh.headers("admin")
    document = fresh.client.get(f"{M}/document", headers=admin).json()["document"]
    first = fresh.client.post(
        f"{M}/devices", headers=admin, json={"device": NEW_METER, "reason": "someone else"}
    )
    assert first.status_code == 201
    stale = fresh.client.put(
        f"{M}/document",
        headers={**admin, "If-Match": '"r1"'},
        json={"document": document, "reason": "my edit of r1"},
    )
    assert "r2" in assert_problem(stale, 412)["detail"]
    assert_problem(
        fresh.client.put(
            f"{M}/document", headers=admin, json={"document": document, "reason": "x" * 3}
        ),
        428,
    )
    # the stale edit stored nothing: feeder-7 is still there
    assert _device(fresh.seeded.url, "feeder-7") == (True, 2)


def test_an_invalid_document_lists_every_problem_and_stores_nothing(fresh: Api) -> None:
    admin = fresh.headers("admin")
    document = fresh.client.get(f"{M}/document", headers=admin).json()["document"]
    document["devices"][0]["carrier"] = "plasma"
    document["devices"][1]["node"] = "nowhere"
    document["site"]["colour"] = "red"
    checked = fresh.client.post(f"{M}/document/check", headers=admin, json={"document": document})
    assert checked.status_code == 200 and checked.json()["valid"] is False
    paths = [e["path"] for e in checked.json()["errors"]]
    assert {"devices[0].carrier", "site.colour"} <= set(paths), paths
    applied = fresh.client.put(
        f"{M}/document",
        headers={**admin, "If-Match": '"r1"'},
        json={"document": document, "reason": "broken"},
    )
    body = assert_problem(applied, 422)
    locations = [".".join(str(p) for p in e["location"]) for e in body["errors"]]
    assert "body.document.devices[0].carrier" in locations and len(locations) >= 2
    revisions = fresh.client.get(f"{M}/revisions", headers=admin).json()["items"]
    assert len(revisions) == 1


def test_check_of_a_valid_document_lists_the_changes_and_stores_nothing(fresh: Api) -> None:
    admin = fresh.headers("admin")
    document = fresh.client.get(f"{M}/document", headers=admin).json()["document"]
    document["devices"][0]["multiplier"] = 120_000.0
    checked = fresh.client.post(f"{M}/document/check", headers=admin, json={"document": document})
    assert checked.json() == {
        "valid": True,
        "errors": [],
        "changes": [
            {
                "path": "devices[grid-line-1].multiplier",
                "op": "changed",
                "before": 132_000.0,
                "after": 120_000.0,
            }
        ],
    }
    assert len(fresh.client.get(f"{M}/revisions", headers=admin).json()["items"]) == 1


def test_replace_a_meter_and_retire_a_device_keeping_its_history(fresh: Api) -> None:
    admin = fresh.headers("admin")
    added = fresh.client.post(
        f"{M}/devices", headers=admin, json={"device": NEW_METER, "reason": "commissioned"}
    )
    assert added.status_code == 201
    with psycopg.connect(fresh.seeded.url) as conn:
        conn.execute(
            "INSERT INTO reading (device_pk, metric_id, ts, value, received_at) "
            "SELECT d.device_pk, m.metric_id, now(), 42.0, now() FROM device d, metric m "
            "WHERE d.device_id = 'feeder-7' AND m.name = 'energy_import_kwh'"
        )
    replaced = fresh.client.put(
        f"{M}/devices/feeder-7",
        headers=admin,
        json={"device": {**NEW_METER, "serial": "3310099990002"}, "reason": "meter swapped"},
    )
    assert replaced.status_code == 200, replaced.text
    assert [c["path"] for c in replaced.json()["diff"]] == ["devices[feeder-7].serial"]
    retired = fresh.client.post(
        f"{M}/devices/feeder-7/retire", headers=admin, json={"reason": "feeder dismantled"}
    )
    assert retired.status_code == 200, retired.text
    assert retired.json()["revision"] == 4
    # out of the document, still in the registry (inactive) with its readings
    assert _device(fresh.seeded.url, "feeder-7") == (False, 2)
    with psycopg.connect(fresh.seeded.url) as conn:
        kept = conn.execute(
            "SELECT count(*) FROM reading r JOIN device d USING (device_pk) "
            "WHERE d.device_id = 'feeder-7'"
        ).fetchone()
    assert kept == (1,)
    # its id is not reused for another device
    again = fresh.client.post(
        f"{M}/devices", headers=admin, json={"device": NEW_METER, "reason": "reuse"}
    )
    assert "retired" in assert_problem(again, 409)["detail"]
    # an old revision is still readable, with its document
    second = fresh.client.get(f"{M}/revisions/2", headers=admin).json()
    assert any(d["id"] == "feeder-7" for d in second["document"]["devices"])


def test_retiring_a_device_the_document_still_refers_to_is_422_with_the_paths(fresh: Api) -> None:
    admin = fresh.headers("admin")
    refused = fresh.client.post(
        f"{M}/devices/grid-line-1/retire", headers=admin, json={"reason": "line dismantled"}
    )
    body = assert_problem(refused, 422)
    assert ["document", "edges[0]", "meters[0]"] in [e["location"] for e in body["errors"]]
    assert _device(fresh.seeded.url, "grid-line-1") == (True, 3)  # untouched, three metrics


def test_a_site_registered_by_api_and_a_file_load_both_make_revisions(fresh: Api) -> None:
    admin = fresh.headers("admin")
    doc = load_site_file(EXAMPLES / "shanxi-mine.yaml").model_dump(mode="json")
    doc["site"]["id"] = "new-mine"
    created = fresh.client.post(
        "/api/v1/sites", headers=admin, json={"document": doc, "reason": "onboarding"}
    )
    assert created.status_code == 201, created.text
    assert created.json()["revision"] == 1
    assert fresh.client.get("/api/v1/sites/new-mine", headers=admin).status_code == 200
    assert_problem(
        fresh.client.post(
            "/api/v1/sites", headers=admin, json={"document": doc, "reason": "onboarding"}
        ),
        409,
    )
    # a file load of the same site afterwards is the next revision, source "file"
    changed = load_site_file(EXAMPLES / "shanxi-mine.yaml")
    changed = changed.model_copy(
        update={
            "site": changed.site.model_copy(update={"id": "new-mine"}),
            "devices": changed.devices[:-1],
        }
    )
    report = load_site(fresh.seeded.url, changed)
    assert report.revision == 2
    revisions = fresh.client.get("/api/v1/sites/new-mine/revisions", headers=admin).json()
    assert [(r["revision"], r["source"]) for r in revisions["items"]] == [(2, "file"), (1, "api")]

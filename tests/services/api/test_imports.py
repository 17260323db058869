"""``POST /api/v1/sites/{site_id}/imports``: a file of readings as the body, dry run, the same
file twice, audited."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.support.api_support import MINE, Api, assert_problem, fresh

pytestmark = pytest.mark.integration
__all__ = ["fresh"]  # fixtures, used by name

URL = f"/api/v1/sites/{MINE}/imports"
CSV = (
    b"device,metric,time,value,unit\n"
    b"grid-line-1,power_kw,2026-11-01T08:00:00+08:00,0.05,kW\n"
    b"grid-line-1,power_kw,2026-11-01T08:15:00+08:00,0.06,kW\n"
    b"grid-line-1,power_kw,2026-11-01T08:30:00+08:00,0.07,degC\n"
)


def _post(api: Api, *, dry_run: bool, body: bytes = CSV, who: str = "operator") -> Any:
    return api.client.post(
        URL,
        params={"filename": "meter-book.csv", "reason": "read by hand", "dry_run": dry_run},
        content=body,
        headers={**api.headers(who), "Content-Type": "text/csv"},
    )


def test_dry_run_import_and_the_same_file_again(fresh: Api) -> None:
    dry = _post(fresh, dry_run=True)
    assert dry.status_code == 200, dry.text
    body = dry.json()
    assert (body["import_id"], body["stored"], body["rejected"]) == (None, 2, {"unit_mismatch": 1})
    assert body["problems"][0]["line"] == 4
    stored = _post(fresh, dry_run=False)
    assert stored.status_code == 201
    report = stored.json()
    assert report["stored"] == 2 and report["import_id"] is not None
    again = _post(fresh, dry_run=False)
    assert again.status_code == 200 and again.json()["already_imported"]
    with psycopg.connect(fresh.seeded.url) as conn:
        origin = conn.execute(
            "SELECT i.author, i.reason, i.source, count(*) FROM reading_origin o "
            "JOIN reading_import i USING (import_id) GROUP BY 1, 2, 3"
        ).fetchall()
        audit = conn.execute("SELECT route, status FROM api_audit ORDER BY audit_id").fetchall()
    operator = fresh.seeded.key_ids["operator"]
    assert origin == [(f"{operator} (test operator)", "read by hand", "import", 2)]
    assert audit == [
        ("/api/v1/sites/{site_id}/imports", 201),
        ("/api/v1/sites/{site_id}/imports", 200),
    ]


def test_a_file_that_is_not_a_table_is_422(fresh: Api) -> None:
    response = _post(fresh, dry_run=True, body=b"\xff\xfe\x00 not text", who="admin")
    assert "UTF-8" in assert_problem(response, 422)["detail"]

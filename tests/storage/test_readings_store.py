"""BatchStore: rows go straight in with COPY, and through the staging table when a key is stored.

Both paths must leave the same table: every new reading once, a repeated reading skipped, a
changed value reported as a conflict, and exactly the touched (device, UTC hour) pairs dirty.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from carbonflow.domain.site.model import SiteDocument
from carbonflow.storage.readings import BatchStore, ReadingRow
from carbonflow.storage.registry_load import load_site

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 21, 7, 50, tzinfo=UTC)
SITE = SiteDocument.model_validate(
    {
        "site": {"id": "s", "name": "S", "kind": "park", "province": "shanxi",
                 "grid_region": "north"},
        "organisations": [{"id": "co", "name": "Co"}],
        "nodes": [{"id": "grid", "name": "Grid", "kind": "supply"},
                  {"id": "w", "name": "W", "kind": "process", "org": "co"}],
        "edges": [{"source": "grid", "target": "w", "carrier": "electricity",
                   "meters": ["m1", "m2"]}],
        "devices": [{"id": m, "name": m, "kind": "electricity_meter", "carrier": "electricity",
                     "role": "consumption", "node": "w", "org": "co"} for m in ("m1", "m2")],
    }
)  # fmt: skip


def _rows(url: str, minutes: range, value: float = 1.0) -> list[ReadingRow]:
    with psycopg.connect(url) as conn:
        pks = [r[0] for r in conn.execute("SELECT device_pk FROM device ORDER BY device_id")]
        (metric,) = conn.execute(
            "SELECT metric_id FROM metric WHERE name = 'energy_import_kwh'"
        ).fetchone() or (None,)
    return [
        (pk, metric, T0 + timedelta(minutes=m), value + m, m, T0) for pk in pks for m in minutes
    ]


def _table(url: str) -> tuple[int, set[tuple[int, datetime]]]:
    with psycopg.connect(url) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        (rows,) = conn.execute("SELECT count(*) FROM reading").fetchone() or (0,)
        dirty = {(pk, h) for pk, h in conn.execute("SELECT device_pk, hour_start FROM dirty_hour")}
    return rows, dirty


def test_direct_and_staged_paths_store_each_reading_once(database_url: str) -> None:
    load_site(database_url, SITE)
    store = BatchStore(database_url)
    try:
        first = store.store(_rows(database_url, range(0, 20)), [], [])  # 07:50 … 08:09
        assert (first.inserted, first.conflicts) == (40, [])
        rows, dirty = _table(database_url)
        pks = {pk for pk, _ in dirty}
        hours = {datetime(2026, 11, 21, 7, tzinfo=UTC), datetime(2026, 11, 21, 8, tzinfo=UTC)}
        assert rows == 40 and dirty == {(pk, h) for pk in pks for h in hours} and len(pks) == 2
        # Ten already stored (five of them now with another value) and ten new: the staging path.
        again = _rows(database_url, range(10, 30))
        changed = [r if r[2].minute % 2 else (*r[:3], r[3] + 0.5, *r[4:]) for r in again]
        second = store.store(changed, [], [])
        assert second.inserted == 20
        assert len(second.conflicts) == 10  # 5 minutes × 2 devices with another value
        rows, dirty = _table(database_url)
        assert rows == 60
        assert {h for _, h in dirty} == hours  # 08:10 … 08:19 falls in 08:00
    finally:
        store.close()

"""Coverage-aware indicators through the calc service (issue 16, done-when).

- With 24 h of data (what the demo has an hour after start), no reduction or intensity of the
  year says on_track: each says insufficient_data and carries its coverage.
- A month with full data gives a real status (on_track / at_risk / off_track) with coverage 1.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg
import pytest

from carbonflow.sites.loader import load_site_file
from carbonflow.storage.registry_load import load_site
from tests.support.calc_generator import generate, month_start, run_calc, store_readings

pytestmark = pytest.mark.integration

MINE = "carbonflow/sites/examples/shanxi-mine.yaml"
PARK = "carbonflow/sites/examples/inner-mongolia-park.yaml"
MARGIN = timedelta(minutes=30)
CONCLUSIVE = {"on_track", "at_risk", "off_track"}


def _rows(url: str, site: str, grain: str) -> list[dict[str, Any]]:
    with psycopg.connect(url, row_factory=psycopg.rows.dict_row) as conn:
        return list(
            conn.execute(
                "SELECT org_id, indicator, value, status, completeness, coverage "
                "FROM calc_indicator WHERE site_id = %s AND grain = %s",
                (site, grain),
            ).fetchall()
        )


def _is_reduction_or_intensity(indicator: str) -> bool:
    return "reduction" in indicator or "_per_" in indicator or "intensity" in indicator


@pytest.mark.slow
def test_a_day_of_data_says_insufficient_data_for_the_year(database_url: str) -> None:
    day = month_start(2025, 3) + timedelta(days=9)  # 2025-03-10 00:00 Shanghai
    for path in (MINE, PARK):
        doc = load_site_file(path)
        load_site(database_url, doc)
        store_readings(
            database_url, doc.site.id, generate(doc, day - MARGIN, day + timedelta(days=1))
        )
    run_calc(database_url)
    for path in (MINE, PARK):
        site = load_site_file(path).site.id
        rows = _rows(database_url, site, "year")
        judged = [r for r in rows if _is_reduction_or_intensity(r["indicator"])]
        assert judged, site
        for r in rows:
            assert r["status"] != "on_track", (site, r["indicator"])
        for r in judged:
            assert r["status"] == "insufficient_data", (site, r["indicator"], r["status"])
            cov = r["coverage"]
            # Jan 1 → Mar 11: one day of 70 elapsed → ≈ 1.4 % coverage, 1–2 local days.
            assert cov["label"] == "2025" and cov["in_progress"] is True
            assert 0 < cov["share"] < 0.05 and cov["days_with_data"] <= 2
            assert "coverage" in cov["reason_en"] and "覆盖率" in cov["reason_zh"]
        # The day itself is fully covered: a real status where a target applies.
        days = _rows(database_url, site, "day")
        full = [r for r in days if r["coverage"] and r["coverage"]["share"] >= 0.99]
        assert full, site


@pytest.mark.slow
def test_a_month_with_full_data_gives_a_real_status(database_url: str) -> None:
    doc = load_site_file(PARK)
    site = doc.site.id
    march, april = month_start(2025, 3), month_start(2025, 4)
    load_site(database_url, doc)
    store_readings(database_url, site, generate(doc, march - MARGIN, april + MARGIN))
    run_calc(database_url)
    month = [r for r in _rows(database_url, site, "month") if r["coverage"]["label"] == "2025-03"]
    site_rows = {r["indicator"]: r for r in month if r["org_id"] == ""}
    for name in ("co2_per_energy", "clean_energy_share", "zero_carbon_energy_share"):
        r = site_rows[name]
        assert r["coverage"]["share"] == pytest.approx(1.0, abs=1e-6), name
        assert r["coverage"]["days_with_data"] == 31
        assert r["coverage"]["in_progress"] is False
        assert r["status"] in CONCLUSIVE | {"no_target"}, (name, r["status"])
    assert any(site_rows[n]["status"] in CONCLUSIVE for n in site_rows)
    # The year is in progress with 31 of 90 days: not conclusive.
    year = {r["indicator"]: r for r in _rows(database_url, site, "year") if r["org_id"] == ""}
    assert year["co2_per_energy"]["status"] == "insufficient_data"

"""Factors for any year, through the API (issue 15): the 2020 baseline year and 1999 compute.

The MEE/NBS grid factors start with data year 2021. The small plant gets two days of readings in
March 2020; the engine computes them with the earliest published factor (data year 2021,
flagged ``factor_year_fallback`` with both years on the ledger), and every ledger, indicator
and flow request for 2020-01 … 2020-12 and 1999-01 answers without a 5xx. (1999 with readings
is the same rule, tested in tests/domain/factors; one site computing both 1999 and 2020 makes
the engine roll up the two decades between them, too slow for this suite.)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from carbonflow.sites.loader import parse_site_text
from carbonflow.storage.registry_load import load_site
from tests.support.api_support import ADMIN_KEY, make_app
from tests.support.calc_generator import SMALL_SITE, generate, month_start, run_calc, store_readings

pytestmark = pytest.mark.integration

SITE = "small-plant"
ORG = "plant-co"
H = {"Authorization": f"Bearer {ADMIN_KEY}"}
LOCATION_2021 = "electricity.mee_nbs.province.shanxi.average.2021"


@dataclass
class Plant:
    client: TestClient


@pytest.fixture
def plant(database_url: str) -> Iterator[Plant]:
    doc = parse_site_text(SMALL_SITE, "small-plant.yaml")
    load_site(database_url, doc)
    start = month_start(2020, 3) + timedelta(days=2)
    data = generate(doc, start, start + timedelta(days=2), period=timedelta(minutes=15))
    store_readings(database_url, SITE, data)
    run_calc(database_url)
    app = make_app(database_url, settings={"CARBONFLOW_API_KEY_CACHE_S": 0})
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Plant(client)


def _location_factor(ledger: dict[str, object]) -> dict[str, object]:
    factors = ledger["factors"]
    assert isinstance(factors, list)
    return next(f for f in factors if f["factor_key"] == LOCATION_2021)


def test_years_before_the_first_data_year(plant: Plant) -> None:
    _earliest_flagged(plant, "2020-03", 2020)
    _every_month_answers(plant)


def _earliest_flagged(plant: Plant, month: str, requested: int) -> None:
    response = plant.client.get(f"/api/v1/sites/{SITE}/ledgers/{month}", headers=H)
    assert response.status_code == 200, response.text
    ledger = response.json()["ledger"]
    purchased = [e for e in ledger["emissions"] if e["category"] == "purchased_electricity"]
    assert purchased and all(e["tco2e"] > 0 for e in purchased if e["basis"] == "location")
    factor = _location_factor(ledger)
    # Shanxi provincial average: published for 2021-2023 only; 2020 and 1999 take 2021.
    assert factor["value"] == 0.7222
    assert factor["data_year"] == 2021 and factor["requested_year"] == requested
    assert factor["factor_year_fallback"] is True
    assert "factor_year_fallback" in str(factor["selection_reason"])
    org = plant.client.get(f"/api/v1/sites/{SITE}/organisations/{ORG}/ledgers/{month}", headers=H)
    assert org.status_code == 200, org.text
    assert _location_factor(org.json()["ledger"])["factor_year_fallback"] is True


def _every_month_answers(plant: Plant) -> None:
    months = [f"2020-{m:02d}" for m in range(1, 13)] + ["1999-01"]
    for month in months:
        for path in (
            f"/api/v1/sites/{SITE}/ledgers/{month}",
            f"/api/v1/sites/{SITE}/organisations/{ORG}/ledgers/{month}",
            f"/api/v1/sites/{SITE}/ledgers/{month}/draft?format=csv",
            f"/api/v1/sites/{SITE}/indicators?grain=month&period={month}-01",
            f"/api/v1/sites/{SITE}/indicators/range?start={month}-01T00:00:00%2B08:00"
            f"&end={month}-02T00:00:00%2B08:00",
            f"/api/v1/sites/{SITE}/flows?period={month}",
        ):
            response = plant.client.get(path, headers=H)
            assert response.status_code < 500, (path, response.status_code, response.text)
    # The baseline month with data: indicators were computed and stored.
    stored = plant.client.get(
        f"/api/v1/sites/{SITE}/indicators?grain=month&period=2020-03-01", headers=H
    )
    assert stored.status_code == 200 and stored.json()["items"], stored.text

"""A pushed period never reports a negative emission (storage/push.py ``period_values``): the
mine's simulated day has hours in which its methane power plant and PV export more than it
buys, so the stored 15-min rows (signed net imports, so that periods add up) sum to a negative
scope 2 for them. Those hours are reported as the ledger settles a period (``settle_period``:
purchased electricity 0, the surplus out of what was generated); the others as stored."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from carbonflow.domain.inventory.balance import settle_period
from carbonflow.domain.inventory.lines import View, view_totals
from carbonflow.sites.loader import load_site_file
from carbonflow.storage import push as push_db
from carbonflow.storage.carbon import SeriesFilter, carbon_series, carbon_totals
from carbonflow.storage.db import make_engine
from carbonflow.storage.registry_load import load_site
from tests.support.calc_generator import generate, month_start, run_calc, store_readings

pytestmark = pytest.mark.integration

MINE = "carbonflow/sites/examples/shanxi-mine.yaml"
TZ = "Asia/Shanghai"


def test_hours_that_exported_more_than_they_bought_are_reported_settled(
    database_url: str,
) -> None:
    doc = load_site_file(MINE)
    load_site(database_url, doc)
    day = month_start(2025, 5)
    data = generate(doc, day - timedelta(hours=1), day + timedelta(hours=25))
    # Noon: line 1 exports 132 MWh more than simulated (1 register unit × 132 000), ramping
    # over 11:00–12:00 local — far more than the mine buys in an hour.
    key = ("grid-line-1", "energy_export_kwh")
    at, one_hour = day + timedelta(hours=11), timedelta(hours=1)
    data.readings[key] = [
        (ts, v + min(1.0, max(0.0, (ts - at) / one_hour))) for ts, v in data.readings[key]
    ]
    store_readings(database_url, doc.site.id, data)
    run_calc(database_url)
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            stored = carbon_series(
                conn, doc.site.id, "hour", day, day + timedelta(days=1), basis="location",
                where=SeriesFilter(),
            )  # fmt: skip
            pushed = push_db.period_values(conn, doc.site.id, "hour", day, day + timedelta(days=1))
    finally:
        engine.dispose()
    exporting = [p for p in stored if p.scope2_tco2e < 0]
    assert exporting, "the test needs an hour that exported more than it bought"
    for p in stored:
        values = {v.source: v.value for v in pushed[p.period_start]}
        assert min(values["co2_t"], values["tco2e"], values["scope2_tco2e"]) >= 0, p.period_start
        if p.scope2_tco2e >= 0:  # as stored
            assert (values["co2_t"], values["tco2e"]) == (p.co2_t, p.tco2e)
    hour = exporting[0].period_start
    with psycopg.connect(database_url) as raw:
        lines, _ = settle_period(
            carbon_totals(raw, doc.site.id, hour, hour + timedelta(hours=1), TZ)
        )
    settled = view_totals(lines, View.LOCATION)
    values = {v.source: v.value for v in pushed[hour]}
    assert (values["co2_t"], values["tco2e"], values["scope2_tco2e"]) == (
        settled.co2_t, settled.total_tco2e, settled.scope2_tco2e,
    )  # fmt: skip
    assert values["scope2_tco2e"] == 0.0

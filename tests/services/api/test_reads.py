"""The read side the API will call: series, flows, live intervals, ledger inputs, records."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import timedelta

import psycopg
import pytest

from carbonflow.domain.ledger.document import LedgerHeader, build_ledger
from carbonflow.sites.loader import parse_site_text
from carbonflow.storage import carbon as carbon_db
from carbonflow.storage.registry_load import load_site
from services.api.reads import (
    NotFound,
    flows,
    indicators_for_period,
    ledger_inputs,
    ledger_meters,
    live_intervals,
    site_plan,
)
from tests.support.calc_generator import (
    SMALL_SITE,
    computed_small_site,
)

pytestmark = pytest.mark.integration


def test_queries_for_the_api(database_url: str) -> None:
    doc, start, end = computed_small_site(database_url)
    site = doc.site.id
    day2 = start + timedelta(days=1)
    with psycopg.connect(database_url) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        hours = carbon_db.site_series(conn, site, "hour", day2, day2 + timedelta(days=1))
        days = carbon_db.site_series(conn, site, "day", start, end)
        quarter = carbon_db.site_series(conn, site, "15min", day2, day2 + timedelta(days=1))
        assert len(hours) == 24 and len(quarter) == 96 and len(days) == 3
        # The day is the sum of its hours and of its quarter hours.
        day = next(p for p in days if p.period_start == day2)
        assert day.tco2e_location == pytest.approx(math.fsum(h.tco2e_location for h in hours))
        assert day.tco2e_location == pytest.approx(math.fsum(q.tco2e_location for q in quarter))
        assert day.scope2_location_tco2e == pytest.approx(day.tco2e_location)

        graph = flows(conn, site, start, end)
        assert math.fsum(link.attributed.tco2e_location for link in graph.final_links()) == (
            graph.totals.tco2e_location
        )
        assert graph.totals.tco2e_location == pytest.approx(
            math.fsum(p.tco2e_location for p in days)
        )
        assert graph.products[0].product_id == "widget"
        assert graph.products[0].intensity_location.value is not None

        minutes = live_intervals(
            conn,
            site,
            "works-meter",
            "energy_import_kwh",
            start=day2,
            end=day2 + timedelta(hours=1),
        )
        assert len(minutes) == 60 and all(m.quantity > 0 for m in minutes)
        with pytest.raises(NotFound):
            live_intervals(conn, site, "nope", "energy_import_kwh", start=day2, end=day2)

        ledger = ledger_inputs(conn, site, start, end, org_id="plant-co")
        electricity = [
            line for line in ledger.lines
            if line.category == "purchased_electricity" and line.basis == "location"
        ]  # fmt: skip
        assert electricity and electricity[0].factors.records[0]["factor_version"] == (
            "mee-nbs-electricity-2025-12-31"
        )
        assert electricity[0].factors.records[0]["selection"] == "rule"
        assert ledger.attributed["tco2e_location"] == pytest.approx(graph.totals.tco2e_location)
        assert ledger.products[0][0] == "widget"
        # The organisation's ledger carries its own indicators only; the site's, the site's.
        assert all(i["org_id"] == "plant-co" for i in ledger.indicators)
        site_ledger = ledger_inputs(conn, site, start, end)
        assert site_ledger.indicators  # day indicators of the period
        assert {i["org_id"] for i in site_ledger.indicators} >= {""}
        # Any period, e.g. the last two days (a rolling window): same figures as stored days.
        outcomes = {o.indicator: o.result for o in indicators_for_period(conn, site, day2, end)}
        share = outcomes["zero_carbon_energy_share"].value
        assert share.defined and share.value == 0.0  # the small plant has no zero-carbon energy
        assert outcomes["co2_per_energy"].value.value == pytest.approx(
            math.fsum(p.tco2e_market for p in days if p.period_start >= day2)
            / math.fsum(p.energy_tce for p in days if p.period_start >= day2)
        )
        newest = conn.execute("SELECT max(factor_set_id) FROM calc_carbon").fetchone()
        assert newest is not None
        records = carbon_db.factor_set(conn, int(newest[0]))
        assert records and "factor_source" in records[0]


def test_a_site_plan_is_reused_until_the_site_file_is_loaded_again(database_url: str) -> None:
    doc = parse_site_text(SMALL_SITE, "small.yaml")
    load_site(database_url, doc)
    with psycopg.connect(database_url) as conn:
        first = site_plan(conn, doc.site.id)
        assert site_plan(conn, doc.site.id) is first  # same version: the cached plan
    # The grid meter's multiplier changes in the site file: the next plan has it.
    changed = parse_site_text(SMALL_SITE.replace("multiplier: 100", "multiplier: 200"), "s.yaml")
    assert load_site(database_url, changed).status != "unchanged"
    with psycopg.connect(database_url) as conn:
        second = site_plan(conn, doc.site.id)
        assert second is not first
        grid = next(d for d in second.devices if d.device_id == "grid-meter")
        assert grid.multiplier == 200
        with pytest.raises(NotFound):
            site_plan(conn, "no-such-site")


def test_ledger_meters_are_those_of_its_lines_and_roles(database_url: str) -> None:
    """A ledger reads the registers and interval qualities of the devices its lines show (and of
    the roles an indicator trace asks for) only; its document is the one every inventory
    device's meters give."""
    doc, start, end = computed_small_site(database_url)
    site = doc.site.id
    header = LedgerHeader(site, "plant-co", "2025-05", doc.site.timezone, start, end, end)
    with psycopg.connect(database_url) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        plan = site_plan(conn, site)
        inputs = ledger_inputs(conn, site, start, end, org_id="plant-co")
        every = ledger_meters(conn, plan, start, end, "plant-co")  # no lines given: all
        none = ledger_meters(conn, plan, start, end, "plant-co", lines=())
        by_role = ledger_meters(conn, plan, start, end, "plant-co", frozenset({"production"}), ())
    shown = [m for m in every if any(m.feeds(str(ln.category), ln.carrier) for ln in inputs.lines)]
    assert shown and list(inputs.meters) == shown
    assert {m.device_id for m in inputs.meters} == {"grid-meter"}
    assert none == [] and {m.role for m in by_role} == {"production"}
    # Not one figure of the document depends on the meters left out: with its lines, and for
    # an organisation without lines of its own (the bench's 500 consumers) none is read.
    whole = replace(inputs, meters=tuple(every))
    assert build_ledger(inputs, header) == build_ledger(whole, header)
    bare = replace(inputs, lines=(), meters=())
    assert build_ledger(bare, header) == build_ledger(replace(bare, meters=tuple(every)), header)

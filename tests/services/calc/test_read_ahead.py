"""A recompute's next chunk read and computed ahead on a second connection
(``services.calc.read_ahead``): the same stored results as one connection doing one thing at a
time, never a reading lost to it, and a failure of it costs only time."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from carbonflow.domain.site.plan import plan_from_document
from carbonflow.sites.loader import parse_site_text
from services.calc import read_ahead
from services.calc.engine import CalcEngine, CycleReport
from services.calc.steps import indicators
from services.calc.steps.intervals import PreparedIntervals
from services.calc.windows import HOUR
from tests.services.calc.test_recompute import (
    RESULT_TABLES,
    changed,
    engine_for,
    small_site,
    snapshot,
)
from tests.support.calc_generator import SMALL_SITE, Faults, generate, month_start, store_readings

pytestmark = pytest.mark.integration

START = month_start(2025, 3)
DAYS = 6
CHUNK = timedelta(hours=13)  # chunks that do not start on local hours or days


def _site_with_readings(url: str, **store: Any) -> tuple[str, Any]:
    site = small_site(url)
    doc = parse_site_text(SMALL_SITE, "small-plant.yaml")
    faults = Faults(
        gaps=(("works-meter", START + timedelta(days=2), START + timedelta(days=2, hours=7)),)
    )
    data = generate(doc, START, START + timedelta(days=DAYS), faults=faults)
    store_readings(url, site, data, **store)
    return site, data


def _recompute(engine: CalcEngine, site: str) -> list[CycleReport]:
    engine.request_recompute(site, START - timedelta(hours=5), START + timedelta(days=DAYS + 1))
    return engine.run_until_idle()


def _clear_results(url: str) -> None:
    with psycopg.connect(url) as conn:
        conn.execute(f"TRUNCATE {', '.join(RESULT_TABLES)}")


def _results_of_one_connection(url: str, site: str) -> dict[str, Any]:
    """The stored results of a recompute without read-ahead; then every result cleared."""
    alone = engine_for(url, read_ahead=False, request_chunk=CHUNK)
    alone.run_until_idle()
    _recompute(alone, site)
    alone.close()
    expected = snapshot(url)
    _clear_results(url)
    return expected


def test_results_read_ahead_equal_those_of_one_connection(database_url: str) -> None:
    site, _data = _site_with_readings(database_url)
    expected = _results_of_one_connection(database_url, site)
    assert expected["calc_interval_rollup"] and expected["calc_indicator"]
    ahead = engine_for(database_url, request_chunk=CHUNK)
    reports = _recompute(ahead, site)
    ahead.close()
    # Every chunk but the first was read ahead, its hours included.
    assert sum(r.read_ahead_used for r in reports) == len(reports) - 1 >= 10
    assert changed(expected, snapshot(database_url)) == {}


def test_a_chunked_recompute_evaluates_each_period_once_with_the_same_results(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A day, month or year spanning several chunks is evaluated by the chunk that completes
    it (domain.calendar.settled_periods), and the results are those of one chunk (to 1e-12: the
    slot before a chunk's end is computed in two grids, whose reading pairs split it in the last
    bit differently from one grid)."""
    site, _data = _site_with_readings(database_url)
    whole = engine_for(database_url, read_ahead=False)
    whole.run_until_idle()
    _clear_results(database_url)
    assert len(_recompute(whole, site)) == 1
    whole.close()
    expected = snapshot(database_url)
    _clear_results(database_url)
    seen: list[tuple[str, Any]] = []
    period = indicators._SiteIndicators._period

    def counted(self: Any, grain: str, p0: Any, p1: Any) -> None:
        seen.append((grain, p0))
        period(self, grain, p0, p1)

    monkeypatch.setattr(indicators._SiteIndicators, "_period", counted)
    chunked = engine_for(database_url, request_chunk=CHUNK)
    assert len(_recompute(chunked, site)) >= 10
    chunked.close()
    assert sorted(seen) == sorted(set(seen))
    assert {g for g, _p in seen} == {"day", "month", "year"}
    assert changed(expected, snapshot(database_url), rel=1e-12) == {}


def test_a_reading_stored_after_the_read_ahead_is_not_lost(database_url: str) -> None:
    late = START + timedelta(days=1, hours=2)  # in the second chunk
    site, data = _site_with_readings(database_url)
    keys = [k for k in data.readings if k[0] == "works-meter"]
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "DELETE FROM reading WHERE ts >= %s AND ts < %s", (late, late + timedelta(hours=3))
        )
    engine = engine_for(database_url, request_chunk=CHUNK)
    engine.run_until_idle()
    engine.request_recompute(site, START, START + timedelta(days=DAYS))
    first = engine.run_once()  # chunk 1 written, chunk 2 read ahead without the readings
    assert first.requests_advanced == 1
    stored = store_readings(
        database_url, site, data,
        only=[(k, ts) for k in keys for ts, _v in data.readings[k]
              if late <= ts < late + timedelta(hours=3)],
    )  # fmt: skip
    assert stored > 0
    second = engine.run_once()
    assert second.read_ahead_used == 0 and second.dirty_hours_read > 0
    engine.run_until_idle()
    engine.close()
    got = snapshot(database_url)

    _clear_results(database_url)
    alone = engine_for(database_url, read_ahead=False)
    alone.request_recompute(site, START - timedelta(days=1), START + timedelta(days=DAYS + 1))
    alone.run_until_idle()
    alone.close()
    assert changed(snapshot(database_url), got, rel=1e-12) == {}


def test_a_failing_read_ahead_is_computed_in_the_cycle(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    site, _data = _site_with_readings(database_url)
    expected = _results_of_one_connection(database_url, site)

    def broken(*_args: Any, **_kwargs: Any) -> None:
        raise psycopg.OperationalError("the second connection went away")

    monkeypatch.setattr(read_ahead, "prepare_intervals", broken)
    engine = engine_for(database_url, request_chunk=CHUNK)
    reports = _recompute(engine, site)
    engine.close()
    assert len(reports) > 5 and sum(r.read_ahead_used for r in reports) == 0
    assert changed(expected, snapshot(database_url)) == {}


def test_the_app_role_reads_ahead(app_role_url: str) -> None:
    """The services' login role may create the temporary table and copy the hour rows in."""
    site, _data = _site_with_readings(app_role_url)
    engine = engine_for(app_role_url, request_chunk=CHUNK)
    reports = _recompute(engine, site)
    engine.close()
    assert sum(r.site_errors for r in reports) == 0
    assert sum(r.read_ahead_used for r in reports) == len(reports) - 1 >= 10


def test_what_was_read_ahead_fits_only_the_same_windows_devices_zone_and_lateness() -> None:
    plan = plan_from_document(parse_site_text(SMALL_SITE, "small-plant.yaml"))
    device = plan.devices[0]
    windows = {(device.device_pk, 1): [(START, START + CHUNK)]}
    late = timedelta(minutes=15)
    prepared = PreparedIntervals(
        ((device.device_pk, 1, START, START + CHUNK),), plan.devices, plan.timezone, late,
        [], {}, [],
    )  # fmt: skip
    assert prepared.fits(plan, windows, late)
    assert not prepared.fits(plan, {(device.device_pk, 1): [(START, START + HOUR)]}, late)
    assert not prepared.fits(plan, windows, late * 2)
    assert not prepared.fits(replace(plan, timezone="Europe/Berlin"), windows, late)
    moved = replace(device, multiplier=device.multiplier * 2)
    assert not prepared.fits(replace(plan, devices=(moved, *plan.devices[1:])), windows, late)

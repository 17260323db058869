"""Recomputation: late data, forced recomputation, changed factors, corrected devices, green
certificates, and two calc instances. Small hand-built sites keep these fast."""

from __future__ import annotations

import math
import threading
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
import yaml

from carbonflow.domain.factors import PinnedFactor
from carbonflow.domain.factors.library import package_data_files
from carbonflow.domain.inventory.green import RegisterEntry
from carbonflow.sites.loader import load_site_file, parse_site_text
from carbonflow.storage import reference as ref
from carbonflow.storage.calc_queue import CALC_LOCK_NAMESPACE
from carbonflow.storage.registry_load import load_site
from services.calc.engine import CalcEngine, EngineConfig
from tests.support.calc_generator import (
    SMALL_SITE,
    Faults,
    generate,
    month_start,
    registry_ids,
    store_readings,
)

pytestmark = pytest.mark.integration

TZ = ZoneInfo("Asia/Shanghai")
HOURLY = timedelta(hours=1)

RESULT_TABLES: dict[str, str] = {
    "calc_interval": "device_pk, metric_id, start_ts, quantity, quality, completeness, late",
    "calc_interval_rollup": "device_pk, metric_id, grain, period_start, quantity, quality, "
    "completeness, late, intervals",
    "calc_carbon": "site_id, start_ts, org_id, node_id, carrier, category, basis, gas, scope, "
    "activity, energy_tce, zero_carbon_tce, gas_t, tco2e, factor_key, factor_version, "
    "factor_value, quality, completeness",
    "calc_carbon_rollup": "site_id, grain, period_start, org_id, node_id, carrier, category, "
    "basis, gas, activity, energy_tce, zero_carbon_tce, gas_t, tco2e, factor_key, "
    "factor_version, quality, completeness",
    "calc_indicator": "site_id, org_id, grain, period_start, indicator, value, numerator, "
    "denominator, status, target_threshold, completeness",
    "calc_budget": "site_id, org_id, year, quantity, budget, consumed, status",
}
KEY_WIDTH = {
    "calc_interval": 3,
    "calc_interval_rollup": 4,
    "calc_carbon": 8,
    "calc_carbon_rollup": 9,
    "calc_indicator": 5,
    "calc_budget": 4,
}


def snapshot(url: str) -> dict[str, dict[tuple[Any, ...], tuple[Any, ...]]]:
    """Every result row (without computed_at), by table and primary key."""
    out: dict[str, dict[tuple[Any, ...], tuple[Any, ...]]] = {}
    with psycopg.connect(url) as conn:
        for table, columns in RESULT_TABLES.items():
            width = KEY_WIDTH[table]
            rows = conn.execute(f"SELECT {columns} FROM {table}").fetchall()
            out[table] = {tuple(r[:width]): tuple(r[width:]) for r in rows}
    return out


def changed(
    before: dict[str, dict[tuple[Any, ...], tuple[Any, ...]]],
    after: dict[str, dict[tuple[Any, ...], tuple[Any, ...]]],
    *,
    rel: float = 0.0,
) -> dict[str, set[tuple[Any, ...]]]:
    out: dict[str, set[tuple[Any, ...]]] = {}
    for table in RESULT_TABLES:
        keys = set(before[table]) | set(after[table])
        diff = {k for k in keys if not _same(before[table].get(k), after[table].get(k), rel)}
        if diff:
            out[table] = diff
    return out


def _same(a: tuple[Any, ...] | None, b: tuple[Any, ...] | None, rel: float) -> bool:
    if a is None or b is None:
        return a is b
    for x, y in zip(a, b, strict=True):
        if isinstance(x, float) and isinstance(y, float):
            if not math.isclose(x, y, rel_tol=rel, abs_tol=0.0) and x != y:
                return False
        elif x != y:
            return False
    return True


def small_site(url: str) -> str:
    doc = parse_site_text(SMALL_SITE, "small-plant.yaml")
    load_site(url, doc)
    return doc.site.id


def engine_for(url: str, **config: Any) -> CalcEngine:
    engine = CalcEngine(url, EngineConfig(**config))
    engine.sync_reference()
    return engine


def test_late_data_changes_that_day_its_month_and_the_kpis_only(database_url: str) -> None:
    doc = load_site_file("carbonflow/sites/examples/shanxi-mine.yaml")
    site = doc.site.id
    load_site(database_url, doc)
    start = month_start(2025, 3)
    day2 = datetime(2025, 3, 2, tzinfo=TZ)
    # The grid meter's register restarts at 10:33 on day 2; the readings around it arrive late.
    # Without them the reset rule can only count from the restart: the energy since the last
    # reading before it is unknown (lost), so the late readings change the day's energy.
    faults = Faults(rollover=False, reset=("grid-line-1", day2 + timedelta(hours=10, minutes=33)))
    data = generate(doc, start, start + timedelta(days=3), faults=faults)
    key = ("grid-line-1", "energy_import_kwh")
    late = [
        (key, ts) for ts, _v in data.readings[key] if day2 + 10 * HOURLY <= ts < day2 + 11 * HOURLY
    ]
    assert late
    store_readings(database_url, site, data, skip=late)
    engine = engine_for(database_url)
    engine.run_until_idle()
    before = snapshot(database_url)

    store_readings(database_url, site, data, only=late, received_at=datetime.now(TZ))
    engine.run_until_idle()
    after = snapshot(database_url)
    engine.close()

    diff = changed(before, after)
    day_lo, day_hi = day2, day2 + timedelta(days=1)
    march = start
    for table in ("calc_interval", "calc_carbon"):
        ts_col = 2 if table == "calc_interval" else 1
        assert diff[table]
        assert all(day_lo <= k[ts_col] < day_hi for k in diff[table]), table
    for table in ("calc_interval_rollup", "calc_carbon_rollup"):
        grain_col = 2 if table == "calc_interval_rollup" else 1
        for k in diff[table]:
            grain, period = k[grain_col], k[grain_col + 1]
            if grain == "month":
                assert period == march, (table, k)
            else:
                assert day_lo <= period < day_hi, (table, k)
    days = {k[3] for k in diff["calc_indicator"] if k[2] == "day"}
    assert days == {day2}
    co2_day2 = [k for k in diff["calc_indicator"] if k[2] == "day" and k[4] == "co2_per_raw_coal"]
    assert co2_day2  # the value moved, not only its completeness
    assert {k[2] for k in diff["calc_indicator"]} <= {"day", "month", "year"}
    # The intervals the late readings filled are flagged late, and measured again.
    ids = registry_ids(database_url, site)
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT quality, late FROM calc_interval WHERE device_pk = %s AND metric_id = %s "
            "AND start_ts >= %s AND start_ts < %s",
            (*ids[key], day2 + 10 * HOURLY, day2 + 11 * HOURLY),
        ).fetchall()
    assert rows and all(late for _q, late in rows)
    assert {q for q, _late in rows} == {"measured"}


def test_forced_recomputation_gives_identical_results(database_url: str) -> None:
    site = small_site(database_url)
    doc = parse_site_text(SMALL_SITE, "small-plant.yaml")
    start = month_start(2025, 5)
    data = generate(doc, start, start + timedelta(days=10), period=HOURLY)
    store_readings(database_url, site, data)
    engine = engine_for(database_url)
    engine.run_until_idle()
    before = snapshot(database_url)
    assert before["calc_carbon"] and before["calc_indicator"]
    engine.request_recompute(site, start - timedelta(days=1), start + timedelta(days=11))
    reports = engine.run_until_idle()
    assert sum(r.intervals_written for r in reports) > 0
    assert changed(before, snapshot(database_url)) == {}
    # A second instance with nothing to do changes nothing either.
    other = engine_for(database_url)
    assert not other.run_once().did_work
    other.close()
    engine.close()


def test_a_site_locked_by_another_instance_is_skipped(database_url: str) -> None:
    site = small_site(database_url)
    doc = parse_site_text(SMALL_SITE, "small-plant.yaml")
    start = month_start(2025, 5)
    store_readings(
        database_url, site, generate(doc, start, start + timedelta(days=2), period=HOURLY)
    )
    engine = engine_for(database_url)
    with psycopg.connect(database_url) as holder:
        holder.execute(
            "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (CALC_LOCK_NAMESPACE, site)
        )
        report = engine.run_once()
        assert report.sites_locked == 1 and report.sites == 0
        assert engine.pending() > 0
    engine.run_until_idle()
    assert engine.pending() == 0
    engine.close()


def test_two_instances_at_once_give_the_results_of_one(database_url: str) -> None:
    park = load_site_file("carbonflow/sites/examples/inner-mongolia-park.yaml")
    load_site(database_url, park)
    site = small_site(database_url)
    small = parse_site_text(SMALL_SITE, "small-plant.yaml")
    start = month_start(2025, 5)
    store_readings(
        database_url, site, generate(small, start, start + timedelta(days=3), period=HOURLY)
    )
    store_readings(database_url, park.site.id, generate(park, start, start + timedelta(days=1)))
    engines = [engine_for(database_url, dirty_batch=500) for _ in range(2)]
    errors: list[BaseException] = []

    def work(engine: CalcEngine) -> None:
        try:
            for _ in range(200):
                engine.run_once()
                if engine.pending() == 0:
                    return
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors
    assert engines[0].pending() == 0
    concurrent = snapshot(database_url)
    for sid in (site, park.site.id):
        engines[0].request_recompute(sid, start - timedelta(days=1), start + timedelta(days=4))
    engines[0].run_until_idle()
    # Windows differ between the two runs (batches split differently), so an interval may be
    # spread along another float path: equal to 1e-12, not to the last bit.
    assert changed(concurrent, snapshot(database_url), rel=1e-12) == {}
    for e in engines:
        e.close()


def test_a_pinned_factor_and_a_new_factor_version_recompute_carbon(
    database_url: str, tmp_path: Path
) -> None:
    site = small_site(database_url)
    doc = parse_site_text(SMALL_SITE, "small-plant.yaml")
    start = month_start(2025, 5)
    store_readings(
        database_url, site, generate(doc, start, start + timedelta(days=2), period=HOURLY)
    )
    engine = engine_for(database_url, factor_check_s=0.0)
    engine.run_until_idle()

    def location() -> tuple[float, set[tuple[str, str, float]]]:
        with psycopg.connect(database_url) as conn:
            total = conn.execute(
                "SELECT sum(tco2e), sum(activity) FROM calc_carbon WHERE site_id = %s "
                "AND basis = 'location'",
                (site,),
            ).fetchone()
            factors = conn.execute(
                "SELECT DISTINCT factor_key, factor_version, factor_value FROM calc_carbon "
                "WHERE site_id = %s AND basis = 'location'",
                (site,),
            ).fetchall()
        assert total is not None
        return total[0] / total[1], {(str(a), str(b), float(c)) for a, b, c in factors}

    ratio, factors = location()
    assert ratio == pytest.approx(0.6634)  # Shanxi 2023, tCO2/MWh
    assert factors == {("electricity.mee_nbs.province.shanxi.average.2023",
                        "mee-nbs-electricity-2025-12-31", 0.6634)}  # fmt: skip

    with psycopg.connect(database_url) as conn:
        ref.set_pin(
            conn, site, "electricity.location",
            PinnedFactor("electricity.ets_reporting.national.2022", "power-sector report"),
        )  # fmt: skip
    engine.run_until_idle()
    ratio, factors = location()
    assert ratio == pytest.approx(0.5703)
    assert {f[0] for f in factors} == {"electricity.ets_reporting.national.2022"}

    with psycopg.connect(database_url) as conn:
        assert ref.delete_pin(conn, site, "electricity.location")
    # A corrected data file, under a new version, replaces the Shanxi 2023 value.
    files = []
    for shipped in package_data_files():
        path = shipped
        if path.name == "mee_nbs_electricity.yaml":
            text = path.read_text(encoding="utf-8")
            content = yaml.safe_load(text)
            content["version"] = "mee-nbs-electricity-corrected-test"
            for f in content["factors"]:
                if f["key"] == "electricity.mee_nbs.province.shanxi.average.2023":
                    f["value"] = 0.6500
            path = tmp_path / path.name
            path.write_text(yaml.safe_dump(content, allow_unicode=True), encoding="utf-8")
        files.append(path)
    corrected = CalcEngine(
        database_url, EngineConfig(factor_check_s=0.0, reference_files=tuple(files))
    )
    synced = corrected.sync_reference()
    assert {(s.file_name, s.status) for s in synced} >= {("mee_nbs_electricity.yaml", "inserted")}
    assert corrected.sync_reference()[0].status == "unchanged"  # idempotent
    corrected.run_until_idle()
    ratio, factors = location()
    assert ratio == pytest.approx(0.6500)
    assert factors == {("electricity.mee_nbs.province.shanxi.average.2023",
                        "mee-nbs-electricity-corrected-test", 0.65)}  # fmt: skip
    with psycopg.connect(database_url) as conn:
        versions = conn.execute(
            "SELECT version, superseded_at IS NULL FROM factor_file "
            "WHERE file_name = 'mee_nbs_electricity.yaml' ORDER BY loaded_at"
        ).fetchall()
    assert versions == [("mee-nbs-electricity-2025-12-31", False),
                        ("mee-nbs-electricity-corrected-test", True)]  # fmt: skip
    corrected.close()
    engine.close()


def test_a_corrected_multiplier_recomputes_the_device_history(database_url: str) -> None:
    site = small_site(database_url)
    doc = parse_site_text(SMALL_SITE, "small-plant.yaml")
    start = month_start(2025, 5)
    store_readings(
        database_url, site, generate(doc, start, start + timedelta(days=2), period=HOURLY)
    )
    engine = engine_for(database_url)
    engine.run_until_idle()
    ids = registry_ids(database_url, site)

    def grid_kwh() -> float:
        with psycopg.connect(database_url) as conn:
            row = conn.execute(
                "SELECT sum(quantity) FROM calc_interval WHERE device_pk = %s AND metric_id = %s",
                ids[("grid-meter", "energy_import_kwh")],
            ).fetchone()
        assert row is not None
        return float(row[0])

    before = grid_kwh()
    corrected = parse_site_text(SMALL_SITE.replace("multiplier: 100", "multiplier: 200"), "s.yaml")
    load_site(database_url, corrected)
    engine.run_until_idle()
    # CT ratio doubled: every interval of the device doubles (readings are stored before it).
    assert grid_kwh() == pytest.approx(2 * before, rel=1e-12)
    engine.close()


def test_a_month_without_certificates_and_a_month_fully_covered(database_url: str) -> None:
    site = small_site(database_url)
    doc = parse_site_text(SMALL_SITE, "small-plant.yaml")
    may, june, july = month_start(2025, 5), month_start(2025, 6), month_start(2025, 7)
    with psycopg.connect(database_url) as conn:
        # 50 000 GECs claimed for June: far more than the plant imports (≈ 360 MWh).
        ref.upsert_green_instrument(
            conn,
            site,
            RegisterEntry(
                instrument_id="GEC-2025-06", kind="certificate",
                evidence="GEC serials 2025-0000001…2025-0050000", volume_mwh=50_000.0,
                valid_from=date(2025, 1, 1), valid_to=date(2025, 12, 31), claimed_mwh=50_000.0,
                claim_start=date(2025, 6, 1), claim_end=date(2025, 6, 30), certificates=50_000,
            ),
        )  # fmt: skip
    store_readings(database_url, site, generate(doc, may, july, period=HOURLY))
    engine = engine_for(database_url)
    engine.run_until_idle()
    engine.close()
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT period_start, category, basis, activity, tco2e FROM calc_carbon_rollup "
            "WHERE site_id = %s AND grain = 'month' AND carrier = 'electricity'",
            (site,),
        ).fetchall()
        claims = conn.execute(
            "SELECT instrument_id, accepted, offered_mwh, applied_mwh, unused_mwh "
            "FROM calc_green_claim WHERE site_id = %s",
            (site,),
        ).fetchall()
    month = {(p, c, b): (a, t) for p, c, b, a, t in rows}
    may_net, may_loc = month[(may, "purchased_electricity", "location")]
    may_mkt = month[(may, "purchased_electricity", "market")]
    # May, no certificates: market = net import × 0.6096 (residual), location × 0.6634.
    assert may_loc == pytest.approx(may_net * 0.6634)
    assert may_mkt == (pytest.approx(may_net), pytest.approx(may_net * 0.6096))
    assert (may, "green_electricity", "market") not in month
    # June, fully covered: the whole net import is green at 0; nothing left at the residual.
    june_net, june_loc = month[(june, "purchased_electricity", "location")]
    assert june_loc == pytest.approx(june_net * 0.6634)
    assert month[(june, "purchased_electricity", "market")] == (0.0, 0.0)
    assert month[(june, "green_electricity", "market")] == (pytest.approx(june_net), 0.0)
    assert claims == [
        ("GEC-2025-06", True, 50_000.0, pytest.approx(june_net), pytest.approx(50_000 - june_net))
    ]

"""A month's flows and ledger read the stored rollups: the same numbers as rollups rebuilt now
from the 15-min rows, after late data and a recompute (docs/performance.md); the factor
library is read once per set of stored versions."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import psycopg
import pytest

from carbonflow.domain import calendar
from carbonflow.sites.loader import parse_site_text
from carbonflow.storage import carbon as carbon_db
from carbonflow.storage import intervals
from carbonflow.storage.registry_load import load_site
from services.api import reads
from services.calc.engine import CalcEngine
from tests.support.calc_generator import SMALL_SITE, Faults, generate, store_readings

pytestmark = pytest.mark.integration

HOUR = timedelta(hours=1)


def _month_reads(conn: psycopg.Connection[Any], site: str, lo: datetime, hi: datetime) -> Any:
    """Everything a month's flows and ledger take from the stored results."""
    plan = reads.site_plan(conn, site)
    pks = [d.device_pk for d in plan.devices]
    return (
        intervals.device_totals(conn, pks, lo, hi, plan.timezone),
        carbon_db.carbon_totals(conn, site, lo, hi, plan.timezone),
        reads.flows(conn, site, lo, hi),
        reads.ledger_inputs(conn, site, lo, hi, org_id=None),
    )


def _direct_device_sums(
    conn: psycopg.Connection[Any], pks: list[int], lo: datetime, hi: datetime
) -> dict[tuple[int, int], float]:
    rows = conn.execute(
        "SELECT device_pk, metric_id, sum(quantity::numeric)::float8 FROM calc_interval "
        "WHERE device_pk = ANY(%s) AND start_ts >= %s AND start_ts < %s "
        "GROUP BY device_pk, metric_id",
        (pks, lo, hi),
    ).fetchall()
    return {(int(pk), int(mid)): float(q) for pk, mid, q in rows}


def test_month_reads_equal_rollups_rebuilt_from_the_15min_rows(database_url: str) -> None:
    doc = parse_site_text(SMALL_SITE, "small-plant.yaml")
    load_site(database_url, doc)
    site = doc.site.id
    lo, hi = calendar.month_bounds(date(2025, 5, 1), doc.site.timezone)
    # Three hours of one meter's readings on 10 May arrive after the month was computed; its
    # register restarts among them, so without them the energy before the restart is lost and
    # with them it is counted: the late readings change the month's energy and carbon.
    late_lo = lo + timedelta(days=9, hours=6)
    meter = next(d.id for d in doc.devices if d.kind == "electricity_meter")
    faults = Faults(rollover=False, reset=(meter, late_lo + timedelta(hours=1, minutes=33)))
    data = generate(doc, lo - HOUR, hi + HOUR, period=timedelta(minutes=15), faults=faults)
    key = (meter, "energy_import_kwh")
    late = [(key, ts) for ts, _v in data.readings[key] if late_lo <= ts < late_lo + 3 * HOUR]
    assert late
    store_readings(database_url, site, data, skip=late)
    engine = CalcEngine(database_url)
    try:
        engine.sync_reference()
        engine.run_until_idle()
        with psycopg.connect(database_url) as conn:
            conn.execute("SET TIME ZONE 'UTC'")
            before_late = _month_reads(conn, site, lo, hi)
        store_readings(database_url, site, data, only=late, received_at=hi + HOUR)
        engine.run_until_idle()
        # …and a forced recompute of the month, as after a factor change.
        engine.request_recompute(site, lo, hi, "test")
        engine.run_until_idle()
        assert engine.pending() == 0
    finally:
        engine.close()

    with psycopg.connect(database_url) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        stored = _month_reads(conn, site, lo, hi)
        assert stored[0] != before_late[0]  # the late readings reached the month's totals
        assert stored[2].totals != before_late[2].totals
        plan = reads.site_plan(conn, site)
        pks = [d.device_pk for d in plan.devices]
        # Rebuilt now from the 15-min rows (hours → days → month, as the calc service does),
        # in a transaction rolled back afterwards.
        with conn.transaction(force_rollback=True):
            conn.execute("DELETE FROM calc_interval_rollup WHERE device_pk = ANY(%s)", (pks,))
            conn.execute("DELETE FROM calc_carbon_rollup WHERE site_id = %s", (site,))
            intervals.rollup_intervals(conn, pks, lo, hi, plan.timezone)
            carbon_db.rollup_carbon(conn, site, lo, hi, plan.timezone)
            rebuilt = _month_reads(conn, site, lo, hi)
        # Exactly equal: device totals, inventory lines, the flow graph and the ledger inputs.
        assert stored == rebuilt
        # And the month's device totals are the 15-min quantities summed directly (the rollup
        # hierarchy rounds each level to float8, so to 1e-12, not to the last bit).
        direct = _direct_device_sums(conn, pks, lo, hi)
        assert set(direct) == set(stored[0])
        for ids, total in stored[0].items():
            assert total.quantity == pytest.approx(direct[ids], rel=1e-12, abs=1e-9), ids


def test_the_factor_library_is_read_again_only_when_a_version_changes(
    database_url: str,
) -> None:
    engine = CalcEngine(database_url)
    try:
        engine.sync_reference()
    finally:
        engine.close()
    with psycopg.connect(database_url) as conn:
        first = reads.factor_library(conn)
        assert reads.factor_library(conn) is first
        with conn.transaction(force_rollback=True):
            name = conn.execute(
                "SELECT min(file_name) FROM factor_file WHERE superseded_at IS NULL"
            ).fetchone()
            assert name is not None
            conn.execute(
                "UPDATE factor_file SET superseded_at = now() WHERE file_name = %s", (name[0],)
            )
            changed = reads.factor_library(conn)
            assert changed is not first
            assert len(changed.files) == len(first.files) - 1
        assert reads.factor_library(conn) is not changed  # versions back as they were

"""The interval rollups bounded by (device, metric) keys give exactly the rows of the statements
they replaced, bounded by ``device_pk = ANY`` only (docs/performance.md, "Recompute"): the
same hour, day and month rows, bit for bit, with history before and after the recomputed range,
devices not recomputed, several metrics per device and a zone of a half-hour offset."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import psycopg
import pytest

from carbonflow.domain.readings.interval_arrays import GridArrays, to_us
from carbonflow.storage import intervals
from carbonflow.storage.db import execute_without
from carbonflow.storage.rollup import (
    EXPECTED_INTERVALS,
    GRAINS,
    GROUP_QUALITY,
    RollupSource,
    period_bounds,
    rollup_source,
)

pytestmark = pytest.mark.integration

T0 = datetime(2025, 3, 28, 16, 0, tzinfo=UTC)
SLOT = timedelta(minutes=15)
_ROLLUP = (
    "SELECT device_pk, metric_id, grain, period_start, quantity, quality, completeness, late, "
    "intervals FROM calc_interval_rollup ORDER BY device_pk, metric_id, grain, period_start"
)


def _reference_rollup(
    conn: psycopg.Connection[Any], pks: list[int], start: datetime, end: datetime, tz: str
) -> None:
    """The statements of ``rollup_intervals`` before they were bounded by key (commit 5aa9eb6)."""
    bounds = period_bounds(conn, start, end, tz)
    previous = "hour"
    for grain in GRAINS:
        lo, hi = bounds[grain]
        params = {"pks": pks, "g": grain, "lo": lo, "hi": hi, "tz": tz}
        conn.execute(
            "DELETE FROM calc_interval_rollup WHERE device_pk = ANY(%(pks)s) AND grain = %(g)s "
            "AND period_start >= %(lo)s AND period_start < %(hi)s",
            params,
        )
        src = _reference_source(grain, previous)
        count = "count(*)" if grain == "hour" else "sum(intervals)"
        conn.execute(
            "INSERT INTO calc_interval_rollup (device_pk, metric_id, grain, period_start, "
            "quantity, quality, completeness, late, intervals, computed_at) "
            f"SELECT device_pk, metric_id, %(g)s, {src.period}, sum(quantity::numeric)::float8, "
            f"{GROUP_QUALITY}, {src.completeness}, "
            f"bool_or(late), {count}, now() FROM {src.source} AND device_pk = ANY(%(pks)s) "
            f"GROUP BY device_pk, metric_id, {src.period}",
            params,
        )
        previous = grain


def _reference_source(grain: str, previous: str) -> RollupSource:
    """``rollup_source`` as it was before the periods of a day or month rollup were computed
    once per period start (each row's own ``date_trunc`` and expected intervals)."""
    if grain == "hour":
        return rollup_source(grain, previous, "calc_interval", "calc_interval_rollup")
    period = f"date_trunc('{grain}', period_start, %(tz)s)"
    source = (
        f"calc_interval_rollup WHERE grain = '{previous}' "
        "AND period_start >= %(lo)s AND period_start < %(hi)s"
    )
    slots = EXPECTED_INTERVALS.format(p="period_start", grain=previous)
    expected = EXPECTED_INTERVALS.format(p=period, grain=grain)
    weighted = f"sum((completeness * {slots})::numeric)"
    return RollupSource(period, source, f"({weighted} / {expected})::float8")


def _store_intervals(
    conn: psycopg.Connection[Any], rng: random.Random, mids: list[int], t0: datetime
) -> None:
    """40 days of 15-min rows (some missing) of devices 1–4, every metric, random values."""
    rows = []
    for pk in range(1, 5):
        for mid in mids:
            for i in range(40 * 96):
                if rng.random() < 0.05:
                    continue  # a gap: the hour's completeness is below 1
                quality = rng.choice(["measured"] * 8 + ["estimated", "missing"])
                quantity = rng.choice([0.0, 1e-9, 0.1, 1 / 3, 123.456789, 7e6]) * rng.random()
                completeness = rng.choice([1.0, 1.0, 0.5, rng.random()])
                late = rng.random() < 0.02
                rows.append((pk, mid, t0 + i * SLOT, quantity, quality, completeness, late, t0))
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY calc_interval (device_pk, metric_id, start_ts, quantity, quality, "
            "completeness, late, computed_at) FROM STDIN"
        ) as copy,
    ):
        for row in rows:
            copy.write_row(row)


# Shanghai kept local mean time (+8:05:43) until 1901: its hours then start off the 15-minute
# grid, the periods a rollup computes once per start do not hold them (``rollup._rolled_up``).
T_LMT = datetime(1900, 12, 10, 16, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("tz", "t0"),
    [
        ("Asia/Shanghai", T0),
        ("Asia/Kolkata", T0),
        ("Europe/Berlin", T0),
        ("Australia/Lord_Howe", T0),  # clocks back 30 min on 2025-04-06
        ("Asia/Shanghai", T_LMT),
    ],
)
def test_rollups_bounded_by_key_equal_the_rollups_by_device(
    database_url: str, tz: str, t0: datetime
) -> None:
    rng = random.Random(f"{tz}{t0}")
    with psycopg.connect(database_url) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        mids = [
            int(r[0])
            for r in conn.execute(
                "INSERT INTO metric (name, unit) VALUES ('t_a', 'kWh'), ('t_b', 'm3'), "
                "('t_c', 't') RETURNING metric_id"
            )
        ]
        _store_intervals(conn, rng, mids, t0)
        everything = (t0, t0 + timedelta(days=40))
        _reference_rollup(conn, [1, 2, 3, 4], *everything, tz)
        # Recompute devices 1 and 3 over ranges inside the history, one not on local hours
        # (Kolkata's hours are at :30 UTC), one across the month's end (and Berlin's DST).
        for start, end in [
            (t0 + timedelta(days=3, minutes=15), t0 + timedelta(days=3, hours=5)),
            (t0 + timedelta(days=1), t0 + timedelta(days=9)),
            (t0 + timedelta(days=18), t0 + timedelta(days=26)),
        ]:
            with conn.transaction():
                conn.execute(
                    "UPDATE calc_interval SET quantity = quantity * 1.5 + 0.1, late = NOT late "
                    "WHERE device_pk IN (1, 3) AND start_ts >= %s AND start_ts < %s",
                    (start, end),
                )
            with conn.transaction(force_rollback=True):
                _reference_rollup(conn, [1, 3], start, end, tz)
                expected = conn.execute(_ROLLUP).fetchall()
            intervals.rollup_intervals(conn, [1, 3], start, end, tz)
            got = conn.execute(_ROLLUP).fetchall()
            assert got == expected
            assert len({r[0] for r in got}) == 4  # devices 2 and 4 kept their rows


T_FOLD = datetime(2025, 10, 20, 0, 0, tzinfo=UTC)  # Berlin's clocks go back on the 26th


# Parts that PostgreSQL's numeric sums differently from floats, and tiny remainders, huge and
# negative values next to ordinary ones (``domain.decimal_sums``' slow path).
# Doubles just below a power of ten whose log10 rounds into the next decade, while at 15 digits
# they stay below it (999999.999999999, 9.99999999999999e-05: the first array version made
# them 1e6 and 1e-4).
_BELOW_A_MILLION, _BELOW_1E4 = 999999.9999999994, 9.999999999999994e-05
_QUANTITIES = [0.0, 0.1, 1 / 3, 7e6, 1e-12, -2.5, 2.220446049250313e-16, 3e16, 12345.6789]


def _quantity(rng: random.Random) -> float:
    return rng.choice(_QUANTITIES) * rng.random() if rng.random() < 0.95 else _BELOW_A_MILLION


def _completeness(rng: random.Random) -> float:
    return rng.choice([1.0, 0.5, rng.random(), 1e-7 * rng.random(), _BELOW_1E4])


def _grid(rng: random.Random, lo: datetime, hi: datetime) -> GridArrays:
    """New 15-min rows for every slot of [lo, hi)."""
    n = int((hi - lo) / SLOT)
    return GridArrays(
        np.array([to_us(lo + i * SLOT) for i in range(n)], dtype=np.int64),
        np.array([_quantity(rng) for _ in range(n)]),
        np.array([rng.choice([0, 0, 0, 1, 2]) for _ in range(n)], dtype=np.int8),
        np.array([_completeness(rng) for _ in range(n)]),
        np.array([rng.random() < 0.05 for _ in range(n)], dtype=np.bool_),
    )


# Zone → the start of a history holding a DST change of it, and that change.
_FOLDS = {
    "Asia/Shanghai": (T_FOLD, datetime(2025, 10, 26, 1, 0, tzinfo=UTC)),
    "Asia/Kolkata": (T_FOLD, datetime(2025, 10, 26, 1, 0, tzinfo=UTC)),
    "Europe/Berlin": (T_FOLD, datetime(2025, 10, 26, 1, 0, tzinfo=UTC)),  # clocks back 1 h
    # Clocks forward 30 min (02:00 → 02:30): local hours of 30 and 60 minutes.
    "Australia/Lord_Howe": (
        datetime(2025, 9, 28, 0, 0, tzinfo=UTC),
        datetime(2025, 10, 4, 15, 30, tzinfo=UTC),
    ),
    # Local mean time (+8:05:43): local hours start off the 15-minute grid; no change of offset.
    "Asia/Shanghai LMT": (T_LMT - timedelta(days=9), T_LMT),
}


def _chunk(
    rng: random.Random, mid: int, lo: datetime, hi: datetime
) -> list[tuple[int, int, datetime, datetime, GridArrays]]:
    """New rows of device 1 over [lo, hi) (two grids with a gap where the range allows) and of
    device 3 over [lo + 2 h, hi)."""
    if hi - lo > timedelta(hours=30):
        gap = (lo + timedelta(hours=10, minutes=15), lo + timedelta(hours=22, minutes=45))
        one = [
            (1, mid, lo, gap[0], _grid(rng, lo, gap[0])),
            (1, mid, gap[1], hi, _grid(rng, gap[1], hi)),
        ]
    else:
        one = [(1, mid, lo, hi, _grid(rng, lo, hi))]
    return [*one, (3, mid, lo + timedelta(hours=2), hi, _grid(rng, lo + timedelta(hours=2), hi))]


@pytest.mark.parametrize("tz", sorted(_FOLDS))
def test_hour_rows_computed_ahead_equal_those_rolled_up_after(database_url: str, tz: str) -> None:
    """The hours of a recompute's chunk computed on a second connection before its rows are
    written (``hour_rows``) and copied in, the hours around them rolled up from the stored rows:
    the same hour, day and month rows, bit for bit, as rolling up everything after the write —
    grids that start and end off the local hour, a device with two grids and a gap between them,
    a device with another window, a DST change (Berlin's fold, Lord Howe's half hour) inside a
    grid and at its edge, local mean time; quantities that numeric sums differently from
    floats."""
    rng = random.Random(f"ahead-{tz}")
    begin, fold = _FOLDS[tz]
    whole_days = tz in ("Asia/Shanghai", "Europe/Berlin")  # UTC midnights on local hours
    tz = tz.removesuffix(" LMT")
    with psycopg.connect(database_url) as conn, psycopg.connect(database_url) as other:
        for c in (conn, other):
            c.execute("SET TIME ZONE 'UTC'")
        mid = int(
            conn.execute(
                "INSERT INTO metric (name, unit) VALUES ('t_a', 'kWh') RETURNING metric_id"
            ).fetchall()[0][0]
        )
        conn.commit()
        history = _grid(rng, begin, begin + timedelta(days=12))
        intervals.replace_interval_arrays(
            conn,
            [(pk, mid, begin, begin + timedelta(days=12), history) for pk in (1, 2, 3)],
            begin,
        )
        intervals.rollup_intervals(conn, [1, 2, 3], begin, begin + timedelta(days=12), tz)
        conn.commit()
        for lo, hi in [
            (
                begin + timedelta(days=2, minutes=45),
                begin + timedelta(days=4, hours=3, minutes=15),
            ),
            (begin + timedelta(days=1), begin + timedelta(days=5)),  # whole days in UTC
            (fold - timedelta(hours=7, minutes=30), fold + timedelta(hours=9, minutes=15)),
            (fold - timedelta(minutes=30), fold + timedelta(days=1)),
            (fold - timedelta(hours=6), fold + timedelta(minutes=30)),
            (fold - timedelta(days=1, hours=1), fold + timedelta(days=1, hours=1)),
        ]:
            results = _chunk(rng, mid, lo, hi)
            hours = intervals.hour_rows(other, results, tz)
            other.rollback()
            assert hours.covered and hours.copy_data
            if hi - lo == timedelta(days=4) and whole_days:
                # A grid of whole local hours: none of them is left to the rollup.
                assert hours.covered[(3, mid)] == [(lo + timedelta(hours=2), hi)]
            with conn.transaction(force_rollback=True):
                intervals.replace_interval_arrays(conn, results, begin)
                intervals.rollup_intervals(conn, [1, 3], lo, hi, tz)
                expected = conn.execute(_ROLLUP).fetchall()
            with conn.transaction():
                intervals.replace_interval_arrays(conn, results, begin)
                intervals.rollup_intervals(conn, [1, 3], lo, hi, tz, hours)
            got = conn.execute(_ROLLUP).fetchall()
            assert got == expected
            assert len({r[0] for r in got}) == 3  # device 2 kept its rows


def test_execute_without_turns_join_methods_off_for_one_statement(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        seen = conn.execute("SELECT current_setting('enable_hashjoin')").fetchone()
        assert seen == ("on",)
        conn.execute("CREATE TEMP TABLE seen (hash text, merge text, nest text)")
        execute_without(
            conn,
            ("hashjoin", "mergejoin"),
            "INSERT INTO seen SELECT current_setting('enable_hashjoin'), "
            "current_setting('enable_mergejoin'), current_setting(%(n)s)",
            {"n": "enable_nestloop"},
        )
        assert conn.execute("SELECT * FROM seen").fetchall() == [("off", "off", "on")]
        after = conn.execute(
            "SELECT current_setting('enable_hashjoin'), current_setting('enable_mergejoin')"
        ).fetchone()
        assert after == ("on", "on")
        with pytest.raises(ValueError, match="seqscan"):
            execute_without(conn, ("seqscan",), "SELECT 1", {})

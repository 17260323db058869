"""SQL shared by the rollup tables (``calc_interval_rollup``, ``calc_carbon_rollup``): site-local
period bounds, the quality of a group of rows, expected intervals of a period, the periods a change
touches.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from carbonflow.domain.readings.intervals import ACCOUNTING_INTERVAL
from carbonflow.storage.db import Conn, execute_without

# Quality of a group of rows: measured only if all are, missing only if all are (as the calc
# service's rollups decide it).
GROUP_QUALITY = (
    "CASE WHEN bool_and(quality = 'measured') THEN 'measured' "
    "WHEN bool_and(quality = 'missing') THEN 'missing' ELSE 'estimated' END"
)


GRAINS = ("hour", "day", "month")

# A carbon row counts in a view if its basis is the view or ``both`` (scope 1 and heat are
# booked once as ``both``): the SQL form of ``domain.inventory.lines.Basis.in_view``.
IN_VIEW_PARAM = "basis IN (:basis, 'both')"


def in_view(view: str) -> str:
    """The filter of the ``location`` or ``market`` view, as SQL text."""
    if view not in ("location", "market"):
        raise ValueError(f"not a view: {view!r}")
    return f"basis IN ('{view}', 'both')"


SLOT = ACCOUNTING_INTERVAL


# 15-min intervals in one period [p, p + 1 grain) in the site's zone (DST-safe).
EXPECTED_INTERVALS = (
    "(extract(epoch FROM ((({p} AT TIME ZONE %(tz)s) + INTERVAL '1 {grain}') AT TIME ZONE %(tz)s)"
    " - {p}) / 900.0)"
)


def period_bounds(
    conn: Conn, start: datetime, end: datetime, tz: str
) -> dict[str, tuple[datetime, datetime]]:
    """For each grain, the periods [first, last + 1 grain) touching [start, end) in ``tz``."""
    row = conn.execute(
        "SELECT date_trunc('hour', %(s)s::timestamptz, %(tz)s), "
        " date_trunc('hour', %(e)s::timestamptz - INTERVAL '1 microsecond', %(tz)s) "
        "   + INTERVAL '1 hour', "
        " date_trunc('day', %(s)s::timestamptz, %(tz)s), "
        " ((date_trunc('day', %(e)s::timestamptz - INTERVAL '1 microsecond', %(tz)s) "
        "   AT TIME ZONE %(tz)s) + INTERVAL '1 day') AT TIME ZONE %(tz)s, "
        " date_trunc('month', %(s)s::timestamptz, %(tz)s), "
        " ((date_trunc('month', %(e)s::timestamptz - INTERVAL '1 microsecond', %(tz)s) "
        "   AT TIME ZONE %(tz)s) + INTERVAL '1 month') AT TIME ZONE %(tz)s",
        {"s": start, "e": end, "tz": tz},
    ).fetchone()
    assert row is not None
    return {"hour": (row[0], row[1]), "day": (row[2], row[3]), "month": (row[4], row[5])}


def periods_touching(
    conn: Conn, start: datetime, end: datetime, tz: str
) -> dict[str, list[tuple[datetime, datetime]]]:
    """The local days, months and years touching [start, end): [(period_start, period_end)]."""
    rows = conn.execute(
        "SELECT g, p, ((p AT TIME ZONE %(tz)s) + ('1 ' || g)::interval) AT TIME ZONE %(tz)s "
        "FROM unnest(ARRAY['day', 'month', 'year']) AS g, LATERAL generate_series("
        " date_trunc(g, %(s)s::timestamptz, %(tz)s) AT TIME ZONE %(tz)s,"
        " date_trunc(g, %(e)s::timestamptz - INTERVAL '1 microsecond', %(tz)s) AT TIME ZONE %(tz)s,"
        " ('1 ' || g)::interval) AS local_p, LATERAL (SELECT local_p AT TIME ZONE %(tz)s AS p) x "
        "ORDER BY g, p",
        {"s": start, "e": end, "tz": tz},
    ).fetchall()
    out: dict[str, list[tuple[datetime, datetime]]] = {"day": [], "month": [], "year": []}
    for grain, p, q in rows:
        out[str(grain)].append((p, q))
    return out


def local_tiles(start: datetime, end: datetime, tz: str) -> list[tuple[str, datetime, datetime]]:
    """[start, end) covered by the coarsest whole local months, days, hours, then 15-min."""
    zone = ZoneInfo(tz)
    out: list[tuple[str, datetime, datetime]] = []
    cursor = start.astimezone(UTC)
    end = end.astimezone(UTC)
    while cursor < end:
        local = cursor.astimezone(zone)
        chosen: tuple[str, datetime, datetime] | None = None
        midnight = local.hour == 0 and local.minute == 0 and local.second == 0
        candidates: list[tuple[str, bool, datetime]] = []
        if midnight and local.microsecond == 0:
            month_next = (local.replace(day=1) + timedelta(days=32)).replace(day=1)
            candidates.append(("month", local.day == 1, month_next))
            day_next = (local + timedelta(days=1)).replace(hour=0, minute=0)
            candidates.append(
                ("day", True, datetime(day_next.year, day_next.month, day_next.day, tzinfo=zone))
            )
        if local.minute == 0 and local.second == 0 and local.microsecond == 0:
            candidates.append(("hour", True, cursor + timedelta(hours=1)))
        for grain, aligned, boundary in candidates:
            if grain == "month":
                boundary = datetime(boundary.year, boundary.month, 1, tzinfo=zone)  # noqa: PLW2901
            nxt_utc = boundary.astimezone(UTC)
            if aligned and nxt_utc <= end:
                chosen = (grain, cursor, nxt_utc)
                break
        if chosen is None:
            chosen = ("slot", cursor, min(end, cursor + SLOT))
        out.append(chosen)
        cursor = chosen[2]
    return out


def tile_runs(
    tiles: list[tuple[str, datetime, datetime]],
) -> dict[str, list[tuple[datetime, datetime]]]:
    """Consecutive tiles of one grain joined: grain → [(first start, last end)]. The periods of
    a grain stored in [first start, last end) are exactly the run's tiles."""
    runs: dict[str, list[tuple[datetime, datetime]]] = {}
    previous: str | None = None
    for grain, lo, hi in tiles:
        own = runs.setdefault(grain, [])
        if grain == previous and own[-1][1] == lo:
            own[-1] = (own[-1][0], hi)
        else:
            own.append((lo, hi))
        previous = grain
    return runs


def merge_tiles(tiles: list[tuple[str, datetime, datetime]]) -> dict[str, list[datetime]]:
    by_grain: dict[str, list[datetime]] = {}
    for grain, lo, _hi in tiles:
        by_grain.setdefault(grain, []).append(lo)
    return by_grain


@dataclass(frozen=True, slots=True)
class RollupSource:
    """Where the rows of one grain come from: hours from the 15-min table, days from the hours
    and months from the days (a rollup table's rows of the previous grain)."""

    period: str  # the period-start expression, in the site's zone
    source: str  # a FROM item of the rows in [lo, hi): ``table WHERE …`` for hours
    completeness: str  # the completeness of a group, as a fraction of its expected intervals


def rollup_source(
    grain: str, previous: str, base: str, rollup: str, where: str = "", period: str = ""
) -> RollupSource:
    """The rows of ``grain`` built from ``base`` (15-min rows, for hours) or from the ``previous``
    grain's rows of ``rollup``; ``where`` (``"… AND "``) narrows both, e.g. to one site;
    ``period``: a column holding the period start, computed once by the caller."""
    if grain == "hour":
        period = period or "date_trunc('hour', start_ts, %(tz)s)"
        source = f"{base} WHERE {where}start_ts >= %(lo)s AND start_ts < %(hi)s"
        weighted = "sum(completeness::numeric)"
    else:
        period = period or "rollup_period"
        source = _rolled_up(grain, previous, rollup, where)
        weighted = "sum((completeness * rollup_slots)::numeric)"
    expected = EXPECTED_INTERVALS.format(p=period, grain=grain)
    return RollupSource(period, source, f"({weighted} / {expected})::float8")


def _rolled_up(grain: str, previous: str, rollup: str, where: str) -> str:
    """The ``previous`` grain's rows of ``rollup`` in [lo, hi), each with the ``grain`` period
    it falls in (``rollup_period``) and its own expected intervals (``rollup_slots``).

    Both are computed once per period start, not once per row: a site's day rollup of 1 000
    devices read 96 000 hour rows a cycle, and the two time-zone conversions of each row's
    expected intervals and its ``date_trunc`` in the zone were half of the statement (530 →
    239 ms, docs/performance.md, "Recompute"). The periods are the 15-minute starts of
    [lo, hi); a row whose start is not one of them (an era of an offset that is not a multiple
    of 15 minutes: local mean time, as Shanghai's until 1901) is computed as before, so every
    value is the same expression of the same instant. ``OFFSET 0`` keeps the periods a
    subquery of their own (pulled up, the expressions were computed after the join, per row);
    run the statement with :func:`insert_rolled_up`."""
    slots = EXPECTED_INTERVALS.format(p="{t}", grain=previous)
    periods = (
        f"SELECT q, date_trunc('{grain}', q, %(tz)s) AS q_period, {slots.format(t='q')} "
        "AS q_slots FROM generate_series(%(lo)s::timestamptz, %(hi)s::timestamptz, "
        "INTERVAL '15 minutes') AS q OFFSET 0"
    )
    return (
        f"(SELECT r.*, COALESCE(k.q_period, date_trunc('{grain}', r.period_start, %(tz)s)) "
        f"AS rollup_period, COALESCE(k.q_slots, {slots.format(t='r.period_start')}) "
        f"AS rollup_slots FROM {rollup} r LEFT JOIN ({periods}) k ON k.q = r.period_start "
        f"WHERE {where}grain = '{previous}' AND period_start >= %(lo)s "
        "AND period_start < %(hi)s) AS rolled"
    )


def insert_rolled_up(conn: Conn, grain: str, sql: str, params: dict[str, Any]) -> None:
    """Run the INSERT … SELECT of a ``grain`` rollup built by :func:`rollup_source`; a day or
    month rollup's join to its periods is then a hash join. While a recompute fills a table
    faster than ANALYZE follows, the planner takes a range of new periods for a row or two and
    joined the series of periods by a nested loop, evaluated once per row: one day rollup of
    1 000 devices ran for more than 9 minutes instead of 0.2 s."""
    execute_without(conn, () if grain == "hour" else ("nestloop",), sql, params)

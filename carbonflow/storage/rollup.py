"""SQL shared by the rollup tables (``calc_interval_rollup``, ``calc_carbon_rollup``): site-local
period bounds, the quality of a group of rows, expected intervals of a period, the periods a change
touches.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from carbonflow.domain.readings.intervals import ACCOUNTING_INTERVAL
from carbonflow.storage.db import Conn

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
    source: str  # ``table WHERE …`` restricted to [lo, hi)
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
        period = period or f"date_trunc('{grain}', period_start, %(tz)s)"
        source = (
            f"{rollup} WHERE {where}grain = '{previous}' "
            "AND period_start >= %(lo)s AND period_start < %(hi)s"
        )
        weighted = (
            "sum((completeness * "
            f"{EXPECTED_INTERVALS.format(p='period_start', grain=previous)})::numeric)"
        )
    expected = EXPECTED_INTERVALS.format(p=period, grain=grain)
    return RollupSource(period, source, f"({weighted} / {expected})::float8")

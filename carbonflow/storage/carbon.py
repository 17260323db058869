"""The carbon inventory: ``calc_carbon``, ``calc_carbon_rollup``, ``calc_factor_set`` and
``calc_green_claim`` — writes of the calc service, period totals, series and factor-set provenance.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from psycopg.types.json import Jsonb

from carbonflow.domain.inventory.green import GreenClaim
from carbonflow.domain.inventory.lines import (
    Basis,
    Category,
    FactorTrail,
    Gas,
    InventoryLine,
    Scope,
)
from carbonflow.domain.readings.quality import Quality
from carbonflow.storage.db import Conn
from carbonflow.storage.rollup import (
    EXPECTED_INTERVALS,
    GRAINS,
    GROUP_QUALITY,
    IN_VIEW_PARAM,
    SLOT,
    insert_rolled_up,
    local_tiles,
    merge_tiles,
    period_bounds,
    rollup_source,
)
from carbonflow.storage.schema import (
    calc_green_claim,
    green_instrument,
)


@dataclass(frozen=True, slots=True)
class SeriesFilter:
    org_id: str | None = None
    node_id: str | None = None
    carrier: str | None = None
    scope: str | None = None
    category: str | None = None


@dataclass(frozen=True, slots=True)
class CarbonPointRow:
    period_start: datetime
    energy_tce: float
    zero_carbon_tce: float
    tco2e: float
    co2_t: float
    ch4_t: float
    scope1_tco2e: float
    scope2_tco2e: float
    quality: str
    completeness: float
    rows: int


@dataclass(frozen=True, slots=True)
class ActivityRow:
    period_start: datetime
    carrier: str
    activity: float
    unit: str


def _series_source(grain: str) -> tuple[str, str]:
    """(FROM … WHERE, time column) of the 15-min table or a rollup grain."""
    if grain == "15min":
        return (
            "calc_carbon WHERE site_id = :s AND start_ts >= :a AND start_ts < :b",
            "start_ts",
        )
    return (
        "calc_carbon_rollup WHERE site_id = :s AND grain = :g "
        "AND period_start >= :a AND period_start < :b",
        "period_start",
    )


_SERIES_FILTERS = (
    " AND (CAST(:o AS text) IS NULL OR org_id = :o)"
    " AND (CAST(:n AS text) IS NULL OR node_id = :n)"
    " AND (CAST(:c AS text) IS NULL OR carrier = :c)"
    " AND (CAST(:sc AS text) IS NULL OR scope = :sc)"
    " AND (CAST(:cat AS text) IS NULL OR category = :cat)"
)


def _series_params(
    site_id: str, grain: str, period: tuple[datetime, datetime], where: SeriesFilter, basis: str
) -> dict[str, Any]:
    start, end = period
    return {
        "s": site_id,
        "g": grain,
        "a": start,
        "b": end,
        "o": where.org_id,
        "n": where.node_id,
        "c": where.carrier,
        "sc": where.scope,
        "cat": where.category,
        "basis": basis,
    }


def carbon_series(
    conn: sa.Connection,
    site_id: str,
    grain: str,
    start: datetime,
    end: datetime,
    *,
    basis: str,
    where: SeriesFilter,
) -> list[CarbonPointRow]:
    """Energy and carbon of the site's inventory rows per period of ``grain`` in [start, end).

    Emissions (``tco2e``, gases, scopes) and ``zero_carbon_tce`` are of ``basis`` (its rows and
    the ``both`` rows); ``energy_tce`` is counted once, on the location and both rows, whatever
    the basis (docs/calc.md). Periods without rows are absent.
    """
    source, ts = _series_source(grain)
    in_basis = IN_VIEW_PARAM
    rows = conn.execute(
        sa.text(
            f"SELECT {ts}, "
            "coalesce(sum(energy_tce::numeric) FILTER (WHERE basis <> 'market'), 0)::float8, "
            f"coalesce(sum(zero_carbon_tce::numeric) FILTER (WHERE {in_basis}), 0)::float8, "
            f"coalesce(sum(tco2e::numeric) FILTER (WHERE {in_basis}), 0)::float8, "
            f"coalesce(sum(gas_t::numeric) FILTER (WHERE {in_basis} AND gas = 'CO2'), 0)"
            "::float8, "
            f"coalesce(sum(gas_t::numeric) FILTER (WHERE {in_basis} AND gas = 'CH4'), 0)"
            "::float8, "
            f"coalesce(sum(tco2e::numeric) FILTER (WHERE {in_basis} AND scope = 'scope_1'), 0)"
            "::float8, "
            f"coalesce(sum(tco2e::numeric) FILTER (WHERE {in_basis} AND scope = 'scope_2'), 0)"
            "::float8, "
            f"{GROUP_QUALITY}, avg(completeness)::float8, count(*) "
            f"FROM {source}{_SERIES_FILTERS} GROUP BY {ts} ORDER BY {ts}"
        ),
        _series_params(site_id, grain, (start, end), where, basis),
    )
    return [CarbonPointRow(*r) for r in rows]


def activity_series(
    conn: sa.Connection,
    site_id: str,
    grain: str,
    start: datetime,
    end: datetime,
    *,
    where: SeriesFilter,
) -> list[ActivityRow]:
    """Activity data (energy in its own unit: MWh, GJ, Nm³ …) per period, carrier and unit.

    Physical quantities do not depend on the basis: the location and both rows are summed. A
    source with several gases has one row per gas carrying the same activity, so one gas per
    source is counted.
    """
    source, ts = _series_source(grain)
    rows = conn.execute(
        sa.text(
            "SELECT p, carrier, sum(activity::numeric)::float8, activity_unit FROM ("
            f"SELECT {ts} AS p, carrier, activity, activity_unit, gas, min(gas) OVER ("
            f"PARTITION BY {ts}, org_id, node_id, carrier, category, basis) AS first_gas "
            f"FROM {source}{_SERIES_FILTERS} AND basis <> 'market') x "
            "WHERE gas = first_gas GROUP BY p, carrier, activity_unit ORDER BY p, carrier, "
            "activity_unit"
        ),
        _series_params(site_id, grain, (start, end), where, "location"),
    )
    return [ActivityRow(*r) for r in rows]


def factor_set_visible(
    conn: sa.Connection,
    factor_set_id: int,
    *,
    site_ids: frozenset[str] | None,
    org_id: str | None,
) -> bool:
    """Whether a carbon row the caller may see uses the factor set (15-min or rollup rows: a
    rollup row records one of its intervals' sets, so both tables are asked)."""
    if site_ids is None and org_id is None:
        found = conn.execute(
            sa.text("SELECT 1 FROM calc_factor_set WHERE factor_set_id = :f"),
            {"f": factor_set_id},
        ).first()
        return found is not None
    params = {
        "f": factor_set_id,
        "all": site_ids is None,
        "ids": sorted(site_ids or ()),
        "o": org_id,
    }
    scope = (
        "factor_set_id = :f AND (CAST(:all AS boolean) OR site_id = ANY(:ids)) "
        "AND (CAST(:o AS text) IS NULL OR org_id = :o)"
    )
    found = conn.execute(
        sa.text(
            f"SELECT EXISTS (SELECT 1 FROM calc_carbon_rollup WHERE {scope}) "
            f"OR EXISTS (SELECT 1 FROM calc_carbon WHERE {scope})"
        ),
        params,
    ).scalar_one()
    return bool(found)


class FactorSets:
    """calc_factor_set ids by content. Ids found in a transaction are cached only once the
    caller reports it committed (:meth:`commit`), so a rollback never leaves a dangling id."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self._pending: dict[str, int] = {}

    def id_for(self, conn: Conn, records: Sequence[Mapping[str, Any]]) -> int:
        text = json.dumps(list(records), sort_keys=True, default=str, ensure_ascii=False)
        sha = hashlib.sha256(text.encode()).hexdigest()
        found = self._ids.get(sha) or self._pending.get(sha)
        if found is not None:
            return found
        row = conn.execute(
            "INSERT INTO calc_factor_set (sha256, factors) VALUES (%s, %s) "
            "ON CONFLICT (sha256) DO NOTHING RETURNING factor_set_id",
            (sha, Jsonb(list(records))),
        ).fetchone()
        if row is None:
            row = conn.execute(
                "SELECT factor_set_id FROM calc_factor_set WHERE sha256 = %s", (sha,)
            ).fetchone()
        assert row is not None
        self._pending[sha] = int(row[0])
        return int(row[0])

    def commit(self) -> None:
        self._ids.update(self._pending)
        self._pending.clear()

    def rollback(self) -> None:
        self._pending.clear()


# A calc_carbon row after its site and interval start: (org, node, carrier, category, basis,
# gas, scope, activity, activity_unit, energy_tce, zero_carbon_tce, gas_t, tco2e, factor_key,
# factor_version, factor_value, factor_unit, factor_set_id, quality, completeness)
_Packed = tuple[Any, ...]


def pack_line(conn: Conn, factor_sets: FactorSets, line: InventoryLine) -> _Packed:
    """The stored columns of one line; its factors stored once as a factor set."""
    trail = line.factors
    records = trail.records or tuple(f.record() for f in trail.used)
    set_id = factor_sets.id_for(conn, records) if records else trail.set_id
    return (
        line.org_id, line.node_id, line.carrier, line.category.value, line.basis.value,
        line.gas.value, line.scope.value, line.activity, line.activity_unit, line.energy_tce,
        line.zero_carbon_tce, line.gas_t, line.tco2e, trail.key, trail.version, trail.value,
        trail.unit, set_id, line.quality.value, line.completeness,
    )  # fmt: skip


def unpack_line(row: Sequence[Any]) -> InventoryLine:
    """The line of stored columns in :func:`pack_line`'s order."""
    (org, node, carrier, category, basis, gas, scope, activity, unit, energy, zero, gas_t, tco2e,
     f_key, f_version, f_value, f_unit, f_set, quality, completeness) = row  # fmt: skip
    return InventoryLine(
        org, node, carrier, Category(category), Basis(basis), Gas(gas), Scope(scope), activity,
        unit, energy, zero, gas_t, tco2e, FactorTrail(f_key, f_version, f_value, f_unit, f_set),
        Quality(quality), completeness,
    )  # fmt: skip


def replace_carbon(
    conn: Conn,
    site_id: str,
    start: datetime,
    end: datetime,
    lines: Iterable[tuple[datetime, InventoryLine]],
    *,
    factor_sets: FactorSets,
    computed_at: datetime,
) -> int:
    """The carbon lines of [start, end) replaced by ``lines`` (interval start, line); the
    number written. Each line's factors are stored first, as a factor set."""
    packed = [(slot_start, pack_line(conn, factor_sets, line)) for slot_start, line in lines]
    conn.execute(
        "DELETE FROM calc_carbon WHERE site_id = %s AND start_ts >= %s AND start_ts < %s",
        (site_id, start, end),
    )
    written = 0
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY calc_carbon (site_id, start_ts, org_id, node_id, carrier, category, basis, "
            "gas, scope, activity, activity_unit, energy_tce, zero_carbon_tce, gas_t, tco2e, "
            "factor_key, factor_version, factor_value, factor_unit, factor_set_id, quality, "
            "completeness, computed_at) FROM STDIN (FORMAT BINARY)"
        ) as copy,
    ):
        copy.set_types(
            ["text", "timestamptz", "text", "text", "text", "text", "text", "text", "text",
             "float8", "text", "float8", "float8", "float8", "float8", "text", "text", "float8",
             "text", "int4", "text", "float8", "timestamptz"]
        )  # fmt: skip
        for slot_start, row in packed:
            copy.write_row((site_id, slot_start, *row, computed_at))
            written += 1
    return written


def last_carbon_end(conn: Conn, site_id: str, start: datetime, end: datetime) -> datetime | None:
    row = conn.execute(
        "SELECT max(start_ts) FROM calc_carbon WHERE site_id = %s AND start_ts >= %s "
        "AND start_ts < %s",
        (site_id, start, end),
    ).fetchone()
    return None if row is None or row[0] is None else row[0] + SLOT


def replace_green_claims(
    conn: Conn,
    site_id: str,
    month_start: datetime,
    claims: Sequence[tuple[str, str, bool, float, float, float, str]],
    computed_at: datetime,
) -> None:
    conn.execute(
        "DELETE FROM calc_green_claim WHERE site_id = %s AND month_start = %s",
        (site_id, month_start),
    )
    if claims:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO calc_green_claim (site_id, month_start, instrument_id, kind, "
                "accepted, offered_mwh, applied_mwh, unused_mwh, reason, computed_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [(site_id, month_start, *c, computed_at) for c in claims],
            )


_CARBON_KEY = "org_id, node_id, carrier, category, basis, gas"


_CARBON_SUMS = (
    "max(scope), sum(activity::numeric)::float8, max(activity_unit), "
    "sum(energy_tce::numeric)::float8, sum(zero_carbon_tce::numeric)::float8, "
    "sum(gas_t::numeric)::float8, sum(tco2e::numeric)::float8, max(factor_key), "
    "max(factor_version), max(factor_value), max(factor_unit), max(factor_set_id), "
)


def rollup_carbon(conn: Conn, site_id: str, start: datetime, end: datetime, tz: str) -> None:
    """Recompute the site's hour, day and month carbon rows touching [start, end)."""
    bounds = period_bounds(conn, start, end, tz)
    previous = "hour"
    for grain in GRAINS:
        lo, hi = bounds[grain]
        conn.execute(
            "DELETE FROM calc_carbon_rollup WHERE site_id = %(s)s AND grain = %(g)s "
            "AND period_start >= %(lo)s AND period_start < %(hi)s",
            {"s": site_id, "g": grain, "lo": lo, "hi": hi},
        )
        src = rollup_source(
            grain, previous, "calc_carbon", "calc_carbon_rollup", where="site_id = %(s)s AND "
        )
        insert_rolled_up(
            conn,
            grain,
            "INSERT INTO calc_carbon_rollup (site_id, grain, period_start, org_id, node_id, "
            "carrier, category, basis, gas, scope, activity, activity_unit, energy_tce, "
            "zero_carbon_tce, gas_t, tco2e, factor_key, factor_version, factor_value, "
            "factor_unit, factor_set_id, quality, completeness, computed_at) "
            f"SELECT %(s)s, %(g)s, {src.period}, {_CARBON_KEY}, {_CARBON_SUMS}{GROUP_QUALITY}, "
            f"{src.completeness}, now() "
            f"FROM {src.source} GROUP BY {src.period}, {_CARBON_KEY}",
            {"s": site_id, "g": grain, "lo": lo, "hi": hi, "tz": tz},
        )
        previous = grain


def carbon_totals(
    conn: Conn, site_id: str, start: datetime, end: datetime, tz: str
) -> list[InventoryLine]:
    """The site's carbon rows summed over [start, end) (aligned to 15 min), by row key."""
    tiles = merge_tiles(local_tiles(start, end, tz))
    parts: list[str] = []
    params: dict[str, Any] = {"s": site_id}
    for grain, starts in tiles.items():
        params[f"p_{grain}"] = starts
        if grain == "slot":
            parts.append(
                "SELECT * , 1.0::float8 AS w FROM (SELECT org_id, node_id, carrier, category, "
                "basis, gas, scope, activity, activity_unit, energy_tce, zero_carbon_tce, gas_t, "
                "tco2e, factor_key, factor_version, factor_value, factor_unit, factor_set_id, "
                "quality, completeness, 1.0::float8 AS slots FROM calc_carbon "
                f"WHERE site_id = %(s)s AND start_ts = ANY(%(p_{grain})s)) x"
            )
        else:
            parts.append(
                "SELECT *, 1.0::float8 AS w FROM (SELECT org_id, node_id, carrier, category, "
                "basis, gas, scope, activity, activity_unit, energy_tce, zero_carbon_tce, gas_t, "
                "tco2e, factor_key, factor_version, factor_value, factor_unit, factor_set_id, "
                "quality, completeness, "
                f"{EXPECTED_INTERVALS.format(p='period_start', grain=grain)}::float8 AS slots "
                f"FROM calc_carbon_rollup WHERE site_id = %(s)s AND grain = '{grain}' "
                f"AND period_start = ANY(%(p_{grain})s)) x"
            )
    if not parts:
        return []
    params["tz"] = tz
    total_slots = (end - start) / SLOT
    rows = conn.execute(
        f"SELECT {_CARBON_KEY}, {_CARBON_SUMS}{GROUP_QUALITY}, "
        "(sum((completeness * slots)::numeric) / %(n)s)::float8 "
        f"FROM ({' UNION ALL '.join(parts)}) u GROUP BY {_CARBON_KEY} ORDER BY {_CARBON_KEY}",
        {**params, "n": total_slots},
    ).fetchall()
    return [unpack_line(r) for r in rows]


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    period_start: datetime
    energy_tce: float
    zero_carbon_tce: float
    tco2e_location: float
    tco2e_market: float
    co2_t_location: float
    scope1_tco2e: float
    scope2_location_tco2e: float
    scope2_market_tco2e: float
    completeness: float


def site_series(
    conn: Conn,
    site_id: str,
    grain: str,
    start: datetime,
    end: datetime,
    *,
    org_id: str | None = None,
) -> list[SeriesPoint]:
    """Energy and carbon time series of a site (or of the rows booked at one organisation),
    by ``grain``: ``15min`` | ``hour`` | ``day`` | ``month``."""
    if grain == "15min":
        source = "calc_carbon WHERE site_id = %(s)s AND start_ts >= %(a)s AND start_ts < %(b)s"
        ts = "start_ts"
    elif grain in GRAINS:
        source = (
            "calc_carbon_rollup WHERE site_id = %(s)s AND grain = %(g)s "
            "AND period_start >= %(a)s AND period_start < %(b)s"
        )
        ts = "period_start"
    else:
        raise ValueError(f"grain must be 15min, hour, day or month, not {grain!r}")
    org_filter = "" if org_id is None else " AND org_id = %(o)s"
    rows = conn.execute(
        f"SELECT {ts}, "
        "sum(energy_tce::numeric)::float8, sum(zero_carbon_tce::numeric)::float8, "
        "coalesce(sum(tco2e::numeric) FILTER (WHERE basis <> 'market'), 0)::float8, "
        "coalesce(sum(tco2e::numeric) FILTER (WHERE basis <> 'location'), 0)::float8, "
        "coalesce(sum(gas_t::numeric) FILTER (WHERE basis <> 'market' AND gas = 'CO2'), 0)"
        "::float8, "
        "coalesce(sum(tco2e::numeric) FILTER (WHERE scope = 'scope_1'), 0)::float8, "
        "coalesce(sum(tco2e::numeric) FILTER (WHERE scope = 'scope_2' AND basis <> 'market'),"
        " 0)::float8, "
        "coalesce(sum(tco2e::numeric) FILTER (WHERE scope = 'scope_2' AND basis <> 'location'),"
        " 0)::float8, avg(completeness)::float8 "
        f"FROM {source}{org_filter} GROUP BY {ts} ORDER BY {ts}",
        {"s": site_id, "g": grain, "a": start, "b": end, "o": org_id},
    ).fetchall()
    return [SeriesPoint(*r) for r in rows]


def factor_set(conn: Conn, factor_set_id: int) -> list[dict[str, Any]]:
    """The full records of the factors behind a carbon row (key, version, source, selection)."""
    row = conn.execute(
        "SELECT factors FROM calc_factor_set WHERE factor_set_id = %s", (factor_set_id,)
    ).fetchone()
    return [] if row is None else list(row[0])


def month_claims(
    conn: sa.Connection, site_id: str, month_start: datetime, org_id: str | None
) -> list[GreenClaim]:
    """The green-power claims of the month; of one organisation's instruments if ``org_id``."""
    c, g = calc_green_claim, green_instrument
    query = (
        sa.select(
            c.c.instrument_id,
            c.c.kind,
            c.c.accepted,
            c.c.offered_mwh,
            c.c.applied_mwh,
            c.c.unused_mwh,
            c.c.reason,
        )
        .select_from(
            # a register claim's entry is ``<batch id>/claim-<n>`` (batch ids have no '/')
            c.outerjoin(
                g,
                sa.and_(
                    g.c.site_id == c.c.site_id,
                    g.c.instrument_id == sa.func.split_part(c.c.instrument_id, "/claim-", 1),
                ),
            )
        )
        .where(c.c.site_id == site_id, c.c.month_start == month_start)
        .order_by(c.c.instrument_id)
    )
    if org_id is not None:
        query = query.where(g.c.org_id == org_id)
    return [GreenClaim(*r) for r in conn.execute(query)]

"""SQL for the API's calc-result routes: carbon time series, device energy, indicators with their
trend, early-warning events, factor provenance, the factor library and regulator aggregates.

Every function takes an open SQLAlchemy connection and returns plain frozen rows. Scoping is
explicit, as in :mod:`carbonflow.storage.api_store`: ``org_id`` not ``None`` restricts a query to
one organisation's rows (an enterprise key); ``site_ids`` ``None`` means every site (admin).

The calc service's own read queries (:mod:`carbonflow.storage.calc_store`) take a psycopg
connection; :func:`driver_connection` hands them the one under a SQLAlchemy connection, so one
request uses one connection and one snapshot-free transaction for all its queries.

Sums are ``numeric`` like the calc service's rollups, so a series point equals the sum the calc
tables give for the same rows, independent of row order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import psycopg
import sqlalchemy as sa

# Quality of a group of rows: measured only if all are, missing only if all are (as the calc
# service's rollups decide it).
_QUALITY = (
    "CASE WHEN bool_and(quality = 'measured') THEN 'measured' "
    "WHEN bool_and(quality = 'missing') THEN 'missing' ELSE 'estimated' END"
)


def driver_connection(conn: sa.Connection) -> psycopg.Connection[Any]:
    """The psycopg connection under ``conn`` (the API's engine uses the psycopg 3 dialect)."""
    raw = conn.connection.driver_connection
    if not isinstance(raw, psycopg.Connection):
        raise TypeError("the API's engine must use the psycopg 3 driver")
    return raw


def site_timezone(conn: sa.Connection, site_id: str) -> str | None:
    tz: str | None = conn.execute(
        sa.text("SELECT timezone FROM site WHERE site_id = :s"), {"s": site_id}
    ).scalar_one_or_none()
    return tz


@dataclass(frozen=True, slots=True)
class SiteInfo:
    site_id: str
    name: str
    kind: str
    timezone: str


def sites_info(conn: sa.Connection, site_ids: frozenset[str] | None) -> list[SiteInfo]:
    """The registered sites among ``site_ids`` (``None``: all), by id."""
    rows = conn.execute(
        sa.text(
            "SELECT site_id, name, kind, timezone FROM site "
            "WHERE CAST(:all AS boolean) OR site_id = ANY(:ids) ORDER BY site_id"
        ),
        {"all": site_ids is None, "ids": sorted(site_ids or ())},
    )
    return [SiteInfo(*r) for r in rows]


def organisation_names(conn: sa.Connection, site_ids: Sequence[str]) -> dict[tuple[str, str], str]:
    rows = conn.execute(
        sa.text("SELECT site_id, org_id, name FROM organisation WHERE site_id = ANY(:ids)"),
        {"ids": list(site_ids)},
    )
    return {(str(s), str(o)): str(n) for s, o, n in rows}


# --------------------------------------------------------------------------------------------
# Carbon time series
# --------------------------------------------------------------------------------------------


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
    in_basis = "basis IN (:basis, 'both')"
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
            f"{_QUALITY}, avg(completeness)::float8, count(*) "
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


# --------------------------------------------------------------------------------------------
# Device energy
# --------------------------------------------------------------------------------------------


def device_pk(
    conn: sa.Connection, site_id: str, device_id: str, *, org_id: str | None
) -> int | None:
    """The device's key when the caller may see it (its organisation's, for an enterprise)."""
    pk: int | None = conn.execute(
        sa.text(
            "SELECT device_pk FROM device WHERE site_id = :s AND device_id = :d "
            "AND (CAST(:o AS text) IS NULL OR org_id = :o)"
        ),
        {"s": site_id, "d": device_id, "o": org_id},
    ).scalar_one_or_none()
    return pk


@dataclass(frozen=True, slots=True)
class DevicePointRow:
    metric: str
    unit: str
    period_start: datetime
    quantity: float
    quality: str
    completeness: float
    late: bool
    intervals: int


def device_series(
    conn: sa.Connection,
    pk: int,
    grain: str,
    start: datetime,
    end: datetime,
    *,
    metric: str | None,
) -> list[DevicePointRow]:
    """Interval quantities of a device's counter and interval metrics (after the multiplier)."""
    if grain == "15min":
        source = (
            "SELECT metric_id, start_ts AS p, quantity, quality, completeness, late, "
            "1 AS intervals FROM calc_interval WHERE device_pk = :pk "
            "AND start_ts >= :a AND start_ts < :b"
        )
    else:
        source = (
            "SELECT metric_id, period_start AS p, quantity, quality, completeness, late, "
            "intervals FROM calc_interval_rollup WHERE device_pk = :pk AND grain = :g "
            "AND period_start >= :a AND period_start < :b"
        )
    rows = conn.execute(
        sa.text(
            "SELECT m.name, m.unit, c.p, c.quantity, c.quality, c.completeness, c.late, "
            f"c.intervals FROM ({source}) c JOIN metric m ON m.metric_id = c.metric_id "
            "WHERE CAST(:m AS text) IS NULL OR m.name = :m ORDER BY m.name, c.p"
        ),
        {"pk": pk, "g": grain, "a": start, "b": end, "m": metric},
    )
    return [DevicePointRow(*r) for r in rows]


# --------------------------------------------------------------------------------------------
# Indicators and events
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IndicatorRow:
    site_id: str
    org_id: str  # '' = the site as a whole
    grain: str
    period_start: datetime
    indicator: str
    period_end: datetime
    value: float | None
    unit: str
    numerator: float
    denominator: float
    undefined_reason: str | None
    basis: str
    target_threshold: float | None
    target_comparator: str | None
    target_unit: str | None
    target_basis: str | None
    target_source: str | None
    status: str
    explanation: str
    completeness: float


_INDICATOR_COLUMNS = (
    "site_id, org_id, grain, period_start, indicator, period_end, value, unit, numerator, "
    "denominator, undefined_reason, basis, target_threshold, target_comparator, target_unit, "
    "target_basis, target_source, status, explanation, completeness"
)


def latest_indicator_period(
    conn: sa.Connection, site_id: str, grain: str, *, org_id: str | None
) -> datetime | None:
    latest: datetime | None = conn.execute(
        sa.text(
            "SELECT max(period_start) FROM calc_indicator WHERE site_id = :s AND grain = :g "
            "AND (CAST(:o AS text) IS NULL OR org_id = :o)"
        ),
        {"s": site_id, "g": grain, "o": org_id},
    ).scalar_one_or_none()
    return latest


def indicator_rows(
    conn: sa.Connection,
    site_ids: Sequence[str],
    grain: str,
    start: datetime,
    end: datetime,
    *,
    org_id: str | None,
    indicator: str | None = None,
) -> list[IndicatorRow]:
    """Stored indicators of periods starting in [start, end), oldest period first."""
    rows = conn.execute(
        sa.text(
            f"SELECT {_INDICATOR_COLUMNS} FROM calc_indicator WHERE site_id = ANY(:ids) "
            "AND grain = :g AND period_start >= :a AND period_start < :b "
            "AND (CAST(:o AS text) IS NULL OR org_id = :o) "
            "AND (CAST(:i AS text) IS NULL OR indicator = :i) "
            "ORDER BY site_id, period_start, org_id, indicator"
        ),
        {"ids": list(site_ids), "g": grain, "a": start, "b": end, "o": org_id, "i": indicator},
    )
    return [IndicatorRow(*r) for r in rows]


@dataclass(frozen=True, slots=True)
class EventRow:
    event_id: int
    site_id: str
    org_id: str
    kind: str
    subject: str
    grain: str
    period_start: datetime
    status: str
    previous_status: str | None
    value: float | None
    threshold: float | None
    message: str
    raised_at: datetime
    unit: str | None  # of value and threshold (the indicator's or budget's); None: data events


@dataclass(frozen=True, slots=True)
class EventFilter:
    kind: str | None = None
    status: str | None = None
    of_org: str | None = None


def list_events(
    conn: sa.Connection,
    site_id: str,
    *,
    org_id: str | None,
    where: EventFilter,
    limit: int,
    offset: int,
) -> list[EventRow]:
    """Early-warning events, newest first (raised time, then id)."""
    rows = conn.execute(
        sa.text(
            "SELECT e.event_id, e.site_id, e.org_id, e.kind, e.subject, e.grain, "
            "e.period_start, e.status, e.previous_status, e.value, e.threshold, e.message, "
            "e.raised_at, coalesce(i.unit, b.unit) FROM calc_event e "
            # The unit of value and threshold: the indicator's or the budget's.
            "LEFT JOIN calc_indicator i ON e.kind = 'indicator' AND i.site_id = e.site_id "
            "AND i.org_id = e.org_id AND i.grain = e.grain AND i.period_start = e.period_start "
            "AND i.indicator = e.subject "
            "LEFT JOIN calc_budget b ON e.kind = 'budget' AND b.site_id = e.site_id "
            "AND b.org_id = e.org_id AND b.quantity = e.subject "
            "AND b.year = extract(year FROM e.period_start AT TIME ZONE "
            "(SELECT timezone FROM site WHERE site_id = e.site_id))::int "
            "WHERE e.site_id = :s AND (CAST(:o AS text) IS NULL OR e.org_id = :o) "
            "AND (CAST(:oo AS text) IS NULL OR e.org_id = :oo) "
            "AND (CAST(:k AS text) IS NULL OR e.kind = :k) "
            "AND (CAST(:st AS text) IS NULL OR e.status = :st) "
            "ORDER BY e.raised_at DESC, e.event_id DESC LIMIT :n OFFSET :off"
        ),
        {
            "s": site_id,
            "o": org_id,
            "oo": where.of_org,
            "k": where.kind,
            "st": where.status,
            "n": limit,
            "off": offset,
        },
    )
    return [EventRow(*r) for r in rows]


# --------------------------------------------------------------------------------------------
# Factors
# --------------------------------------------------------------------------------------------


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


@dataclass(frozen=True, slots=True)
class FactorValueRow:
    file_name: str
    version: str
    factor_key: str
    value: float
    unit: str
    confidence: str
    data_year: int | None
    valid_from: date | None
    valid_to: date | None
    source_id: str
    source: str
    note: str
    superseded_at: datetime | None


@dataclass(frozen=True, slots=True)
class FactorFilter:
    key_prefix: str | None = None
    file_name: str | None = None
    version: str | None = None
    confidence: str | None = None
    current_only: bool = True


def list_factor_values(
    conn: sa.Connection, *, where: FactorFilter, limit: int, offset: int
) -> list[FactorValueRow]:
    """The factor library (every stored file version), by key, file and version."""
    rows = conn.execute(
        sa.text(
            "SELECT v.file_name, v.version, v.factor_key, v.value, v.unit, v.confidence, "
            "v.data_year, v.valid_from, v.valid_to, v.source_id, v.source, v.note, "
            "f.superseded_at FROM factor_value v JOIN factor_file f "
            "ON f.file_name = v.file_name AND f.version = v.version "
            "WHERE (CAST(:k AS text) IS NULL OR starts_with(v.factor_key, :k)) "
            "AND (CAST(:fn AS text) IS NULL OR v.file_name = :fn) "
            "AND (CAST(:ver AS text) IS NULL OR v.version = :ver) "
            "AND (CAST(:c AS text) IS NULL OR v.confidence = :c) "
            "AND (NOT CAST(:cur AS boolean) OR f.superseded_at IS NULL) "
            "ORDER BY v.factor_key, v.file_name, v.version LIMIT :n OFFSET :off"
        ),
        {
            "k": where.key_prefix,
            "fn": where.file_name,
            "ver": where.version,
            "c": where.confidence,
            "cur": where.current_only,
            "n": limit,
            "off": offset,
        },
    )
    return [FactorValueRow(*r) for r in rows]


# --------------------------------------------------------------------------------------------
# Completeness of the metered data
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QuantityMetricRow:
    site_id: str
    device_pk: int
    metric_id: int
    device_id: str
    org_id: str | None


def quantity_metrics(conn: sa.Connection, site_id: str) -> list[QuantityMetricRow]:
    """The active devices' counter and interval metrics (what the calc service integrates)."""
    rows = conn.execute(
        sa.text(
            "SELECT d.site_id, d.device_pk, dm.metric_id, d.device_id, d.org_id FROM device d "
            "JOIN device_metric dm ON dm.device_pk = d.device_pk WHERE d.site_id = :s "
            "AND d.active AND dm.kind IN ('counter', 'interval') ORDER BY d.device_id, "
            "dm.metric_id"
        ),
        {"s": site_id},
    )
    return [QuantityMetricRow(*r) for r in rows]

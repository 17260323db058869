"""Indicators, budgets and early-warning events: ``calc_indicator``, ``calc_budget``,
``calc_event``, ``calc_alert_state``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg.types.json import Jsonb

from carbonflow.domain.indicators.coverage import Coverage, Reason
from carbonflow.domain.indicators.formulas import BudgetStatus
from carbonflow.domain.indicators.kpis import AlertState, Event, Outcome
from carbonflow.storage.db import Conn


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
    coverage: dict[str, Any] | None  # :func:`coverage_json`; None before revision 0017


_INDICATOR_COLUMNS = (
    "site_id, org_id, grain, period_start, indicator, period_end, value, unit, numerator, "
    "denominator, undefined_reason, basis, target_threshold, target_comparator, target_unit, "
    "target_basis, target_source, status, explanation, completeness, coverage"
)


def coverage_json(c: Coverage | None, reason: Reason | None) -> dict[str, Any] | None:
    """The ``coverage`` column: the period's coverage and the reason of an inconclusive status."""
    if c is None and reason is None:
        return None
    out: dict[str, Any] = {}
    if c is not None:
        out.update(
            label=c.label, grain=c.grain, local_start=c.local_start.isoformat(),
            local_end=c.local_end.isoformat(), in_progress=c.in_progress, share=c.share,
            days_with_data=c.days_with_data, measured_share=c.measured_share,
            estimated_share=c.estimated_share, gap_filled_share=c.gap_filled_share,
        )  # fmt: skip
    if reason is not None:
        out.update(reason_en=reason.en, reason_zh=reason.zh)
    return out


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


def indicator_row(
    site_id: str, grain: str, p0: datetime, p1: datetime, o: Outcome, completeness: float
) -> tuple[Any, ...]:
    """One row for :func:`upsert_indicators`; ``completeness`` is the coverage's share when the
    outcome carries one."""
    r = o.result
    coverage = coverage_json(o.coverage, r.reason)
    if o.coverage is not None:
        completeness = o.coverage.share
    target = r.target
    return (
        site_id, o.org_id, grain, p0, o.indicator, p1, r.value.value, r.value.unit,
        r.value.numerator, r.value.denominator, r.value.undefined_reason, o.basis,
        None if target is None else target.threshold,
        None if target is None else target.comparator.value,
        None if target is None else target.unit,
        None if target is None else target.basis,
        None if target is None else "; ".join(t.source for t in target.rows),
        r.status.value, r.explanation, completeness,
        None if coverage is None else Jsonb(coverage),
    )  # fmt: skip


def budget_row(
    site_id: str, year: int, org: str, quantity: str, s: BudgetStatus
) -> tuple[Any, ...]:
    """One row for :func:`upsert_budgets`."""
    return (
        site_id, org, year, quantity, s.budget.unit, s.budget.budget, s.consumed, s.remaining,
        s.elapsed_fraction, s.used_fraction.value, s.projected_total, s.projected_overrun,
        s.projected_exhaustion, s.status.value, s.explanation, s.as_of,
    )  # fmt: skip


def event_row(site_id: str, e: Event, raised_at: datetime) -> tuple[Any, ...]:
    """One row for :func:`insert_events`."""
    return (
        site_id, e.org_id, e.kind, e.subject, e.grain, e.period_start, e.status,
        e.previous_status, e.value, e.threshold, e.message, raised_at, e.dedup_key(site_id),
    )  # fmt: skip


def insert_data_event(conn: Conn, site_id: str, message: str, day: date, now: datetime) -> None:
    """A ``data`` event of the calc (invalid data, a missing factor) on a UTC day."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    event = Event("", "data", "calc", "day", start, "error", None, None, None, message[:1000])
    insert_events(conn, [event_row(site_id, event, now)])


def upsert_indicators(conn: Conn, rows: Sequence[tuple[Any, ...]], computed_at: datetime) -> None:
    """rows: (site, org, grain, period_start, indicator, period_end, value, unit, numerator,
    denominator, undefined_reason, basis, threshold, comparator, target_unit, target_basis,
    target_source, status, explanation, completeness, coverage)."""
    if not rows:
        return
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO calc_indicator (site_id, org_id, grain, period_start, indicator, "
            "period_end, value, unit, numerator, denominator, undefined_reason, basis, "
            "target_threshold, target_comparator, target_unit, target_basis, target_source, "
            "status, explanation, completeness, coverage, computed_at) VALUES (%s, %s, %s, %s, "
            "%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (site_id, org_id, grain, period_start, indicator) DO UPDATE SET "
            "period_end = excluded.period_end, value = excluded.value, unit = excluded.unit, "
            "numerator = excluded.numerator, denominator = excluded.denominator, "
            "undefined_reason = excluded.undefined_reason, basis = excluded.basis, "
            "target_threshold = excluded.target_threshold, "
            "target_comparator = excluded.target_comparator, "
            "target_unit = excluded.target_unit, target_basis = excluded.target_basis, "
            "target_source = excluded.target_source, status = excluded.status, "
            "explanation = excluded.explanation, completeness = excluded.completeness, "
            "coverage = excluded.coverage, computed_at = excluded.computed_at",
            [(*r, computed_at) for r in rows],
        )


def alert_states(
    conn: Conn, site_id: str, kind: str, grain: str, period_start: datetime
) -> dict[tuple[str, str], AlertState]:
    """(org, subject) → the early-warning state of one period."""
    rows = conn.execute(
        "SELECT org_id, subject, is_open, status, pending_since, crossings FROM calc_alert_state "
        "WHERE site_id = %s AND kind = %s AND grain = %s AND period_start = %s",
        (site_id, kind, grain, period_start),
    ).fetchall()
    return {(str(o), str(s)): AlertState(bool(b), st, p, int(n)) for o, s, b, st, p, n in rows}


def _state_row(
    site_id: str,
    kind: str,
    grain: str,
    period_start: datetime,
    key: tuple[str, str],
    s: AlertState,
    now: datetime,
) -> tuple[Any, ...]:
    org, subject = key
    return (
        site_id, org, kind, subject, grain, period_start, s.is_open, s.status, s.pending_since,
        s.crossings, now,
    )  # fmt: skip


def upsert_alert_states(
    conn: Conn,
    site_id: str,
    kind: str,
    grain: str,
    period_start: datetime,
    states: dict[tuple[str, str], AlertState],
    now: datetime,
) -> None:
    if not states:
        return
    keys = sorted(states.items())
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO calc_alert_state (site_id, org_id, kind, subject, grain, period_start, "
            "is_open, status, pending_since, crossings, updated_at) VALUES (%s, %s, %s, %s, %s, "
            "%s, %s, %s, %s, %s, %s) ON CONFLICT (site_id, org_id, kind, subject, grain, "
            "period_start) DO UPDATE SET is_open = excluded.is_open, status = excluded.status, "
            "pending_since = excluded.pending_since, crossings = excluded.crossings, "
            "updated_at = excluded.updated_at",
            [_state_row(site_id, kind, grain, period_start, key, s, now) for key, s in keys],
        )


def upsert_budgets(conn: Conn, rows: Sequence[tuple[Any, ...]], computed_at: datetime) -> None:
    if not rows:
        return
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO calc_budget (site_id, org_id, year, quantity, unit, budget, consumed, "
            "remaining, elapsed_fraction, used_fraction, projected_total, projected_overrun, "
            "projected_exhaustion, status, explanation, as_of, computed_at) VALUES (%s, %s, %s, "
            "%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (site_id, org_id, year, quantity) DO UPDATE SET unit = excluded.unit, "
            "budget = excluded.budget, consumed = excluded.consumed, "
            "remaining = excluded.remaining, elapsed_fraction = excluded.elapsed_fraction, "
            "used_fraction = excluded.used_fraction, projected_total = excluded.projected_total, "
            "projected_overrun = excluded.projected_overrun, "
            "projected_exhaustion = excluded.projected_exhaustion, status = excluded.status, "
            "explanation = excluded.explanation, as_of = excluded.as_of, "
            "computed_at = excluded.computed_at",
            [(*r, computed_at) for r in rows],
        )


def insert_events(conn: Conn, events: Sequence[tuple[Any, ...]]) -> int:
    """events: (site, org, kind, subject, grain, period_start, status, previous_status, value,
    threshold, message, raised_at, dedup_key); an event already raised is not raised again."""
    if not events:
        return 0
    inserted = 0
    with conn.cursor() as cur:
        for event in events:
            cur.execute(
                "INSERT INTO calc_event (site_id, org_id, kind, subject, grain, period_start, "
                "status, previous_status, value, threshold, message, raised_at, dedup_key) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (dedup_key) DO NOTHING",
                event,
            )
            inserted += cur.rowcount
    return inserted


def indicators(
    conn: Conn,
    site_id: str,
    *,
    grain: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    org_id: str | None = None,
) -> list[dict[str, Any]]:
    """Stored indicator results, with the target and status, newest period first."""
    cur = conn.cursor(row_factory=psycopg.rows.dict_row)
    rows = cur.execute(
        "SELECT * FROM calc_indicator WHERE site_id = %(s)s "
        "AND (%(g)s::text IS NULL OR grain = %(g)s) "
        "AND (%(a)s::timestamptz IS NULL OR period_start >= %(a)s) "
        "AND (%(b)s::timestamptz IS NULL OR period_start < %(b)s) "
        "AND (%(o)s::text IS NULL OR org_id = %(o)s) "
        "ORDER BY period_start DESC, org_id, indicator",
        {"s": site_id, "g": grain, "a": start, "b": end, "o": org_id},
    ).fetchall()
    return list(rows)


def budgets(conn: Conn, site_id: str, year: int | None = None) -> list[dict[str, Any]]:
    cur = conn.cursor(row_factory=psycopg.rows.dict_row)
    return list(
        cur.execute(
            "SELECT * FROM calc_budget WHERE site_id = %(s)s "
            "AND (%(y)s::int IS NULL OR year = %(y)s) ORDER BY year, org_id, quantity",
            {"s": site_id, "y": year},
        ).fetchall()
    )


def events(conn: Conn, site_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    cur = conn.cursor(row_factory=psycopg.rows.dict_row)
    return list(
        cur.execute(
            "SELECT * FROM calc_event WHERE (%(s)s::text IS NULL OR site_id = %(s)s) "
            "ORDER BY event_id DESC LIMIT %(n)s",
            {"s": site_id, "n": limit},
        ).fetchall()
    )

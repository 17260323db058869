"""SQL for traceability (``carbonflow/domain/ledger/trace.py``): when and with what configuration
the calc service computed the rows behind a ledger line or an indicator, and device names.

Readings' counts, time ranges and interval qualities are read with the ledger's own queries
(``readings.register_bounds``, ``intervals.quality_counts``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

Conn = psycopg.Connection[Any]


@dataclass(frozen=True, slots=True)
class Computation:
    """The calc rows behind a figure: how many, when computed (first and last), factor sets."""

    rows: int
    first_computed_at: datetime | None
    last_computed_at: datetime | None
    factor_set_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class CalcState:
    """What the site's stored results were computed with (``calc_site_state``)."""

    site_document_sha256: str | None
    factor_fingerprints: dict[str, str]  # accounting year → fingerprint of its factor set
    results_through: datetime | None


def line_computation(
    conn: Conn,
    site_id: str,
    start: datetime,
    end: datetime,
    *,
    category: str,
    carrier: str,
    scope: str,
    org_id: str | None,
) -> Computation:
    """The 15-min carbon rows of one source over [start, end) (of one organisation's, if
    ``org_id``)."""
    row = conn.execute(
        "SELECT count(*), min(computed_at), max(computed_at), "
        "coalesce(array_agg(DISTINCT factor_set_id) FILTER (WHERE factor_set_id IS NOT NULL), "
        "'{}') FROM calc_carbon WHERE site_id = %(s)s AND start_ts >= %(a)s AND start_ts < %(b)s "
        "AND category = %(c)s AND carrier = %(k)s AND scope = %(p)s "
        "AND (%(o)s::text IS NULL OR org_id = %(o)s)",
        {"s": site_id, "a": start, "b": end, "c": category, "k": carrier, "p": scope, "o": org_id},
    ).fetchone()
    assert row is not None  # an aggregate has one row
    return Computation(int(row[0]), row[1], row[2], tuple(sorted(int(i) for i in row[3])))


def indicator_computed_at(
    conn: Conn, site_id: str, org_id: str, grain: str, start: datetime, indicator: str
) -> datetime | None:
    row = conn.execute(
        "SELECT computed_at FROM calc_indicator WHERE site_id = %s AND org_id = %s "
        "AND grain = %s AND period_start = %s AND indicator = %s",
        (site_id, org_id, grain, start, indicator),
    ).fetchone()
    return None if row is None else row[0]


def calc_state(conn: Conn, site_id: str) -> CalcState:
    row = conn.execute(
        "SELECT document_sha256, factor_sets, results_through FROM calc_site_state "
        "WHERE site_id = %s",
        (site_id,),
    ).fetchone()
    if row is None:
        return CalcState(None, {}, None)
    return CalcState(row[0] or None, {str(k): str(v) for k, v in dict(row[1]).items()}, row[2])


def device_names(conn: Conn, site_id: str) -> dict[str, str]:
    """device_id → name of the site's devices."""
    rows = conn.execute(
        "SELECT device_id, name FROM device WHERE site_id = %s", (site_id,)
    ).fetchall()
    return {str(r[0]): str(r[1]) for r in rows}

"""Push to the authorities: ``push_outbox``, ``push_cursor``, ``push_audit`` (docs/push.md), and
the stored period values an upload is built from.

A packet enters the outbox as the bytes that go on the wire, in the same transaction that
moves its destination's cursor past its period (:func:`enqueue`): a period is either queued
and passed, or neither. A packet leaves ``pending`` only by its answer (:func:`mark_acked`);
nothing deletes it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import sqlalchemy as sa

from carbonflow.domain.alarms.rules import PushBacklog
from carbonflow.domain.inventory.balance import settle_period
from carbonflow.domain.inventory.lines import Basis, View, view_totals
from carbonflow.domain.reporting.profile import PeriodValue, period_end
from carbonflow.storage.carbon import (
    CarbonPointRow,
    SeriesFilter,
    activity_series,
    carbon_series,
    carbon_totals,
)
from carbonflow.storage.db import psycopg_of
from carbonflow.storage.registry import site_timezone


@dataclass(frozen=True, slots=True)
class NewPacket:
    cn: str
    data_time: datetime
    pno: int
    pnum: int
    qn: str
    packet: bytes
    version: int = 1
    values_digest: str | None = None  # of the CP values (docs/push.md, "Late data")


@dataclass(frozen=True, slots=True)
class Revisable:
    """The latest version of a queued period whose calc results were recomputed since it was
    queued (or last compared)."""

    data_time: datetime
    version: int
    values_digest: str | None


@dataclass(frozen=True, slots=True)
class OutboxRow:
    outbox_id: int
    destination: str
    cn: str
    data_time: datetime
    pno: int
    pnum: int
    qn: str
    packet: bytes
    attempts: int


@dataclass(frozen=True, slots=True)
class DestinationStatus:
    destination: str
    site_id: str
    pending: int
    acked: int
    oldest_pending: datetime | None
    last_acked_at: datetime | None
    last_sent_at: datetime | None
    last_error: str | None
    next_starts: dict[str, datetime]


@dataclass(frozen=True, slots=True)
class AuditRow:
    audit_id: int
    at: datetime
    direction: str
    outbox_id: int | None
    qn: str | None
    cn: str | None
    raw: bytes
    outcome: str


def next_start(conn: sa.Connection, destination: str, cn: str) -> datetime | None:
    """The start of the next period of ``cn`` to queue for ``destination`` (None: never run)."""
    value: datetime | None = conn.execute(
        sa.text("SELECT next_start FROM push_cursor WHERE destination = :d AND cn = :c"),
        {"d": destination, "c": cn},
    ).scalar()
    return value


def enqueue(
    conn: sa.Connection,
    destination: str,
    site_id: str,
    cn: str,
    packets: Sequence[NewPacket],
    next_period: datetime,
    now: datetime,
) -> int:
    """Queue ``packets`` (:func:`insert_packets`) and move the cursor of (destination, cn) to
    ``next_period``, in the caller's transaction. Returns how many were new."""
    added = insert_packets(conn, destination, site_id, packets, now)
    set_cursor(conn, destination, cn, next_period, now)
    return added


def set_cursor(
    conn: sa.Connection, destination: str, stream: str, next_period: datetime, now: datetime
) -> None:
    """Move the cursor of (destination, stream) — a data command, or an energy grain — on."""
    conn.execute(
        sa.text(
            "INSERT INTO push_cursor (destination, cn, next_start, updated_at) "
            "VALUES (:d, :c, :n, :now) ON CONFLICT (destination, cn) DO UPDATE "
            "SET next_start = excluded.next_start, updated_at = excluded.updated_at"
        ),
        {"d": destination, "c": stream, "n": next_period, "now": now},
    )


def insert_packets(
    conn: sa.Connection,
    destination: str,
    site_id: str,
    packets: Sequence[NewPacket],
    now: datetime,
) -> int:
    """Queue ``packets``; one whose (CN, DataTime, PNO, version) is queued already is kept as
    it was (its bytes, its QN). Returns how many were new."""
    added = 0
    for p in packets:
        added += conn.execute(
            sa.text(
                "INSERT INTO push_outbox (destination, site_id, cn, data_time, pno, pnum, qn, "
                "packet, state, created_at, version, values_digest) "
                "VALUES (:d, :s, :c, :t, :pno, :pnum, :qn, :pk, 'pending', :now, :v, :dg) "
                "ON CONFLICT ON CONSTRAINT push_outbox_key DO NOTHING"
            ),
            {
                "d": destination,
                "s": site_id,
                "c": p.cn,
                "t": p.data_time,
                "pno": p.pno,
                "pnum": p.pnum,
                "qn": p.qn,
                "pk": p.packet,
                "now": now,
                "v": p.version,
                "dg": p.values_digest,
            },
        ).rowcount
    return added


def revisable(
    conn: sa.Connection,
    destination: str,
    site_id: str,
    cn: str,
    period: timedelta,
    window: timedelta,
    limit: int,
) -> list[Revisable]:
    """Periods of ``cn`` within ``window`` of the newest period queued for ``destination`` whose
    latest queued version is older than a calc result inside the period
    (``calc_carbon.computed_at`` after the packet was queued or last compared): their values
    may have changed with late data."""
    rows = conn.execute(
        sa.text(
            "WITH latest AS (SELECT DISTINCT ON (data_time) data_time, version, values_digest, "
            " greatest(created_at, checked_at) AS seen FROM push_outbox "
            " WHERE destination = :d AND cn = :c AND pno = 1 AND data_time >= "
            " (SELECT max(data_time) FROM push_outbox WHERE destination = :d) - :window "
            " ORDER BY data_time, version DESC) "
            "SELECT l.data_time, l.version, l.values_digest FROM latest l WHERE EXISTS ("
            " SELECT 1 FROM calc_carbon r WHERE r.site_id = :s AND r.start_ts >= l.data_time "
            " AND r.start_ts < l.data_time + :period AND r.computed_at > l.seen) "
            "ORDER BY l.data_time LIMIT :n"
        ),
        {"d": destination, "c": cn, "s": site_id, "window": window, "period": period, "n": limit},
    ).all()
    return [Revisable(r[0], r[1], r[2]) for r in rows]


def mark_compared(
    conn: sa.Connection,
    destination: str,
    cn: str,
    data_time: datetime,
    version: int,
    values_digest: str,
    now: datetime,
) -> None:
    """The values of a queued version were compared with the results at ``now`` and found
    the same (a packet queued before revision 0011 gets its digest here)."""
    conn.execute(
        sa.text(
            "UPDATE push_outbox SET checked_at = :now, "
            "values_digest = coalesce(values_digest, :dg) "
            "WHERE destination = :d AND cn = :c AND data_time = :t AND version = :v"
        ),
        {"now": now, "dg": values_digest, "d": destination, "c": cn, "t": data_time, "v": version},
    )


def pending(conn: sa.Connection, destination: str, limit: int) -> list[OutboxRow]:
    """The oldest ``limit`` unanswered packets of ``destination``, in the order queued (which is
    DataTime order per command)."""
    rows = conn.execute(
        sa.text(
            "SELECT outbox_id, destination, cn, data_time, pno, pnum, qn, packet, attempts "
            "FROM push_outbox WHERE destination = :d AND state = 'pending' "
            "ORDER BY outbox_id LIMIT :n"
        ),
        {"d": destination, "n": limit},
    )
    return [OutboxRow(**{**r._asdict(), "packet": bytes(r.packet)}) for r in rows]


def mark_sent(conn: sa.Connection, outbox_id: int, now: datetime, error: str | None = None) -> None:
    """One more attempt at ``outbox_id``; ``error`` says why it went unanswered, if it did."""
    conn.execute(
        sa.text(
            "UPDATE push_outbox SET attempts = attempts + 1, last_sent_at = :now, "
            "last_error = coalesce(:e, last_error) WHERE outbox_id = :i"
        ),
        {"i": outbox_id, "now": now, "e": error},
    )


def mark_failed(conn: sa.Connection, outbox_id: int, error: str) -> None:
    """Record why the last attempt at ``outbox_id`` went unanswered (it stays pending)."""
    conn.execute(
        sa.text("UPDATE push_outbox SET last_error = :e WHERE outbox_id = :i"),
        {"i": outbox_id, "e": error},
    )


def mark_acked(conn: sa.Connection, outbox_id: int, now: datetime) -> bool:
    """The answer to ``outbox_id`` arrived: it is never sent again."""
    return bool(
        conn.execute(
            sa.text(
                "UPDATE push_outbox SET state = 'acked', acked_at = :now, last_error = NULL "
                "WHERE outbox_id = :i AND state = 'pending'"
            ),
            {"i": outbox_id, "now": now},
        ).rowcount
    )


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One packet sent or received, as raw bytes with what became of it."""

    destination: str
    at: datetime
    direction: str
    raw: bytes
    outcome: str
    outbox_id: int | None = None
    qn: str | None = None
    cn: str | None = None


def write_audit(conn: sa.Connection, entry: AuditEntry) -> None:
    conn.execute(
        sa.text(
            "INSERT INTO push_audit (destination, at, direction, outbox_id, qn, cn, raw, "
            "outcome) VALUES (:d, :at, :dir, :o, :qn, :cn, :raw, :out)"
        ),
        {
            "d": entry.destination,
            "at": entry.at,
            "dir": entry.direction,
            "o": entry.outbox_id,
            "qn": entry.qn,
            "cn": entry.cn,
            "raw": entry.raw,
            "out": entry.outcome,
        },
    )


def last_qn(conn: sa.Connection, destination: str) -> str | None:
    """The latest QN queued for ``destination`` (new QNs must come after it)."""
    value: str | None = conn.execute(
        sa.text("SELECT max(qn) FROM push_outbox WHERE destination = :d"), {"d": destination}
    ).scalar()
    return value


def results_through(conn: sa.Connection, site_id: str) -> datetime | None:
    """Until when the calc service has results for ``site_id``."""
    value: datetime | None = conn.execute(
        sa.text("SELECT results_through FROM calc_site_state WHERE site_id = :s"), {"s": site_id}
    ).scalar()
    return value


def _settled(
    conn: sa.Connection, site_id: str, grain: str, point: CarbonPointRow, tz: str
) -> CarbonPointRow:
    """``point`` as reported: the stored rows carry signed net imports so that periods add up,
    and a period that exported more electricity or heat than it bought has a negative scope 2
    in the series. A report never says an emission is negative: such a period's figures are
    those of its settled rows (``settle_period``, the ledger's rule: purchased energy 0, the
    surplus out of what was generated). Other periods as stored."""
    if point.scope2_tco2e >= 0:
        return point
    end = period_end(grain, point.period_start, tz)
    lines, _surplus = settle_period(
        carbon_totals(psycopg_of(conn), site_id, point.period_start, end, tz)
    )
    totals = view_totals(lines, View.LOCATION)
    return replace(
        point,
        energy_tce=math.fsum(ln.energy_tce for ln in lines if ln.basis != Basis.MARKET),
        tco2e=totals.total_tco2e,
        co2_t=totals.co2_t,
        ch4_t=totals.ch4_t,
        scope1_tco2e=totals.scope1_tco2e,
        scope2_tco2e=totals.scope2_tco2e,
    )


def period_values(
    conn: sa.Connection, site_id: str, grain: str, start: datetime, end: datetime
) -> dict[datetime, list[PeriodValue]]:
    """Per period start in [start, end): the site's location-basis totals (``co2_t``,
    ``ch4_t``, ``tco2e``, ``energy_tce``, scopes) and each carrier's activity
    (``activity:<carrier>`` in its unit), with the period's quality."""
    out: dict[datetime, list[PeriodValue]] = {}
    quality: dict[datetime, str] = {}
    tz = site_timezone(conn, site_id) or "UTC"
    for point in carbon_series(
        conn, site_id, grain, start, end, basis="location", where=SeriesFilter()
    ):
        p = _settled(conn, site_id, grain, point, tz)
        quality[p.period_start] = p.quality
        out[p.period_start] = [
            PeriodValue("co2_t", p.co2_t, "t", p.quality),
            PeriodValue("ch4_t", p.ch4_t, "t", p.quality),
            PeriodValue("tco2e", p.tco2e, "t", p.quality),
            PeriodValue("energy_tce", p.energy_tce, "t", p.quality),
            PeriodValue("scope1_tco2e", p.scope1_tco2e, "t", p.quality),
            PeriodValue("scope2_tco2e", p.scope2_tco2e, "t", p.quality),
        ]
    for a in activity_series(conn, site_id, grain, start, end, where=SeriesFilter()):
        out.setdefault(a.period_start, []).append(
            PeriodValue(
                f"activity:{a.carrier}", a.activity, a.unit, quality.get(a.period_start, "missing")
            )
        )
    return out


def push_status(
    conn: sa.Connection, site_ids: frozenset[str] | None = None
) -> list[DestinationStatus]:
    """Per destination with anything queued (of ``site_ids``; None: all): backlog, answers,
    the last error, cursors."""
    rows = conn.execute(
        sa.text(
            "SELECT destination, min(site_id), count(*) FILTER (WHERE state = 'pending'), "
            "count(*) FILTER (WHERE state = 'acked'), "
            "min(data_time) FILTER (WHERE state = 'pending'), max(acked_at), max(last_sent_at), "
            "(array_agg(last_error ORDER BY last_sent_at DESC NULLS LAST) "
            " FILTER (WHERE state = 'pending' AND last_error IS NOT NULL))[1] "
            "FROM push_outbox WHERE CAST(:all AS boolean) OR site_id = ANY(:sites) "
            "GROUP BY destination ORDER BY destination"
        ),
        {"all": site_ids is None, "sites": sorted(site_ids or ())},
    ).all()
    cursors: dict[str, dict[str, datetime]] = {}
    for d, cn, n in conn.execute(sa.text("SELECT destination, cn, next_start FROM push_cursor")):
        cursors.setdefault(d, {})[cn] = n
    return [
        DestinationStatus(
            destination=r[0],
            site_id=r[1],
            pending=r[2],
            acked=r[3],
            oldest_pending=r[4],
            last_acked_at=r[5],
            last_sent_at=r[6],
            last_error=r[7],
            next_starts=cursors.get(r[0], {}),
        )
        for r in rows
    ]


def pending_backlogs(conn: sa.Connection, site_id: str) -> list[PushBacklog]:
    """Per destination of ``site_id`` with unanswered packets: how many, the oldest's queue
    time and the latest error (for the notify service's push alarm)."""
    rows = conn.execute(
        sa.text(
            "SELECT destination, count(*), min(created_at), "
            "(array_agg(last_error ORDER BY last_sent_at DESC NULLS LAST) "
            " FILTER (WHERE last_error IS NOT NULL))[1] "
            "FROM push_outbox WHERE state = 'pending' AND site_id = :site "
            "GROUP BY destination ORDER BY destination"
        ),
        {"site": site_id},
    ).all()
    return [PushBacklog(r[0], r[1], r[2], r[3]) for r in rows]


def audit_rows(conn: sa.Connection, destination: str, limit: int) -> list[AuditRow]:
    """The latest ``limit`` audit rows of ``destination``, newest first."""
    rows = conn.execute(
        sa.text(
            "SELECT audit_id, at, direction, outbox_id, qn, cn, raw, outcome FROM push_audit "
            "WHERE destination = :d ORDER BY audit_id DESC LIMIT :n"
        ),
        {"d": destination, "n": limit},
    )
    return [AuditRow(**{**r._asdict(), "raw": bytes(r.raw)}) for r in rows]

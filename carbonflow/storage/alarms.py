"""Alarms, their configuration and notification deliveries (tables of revision 0010), and the
two source reads the notifier needs from other families: rejection counts and calc's early
warnings. See docs/alarms.md."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from carbonflow.domain.alarms.lifecycle import Changes
from carbonflow.domain.alarms.model import Alarm, Severity, Source, State
from carbonflow.domain.alarms.rules import EarlyWarning
from carbonflow.storage.schema import (
    alarm,
    alarm_config,
    alarm_delivery,
    calc_event,
    rejected_reading,
)

SYSTEM = "system"  # who resolves an alarm whose condition cleared


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConfigRow:
    site_id: str
    document: Mapping[str, Any]
    updated_at: datetime
    updated_by: str


def get_config(conn: sa.Connection, site_id: str) -> ConfigRow | None:
    row = conn.execute(sa.select(alarm_config).where(alarm_config.c.site_id == site_id)).first()
    return None if row is None else ConfigRow(*row)


def put_config(
    conn: sa.Connection, site_id: str, document: Mapping[str, Any], at: datetime, by: str
) -> None:
    stmt = pg.insert(alarm_config).values(
        site_id=site_id, document=dict(document), updated_at=at, updated_by=by
    )
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[alarm_config.c.site_id],
            set_={"document": stmt.excluded.document, "updated_at": at, "updated_by": by},
        )
    )


def configs(conn: sa.Connection) -> list[ConfigRow]:
    """Every site's configuration, by site."""
    rows = conn.execute(sa.select(alarm_config).order_by(alarm_config.c.site_id))
    return [ConfigRow(*r) for r in rows]


# --------------------------------------------------------------------------------------------
# Alarms
# --------------------------------------------------------------------------------------------


def _alarm(row: Any) -> Alarm:
    m = row._mapping
    return Alarm(
        alarm_id=m["alarm_id"],
        site_id=m["site_id"],
        rule_id=m["rule_id"],
        source=Source(m["source"]),
        subject=m["subject"],
        severity=Severity(m["severity"]),
        state=State(m["state"]),
        opened_at=m["opened_at"],
        last_seen_at=m["last_seen_at"],
        message_en=m["message_en"],
        message_zh=m["message_zh"],
        value=m["value"],
        threshold=m["threshold"],
        unit=m["unit"],
        acknowledged_at=m["acknowledged_at"],
        acknowledged_by=m["acknowledged_by"],
        resolved_at=m["resolved_at"],
        resolved_by=m["resolved_by"],
        last_notified_at=m["last_notified_at"],
        notifications=m["notifications"],
        escalated_at=m["escalated_at"],
    )


def unresolved(conn: sa.Connection, site_id: str) -> list[Alarm]:
    rows = conn.execute(
        sa.select(alarm)
        .where(alarm.c.site_id == site_id, alarm.c.state != State.RESOLVED.value)
        .order_by(alarm.c.alarm_id)
    )
    return [_alarm(r) for r in rows]


def apply_changes(conn: sa.Connection, site_id: str, changes: Changes, now: datetime) -> int:
    """Store what :func:`reconcile` decided; returns the number of alarms opened."""
    for c in changes.opened:
        conn.execute(
            alarm.insert().values(
                site_id=site_id, rule_id=c.rule_id, source=c.source.value, subject=c.subject,
                severity=c.severity.value, state=State.OPEN.value, opened_at=now,
                last_seen_at=now, message_en=c.message_en, message_zh=c.message_zh,
                value=c.value, threshold=c.threshold, unit=c.unit,
            )
        )  # fmt: skip
    for alarm_id, c in changes.seen:
        conn.execute(
            alarm.update()
            .where(alarm.c.alarm_id == alarm_id)
            .values(
                last_seen_at=now, severity=c.severity.value, value=c.value,
                threshold=c.threshold, message_en=c.message_en, message_zh=c.message_zh,
            )
        )  # fmt: skip
    if changes.resolved:
        conn.execute(
            alarm.update()
            .where(alarm.c.alarm_id.in_(changes.resolved), alarm.c.state != State.RESOLVED.value)
            .values(state=State.RESOLVED.value, resolved_at=now, resolved_by=SYSTEM)
        )
    return len(changes.opened)


def list_alarms(
    conn: sa.Connection,
    site_id: str,
    *,
    states: Sequence[State] | None,
    limit: int,
    offset: int,
) -> list[Alarm]:
    """A site's alarms, newest first (unresolved before resolved)."""
    query = sa.select(alarm).where(alarm.c.site_id == site_id)
    if states:
        query = query.where(alarm.c.state.in_([s.value for s in states]))
    resolved_last = sa.case((alarm.c.state == State.RESOLVED.value, 1), else_=0)
    query = query.order_by(resolved_last, alarm.c.opened_at.desc(), alarm.c.alarm_id.desc())
    return [_alarm(r) for r in conn.execute(query.limit(limit).offset(offset))]


def get_alarm(
    conn: sa.Connection, site_id: str, alarm_id: int, *, lock: bool = False
) -> Alarm | None:
    query = sa.select(alarm).where(alarm.c.site_id == site_id, alarm.c.alarm_id == alarm_id)
    row = conn.execute(query.with_for_update() if lock else query).first()
    return None if row is None else _alarm(row)


def alarms_by_id(conn: sa.Connection, alarm_ids: Iterable[int]) -> list[Alarm]:
    ids = sorted(set(alarm_ids))
    rows = conn.execute(
        sa.select(alarm).where(alarm.c.alarm_id.in_(ids)).order_by(alarm.c.alarm_id)
    )
    return [_alarm(r) for r in rows]


def store_transition(conn: sa.Connection, changed: Alarm) -> None:
    """Write an alarm's state, who and when after a person's acknowledgement or resolution."""
    conn.execute(
        alarm.update()
        .where(alarm.c.alarm_id == changed.alarm_id)
        .values(
            state=changed.state.value,
            acknowledged_at=changed.acknowledged_at,
            acknowledged_by=changed.acknowledged_by,
            resolved_at=changed.resolved_at,
            resolved_by=changed.resolved_by,
        )
    )


def mark_notified(
    conn: sa.Connection, alarm_ids: Sequence[int], now: datetime, *, escalated: bool
) -> None:
    values: dict[str, Any] = {
        "last_notified_at": now,
        "notifications": alarm.c.notifications + 1,
    }
    if escalated:
        values["escalated_at"] = sa.func.coalesce(alarm.c.escalated_at, now)
    conn.execute(alarm.update().where(alarm.c.alarm_id.in_(list(alarm_ids))).values(**values))


# --------------------------------------------------------------------------------------------
# Deliveries
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Delivery:
    delivery_id: int
    site_id: str
    rule_id: str
    alarm_ids: tuple[int, ...]
    channel: str
    escalation: bool
    status: str  # pending | sent | failed
    attempts: int
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime | None
    sent_at: datetime | None


def _delivery(row: Any) -> Delivery:
    m = dict(row._mapping)
    m["alarm_ids"] = tuple(m["alarm_ids"])
    return Delivery(**m)


def add_delivery(
    conn: sa.Connection,
    site_id: str,
    rule_id: str,
    alarm_ids: Sequence[int],
    channel: str,
    *,
    escalation: bool,
    now: datetime,
) -> int:
    delivery_id: int = conn.execute(
        alarm_delivery.insert()
        .values(
            site_id=site_id, rule_id=rule_id, alarm_ids=list(alarm_ids), channel=channel,
            escalation=escalation, status="pending", attempts=0, created_at=now,
            next_attempt_at=now,
        )
        .returning(alarm_delivery.c.delivery_id)
    ).scalar_one()  # fmt: skip
    return delivery_id


def record_attempt(
    conn: sa.Connection,
    delivery_id: int,
    *,
    now: datetime,
    error: str | None,
    next_attempt_at: datetime | None,
) -> None:
    """One attempt: sent (``error`` None), or failed and retried at ``next_attempt_at``
    (None: given up)."""
    values: dict[str, Any] = {"attempts": alarm_delivery.c.attempts + 1}
    if error is None:
        values.update(status="sent", sent_at=now, last_error=None, next_attempt_at=None)
    else:
        values.update(status="failed", last_error=error[:500], next_attempt_at=next_attempt_at)
    conn.execute(
        alarm_delivery.update().where(alarm_delivery.c.delivery_id == delivery_id).values(**values)
    )


def due_deliveries(conn: sa.Connection, now: datetime) -> list[Delivery]:
    """Pending deliveries and failed ones whose retry is due, oldest first."""
    rows = conn.execute(
        sa.select(alarm_delivery)
        .where(
            alarm_delivery.c.status != "sent",
            alarm_delivery.c.next_attempt_at.is_not(None),
            alarm_delivery.c.next_attempt_at <= now,
        )
        .order_by(alarm_delivery.c.delivery_id)
    )
    return [_delivery(r) for r in rows]


def list_deliveries(
    conn: sa.Connection, site_id: str, *, limit: int, offset: int, failed_only: bool = False
) -> list[Delivery]:
    query = sa.select(alarm_delivery).where(alarm_delivery.c.site_id == site_id)
    if failed_only:
        query = query.where(alarm_delivery.c.status == "failed")
    query = query.order_by(alarm_delivery.c.delivery_id.desc()).limit(limit).offset(offset)
    return [_delivery(r) for r in conn.execute(query)]


def last_sent(conn: sa.Connection, site_id: str) -> dict[tuple[str, str], datetime]:
    """The newest notification per (site, rule), sent or still being tried: the grouping
    window runs from it."""
    rows = conn.execute(
        sa.select(alarm_delivery.c.rule_id, sa.func.max(alarm_delivery.c.created_at))
        .where(alarm_delivery.c.site_id == site_id)
        .group_by(alarm_delivery.c.rule_id)
    )
    return {(site_id, rule): at for rule, at in rows}


# --------------------------------------------------------------------------------------------
# Sources from other families
# --------------------------------------------------------------------------------------------

NO_DEVICE = "site"  # the subject of rejected readings of no known device


def rejection_counts(conn: sa.Connection, site_id: str, since: datetime) -> dict[str, int]:
    """Rejected readings of the site seen since ``since``, by device (``site`` for none)."""
    subject = sa.func.coalesce(rejected_reading.c.device_id, NO_DEVICE)
    rows = conn.execute(
        sa.select(subject, sa.func.count())
        .where(rejected_reading.c.site_id == site_id, rejected_reading.c.last_seen_at >= since)
        .group_by(subject)
    )
    return {str(s): int(n) for s, n in rows}


def early_warnings(conn: sa.Connection, site_id: str, since: datetime) -> list[EarlyWarning]:
    """calc's indicator and budget events of the site raised since ``since``."""
    rows = conn.execute(
        sa.select(
            calc_event.c.kind, calc_event.c.subject, calc_event.c.org_id, calc_event.c.status,
            calc_event.c.value, calc_event.c.threshold, calc_event.c.message,
            calc_event.c.raised_at,
        )
        .where(
            calc_event.c.site_id == site_id,
            calc_event.c.kind.in_(["indicator", "budget"]),
            calc_event.c.raised_at >= since,
        )
        .order_by(calc_event.c.raised_at)
    )  # fmt: skip
    return [EarlyWarning(*r) for r in rows]

"""When to tell whom: grouping, repeat interval, quiet hours, escalation. Pure.

- **Grouping**: one notification per (site, rule) per ``group_window_s``: ten devices going
  stale within the window are one message listing ten devices.
- **Repeat**: an unacknowledged alarm is told again every ``repeat_s``; acknowledging stops
  repeats; a resolved alarm is never told again.
- **Quiet hours** (site-local ``quiet_start``–``quiet_end``, may span midnight): only alarms of
  at least ``quiet_min_severity`` are told; the others wait for the end of the quiet hours.
- **Escalation**: an alarm open and unacknowledged for ``escalate_after_s`` is told once to the
  escalation channels as well.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from carbonflow.domain.alarms.model import Alarm, Severity, State


@dataclass(frozen=True, slots=True)
class NotifyPolicy:
    group_window_s: float = 300.0
    repeat_s: float = 3600.0
    quiet_start: time | None = None
    quiet_end: time | None = None
    quiet_min_severity: Severity = Severity.CRITICAL
    escalate_after_s: float | None = 1800.0
    timezone: str = "Asia/Shanghai"


def in_quiet_hours(policy: NotifyPolicy, now: datetime) -> bool:
    """Whether ``now`` falls in the site-local quiet hours [start, end) (22:00–07:00 spans
    midnight: 23:30 and 06:59 are quiet, 07:00 is not)."""
    if policy.quiet_start is None or policy.quiet_end is None:
        return False
    local = now.astimezone(ZoneInfo(policy.timezone)).time()
    start, end = policy.quiet_start, policy.quiet_end
    if start <= end:
        return start <= local < end
    return local >= start or local < end


@dataclass(frozen=True, slots=True)
class Notification:
    site_id: str
    rule_id: str
    alarms: tuple[Alarm, ...]  # the group's alarms told now
    severity: Severity  # the highest among them
    escalate: bool  # also to the escalation channels


def _due(alarm: Alarm, policy: NotifyPolicy, now: datetime) -> bool:
    if alarm.state is not State.OPEN:
        return False  # acknowledged: no repeats; resolved: done
    if alarm.last_notified_at is None:
        return True
    return now - alarm.last_notified_at >= timedelta(seconds=policy.repeat_s)


def _escalates(alarm: Alarm, policy: NotifyPolicy, now: datetime) -> bool:
    return (
        policy.escalate_after_s is not None
        and alarm.state is State.OPEN
        and alarm.escalated_at is None
        and now - alarm.opened_at >= timedelta(seconds=policy.escalate_after_s)
    )


def plan_notifications(
    alarms: Iterable[Alarm],
    policy: NotifyPolicy,
    now: datetime,
    last_sent: dict[tuple[str, str], datetime] | None = None,
) -> list[Notification]:
    """The notifications due at ``now``: per (site, rule), the alarms due (never told, or told
    ``repeat_s`` ago and still unacknowledged) or escalating, unless the group was told less
    than ``group_window_s`` ago (``last_sent``: the newest notification per group) — except
    for an escalation, which is never held back by the window. In quiet hours alarms below
    ``quiet_min_severity`` wait."""
    quiet = in_quiet_hours(policy, now)
    groups: dict[tuple[str, str], list[Alarm]] = {}
    for alarm in alarms:
        groups.setdefault((alarm.site_id, alarm.rule_id), []).append(alarm)
    sent = last_sent or {}
    window = timedelta(seconds=policy.group_window_s)
    out: list[Notification] = []
    for (site_id, rule_id), group in sorted(groups.items()):
        members = [
            a for a in group if not quiet or a.severity.rank >= policy.quiet_min_severity.rank
        ]
        due = [a for a in members if _due(a, policy, now)]
        escalating = [a for a in members if _escalates(a, policy, now)]
        previous = sent.get((site_id, rule_id))
        if previous is not None and now - previous < window and not escalating:
            continue
        told = sorted({a.alarm_id: a for a in due + escalating}.values(), key=lambda a: a.alarm_id)
        if not told:
            continue
        out.append(
            Notification(
                site_id=site_id,
                rule_id=rule_id,
                alarms=tuple(told),
                severity=max((a.severity for a in told), key=lambda s: s.rank),
                escalate=bool(escalating),
            )
        )
    return out


def backoff_s(attempt: int, base_s: float = 30.0, cap_s: float = 3600.0) -> float:
    """Delay before retry ``attempt`` (1, 2, …) of a failed delivery: 30 s, 60 s, 120 s, …,
    at most an hour."""
    return float(min(cap_s, base_s * 2 ** max(0, attempt - 1)))

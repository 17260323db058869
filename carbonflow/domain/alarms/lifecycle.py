"""Alarm lifecycle: what a set of conditions does to the unresolved alarms. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from carbonflow.domain.alarms.model import Alarm, Condition, State


@dataclass(frozen=True, slots=True)
class Changes:
    opened: tuple[Condition, ...]  # new alarms to store
    seen: tuple[tuple[int, Condition], ...]  # unresolved alarms seen again (value, severity)
    resolved: tuple[int, ...]  # unresolved alarms no longer seen


def reconcile(unresolved: Iterable[Alarm], conditions: Sequence[Condition]) -> Changes:
    """Open an alarm for each condition without an unresolved one of the same key, update the
    ones seen again, resolve the ones not seen (their condition cleared). An acknowledged alarm
    stays acknowledged while its condition holds, and resolves like any other when it clears.
    Two conditions of one key count once (the first)."""
    by_key = {a.key: a for a in unresolved if a.state is not State.RESOLVED}
    opened: list[Condition] = []
    seen: list[tuple[int, Condition]] = []
    present: set[tuple[str, str, str]] = set()
    for condition in conditions:
        if condition.key in present:
            continue
        present.add(condition.key)
        alarm = by_key.get(condition.key)
        if alarm is None:
            opened.append(condition)
        else:
            seen.append((alarm.alarm_id, condition))
    resolved = tuple(sorted(a.alarm_id for k, a in by_key.items() if k not in present))
    return Changes(tuple(opened), tuple(seen), resolved)


class TransitionError(ValueError):
    """A state change an alarm cannot make (acknowledging a resolved alarm)."""


def acknowledge(alarm: Alarm, who: str, at: datetime) -> Alarm:
    """open → acknowledged (who, when); acknowledging again keeps the first; a resolved alarm
    cannot be acknowledged."""
    if alarm.state is State.RESOLVED:
        raise TransitionError(f"alarm {alarm.alarm_id} is resolved")
    if alarm.state is State.ACKNOWLEDGED:
        return alarm
    return replace(alarm, state=State.ACKNOWLEDGED, acknowledged_at=at, acknowledged_by=who)


def resolve(alarm: Alarm, who: str, at: datetime) -> Alarm:
    """open or acknowledged → resolved (who: a person, or ``system`` when the condition
    cleared); resolving again keeps the first."""
    if alarm.state is State.RESOLVED:
        return alarm
    return replace(alarm, state=State.RESOLVED, resolved_at=at, resolved_by=who)

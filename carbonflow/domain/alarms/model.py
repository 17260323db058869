"""The one alarm model. Pure.

A **condition** is what a source sees now (a threshold crossed, a device silent, an early warning
of calc, a spike of rejected readings, a failing push); an **alarm** is a condition's record
over time: opened when first seen, resolved when no longer seen (or by a person), acknowledged
by a person in between, with who and when. An alarm's identity is (site, rule, subject): the
same device crossing the same rule again while its alarm is unresolved is the same alarm.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol


class Source(StrEnum):
    THRESHOLD = "threshold"  # a live metric against a configured limit
    EARLY_WARNING = "early_warning"  # calc's calc_event: budget or indicator at risk / off track
    STALE = "stale"  # a device's data stopped (3 × its reporting period)
    REJECTIONS = "rejections"  # rejected readings above a count in a window
    PUSH = "push"  # a failing push to an outside platform (a pluggable source)


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


class State(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class Condition:
    """What one source sees now, for one subject (a device, an indicator, a platform)."""

    site_id: str
    rule_id: str  # the configured rule, or the source's own name (``stale``, ``rejections``)
    source: Source
    subject: str
    severity: Severity
    message_en: str
    message_zh: str
    value: float | None = None
    threshold: float | None = None
    unit: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.site_id, self.rule_id, self.subject)


@dataclass(frozen=True, slots=True)
class Alarm:
    """A condition's record. ``last_notified_at`` None: nobody was told yet."""

    alarm_id: int
    site_id: str
    rule_id: str
    source: Source
    subject: str
    severity: Severity
    state: State
    opened_at: datetime
    last_seen_at: datetime
    message_en: str
    message_zh: str
    value: float | None = None
    threshold: float | None = None
    unit: str = ""
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    last_notified_at: datetime | None = None
    notifications: int = 0
    escalated_at: datetime | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.site_id, self.rule_id, self.subject)


class ConditionSource(Protocol):
    """A pluggable source of conditions: e.g. the push service's failures (issue 19) plugs in
    here with whatever it stores, without the notifier knowing its tables."""

    name: str

    def conditions(self, site_id: str, now: datetime) -> Sequence[Condition]: ...

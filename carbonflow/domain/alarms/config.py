"""A site's alarm configuration: rules, sources, policy, channels. Pure (validation only).

Secrets are never in the document: a channel names the environment variables that hold its
address and secret (``url_env``, ``secret_env``), read by the notifier at send time.
"""

from __future__ import annotations

from datetime import time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from carbonflow.domain.alarms.model import Severity
from carbonflow.domain.alarms.policy import NotifyPolicy
from carbonflow.domain.alarms.rules import Comparator, ThresholdRule

ENV_NAME = r"^[A-Z][A-Z0-9_]{0,63}$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RuleDoc(_Model):
    rule_id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")
    metric: str = Field(min_length=1, max_length=64)
    comparator: Comparator
    threshold: float
    severity: Severity = Severity.WARNING
    device_id: str | None = None

    def rule(self) -> ThresholdRule:
        return ThresholdRule(
            self.rule_id,
            self.metric,
            self.comparator,
            self.threshold,
            self.severity,
            self.device_id,
        )


class ChannelDoc(_Model):
    kind: Literal["email", "wecom", "dingtalk", "webhook"]
    to: list[str] = Field(default_factory=list, description="e-mail recipients")
    url_env: str | None = Field(default=None, pattern=ENV_NAME)
    secret_env: str | None = Field(default=None, pattern=ENV_NAME)
    escalation_only: bool = False  # told only when an alarm escalates


class PolicyDoc(_Model):
    group_window_s: float = Field(default=300.0, ge=0)
    repeat_s: float = Field(default=3600.0, gt=0)
    quiet_start: time | None = None
    quiet_end: time | None = None
    quiet_min_severity: Severity = Severity.CRITICAL
    escalate_after_s: float | None = Field(default=1800.0, gt=0)

    def policy(self, timezone: str) -> NotifyPolicy:
        return NotifyPolicy(
            group_window_s=self.group_window_s,
            repeat_s=self.repeat_s,
            quiet_start=self.quiet_start,
            quiet_end=self.quiet_end,
            quiet_min_severity=self.quiet_min_severity,
            escalate_after_s=self.escalate_after_s,
            timezone=timezone,
        )


class AlarmConfig(_Model):
    rules: list[RuleDoc] = Field(default_factory=list)
    stale_severity: Severity | None = Severity.WARNING  # None: no stale alarms
    rejections_limit: int | None = Field(default=50, ge=1)  # None: no rejection alarms
    rejections_window_s: float = Field(default=900.0, gt=0)
    early_warnings: bool = True
    policy: PolicyDoc = Field(default_factory=PolicyDoc)
    channels: list[ChannelDoc] = Field(default_factory=list)

"""Response and request schemas of the alarm routes (docs/alarms.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from services.api.schemas import Page, _Out


class AlarmOut(_Out):
    alarm_id: int
    site_id: str
    rule_id: str = Field(description="the configured rule, or stale | rejections | early_warning:…")
    source: str = Field(description="threshold | early_warning | stale | rejections | push")
    subject: str = Field(description="the device, indicator or platform the alarm is about")
    severity: str = Field(description="info | warning | critical")
    state: str = Field(description="open | acknowledged | resolved")
    opened_at: datetime
    last_seen_at: datetime = Field(description="the condition was last seen holding, UTC")
    message_en: str
    message_zh: str
    value: float | None = Field(description="the value that raised it, in `unit`")
    threshold: float | None = Field(description="the limit, in `unit`")
    unit: str = Field(description="the unit of value and threshold ('' where the rule has none)")
    acknowledged_at: datetime | None
    acknowledged_by: str | None = Field(description="the key id that acknowledged it")
    resolved_at: datetime | None
    resolved_by: str | None = Field(description="a key id, or `system` when the condition cleared")
    last_notified_at: datetime | None
    notifications: int = Field(description="notifications sent for it so far")
    escalated_at: datetime | None


class AlarmPage(Page[AlarmOut]):
    pass


class DeliveryOut(_Out):
    delivery_id: int
    site_id: str
    rule_id: str
    alarm_ids: list[int]
    channel: str = Field(description="position in the site's channel list and kind, e.g. 0:email")
    escalation: bool
    status: str = Field(description="pending | sent | failed")
    attempts: int
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime | None = Field(description="next retry; null: sent or given up")
    sent_at: datetime | None


class DeliveryPage(Page[DeliveryOut]):
    pass


class AlarmConfigOut(_Out):
    site_id: str
    document: dict[str, Any] = Field(
        description="rules, stale_severity, rejections_limit, rejections_window_s, "
        "early_warnings, policy, channels (docs/alarms.md); secrets by environment variable name"
    )
    updated_at: datetime | None
    updated_by: str | None

"""One notify cycle: for each site with an alarm configuration, gather the conditions of its
sources, reconcile them into alarms, plan the notifications the policy allows, queue one
delivery per channel; then attempt the deliveries that are due, retrying failures with
backoff. Thin: every decision is the domain's (``carbonflow/domain/alarms``), every statement
storage's (``carbonflow/storage/alarms.py``)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from pydantic import ValidationError

from carbonflow.domain.alarms.config import AlarmConfig, ChannelDoc
from carbonflow.domain.alarms.lifecycle import reconcile
from carbonflow.domain.alarms.model import Alarm, Condition, ConditionSource
from carbonflow.domain.alarms.policy import Notification, backoff_s, plan_notifications
from carbonflow.domain.alarms.rules import (
    early_warning_conditions,
    push_conditions,
    rejection_conditions,
    stale_conditions,
    threshold_conditions,
)
from carbonflow.domain.indicators.live import device_freshness
from carbonflow.storage import alarms as alarms_db
from carbonflow.storage import push as push_db
from carbonflow.storage import readings as readings_db
from carbonflow.storage import registry as registry_db
from services.notify.senders import DeliveryError, Senders
from services.notify.settings import NotifySettings

log = logging.getLogger(__name__)

MAX_DEVICE_METRICS = 50_000
DEFAULT_TIMEZONE = "Asia/Shanghai"


@dataclass
class CycleReport:
    sites: int = 0
    opened: int = 0
    resolved: int = 0
    notifications: int = 0
    sent: int = 0
    failed: int = 0


def channel_name(index: int, channel: ChannelDoc) -> str:
    """A delivery's channel: its position in the site's list and its kind (``0:email``)."""
    return f"{index}:{channel.kind}"


class Notifier:
    def __init__(
        self,
        engine: sa.Engine,
        settings: NotifySettings,
        senders: Senders,
        clock: Callable[[], datetime],
        sources: Sequence[ConditionSource] = (),
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.senders = senders
        self.clock = clock
        self.sources = tuple(sources)

    def run_once(self) -> CycleReport:
        now = self.clock()
        report = CycleReport()
        with self.engine.begin() as conn:
            rows = alarms_db.configs(conn)
        configs: dict[str, AlarmConfig] = {}
        for row in rows:
            try:
                configs[row.site_id] = AlarmConfig.model_validate(row.document)
            except ValidationError as exc:  # stored through the API, which validates; be safe
                log.error("alarm configuration of %s is invalid: %s", row.site_id, exc)
        for site_id, config in configs.items():
            self._site(site_id, config, now, report)
        self._deliver(configs, now, report)
        return report

    # ----------------------------------------------------------------------------------------

    def conditions(
        self, conn: sa.Connection, site_id: str, config: AlarmConfig, now: datetime
    ) -> list[Condition]:
        s = self.settings
        values = readings_db.latest_values(conn, site_id, org_id=None, limit=MAX_DEVICE_METRICS)
        out = threshold_conditions(site_id, [r.rule() for r in config.rules], values)
        if config.stale_severity is not None:
            devices = device_freshness(values, now, s.stale_s)
            out += stale_conditions(site_id, devices, config.stale_severity)
        if config.rejections_limit is not None:
            since = now - timedelta(seconds=config.rejections_window_s)
            counts = alarms_db.rejection_counts(conn, site_id, since)
            out += rejection_conditions(
                site_id, counts, config.rejections_limit, config.rejections_window_s
            )
        if config.early_warnings:
            since = now - timedelta(seconds=s.early_warning_lookback_s)
            out += early_warning_conditions(site_id, alarms_db.early_warnings(conn, site_id, since))
        backlogs = push_db.pending_backlogs(conn, site_id)
        out += push_conditions(site_id, backlogs, now, s.push_failing_s)
        for source in self.sources:
            out += [c for c in source.conditions(site_id, now) if c.site_id == site_id]
        return out

    def _site(self, site_id: str, config: AlarmConfig, now: datetime, report: CycleReport) -> None:
        report.sites += 1
        with self.engine.begin() as conn:
            conditions = self.conditions(conn, site_id, config, now)
            changes = reconcile(alarms_db.unresolved(conn, site_id), conditions)
            report.opened += alarms_db.apply_changes(conn, site_id, changes, now)
            report.resolved += len(changes.resolved)
            timezone = registry_db.site_timezone(conn, site_id) or DEFAULT_TIMEZONE
            planned = plan_notifications(
                alarms_db.unresolved(conn, site_id),
                config.policy.policy(timezone),
                now,
                alarms_db.last_sent(conn, site_id),
            )
            for n in planned:
                ids = [a.alarm_id for a in n.alarms]
                for index, channel in enumerate(config.channels):
                    if channel.escalation_only and not n.escalate:
                        continue
                    alarms_db.add_delivery(
                        conn, site_id, n.rule_id, ids, channel_name(index, channel),
                        escalation=n.escalate, now=now,
                    )  # fmt: skip
                alarms_db.mark_notified(conn, ids, now, escalated=n.escalate)
                report.notifications += 1

    def _deliver(self, configs: dict[str, AlarmConfig], now: datetime, report: CycleReport) -> None:
        with self.engine.begin() as conn:
            due = alarms_db.due_deliveries(conn, now)
        for d in due:
            with self.engine.begin() as conn:
                alarms = alarms_db.alarms_by_id(conn, d.alarm_ids)
            error = self._attempt(configs.get(d.site_id), d, alarms)
            attempts = d.attempts + 1
            retry = error is not None and attempts < self.settings.max_attempts
            with self.engine.begin() as conn:
                alarms_db.record_attempt(
                    conn, d.delivery_id, now=now, error=error,
                    next_attempt_at=now + timedelta(seconds=backoff_s(attempts)) if retry else None,
                )  # fmt: skip
            if error is None:
                report.sent += 1
            else:
                report.failed += 1
                log.warning("delivery %s (%s) failed: %s", d.delivery_id, d.channel, error)

    def _attempt(
        self,
        config: AlarmConfig | None,
        d: alarms_db.Delivery,
        alarms: Sequence[Alarm],
    ) -> str | None:
        index, _, kind = d.channel.partition(":")
        channels = config.channels if config is not None else []
        if not index.isdigit() or int(index) >= len(channels) or channels[int(index)].kind != kind:
            return f"channel {d.channel} is no longer configured"
        if not alarms:
            return "its alarms are gone"
        n = Notification(
            site_id=d.site_id,
            rule_id=d.rule_id,
            alarms=tuple(alarms),
            severity=max((a.severity for a in alarms), key=lambda s: s.rank),
            escalate=d.escalation,
        )
        try:
            self.senders.send(channels[int(index)], n)
        except DeliveryError as exc:
            return str(exc)
        return None

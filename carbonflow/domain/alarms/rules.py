"""Conditions from the sources: threshold rules over live values, stale devices, rejection
spikes and calc's early warnings. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from carbonflow.domain.alarms.model import Condition, Severity, Source
from carbonflow.domain.indicators.live import DeviceFreshness, LatestValue, true_value


class Comparator(StrEnum):
    ABOVE = "above"
    BELOW = "below"

    def crossed(self, value: float, threshold: float) -> bool:
        return value > threshold if self is Comparator.ABOVE else value < threshold


# How a threshold message names the metrics alarms are usually set on: (en, zh, unit). Other
# metrics are named by their id and carry no unit.
METRIC_NAMES: dict[str, tuple[str, str, str]] = {
    "power_kw": ("power", "功率", "kW"),
    "ch4_pct": ("CH4 concentration", "甲烷浓度", "%"),
    "mixture_flow_nm3_min": ("gas flow", "混合气流量", "Nm³/min"),
    "air_flow_nm3_min": ("air flow", "风量", "Nm³/min"),
    "flow_nm3_min": ("gas flow", "燃气流量", "Nm³/min"),
    "flame_temp_degc": ("flame temperature", "火焰温度", "°C"),
    "soc_pct": ("state of charge", "荷电状态", "%"),
}


@dataclass(frozen=True, slots=True)
class ThresholdRule:
    """``metric`` of ``device_id`` (every device with the metric when None) above or below
    ``threshold`` in the metric's unit, multiplier applied (e.g. ch4_pct above 1.0 %)."""

    rule_id: str
    metric: str
    comparator: Comparator
    threshold: float
    severity: Severity = Severity.WARNING
    device_id: str | None = None


def threshold_conditions(
    site_id: str, rules: Sequence[ThresholdRule], values: Iterable[LatestValue]
) -> list[Condition]:
    """One condition per (rule, device) whose newest reading crosses the threshold."""
    out: list[Condition] = []
    items = [v for v in values if v.ts is not None and v.raw_value is not None]
    for rule in rules:
        for v in items:
            if v.metric != rule.metric or rule.device_id not in (None, v.device_id):
                continue
            assert v.raw_value is not None
            value = true_value(v.metric, v.raw_value, v.multiplier)
            if not rule.comparator.crossed(value, rule.threshold):
                continue
            word_en = "above" if rule.comparator is Comparator.ABOVE else "below"
            word_zh = "高于" if rule.comparator is Comparator.ABOVE else "低于"
            name_en, name_zh, unit = METRIC_NAMES.get(v.metric, (v.metric, v.metric, ""))
            now, limit = f"{value:g} {unit}".rstrip(), f"{rule.threshold:g} {unit}".rstrip()
            out.append(
                Condition(
                    site_id=site_id,
                    rule_id=rule.rule_id,
                    source=Source.THRESHOLD,
                    subject=v.device_id,
                    severity=rule.severity,
                    message_en=f"{v.device_id}: {name_en} {now} {word_en} {limit}",
                    message_zh=f"{v.device_id}：{name_zh} {now} {word_zh}限值 {limit}",
                    value=value,
                    threshold=rule.threshold,
                    unit=unit,
                )
            )
    return out


STALE_RULE = "stale"


def stale_conditions(
    site_id: str, devices: Iterable[DeviceFreshness], severity: Severity = Severity.WARNING
) -> list[Condition]:
    """One condition per device that reported once and is now older than its limit (a device
    that never reported is a commissioning matter, not an alarm)."""
    return [
        Condition(
            site_id=site_id,
            rule_id=STALE_RULE,
            source=Source.STALE,
            subject=d.device_id,
            severity=severity,
            message_en=f"{d.device_id}: no data for {d.age_s:.0f} s "
            f"(limit {d.stale_after_s:.0f} s)",
            message_zh=f"{d.device_id}：已 {d.age_s:.0f} 秒无数据（限值 {d.stale_after_s:.0f} 秒）",
            value=d.age_s,
            threshold=d.stale_after_s,
            unit="s",
        )
        for d in devices
        if d.stale and d.newest_ts is not None and d.age_s is not None
    ]


REJECTIONS_RULE = "rejections"


def rejection_conditions(
    site_id: str,
    counts: Mapping[str, int],
    limit: int,
    window_s: float,
    severity: Severity = Severity.WARNING,
) -> list[Condition]:
    """One condition per subject (device id, or ``site`` for readings of no known device)
    with at least ``limit`` rejected readings in the last ``window_s`` seconds."""
    return [
        Condition(
            site_id=site_id,
            rule_id=REJECTIONS_RULE,
            source=Source.REJECTIONS,
            subject=subject,
            severity=severity,
            message_en=f"{subject}: {n} readings rejected in {window_s / 60:g} min",
            message_zh=f"{subject}：{window_s / 60:g} 分钟内 {n} 条读数被拒收",
            value=float(n),
            threshold=float(limit),
            unit="readings",
        )
        for subject, n in sorted(counts.items())
        if n >= limit
    ]


@dataclass(frozen=True, slots=True)
class EarlyWarning:
    """A calc early-warning event (``calc_event``: kind indicator or budget)."""

    kind: str
    subject: str  # the indicator or budget id
    org_id: str
    status: str  # at_risk | off_track | missed | …
    value: float | None
    threshold: float | None
    message: str
    raised_at: datetime


WARNING_STATUSES = {"at_risk": Severity.WARNING, "off_track": Severity.CRITICAL}
EARLY_WARNING_RULE = "early_warning"


def early_warning_conditions(site_id: str, events: Iterable[EarlyWarning]) -> list[Condition]:
    """One condition per (kind, org, subject) whose newest event is at risk or off track; an
    event back on track clears it (its newest status is no warning)."""
    newest: dict[tuple[str, str, str], EarlyWarning] = {}
    for e in events:
        key = (e.kind, e.org_id, e.subject)
        if key not in newest or e.raised_at >= newest[key].raised_at:
            newest[key] = e
    out: list[Condition] = []
    for (kind, org, subject), e in sorted(newest.items()):
        severity = WARNING_STATUSES.get(e.status)
        if severity is None:
            continue
        who = f"{org}/" if org else ""
        out.append(
            Condition(
                site_id=site_id,
                rule_id=f"{EARLY_WARNING_RULE}:{kind}",
                source=Source.EARLY_WARNING,
                subject=f"{who}{subject}",
                severity=severity,
                message_en=e.message,
                message_zh=f"{who}{subject} 预警：{_STATUS_ZH.get(e.status, e.status)}",
                value=e.value,
                threshold=e.threshold,
            )
        )
    return out


_STATUS_ZH = {"at_risk": "有风险", "off_track": "偏离目标"}


PUSH_RULE = "push_failing"


@dataclass(frozen=True, slots=True)
class PushBacklog:
    """A destination's unanswered packets: how many, since when, and why (the oldest's error)."""

    destination: str
    pending: int
    oldest_queued_at: datetime
    last_error: str | None


def push_conditions(
    site_id: str,
    backlogs: Sequence[PushBacklog],
    now: datetime,
    limit_s: float,
    severity: Severity = Severity.CRITICAL,
) -> list[Condition]:
    """One condition per destination whose oldest unanswered packet was queued ``limit_s`` or
    more ago: the authority has not had this site's data for that long. A backlog that clears
    (every packet answered) closes it."""
    out = []
    for b in sorted(backlogs, key=lambda b: b.destination):
        age_s = (now - b.oldest_queued_at).total_seconds()
        if age_s < limit_s:
            continue
        why = f" ({b.last_error})" if b.last_error else ""
        out.append(
            Condition(
                site_id=site_id,
                rule_id=PUSH_RULE,
                source=Source.PUSH,
                subject=b.destination,
                severity=severity,
                message_en=f"push to {b.destination}: {b.pending} packets unanswered for "
                f"{age_s / 60:.0f} min{why}",
                message_zh=f"向 {b.destination} 推送：{b.pending} 个数据包 {age_s / 60:.0f} 分钟"
                f"未获应答{why}",
                value=age_s,
                threshold=limit_s,
                unit="s",
            )
        )
    return out

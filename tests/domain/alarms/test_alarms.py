"""Alarm rules, lifecycle, notification policy and channel payloads (carbonflow/domain/alarms)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import urllib.parse
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta

import pytest

from carbonflow.domain.alarms import channels
from carbonflow.domain.alarms.config import AlarmConfig
from carbonflow.domain.alarms.lifecycle import TransitionError, acknowledge, reconcile, resolve
from carbonflow.domain.alarms.model import Alarm, Condition, Severity, Source, State
from carbonflow.domain.alarms.policy import (
    Notification,
    NotifyPolicy,
    backoff_s,
    in_quiet_hours,
    plan_notifications,
)
from carbonflow.domain.alarms.rules import (
    Comparator,
    EarlyWarning,
    PushBacklog,
    ThresholdRule,
    early_warning_conditions,
    push_conditions,
    rejection_conditions,
    stale_conditions,
    threshold_conditions,
)
from carbonflow.domain.indicators.live import DeviceFreshness, LatestValue

NOW = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)  # 14:00 in Shanghai
SITE = "park"


def _cond(
    rule: str = "stale", subject: str = "m1", severity: Severity = Severity.WARNING
) -> Condition:
    return Condition(SITE, rule, Source.STALE, subject, severity, f"{subject} en", f"{subject} 中")


def _alarm(
    alarm_id: int,
    *,
    rule: str = "stale",
    subject: str = "m1",
    state: State = State.OPEN,
    opened_min_ago: float = 0.0,
    notified_min_ago: float | None = None,
    severity: Severity = Severity.WARNING,
) -> Alarm:
    return Alarm(
        alarm_id, SITE, rule, Source.STALE, subject, severity, state,
        NOW - timedelta(minutes=opened_min_ago), NOW, f"{subject} en", f"{subject} 中",
        last_notified_at=None if notified_min_ago is None
        else NOW - timedelta(minutes=notified_min_ago),
    )  # fmt: skip


# --- rules -------------------------------------------------------------------------------------


def test_threshold_rules_on_true_values() -> None:
    values = [
        # CH4 1.2 % in return air: above 1.0 % (concentrations take no multiplier).
        LatestValue("shaft-1", "cmm", "methane_ventilation", "ch4_pct", NOW, 1.2, 5.0),
        LatestValue("shaft-2", "cmm", "methane_ventilation", "ch4_pct", NOW, 0.8, 1.0),
        LatestValue("shaft-3", "cmm", "methane_ventilation", "ch4_pct", None, None, 1.0),
        # Power 0.05 × 132 000 = 6 600 kW below 7 000: a CT/PT multiplier applies.
        LatestValue("grid", "electricity", "grid_import", "power_kw", NOW, 0.05, 132_000.0),
    ]  # fmt: skip
    rules = [
        ThresholdRule("ch4-high", "ch4_pct", Comparator.ABOVE, 1.0, Severity.CRITICAL),
        ThresholdRule("grid-low", "power_kw", Comparator.BELOW, 7000.0, device_id="grid"),
        ThresholdRule("other", "power_kw", Comparator.BELOW, 7000.0, device_id="pv"),
    ]
    found = threshold_conditions(SITE, rules, values)
    assert [(c.rule_id, c.subject, c.value) for c in found] == [
        ("ch4-high", "shaft-1", 1.2),
        ("grid-low", "grid", pytest.approx(6600.0)),
    ]
    assert found[0].severity is Severity.CRITICAL
    assert found[0].message_zh == "shaft-1：甲烷浓度 1.2 % 高于限值 1 %"
    assert found[1].message_en == "grid: power 6600 kW below 7000 kW" and found[1].unit == "kW"


def test_stale_rejection_and_early_warning_conditions() -> None:
    devices = [
        DeviceFreshness("a", NOW - timedelta(seconds=400), 400.0, 180.0, True),
        DeviceFreshness("b", NOW, 0.0, 180.0, False),
        DeviceFreshness("spare", None, None, 900.0, True),  # never reported: no alarm
    ]
    stale = stale_conditions(SITE, devices)
    assert [(c.subject, c.value, c.threshold) for c in stale] == [("a", 400.0, 180.0)]
    # 50 rejected in 15 min is the limit; 49 is not.
    spikes = rejection_conditions(SITE, {"m1": 50, "m2": 49, "site": 120}, 50, 900.0)
    assert [(c.subject, c.value) for c in spikes] == [("m1", 50.0), ("site", 120.0)]
    assert "15 分钟内 50 条" in spikes[0].message_zh

    def ew(status: str, minutes: int, subject: str = "co2_budget") -> EarlyWarning:
        return EarlyWarning("budget", subject, "", status, 1.1, 1.0, f"{subject} {status}",
                            NOW - timedelta(minutes=minutes))  # fmt: skip

    # The newest event per subject counts: back on track clears it.
    events = [
        ew("at_risk", 30),
        ew("off_track", 10),
        ew("at_risk", 20, "energy"),
        ew("on_track", 5, "energy"),
    ]
    warnings = early_warning_conditions(SITE, events)
    assert [(c.rule_id, c.subject, c.severity) for c in warnings] == [
        ("early_warning:budget", "co2_budget", Severity.CRITICAL)
    ]


# --- lifecycle ----------------------------------------------------------------------------------


def test_reconcile_opens_updates_and_resolves() -> None:
    held = [_alarm(1, subject="m1"), _alarm(2, subject="m2", state=State.ACKNOWLEDGED)]
    changes = reconcile(held, [_cond(subject="m2"), _cond(subject="m3"), _cond(subject="m3")])
    assert [c.subject for c in changes.opened] == ["m3"]  # once, though seen twice
    assert [(i, c.subject) for i, c in changes.seen] == [(2, "m2")]
    assert changes.resolved == (1,)  # m1's condition cleared


def test_acknowledge_and_resolve_record_who_and_when() -> None:
    a = acknowledge(_alarm(7), "key:ops-1", NOW)
    assert (a.state, a.acknowledged_by, a.acknowledged_at) == (State.ACKNOWLEDGED, "key:ops-1", NOW)
    assert acknowledge(a, "key:other", NOW + timedelta(minutes=1)) == a  # the first one stays
    r = resolve(a, "system", NOW + timedelta(minutes=5))
    assert (r.state, r.resolved_by) == (State.RESOLVED, "system")
    with pytest.raises(TransitionError):
        acknowledge(r, "key:ops-1", NOW)


# --- policy -------------------------------------------------------------------------------------


def test_one_notification_per_site_and_rule_per_window() -> None:
    policy = NotifyPolicy(group_window_s=300, repeat_s=3600, escalate_after_s=None)
    alarms = [_alarm(1, subject="m1"), _alarm(2, subject="m2"), _alarm(3, rule="ch4-high")]
    planned = plan_notifications(alarms, policy, NOW)
    assert [(n.rule_id, [a.alarm_id for a in n.alarms]) for n in planned] == [
        ("ch4-high", [3]),
        ("stale", [1, 2]),  # two devices, one message
    ]
    # The stale group was told 2 min ago: a third device waits for the window (5 min).
    later = [
        _alarm(1, subject="m1", notified_min_ago=2),
        _alarm(2, subject="m2", notified_min_ago=2),
        _alarm(4, subject="m4"),
    ]
    told = {(SITE, "stale"): NOW - timedelta(minutes=2)}
    assert plan_notifications(later, policy, NOW, told) == []
    later = [replace(a, last_notified_at=NOW - timedelta(minutes=5)) for a in later[:2]] + later[2:]
    told = {(SITE, "stale"): NOW - timedelta(minutes=5)}
    assert [a.alarm_id for a in plan_notifications(later, policy, NOW, told)[0].alarms] == [4]


def test_repeat_until_acknowledged() -> None:
    policy = NotifyPolicy(repeat_s=3600, escalate_after_s=None)
    # Told 59 min ago: not yet; 60 min ago: again; acknowledged or resolved: never.
    assert plan_notifications([_alarm(1, notified_min_ago=59)], policy, NOW) == []
    assert len(plan_notifications([_alarm(1, notified_min_ago=60)], policy, NOW)) == 1
    for state in (State.ACKNOWLEDGED, State.RESOLVED):
        assert plan_notifications([_alarm(1, state=state)], policy, NOW) == []


def test_quiet_hours_hold_all_but_critical() -> None:
    # 22:00–07:00 Shanghai; NOW is 14:00 there, 18:00Z is 02:00.
    policy = NotifyPolicy(quiet_start=time(22), quiet_end=time(7), escalate_after_s=None)
    night = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)
    assert not in_quiet_hours(policy, NOW) and in_quiet_hours(policy, night)
    assert not in_quiet_hours(policy, datetime(2026, 11, 23, 23, 0, tzinfo=UTC))  # 07:00
    alarms = [_alarm(1), _alarm(2, rule="ch4-high", severity=Severity.CRITICAL)]
    assert [n.rule_id for n in plan_notifications(alarms, policy, night)] == ["ch4-high"]
    assert len(plan_notifications(alarms, policy, NOW)) == 2


def test_escalation_once_after_the_delay_even_inside_the_window() -> None:
    policy = NotifyPolicy(repeat_s=3600, escalate_after_s=1800)
    young = _alarm(1, opened_min_ago=29, notified_min_ago=1)
    assert plan_notifications([young], policy, NOW, {(SITE, "stale"): NOW}) == []
    old = _alarm(1, opened_min_ago=30, notified_min_ago=1)
    (n,) = plan_notifications([old], policy, NOW, {(SITE, "stale"): NOW})
    assert n.escalate and n.alarms == (old,)
    assert plan_notifications([replace(old, escalated_at=NOW)], policy, NOW) == []
    assert plan_notifications([replace(old, state=State.ACKNOWLEDGED)], policy, NOW) == []


def test_backoff_doubles_up_to_an_hour() -> None:
    assert [backoff_s(n) for n in (1, 2, 3, 4)] == [30.0, 60.0, 120.0, 240.0]
    assert backoff_s(20) == 3600.0


# --- channels -----------------------------------------------------------------------------------


def _note() -> Notification:
    (n,) = plan_notifications(
        [_alarm(1, subject="m1"), _alarm(2, subject="m2")], NotifyPolicy(), NOW
    )
    return n


def test_texts_are_chinese_and_english() -> None:
    n = _note()
    assert channels.title(n) == "[警告 warning] park · stale: 2 个告警 alarms"
    assert channels.text(n).splitlines()[1:] == ["#1 m1 中 / m1 en", "#2 m2 中 / m2 en"]
    wecom = channels.wecom_payload(n)
    assert wecom["msgtype"] == "markdown" and "#2 m2 中" in wecom["markdown"]["content"]
    ding = channels.dingtalk_payload(n)
    assert ding["markdown"]["title"] == channels.title(n)
    mail = channels.email_message(n, "carbonflow@park.example", ["ops@park.example"])
    assert mail["Subject"] == channels.title(n) and "#1 m1 中" in mail.get_content()


def test_dingtalk_signature_as_documented() -> None:
    # sign = urlencode(base64(HMAC-SHA256(key=secret, msg="{ms}\n{secret}"))).
    url = channels.dingtalk_signed_url(
        "https://robot.example/send?access_token=abc", "SEC1", 1700000000000
    )
    expected = base64.b64encode(
        hmac.new(b"SEC1", b"1700000000000\nSEC1", hashlib.sha256).digest()
    ).decode()
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert query == {"access_token": ["abc"], "timestamp": ["1700000000000"], "sign": [expected]}


def test_webhook_body_and_hmac() -> None:
    n = _note()
    body = channels.webhook_body(n)
    doc = json.loads(body)
    assert [a["alarm_id"] for a in doc["alarms"]] == [1, 2] and doc["severity"] == "warning"
    sig = channels.webhook_signature("s3cret", body, 1700000000)
    mac = hmac.new(b"s3cret", f"1700000000.{body}".encode(), hashlib.sha256).hexdigest()
    assert sig == f"t=1700000000,v1={mac}"


def test_config_validates_and_names_secrets_by_environment_variable() -> None:
    config = AlarmConfig.model_validate(
        {
            "rules": [
                {
                    "rule_id": "ch4-high",
                    "metric": "ch4_pct",
                    "comparator": "above",
                    "threshold": 1.0,
                }
            ],
            "policy": {"quiet_start": "22:00", "quiet_end": "07:00"},
            "channels": [
                {
                    "kind": "dingtalk",
                    "url_env": "CF_DINGTALK_URL",
                    "secret_env": "CF_DINGTALK_SECRET",
                }
            ],
        }
    )
    assert config.rules[0].rule().threshold == 1.0
    assert config.policy.policy("Asia/Shanghai").quiet_start == time(22)
    with pytest.raises(ValueError):
        AlarmConfig.model_validate({"channels": [{"kind": "webhook", "url_env": "https://x"}]})


def test_a_push_backlog_older_than_the_limit_is_one_critical_condition() -> None:
    now = datetime(2026, 12, 1, 8, tzinfo=UTC)
    backlogs = [
        PushBacklog("shanxi-eco", 12, now - timedelta(minutes=16), "connection refused"),
        PushBacklog("energy-prov", 3, now - timedelta(minutes=14), None),  # within 15 min
    ]
    (found,) = push_conditions("mine", backlogs, now, 900.0)
    assert (found.rule_id, found.subject, found.severity) == (
        "push_failing",
        "shanxi-eco",
        Severity.CRITICAL,
    )
    assert (found.value, found.threshold, found.unit) == (960.0, 900.0, "s")
    assert found.message_en == (
        "push to shanxi-eco: 12 packets unanswered for 16 min (connection refused)"
    )
    assert "16 分钟未获应答" in found.message_zh
    assert push_conditions("mine", [], now, 900.0) == []

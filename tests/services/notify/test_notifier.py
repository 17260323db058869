"""The notify service against a real PostgreSQL, a real SMTP server (aiosmtpd, started here)
and a local HTTP receiver standing in for the WeCom and DingTalk robot endpoints and a generic
webhook — test doubles of outside services that cannot be reached from a test, speaking their
documented formats. The clock is injected: the test moves it, nothing sleeps."""

from __future__ import annotations

import base64
import email.policy
import hashlib
import hmac
import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller

from carbonflow.embedded.net import free_port
from carbonflow.storage.db import make_engine
from services.notify.notifier import Notifier
from services.notify.senders import Senders
from services.notify.settings import NotifySettings
from tests.support.api_support import MINE, NOW, Api, fresh

pytestmark = pytest.mark.integration

__all__ = ["fresh"]  # the fixture, used by name

ALARMS = f"/api/v1/sites/{MINE}/alarms"


# --- the SMTP server and the HTTP receiver ------------------------------------------------------


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.received_at: list[float] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        message = message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        self.received_at.append(time.perf_counter())
        return "250 OK"


@dataclass
class _Hit:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


@dataclass
class _Receiver:
    hits: list[_Hit] = field(default_factory=list)
    failing: set[str] = field(default_factory=set)  # paths that answer 500


def _handler(receiver: _Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            receiver.hits.append(
                _Hit(url.path, urllib.parse.parse_qs(url.query), dict(self.headers), body)
            )
            failing = url.path in receiver.failing
            self.send_response(500 if failing else 200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            # WeCom and DingTalk answer {"errcode": 0, "errmsg": "ok"} on success.
            self.wfile.write(json.dumps({"errcode": 0, "errmsg": "ok"}).encode())

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@dataclass
class Rig:
    api: Api
    notifier: Notifier
    mailbox: _Mailbox
    receiver: _Receiver
    clock: list[datetime]
    engine: sa.Engine

    def cycle(self, at: datetime) -> Any:
        self.clock[0] = at
        return self.notifier.run_once()

    def paths(self) -> list[str]:
        return [h.path for h in self.receiver.hits]


@pytest.fixture
def rig(fresh: Api) -> Iterator[Rig]:
    mailbox = _Mailbox()
    smtp_port = free_port()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    receiver = _Receiver()
    http = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{http.server_address[1]}"
    env = {
        "CF_WECOM_URL": f"{base}/wecom?key=robot-key",
        "CF_DINGTALK_URL": f"{base}/dingtalk?access_token=robot-token",
        "CF_DINGTALK_SECRET": "SECdingtalk",
        "CF_HOOK_URL": f"{base}/hook",
        "CF_HOOK_SECRET": "hook-secret",
        "CF_ESCALATION_URL": f"{base}/escalation",
    }
    settings = NotifySettings(
        DATABASE_URL=fresh.seeded.url,
        CARBONFLOW_SMTP_HOST="127.0.0.1",
        CARBONFLOW_SMTP_PORT=smtp_port,
        CARBONFLOW_SMTP_STARTTLS=False,
        CARBONFLOW_SMTP_FROM="carbonflow@mine.example",
    )
    clock = [NOW]
    engine = make_engine(fresh.seeded.url)
    senders = Senders(settings, env, lambda: clock[0])
    notifier = Notifier(engine, settings, senders, lambda: clock[0])
    try:
        yield Rig(fresh, notifier, mailbox, receiver, clock, engine)
    finally:
        engine.dispose()
        http.shutdown()
        smtp.stop()


CONFIG: dict[str, Any] = {
    "rules": [
        # grid-line-1 reads 0.05 × 132 000 = 6 600 kW: above 6 000 kW.
        {"rule_id": "grid-high", "metric": "power_kw", "comparator": "above",
         "threshold": 6000, "severity": "critical", "device_id": "grid-line-1"},
    ],
    "policy": {"group_window_s": 300, "repeat_s": 3600, "escalate_after_s": 7200},
    "channels": [
        {"kind": "email", "to": ["ops@mine.example"]},
        {"kind": "wecom", "url_env": "CF_WECOM_URL"},
        {"kind": "dingtalk", "url_env": "CF_DINGTALK_URL", "secret_env": "CF_DINGTALK_SECRET"},
        {"kind": "webhook", "url_env": "CF_HOOK_URL", "secret_env": "CF_HOOK_SECRET"},
        {"kind": "webhook", "url_env": "CF_ESCALATION_URL", "escalation_only": True},
    ],
}  # fmt: skip


def _configure(rig: Rig, config: dict[str, Any] = CONFIG) -> None:
    put = rig.api.client.put(f"{ALARMS}/config", headers=rig.api.headers("admin"), json=config)
    assert put.status_code == 200, put.text


def _alarms(rig: Rig, who: str = "operator") -> list[dict[str, Any]]:
    response = rig.api.client.get(ALARMS, headers=rig.api.headers(who))
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_alarms_reach_email_wecom_dingtalk_and_webhook_once_per_window(rig: Rig) -> None:
    _configure(rig)
    started = time.perf_counter()
    report = rig.cycle(NOW)
    # The seed: pv-subsidence-a is an hour old (stale, limit 900 s), grid-line-1 above 6 000 kW.
    alarms = {(a["rule_id"], a["subject"]): a for a in _alarms(rig)}
    assert set(alarms) == {("grid-high", "grid-line-1"), ("stale", "pv-subsidence-a")}
    assert alarms[("grid-high", "grid-line-1")]["value"] == pytest.approx(6600.0)
    assert alarms[("stale", "pv-subsidence-a")]["unit"] == "s"
    assert all(a["state"] == "open" and a["notifications"] == 1 for a in alarms.values())
    # Two groups (rules) × four channels (the escalation hook is not due): 8 deliveries.
    assert (report.opened, report.notifications, report.sent, report.failed) == (2, 2, 8, 0)
    assert len(rig.mailbox.messages) == 2
    print(f"notification latency (cycle start → mail received): "
          f"{max(rig.mailbox.received_at) - started:.3f} s")  # fmt: skip
    subjects = sorted(str(m["Subject"]) for m in rig.mailbox.messages)
    assert subjects == [
        "[严重 CRITICAL] shanxi-jinzhong-mine · grid-high: 1 个告警 alarms",
        "[警告 warning] shanxi-jinzhong-mine · stale: 1 个告警 alarms",
    ]
    assert sorted(rig.paths()) == ["/dingtalk"] * 2 + ["/hook"] * 2 + ["/wecom"] * 2
    wecom = next(h for h in rig.receiver.hits if h.path == "/wecom")
    assert wecom.query == {"key": ["robot-key"]}
    assert json.loads(wecom.body)["msgtype"] == "markdown"
    # DingTalk's signature: base64(HMAC-SHA256(secret, "{timestamp}\n{secret}")).
    ding = next(h for h in rig.receiver.hits if h.path == "/dingtalk")
    stamp = ding.query["timestamp"][0]
    assert stamp == str(int(NOW.timestamp() * 1000))
    expected = base64.b64encode(
        hmac.new(b"SECdingtalk", f"{stamp}\nSECdingtalk".encode(), hashlib.sha256).digest()
    ).decode()
    assert ding.query["sign"] == [expected]
    # The generic webhook: HMAC-SHA256 over "{t}.{body}".
    hook = next(h for h in rig.receiver.hits if h.path == "/hook")
    t, v1 = (part.split("=", 1)[1] for part in hook.headers["X-Carbonflow-Signature"].split(","))
    mac = hmac.new(b"hook-secret", f"{t}.".encode() + hook.body, hashlib.sha256).hexdigest()
    assert v1 == mac and json.loads(hook.body)["site_id"] == MINE

    # One minute later: still within the group window and the repeat interval — nothing new.
    assert rig.cycle(NOW + timedelta(minutes=1)).notifications == 0
    assert len(rig.mailbox.messages) == 2
    # The operator acknowledges the stale alarm; an hour later only grid-high repeats.
    stale_id = alarms[("stale", "pv-subsidence-a")]["alarm_id"]
    ack = rig.api.client.post(
        f"{ALARMS}/{stale_id}/acknowledge", headers=rig.api.headers("operator")
    )
    assert ack.status_code == 200, ack.text
    acked = ack.json()
    assert (
        acked["state"] == "acknowledged"
        and acked["acknowledged_by"] == rig.api.seeded.key_ids["operator"]
    )
    # An hour on, grid-high repeats; the feed of the seed stopped at NOW, so the other
    # devices are stale now (new alarms, told in one message); the acknowledged one is not told.
    before = len(rig.mailbox.messages)
    assert rig.cycle(NOW + timedelta(minutes=61)).notifications == 2
    later = {
        str(m["Subject"]).split("·")[1].split(":")[0].strip(): m
        for m in rig.mailbox.messages[before:]
    }
    assert set(later) == {"grid-high", "stale"}
    stale_body = later["stale"].get_content()
    assert f"#{stale_id} " not in stale_body and "pv-subsidence-b" in stale_body
    # Two hours open and unacknowledged: grid-high escalates, also to the escalation hook.
    rig.cycle(NOW + timedelta(minutes=121))
    assert rig.paths().count("/escalation") == 1
    escalated = json.loads(next(h for h in rig.receiver.hits if h.path == "/escalation").body)
    assert escalated["rule_id"] == "grid-high" and escalated["escalate"] is True


MIN20 = timedelta(minutes=20)


def test_budget_overrun_and_push_failure_then_resolution(rig: Rig) -> None:
    _configure(
        rig, {**CONFIG, "rules": [], "stale_severity": None, "channels": CONFIG["channels"][3:4]}
    )
    with rig.engine.begin() as conn:  # calc's early warning: the CO2 budget is off track
        conn.execute(
            sa.text(
                "INSERT INTO calc_event (site_id, org_id, kind, subject, grain, period_start,"
                " status, value, threshold, message, raised_at, dedup_key) VALUES (:s, '',"
                " 'budget', 'co2_t', 'year', '2026-01-01', 'off_track', 1.12, 1.0,"
                " 'CO2 budget 112 % used at 89 % of the year', :at, 'b1')"
            ),
            {"s": MINE, "at": NOW - timedelta(hours=1)},
        )
    # The push service's outbox: a packet of the mine unanswered for 20 min (limit 15 min).
    with rig.engine.begin() as conn:
        outbox_id = conn.execute(
            sa.text(
                "INSERT INTO push_outbox (destination, site_id, cn, data_time, pno, pnum, qn,"
                " packet, state, attempts, created_at, last_sent_at, last_error) VALUES"
                " ('provincial-platform', :s, '2061', :t, 1, 1, '20260101000000000', :p,"
                " 'pending', 4, :at, :at, 'no answer to QN 20260101000000000 after 4 sends')"
                " RETURNING outbox_id"
            ),
            {"s": MINE, "t": NOW - timedelta(hours=2), "p": b"##0000", "at": NOW - MIN20},
        ).scalar_one()
    rig.receiver.failing.add("/hook")
    report = rig.cycle(NOW)
    assert {(a["rule_id"], a["severity"]) for a in _alarms(rig, "regulator")} == {
        ("early_warning:budget", "critical"),
        ("push_failing", "critical"),
    }
    (pushing,) = [a for a in _alarms(rig) if a["rule_id"] == "push_failing"]
    assert pushing["subject"] == "provincial-platform"
    assert "1 packets unanswered for 20 min (no answer to QN" in pushing["message_en"]
    # The webhook answers 500: both deliveries failed, visible, retried after 30 s.
    assert (report.sent, report.failed) == (0, 2)
    failed = rig.api.client.get(
        f"{ALARMS}/deliveries?failed=true", headers=rig.api.headers("operator")
    )
    rows = failed.json()["items"]
    assert [(d["status"], d["attempts"]) for d in rows] == [("failed", 1)] * 2
    assert "HTTP Error 500" in rows[0]["last_error"]
    assert rows[0]["next_attempt_at"] == (NOW + timedelta(seconds=30)).isoformat().replace(
        "+00:00", "Z"
    )
    rig.receiver.failing.clear()
    assert rig.cycle(NOW + timedelta(seconds=10)).sent == 0  # not yet due
    assert rig.cycle(NOW + timedelta(seconds=30)).sent == 2
    # The platform recovers: the push alarm resolves by itself (who: system).
    with rig.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE push_outbox SET state = 'acked', acked_at = :at WHERE outbox_id = :i"),
            {"at": NOW + timedelta(minutes=1), "i": outbox_id},
        )
    assert rig.cycle(NOW + timedelta(minutes=2)).resolved == 1
    resolved = [a for a in _alarms(rig) if a["rule_id"] == "push_failing"]
    assert [(a["state"], a["resolved_by"]) for a in resolved] == [("resolved", "system")]
    # A resolved alarm cannot be acknowledged.
    gone = rig.api.client.post(f"{ALARMS}/{resolved[0]['alarm_id']}/acknowledge",
                               headers=rig.api.headers("operator"))  # fmt: skip
    assert gone.status_code == 409

"""What each channel is sent: texts in Chinese and English, the WeCom and DingTalk group-robot
JSON, DingTalk's signature, a generic webhook's JSON and HMAC signature, an e-mail. Pure: the
notifier does the sending.

- WeCom group robot: ``POST {"msgtype": "markdown", "markdown": {"content": …}}`` to the
  robot's webhook address (https://developer.work.weixin.qq.com/document/path/91770).
- DingTalk custom robot: ``POST {"msgtype": "markdown", "markdown": {"title", "text"}}``; with
  signing on, ``&timestamp={ms}&sign={urlencode(base64(HMAC-SHA256(secret, f"{ms}\\n{secret}")))}``
  is appended to the address (https://open.dingtalk.com/document/robots/customize-robot-security-settings).
- Generic webhook: the JSON of :func:`webhook_body`; header ``X-Carbonflow-Signature:
  t={unix s},v1={hex HMAC-SHA256(secret, f"{t}.{body}")}`` so the receiver can check origin
  and freshness.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import urllib.parse
from email.message import EmailMessage
from typing import Any

from carbonflow.domain.alarms.model import Alarm
from carbonflow.domain.alarms.policy import Notification

_SEVERITY = {
    "info": ("info", "提示"),
    "warning": ("warning", "警告"),
    "critical": ("CRITICAL", "严重"),
}


def title(n: Notification) -> str:
    """One line, Chinese first: ``[严重 CRITICAL] 站点 park · stale: 3 个告警 alarms``."""
    en, zh = _SEVERITY[n.severity.value]
    esc = " · 升级 escalated" if n.escalate else ""
    return f"[{zh} {en}] {n.site_id} · {n.rule_id}: {len(n.alarms)} 个告警 alarms{esc}"


def _line(a: Alarm) -> str:
    return f"#{a.alarm_id} {a.message_zh} / {a.message_en}"


def text(n: Notification) -> str:
    """The title and one line per alarm, in Chinese and English."""
    return "\n".join([title(n), *(_line(a) for a in n.alarms)])


def wecom_payload(n: Notification) -> dict[str, Any]:
    lines = "\n".join(f"> {_line(a)}" for a in n.alarms)
    return {"msgtype": "markdown", "markdown": {"content": f"**{title(n)}**\n{lines}"}}


def dingtalk_payload(n: Notification) -> dict[str, Any]:
    lines = "\n\n".join(f"- {_line(a)}" for a in n.alarms)
    return {
        "msgtype": "markdown",
        "markdown": {"title": title(n), "text": f"### {title(n)}\n\n{lines}"},
    }


def dingtalk_signed_url(url: str, secret: str, timestamp_ms: int) -> str:
    """The robot address with DingTalk's ``timestamp`` and ``sign`` appended."""
    to_sign = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode(), to_sign, hashlib.sha256).digest()
    sign = urllib.parse.quote_plus(base64.b64encode(digest).decode())
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}timestamp={timestamp_ms}&sign={sign}"


def webhook_body(n: Notification) -> str:
    """Canonical JSON (sorted keys, no spaces) of the notification and its alarms."""
    doc = {
        "site_id": n.site_id,
        "rule_id": n.rule_id,
        "severity": n.severity.value,
        "escalate": n.escalate,
        "title": title(n),
        "alarms": [
            {
                "alarm_id": a.alarm_id,
                "source": a.source.value,
                "subject": a.subject,
                "severity": a.severity.value,
                "state": a.state.value,
                "opened_at": a.opened_at.isoformat(),
                "value": a.value,
                "threshold": a.threshold,
                "unit": a.unit,
                "message_en": a.message_en,
                "message_zh": a.message_zh,
            }
            for a in n.alarms
        ],
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def webhook_signature(secret: str, body: str, timestamp_s: int) -> str:
    """``t={timestamp},v1={hex HMAC-SHA256(secret, "{timestamp}.{body}")}``."""
    mac = hmac.new(secret.encode(), f"{timestamp_s}.{body}".encode(), hashlib.sha256)
    return f"t={timestamp_s},v1={mac.hexdigest()}"


def email_message(n: Notification, sender: str, recipients: list[str]) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = title(n)
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg.set_content(text(n))
    return msg

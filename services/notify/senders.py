"""Sending a notification on one channel: SMTP, WeCom and DingTalk group robots, a generic
webhook. The payloads and signatures are the domain's (``carbonflow/domain/alarms/channels``);
this module only talks to the outside. Addresses and secrets come from the environment
variables a channel names (``url_env``, ``secret_env``): never from the database."""

from __future__ import annotations

import json
import smtplib
import ssl
import urllib.request
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from carbonflow.domain.alarms import channels
from carbonflow.domain.alarms.config import ChannelDoc
from carbonflow.domain.alarms.policy import Notification
from services.notify.settings import NotifySettings

_JSON = "application/json; charset=utf-8"


class DeliveryError(Exception):
    """A channel refused or could not be reached; retried with backoff."""


class Senders:
    def __init__(
        self,
        settings: NotifySettings,
        env: Mapping[str, str],
        clock: Callable[[], datetime],
    ) -> None:
        self.settings = settings
        self.env = env
        self.clock = clock

    def _post(self, url: str, body: bytes, headers: Mapping[str, str]) -> bytes:
        """POST ``body``; an HTTP status ≥ 400 or no answer raises (``OSError``)."""
        if not url.startswith(("http://", "https://")):
            raise DeliveryError(f"not an http(s) address: {url[:40]!r}")
        request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
        with urllib.request.urlopen(request, timeout=self.settings.http_timeout_s) as response:
            answer: bytes = response.read(65_536)
        return answer

    def send(self, channel: ChannelDoc, n: Notification) -> None:
        """Deliver ``n`` on ``channel`` or raise :class:`DeliveryError`."""
        try:
            if channel.kind == "email":
                self._email(channel, n)
            elif channel.kind == "wecom":
                self._robot(self._url(channel), channels.wecom_payload(n))
            elif channel.kind == "dingtalk":
                url = self._url(channel)
                secret = self._secret(channel)
                if secret:
                    url = channels.dingtalk_signed_url(
                        url, secret, int(self.clock().timestamp() * 1000)
                    )
                self._robot(url, channels.dingtalk_payload(n))
            else:
                self._webhook(channel, n)
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(f"{channel.kind}: {type(exc).__name__}: {exc}") from exc

    def _url(self, channel: ChannelDoc) -> str:
        url = self.env.get(channel.url_env or "", "")
        if not url:
            raise DeliveryError(
                f"{channel.kind}: environment variable {channel.url_env!r} is not set"
            )
        return url

    def _secret(self, channel: ChannelDoc) -> str:
        return self.env.get(channel.secret_env or "", "") if channel.secret_env else ""

    def _robot(self, url: str, payload: Mapping[str, Any]) -> None:
        """WeCom and DingTalk answer HTTP 200 with ``{"errcode": 0, …}`` on success."""
        answer = self._post(
            url, json.dumps(payload, ensure_ascii=False).encode(), {"Content-Type": _JSON}
        )
        try:
            body = json.loads(answer)
        except ValueError as exc:
            raise DeliveryError(f"robot answered no JSON: {answer[:200]!r}") from exc
        if not isinstance(body, dict) or body.get("errcode", 0) != 0:
            raise DeliveryError(f"robot refused: {str(body)[:200]}")

    def _webhook(self, channel: ChannelDoc, n: Notification) -> None:
        body = channels.webhook_body(n)
        headers = {"Content-Type": _JSON}
        secret = self._secret(channel)
        if secret:
            stamp = int(self.clock().timestamp())
            headers["X-Carbonflow-Signature"] = channels.webhook_signature(secret, body, stamp)
        self._post(self._url(channel), body.encode(), headers)

    def _email(self, channel: ChannelDoc, n: Notification) -> None:
        s = self.settings
        if not s.smtp_host:
            raise DeliveryError("email: CARBONFLOW_SMTP_HOST is not set")
        if not channel.to:
            raise DeliveryError("email: the channel has no recipients")
        message = channels.email_message(n, s.smtp_from, list(channel.to))
        with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.http_timeout_s) as smtp:
            if s.smtp_starttls and smtp.has_extn("starttls"):
                # A verifying context: smtplib's default one checks no certificate.
                smtp.starttls(context=ssl.create_default_context())
            if s.smtp_user and s.smtp_password is not None:
                smtp.login(s.smtp_user, s.smtp_password.get_secret_value())
            smtp.send_message(message)

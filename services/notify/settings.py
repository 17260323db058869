"""Typed settings of the notify service (environment variables in docs/alarms.md)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from carbonflow.settings import DatabaseSettings


class NotifySettings(DatabaseSettings):
    interval_s: float = Field(
        default=30.0,
        gt=0,
        validation_alias="CARBONFLOW_NOTIFY_INTERVAL_S",
        description="a cycle (sources → alarms → notifications → deliveries) starts this often [s]",
    )
    stale_s: float = Field(
        default=900.0,
        gt=0,
        validation_alias="CARBONFLOW_NOTIFY_STALE_S",
        description="stale limit of devices that declare no reporting period [s]",
    )
    push_failing_s: float = Field(
        default=900.0,
        gt=0,
        validation_alias="CARBONFLOW_NOTIFY_PUSH_FAILING_S",
        description="a push destination with a packet unanswered this long raises an alarm [s]",
    )
    early_warning_lookback_s: float = Field(
        default=2 * 86400.0,
        gt=0,
        validation_alias="CARBONFLOW_NOTIFY_EARLY_WARNING_LOOKBACK_S",
        description="calc events raised this long ago still count [s]",
    )
    max_attempts: int = Field(
        default=8,
        ge=1,
        validation_alias="CARBONFLOW_NOTIFY_MAX_ATTEMPTS",
        description="attempts per delivery (backoff 30 s, 60 s, … up to 1 h) before giving up",
    )
    http_timeout_s: float = Field(
        default=10.0, gt=0, validation_alias="CARBONFLOW_NOTIFY_HTTP_TIMEOUT_S"
    )
    http_port: int = Field(
        default=9110,
        ge=0,
        le=65535,
        validation_alias="CARBONFLOW_NOTIFY_HTTP_PORT",
        description="/metrics and /healthz; 0 disables",
    )
    http_host: str = Field(default="127.0.0.1", validation_alias="CARBONFLOW_NOTIFY_HTTP_HOST")
    smtp_host: str | None = Field(default=None, validation_alias="CARBONFLOW_SMTP_HOST")
    smtp_port: int = Field(default=587, ge=1, le=65535, validation_alias="CARBONFLOW_SMTP_PORT")
    smtp_from: str = Field(default="carbonflow@localhost", validation_alias="CARBONFLOW_SMTP_FROM")
    smtp_user: str | None = Field(default=None, validation_alias="CARBONFLOW_SMTP_USER")
    smtp_password: SecretStr | None = Field(
        default=None, validation_alias="CARBONFLOW_SMTP_PASSWORD"
    )
    smtp_starttls: bool = Field(default=True, validation_alias="CARBONFLOW_SMTP_STARTTLS")

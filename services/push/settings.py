"""Typed settings of the push service (environment variables in docs/push.md)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from carbonflow.settings import DatabaseSettings


class PushSettings(DatabaseSettings):
    destinations_file: Path | None = Field(
        default=None,
        validation_alias="CARBONFLOW_PUSH_DESTINATIONS",
        description="YAML file of destination profiles (docs/push.md); secrets by env name",
    )
    interval_s: float = Field(
        default=5.0,
        gt=0,
        validation_alias="CARBONFLOW_PUSH_INTERVAL_S",
        description="how often due periods are queued and backlogs sent [s]",
    )
    backoff_start_s: float = Field(
        default=1.0, gt=0, validation_alias="CARBONFLOW_PUSH_BACKOFF_START_S"
    )
    backoff_max_s: float = Field(
        default=60.0,
        gt=0,
        validation_alias="CARBONFLOW_PUSH_BACKOFF_MAX_S",
        description="reconnect back-off doubles from the start value up to this [s]",
    )
    connect_timeout_s: float = Field(
        default=10.0, gt=0, validation_alias="CARBONFLOW_PUSH_CONNECT_TIMEOUT_S"
    )
    periods_per_cycle: int = Field(
        default=200,
        ge=1,
        validation_alias="CARBONFLOW_PUSH_PERIODS_PER_CYCLE",
        description="periods queued per destination and data command in one cycle",
    )
    revise_days: float = Field(
        default=35.0,
        gt=0,
        validation_alias="CARBONFLOW_PUSH_REVISE_DAYS",
        description="periods this close to the newest one pushed are queued again when their "
        "results are recomputed [d]",
    )
    http_port: int = Field(
        default=9111,
        ge=0,
        le=65535,
        validation_alias="CARBONFLOW_PUSH_HTTP_PORT",
        description="/metrics and /healthz; 0 disables",
    )
    http_host: str = Field(default="127.0.0.1", validation_alias="CARBONFLOW_PUSH_HTTP_HOST")

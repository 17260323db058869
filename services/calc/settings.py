"""Typed settings of the calc service (environment variables in brackets in docs/calc.md)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from carbonflow.settings import DatabaseSettings
from services.calc.engine import EngineConfig


class CalcSettings(DatabaseSettings):
    interval_s: float = Field(
        default=2.0,
        gt=0,
        validation_alias="CARBONFLOW_CALC_INTERVAL_S",
        description="a calc cycle starts this often [s] (freshness ≈ one interval + a cycle)",
    )
    dirty_batch: int = Field(
        default=20_000,
        ge=1,
        validation_alias="CARBONFLOW_CALC_DIRTY_BATCH",
        description="dirty device-hours taken per cycle",
    )
    request_chunk_days: int = Field(
        default=31,
        ge=1,
        validation_alias="CARBONFLOW_CALC_REQUEST_CHUNK_DAYS",
        description="days of a recomputation request processed per cycle",
    )
    read_ahead: bool = Field(
        default=True,
        validation_alias="CARBONFLOW_CALC_READ_AHEAD",
        description="read and compute a recompute's next chunk on a second connection meanwhile",
    )
    default_report_period_s: float = Field(
        default=900.0,
        gt=0,
        validation_alias="CARBONFLOW_CALC_DEFAULT_REPORT_PERIOD_S",
        description="reporting period assumed for devices that declare none [s]; gap = 2 ×",
    )
    late_after_s: float = Field(
        default=900.0,
        ge=0,
        validation_alias="CARBONFLOW_CALC_LATE_AFTER_S",
        description="a reading received this long after its timestamp makes its intervals late",
    )
    factor_check_s: float = Field(
        default=60.0,
        ge=0,
        validation_alias="CARBONFLOW_CALC_FACTOR_CHECK_S",
        description="how often factor, pin and green-register changes are looked for [s]",
    )
    max_consecutive_failures: int = Field(
        default=30,
        ge=1,
        validation_alias="CARBONFLOW_CALC_MAX_CONSECUTIVE_FAILURES",
        description="cycles failing for a reason other than the database in a row before exit 1",
    )
    retry_max_s: float = Field(default=30.0, gt=0, validation_alias="CARBONFLOW_CALC_RETRY_MAX_S")
    http_port: int = Field(
        default=9109,
        ge=0,
        le=65535,
        validation_alias="CARBONFLOW_CALC_HTTP_PORT",
        description="/metrics and /healthz; 0 disables",
    )
    http_host: str = Field(default="127.0.0.1", validation_alias="CARBONFLOW_CALC_HTTP_HOST")

    def engine_config(self) -> EngineConfig:
        return EngineConfig(
            dirty_batch=self.dirty_batch,
            request_chunk=timedelta(days=self.request_chunk_days),
            read_ahead=self.read_ahead,
            default_report_period=timedelta(seconds=self.default_report_period_s),
            late_after=timedelta(seconds=self.late_after_s),
            factor_check_s=self.factor_check_s,
        )

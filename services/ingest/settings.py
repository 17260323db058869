"""Typed settings of the ingest service (environment variables in brackets in docs/ingest.md)."""

from __future__ import annotations

from pydantic import Field, model_validator

from carbonflow.settings import DatabaseSettings, MqttSettings


class IngestSettings(DatabaseSettings, MqttSettings):
    client_id: str = Field(
        default="carbonflow-ingest-1",
        validation_alias="CARBONFLOW_INGEST_CLIENT_ID",
        description="stable MQTT client id: the broker keeps this worker's session under it",
    )
    shared_group: str = Field(
        default="",
        validation_alias="CARBONFLOW_INGEST_SHARED_GROUP",
        description=(
            "MQTT shared-subscription group ($share/<group>/…); empty (default) for a plain one,"
            " the only kind Mosquitto restores after a restart (docs/mqtt.md)"
        ),
    )
    session_expiry_s: int = Field(
        default=7 * 86400, ge=0, validation_alias="CARBONFLOW_INGEST_SESSION_EXPIRY_S"
    )
    receive_maximum: int = Field(
        default=20000,
        ge=10,
        le=65535,
        validation_alias="CARBONFLOW_INGEST_RECEIVE_MAXIMUM",
        description="unacknowledged QoS 1 messages the broker may have in flight to this worker",
    )
    batch_max_readings: int = Field(
        default=20000, ge=1, validation_alias="CARBONFLOW_INGEST_BATCH_MAX_READINGS"
    )
    batch_max_age_ms: int = Field(
        default=100, ge=1, validation_alias="CARBONFLOW_INGEST_BATCH_MAX_AGE_MS"
    )
    max_payload_bytes: int = Field(
        default=262144, ge=64, validation_alias="CARBONFLOW_INGEST_MAX_PAYLOAD_BYTES"
    )
    future_skew_s: float = Field(
        default=300.0, ge=0, validation_alias="CARBONFLOW_INGEST_FUTURE_SKEW_S"
    )
    registry_refresh_s: float = Field(
        default=30.0, gt=0, validation_alias="CARBONFLOW_INGEST_REGISTRY_REFRESH_S"
    )
    retry_initial_s: float = Field(
        default=0.5, gt=0, validation_alias="CARBONFLOW_INGEST_RETRY_INITIAL_S"
    )
    retry_max_s: float = Field(default=15.0, gt=0, validation_alias="CARBONFLOW_INGEST_RETRY_MAX_S")
    http_port: int = Field(
        default=9108,
        ge=0,
        le=65535,
        validation_alias="CARBONFLOW_INGEST_HTTP_PORT",
        description="/metrics and /healthz; 0 disables",
    )
    http_host: str = Field(default="127.0.0.1", validation_alias="CARBONFLOW_INGEST_HTTP_HOST")

    @property
    def batch_max_messages(self) -> int:
        # Half the in-flight window: the broker keeps sending the other half while a batch is
        # written, and a full batch never waits for messages the broker is not allowed to send.
        return max(1, self.receive_maximum // 2)

    @property
    def topic_filter(self) -> str:
        from carbonflow.domain.readings.contract import SUBSCRIPTION

        return f"$share/{self.shared_group}/{SUBSCRIPTION}" if self.shared_group else SUBSCRIPTION

    @model_validator(mode="after")
    def _retry_order(self) -> IngestSettings:
        if self.retry_max_s < self.retry_initial_s:
            raise ValueError(
                "CARBONFLOW_INGEST_RETRY_MAX_S must be >= CARBONFLOW_INGEST_RETRY_INITIAL_S"
            )
        return self

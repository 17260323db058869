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
    sites: str = Field(
        default="",
        validation_alias="CARBONFLOW_INGEST_SITES",
        description=(
            "comma-separated site ids: this worker's slice of the stream (plain subscriptions to"
            " carbonflow/v1/<site>/#); empty for every site (docs/mqtt.md, 'Several workers')"
        ),
    )
    exclude_sites: str = Field(
        default="",
        validation_alias="CARBONFLOW_INGEST_EXCLUDE_SITES",
        description=(
            "comma-separated site ids that other workers' slices take: this worker, subscribed to"
            " every site, acknowledges their messages without storing them"
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
    def site_slice(self) -> frozenset[str]:
        return _site_ids(self.sites)

    @property
    def excluded_sites(self) -> frozenset[str]:
        return _site_ids(self.exclude_sites)

    @property
    def topic_filters(self) -> tuple[str, ...]:
        from carbonflow.domain.readings.contract import SUBSCRIPTION, TOPIC_PREFIX

        if self.site_slice:
            return tuple(f"{TOPIC_PREFIX}/{site}/#" for site in sorted(self.site_slice))
        if self.shared_group:
            return (f"$share/{self.shared_group}/{SUBSCRIPTION}",)
        return (SUBSCRIPTION,)

    def owns(self, topic: str) -> bool:
        """Whether this worker stores the messages of ``topic``'s site.

        A sliced worker's persistent session may still hold a subscription from an earlier slice
        (the broker keeps a session's subscriptions until they are unsubscribed), and the worker
        that takes every site receives the other slices' sites too: both acknowledge such a
        message without storing it, because the worker that owns the site stores it.
        """
        parts = topic.split("/", 3)
        site = parts[2] if len(parts) > 2 else ""
        if self.site_slice:
            return site in self.site_slice
        return site not in self.excluded_sites

    @model_validator(mode="after")
    def _slices(self) -> IngestSettings:
        if self.site_slice and (self.excluded_sites or self.shared_group):
            raise ValueError(
                "CARBONFLOW_INGEST_SITES (a slice) excludes CARBONFLOW_INGEST_EXCLUDE_SITES and"
                " CARBONFLOW_INGEST_SHARED_GROUP"
            )
        from carbonflow.domain.readings.contract import is_slug

        bad = sorted(s for s in self.site_slice | self.excluded_sites if not is_slug(s))
        if bad:
            raise ValueError(f"not site ids: {', '.join(bad)}")
        return self

    @model_validator(mode="after")
    def _retry_order(self) -> IngestSettings:
        if self.retry_max_s < self.retry_initial_s:
            raise ValueError(
                "CARBONFLOW_INGEST_RETRY_MAX_S must be >= CARBONFLOW_INGEST_RETRY_INITIAL_S"
            )
        return self


def _site_ids(text: str) -> frozenset[str]:
    return frozenset(part.strip() for part in text.split(",") if part.strip())

"""Typed settings, one class per service, read from the environment and an optional ``.env``.

Settings are constructed by the entry point and passed into constructors; nothing here
instantiates a settings object at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["development", "test", "production"]

_PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "secret", "password", "admin"})


class EnvSettings(BaseSettings):
    """Settings read from the environment (or `.env`), with the deployment stage."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    environment: Environment = Field(
        default="development", validation_alias="CARBONFLOW_ENV", description="deployment stage"
    )


class MqttTarget(BaseModel):
    """A parsed ``MQTT_URL``: ``mqtt://user:pass@host:1883`` or ``mqtts://host:8883``."""

    host: str
    port: int
    username: str | None = None
    password: SecretStr | None = None
    tls: bool = False

    @classmethod
    def parse(cls, url: str) -> MqttTarget:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise ValueError(f"MQTT_URL scheme must be mqtt:// or mqtts://, got {url!r}")
        tls = parts.scheme in ("mqtts", "ssl")
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or (8883 if tls else 1883),
            username=unquote(parts.username) if parts.username else None,
            password=SecretStr(unquote(parts.password)) if parts.password else None,
            tls=tls,
        )


class DatabaseSettings(EnvSettings):
    """Where the database is. Unset ``DATABASE_URL`` means: start the embedded PostgreSQL."""

    database_url: str | None = Field(default=None, validation_alias="DATABASE_URL")
    readings_retention_days: int = Field(
        default=3650,
        ge=1,
        validation_alias="CARBONFLOW_READINGS_RETENTION_DAYS",
        description="TimescaleDB retention policy on raw readings [d]; ingest rejects older",
    )
    readings_compress_after_days: int = Field(
        default=7, ge=1, validation_alias="CARBONFLOW_READINGS_COMPRESS_AFTER_DAYS"
    )

    @field_validator("database_url")
    @classmethod
    def _psycopg_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
            raise ValueError("DATABASE_URL must be a postgresql:// URL")
        return value


class MqttSettings(EnvSettings):
    """Where the broker is. Unset ``MQTT_URL`` means: start the embedded broker."""

    mqtt_url: str | None = Field(default=None, validation_alias="MQTT_URL")
    mqtt_ca_file: Path | None = Field(default=None, validation_alias="MQTT_CA_FILE")
    mqtt_cert_file: Path | None = Field(default=None, validation_alias="MQTT_CERT_FILE")
    mqtt_key_file: Path | None = Field(default=None, validation_alias="MQTT_KEY_FILE")
    mqtt_tls_insecure: bool = Field(default=False, validation_alias="MQTT_TLS_INSECURE")

    def target(self) -> MqttTarget:
        if not self.mqtt_url:
            raise ValueError("MQTT_URL is not set")
        return MqttTarget.parse(self.mqtt_url)


def refuse_placeholder(name: str, value: SecretStr | None, environment: Environment) -> None:
    """Refuse empty or well-known placeholder secrets outside development and test."""
    if environment != "production":
        return
    if value is None or value.get_secret_value().strip().lower() in _PLACEHOLDER_SECRETS:
        raise ValueError(f"{name} must be set to a real secret in production")

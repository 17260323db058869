"""Typed settings, one class per service, read from the environment and an optional ``.env``.

Settings are constructed by the entry point and passed into constructors; nothing here
instantiates a settings object at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["development", "test", "production"]

# A secret shorter than this is refused in production [characters] (`carbonflow keys secret`
# and `python -c "import secrets; print(secrets.token_urlsafe(32))"` print 43).
MIN_SECRET_CHARS = 16
# Well-known defaults and the words of "fill me in" values: refused in production.
_PLACEHOLDER_SECRETS = frozenset(
    {
        "",
        "admin",
        "carbonflow",
        "changeme",
        "default",
        "grafana",
        "ingest",
        "mosquitto",
        "pass",
        "password",
        "postgres",
        "root",
        "secret",
        "simulator",
        "test",
        "timescale",
    }
)
_PLACEHOLDER_MARKERS = ("changeme", "change-me", "change_me", "placeholder", "replace-me", "xxxx")


class EnvSettings(BaseSettings):
    """Settings read from the environment (or `.env`), with the deployment stage."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    environment: Environment = Field(
        default="development", validation_alias="CARBONFLOW_ENV", description="deployment stage"
    )

    def credentials(self) -> list[tuple[str, str | SecretStr | None]]:
        """(what names it, value) of every credential these settings hold: in production each
        must be real (:func:`require_real_secret`). Subclasses add theirs to ``super()``'s."""
        return []

    @model_validator(mode="after")
    def _real_credentials(self) -> Self:
        if self.environment == "production":
            for name, value in self.credentials():
                require_real_secret(name, value)
        return self


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


def secret_problem(value: str, *, min_chars: int = MIN_SECRET_CHARS) -> str | None:
    """Why ``value`` is not a real secret (a placeholder, or too short), or None when it is."""
    folded = value.strip().lower()
    if folded in _PLACEHOLDER_SECRETS or any(m in folded for m in _PLACEHOLDER_MARKERS):
        return "is a placeholder"
    if len(value) < min_chars:
        return f"has fewer than {min_chars} characters"
    return None


def require_real_secret(
    name: str, value: SecretStr | str | None, *, min_chars: int = MIN_SECRET_CHARS
) -> None:
    """The one rule for every credential in production: refuse placeholders and short values.

    ``None`` (not configured) passes: whether a credential is required is the caller's rule.
    """
    if value is None:
        return
    text = value.get_secret_value() if isinstance(value, SecretStr) else value
    problem = secret_problem(text, min_chars=min_chars)
    if problem is not None:
        raise ValueError(
            f"{name} {problem}: set a real secret of at least {min_chars} characters in "
            "production (`carbonflow keys secret` prints one)"
        )


def url_password(url: str | None) -> str | None:
    """The password in a ``scheme://user:password@host`` URL (decoded), None without one."""
    if not url:
        return None
    password = urlsplit(url).password
    return unquote(password) if password is not None else None


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
    readings_per_s: float = Field(
        default=1.0,
        ge=0,
        validation_alias="CARBONFLOW_READINGS_PER_S",
        description="expected mean rate of stored readings [1/s]; sizes TimescaleDB chunks",
    )
    db_memory_gib: float = Field(
        default=4.0,
        gt=0,
        validation_alias="CARBONFLOW_DB_MEMORY_GIB",
        description="main memory of the database server [GiB]; sizes TimescaleDB chunks",
    )
    results_compress_after_days: int = Field(
        default=45,
        ge=1,
        validation_alias="CARBONFLOW_RESULTS_COMPRESS_AFTER_DAYS",
        description="TimescaleDB compression of calc_interval and calc_carbon after [d]",
    )

    @field_validator("database_url")
    @classmethod
    def _psycopg_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
            raise ValueError("DATABASE_URL must be a postgresql:// URL")
        return value

    def credentials(self) -> list[tuple[str, str | SecretStr | None]]:
        return [
            *super().credentials(),
            ("the password in DATABASE_URL", url_password(self.database_url)),
        ]


class MigrateSettings(DatabaseSettings):
    """``carbonflow migrate``: the owner role's URL and the password of the app's login role."""

    migrate_database_url: str | None = Field(
        default=None,
        validation_alias="CARBONFLOW_MIGRATE_DATABASE_URL",
        description="the owner role's URL for `carbonflow migrate`; unset: DATABASE_URL",
    )
    app_db_password: SecretStr | None = Field(
        default=None,
        validation_alias="CARBONFLOW_APP_DB_PASSWORD",
        description="password `carbonflow migrate --app-role NAME` sets on the services' role",
    )

    @field_validator("migrate_database_url")
    @classmethod
    def _psycopg_owner_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
            raise ValueError("CARBONFLOW_MIGRATE_DATABASE_URL must be a postgresql:// URL")
        return value

    def credentials(self) -> list[tuple[str, str | SecretStr | None]]:
        return [
            *super().credentials(),
            (
                "the password in CARBONFLOW_MIGRATE_DATABASE_URL",
                url_password(self.migrate_database_url),
            ),
            ("CARBONFLOW_APP_DB_PASSWORD", self.app_db_password),
        ]

    @property
    def owner_url(self) -> str | None:
        """Where migrations run: ``CARBONFLOW_MIGRATE_DATABASE_URL``, else ``DATABASE_URL``."""
        return self.migrate_database_url or self.database_url


class MqttSettings(EnvSettings):
    """Where the broker is. Unset ``MQTT_URL`` means: start the embedded broker."""

    mqtt_url: str | None = Field(default=None, validation_alias="MQTT_URL")
    mqtt_ca_file: Path | None = Field(default=None, validation_alias="MQTT_CA_FILE")
    mqtt_cert_file: Path | None = Field(default=None, validation_alias="MQTT_CERT_FILE")
    mqtt_key_file: Path | None = Field(default=None, validation_alias="MQTT_KEY_FILE")
    mqtt_tls_insecure: bool = Field(default=False, validation_alias="MQTT_TLS_INSECURE")

    def credentials(self) -> list[tuple[str, str | SecretStr | None]]:
        return [*super().credentials(), ("the password in MQTT_URL", url_password(self.mqtt_url))]

    def target(self) -> MqttTarget:
        if not self.mqtt_url:
            raise ValueError("MQTT_URL is not set")
        return MqttTarget.parse(self.mqtt_url)

"""Typed settings of the API service (environment variables, documented in docs/api.md)."""

from __future__ import annotations

import re

from pydantic import Field, SecretStr, model_validator

from carbonflow.settings import DatabaseSettings, require_real_secret

# A bootstrap admin key shorter than this is refused outside development [characters].
MIN_ADMIN_KEY_CHARS = 32


class ApiSettings(DatabaseSettings):
    host: str = Field(default="127.0.0.1", validation_alias="CARBONFLOW_API_HOST")
    port: int = Field(default=8000, ge=0, le=65535, validation_alias="CARBONFLOW_API_PORT")
    admin_key: SecretStr | None = Field(
        default=None,
        validation_alias="CARBONFLOW_API_ADMIN_KEY",
        description="bootstrap admin key (from the environment only); unset: keys from the "
        "database only",
    )
    rate_per_minute: int = Field(
        default=600,
        ge=1,
        validation_alias="CARBONFLOW_API_RATE_PER_MINUTE",
        description="sustained requests per key [1/min]; a key's own limit overrides it",
    )
    rate_burst: int = Field(
        default=60,
        ge=1,
        validation_alias="CARBONFLOW_API_RATE_BURST",
        description="requests a key may make at once before the sustained rate applies",
    )
    auth_failures_per_minute: int = Field(
        default=10,
        ge=1,
        validation_alias="CARBONFLOW_API_AUTH_FAILURES_PER_MINUTE",
        description="failed authentications per client address [1/min] once the burst is used; "
        "beyond them the client gets 429 until one is back",
    )
    auth_failure_burst: int = Field(
        default=20,
        ge=1,
        validation_alias="CARBONFLOW_API_AUTH_FAILURE_BURST",
        description="failed authentications a client address may make at once",
    )
    key_cache_s: float = Field(
        default=5.0,
        ge=0,
        validation_alias="CARBONFLOW_API_KEY_CACHE_S",
        description="how long a looked-up key is reused [s]; a revocation takes this long",
    )
    live_stale_s: float = Field(
        default=900.0,
        gt=0,
        validation_alias="CARBONFLOW_API_LIVE_STALE_S",
        description="a gauge older than this is stale and left out of 'now' totals [s]",
    )
    stream_interval_s: float = Field(
        default=5.0,
        gt=0,
        validation_alias="CARBONFLOW_API_STREAM_INTERVAL_S",
        description="period of the live snapshot stream (server-sent events) [s]",
    )
    stream_max_s: float = Field(
        default=3600.0,
        gt=0,
        validation_alias="CARBONFLOW_API_STREAM_MAX_S",
        description="a live stream ends after this long; clients reconnect [s]",
    )
    stream_max_open: int = Field(
        default=100,
        ge=1,
        validation_alias="CARBONFLOW_API_STREAM_MAX_OPEN",
        description="live streams open at once in this process; more get 503",
    )
    db_pool_size: int = Field(default=10, ge=1, validation_alias="CARBONFLOW_API_DB_POOL_SIZE")
    statement_timeout_ms: int = Field(
        default=10_000,
        ge=100,
        validation_alias="CARBONFLOW_API_STATEMENT_TIMEOUT_MS",
        description="PostgreSQL statement_timeout of the API's connections [ms]",
    )
    metrics_enabled: bool = Field(
        default=True,
        validation_alias="CARBONFLOW_API_METRICS",
        description="serve /metrics (Prometheus) without authentication",
    )
    cors_origins_text: str = Field(
        default="",
        validation_alias="CARBONFLOW_API_CORS_ORIGINS",
        description="browser origins allowed to call the API, comma-separated "
        "(https://dash.example.org); empty: no CORS headers",
    )

    @property
    def cors_origins(self) -> tuple[str, ...]:
        """The CORS allow-list (``CARBONFLOW_API_CORS_ORIGINS``), in the order given."""
        return tuple(o.strip() for o in self.cors_origins_text.split(",") if o.strip())

    @model_validator(mode="after")
    def _plain_origins(self) -> ApiSettings:
        """An origin is scheme://host[:port] as a browser sends it, or * (any origin)."""
        for origin in self.cors_origins:
            if origin != "*" and not re.fullmatch(r"https?://[^/\s,]+", origin):
                raise ValueError(
                    f"CARBONFLOW_API_CORS_ORIGINS: {origin!r} is not an origin "
                    "(scheme://host[:port], no path or trailing slash)"
                )
        return self

    @model_validator(mode="after")
    def _real_secrets(self) -> ApiSettings:
        """The bootstrap admin key is optional; when given outside development it must be real
        (the rule of every credential, with a longer minimum: it grants admin over HTTP)."""
        if self.environment != "development":
            require_real_secret(
                "CARBONFLOW_API_ADMIN_KEY", self.admin_key, min_chars=MIN_ADMIN_KEY_CHARS
            )
        return self

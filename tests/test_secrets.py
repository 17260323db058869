"""Production refuses placeholder and short secrets for every credential, by one rule.

Database passwords (``DATABASE_URL``, ``CARBONFLOW_MIGRATE_DATABASE_URL``, the app role's
``CARBONFLOW_APP_DB_PASSWORD``), the broker password in ``MQTT_URL`` and the broker accounts of
``carbonflow broker acl``, the API's bootstrap admin key and Grafana's token and password.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from carbonflow.grafana.push import GrafanaSettings
from carbonflow.settings import (
    MIN_SECRET_CHARS,
    DatabaseSettings,
    MigrateSettings,
    MqttSettings,
    require_real_secret,
    secret_problem,
)
from cli.broker import BrokerAclSettings
from services.api.settings import MIN_ADMIN_KEY_CHARS, ApiSettings
from services.calc.settings import CalcSettings
from services.ingest.settings import IngestSettings

STRONG = "Zq8-vN3kP0wY7tR2uX5sL9mB"  # 24 characters, no placeholder word
WEAK = ["", "changeme", "password", "postgres", "CHANGEME-please-set-a-real-one", "short-1"]


def _db(password: str) -> str:
    return f"postgresql://carbonflow_svc:{password}@db.internal:5432/carbonflow"


def _mqtt(password: str) -> str:
    return f"mqtt://ingest:{password}@broker.internal:1883"


# credential → (what names it in the error, settings built with that credential set to a value)
CREDENTIALS: dict[str, tuple[str, Callable[[str, str], Any]]] = {
    "DATABASE_URL": (
        "DATABASE_URL",
        lambda env, pw: DatabaseSettings(CARBONFLOW_ENV=env, DATABASE_URL=_db(pw)),
    ),
    "DATABASE_URL of calc": (
        "DATABASE_URL",
        lambda env, pw: CalcSettings(CARBONFLOW_ENV=env, DATABASE_URL=_db(pw)),
    ),
    "DATABASE_URL of the api": (
        "DATABASE_URL",
        lambda env, pw: ApiSettings(CARBONFLOW_ENV=env, DATABASE_URL=_db(pw)),
    ),
    "DATABASE_URL of ingest": (
        "DATABASE_URL",
        lambda env, pw: IngestSettings(CARBONFLOW_ENV=env, DATABASE_URL=_db(pw)),
    ),
    "CARBONFLOW_MIGRATE_DATABASE_URL": (
        "CARBONFLOW_MIGRATE_DATABASE_URL",
        lambda env, pw: MigrateSettings(
            CARBONFLOW_ENV=env, CARBONFLOW_MIGRATE_DATABASE_URL=_db(pw)
        ),
    ),
    "CARBONFLOW_APP_DB_PASSWORD": (
        "CARBONFLOW_APP_DB_PASSWORD",
        lambda env, pw: MigrateSettings(CARBONFLOW_ENV=env, CARBONFLOW_APP_DB_PASSWORD=pw),
    ),
    "MQTT_URL": ("MQTT_URL", lambda env, pw: MqttSettings(CARBONFLOW_ENV=env, MQTT_URL=_mqtt(pw))),
    "MQTT_URL of ingest": (
        "MQTT_URL",
        lambda env, pw: IngestSettings(CARBONFLOW_ENV=env, MQTT_URL=_mqtt(pw)),
    ),
    "CARBONFLOW_BROKER_INGEST_PASSWORD": (
        "CARBONFLOW_BROKER_INGEST_PASSWORD",
        lambda env, pw: BrokerAclSettings(CARBONFLOW_ENV=env, CARBONFLOW_BROKER_INGEST_PASSWORD=pw),
    ),
    "CARBONFLOW_BROKER_PUBLISHER_PASSWORD": (
        "CARBONFLOW_BROKER_PUBLISHER_PASSWORD",
        lambda env, pw: BrokerAclSettings(
            CARBONFLOW_ENV=env, CARBONFLOW_BROKER_PUBLISHER_PASSWORD=pw
        ),
    ),
    "CARBONFLOW_API_ADMIN_KEY": (
        "CARBONFLOW_API_ADMIN_KEY",
        lambda env, pw: ApiSettings(
            CARBONFLOW_ENV=env,
            DATABASE_URL="postgresql://u@h/db",
            CARBONFLOW_API_ADMIN_KEY=pw * 2 if len(pw) >= MIN_SECRET_CHARS else pw,
        ),
    ),
    "CARBONFLOW_GRAFANA_TOKEN": (
        "CARBONFLOW_GRAFANA_TOKEN",
        lambda env, pw: GrafanaSettings(CARBONFLOW_ENV=env, CARBONFLOW_GRAFANA_TOKEN=pw),
    ),
    "CARBONFLOW_GRAFANA_PASSWORD": (
        "CARBONFLOW_GRAFANA_PASSWORD",
        lambda env, pw: GrafanaSettings(
            CARBONFLOW_ENV=env, CARBONFLOW_GRAFANA_USER="ops", CARBONFLOW_GRAFANA_PASSWORD=pw
        ),
    ),
}


@pytest.fixture(autouse=True)
def _no_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """Only the values a test gives: no .env, no credential from the caller's environment."""
    monkeypatch.chdir(tmp_path)
    for name in (
        "DATABASE_URL", "MQTT_URL", "CARBONFLOW_MIGRATE_DATABASE_URL",
        "CARBONFLOW_APP_DB_PASSWORD", "CARBONFLOW_API_ADMIN_KEY", "CARBONFLOW_GRAFANA_TOKEN",
        "CARBONFLOW_GRAFANA_PASSWORD", "CARBONFLOW_BROKER_INGEST_PASSWORD",
        "CARBONFLOW_BROKER_PUBLISHER_PASSWORD", "CARBONFLOW_ENV",
    ):  # fmt: skip
        monkeypatch.delenv(name, raising=False)


# An empty password in a URL is no password (certificate or peer authentication): allowed.
_URLS = ("DATABASE_URL", "MQTT_URL", "CARBONFLOW_MIGRATE_DATABASE_URL")
WEAK_CASES = [
    (credential, weak)
    for credential in sorted(CREDENTIALS)
    for weak in WEAK
    if not (weak == "" and CREDENTIALS[credential][0] in _URLS)
]


@pytest.mark.parametrize(("credential", "weak"), WEAK_CASES)
def test_production_refuses_a_placeholder_or_short_secret(credential: str, weak: str) -> None:
    name, build = CREDENTIALS[credential]
    with pytest.raises(ValidationError, match=name):
        build("production", weak)


@pytest.mark.parametrize("credential", sorted(CREDENTIALS))
def test_production_accepts_a_real_secret(credential: str) -> None:
    _name, build = CREDENTIALS[credential]
    build("production", STRONG)


@pytest.mark.parametrize("credential", sorted(CREDENTIALS))
def test_development_accepts_anything(credential: str) -> None:
    _name, build = CREDENTIALS[credential]
    build("development", "changeme")


def test_the_rule() -> None:
    assert secret_problem("changeme") == "is a placeholder"
    assert secret_problem("my-PLACEHOLDER-value-long-enough") == "is a placeholder"
    assert secret_problem("k" * (MIN_SECRET_CHARS - 1)) == (
        f"has fewer than {MIN_SECRET_CHARS} characters"
    )
    assert secret_problem(STRONG) is None
    assert secret_problem(STRONG, min_chars=MIN_ADMIN_KEY_CHARS) is not None
    require_real_secret("UNSET", None)  # not configured: the caller decides if it is required
    with pytest.raises(ValueError, match="SOME_SECRET is a placeholder"):
        require_real_secret("SOME_SECRET", "admin")


def test_a_url_without_password_passes_in_production() -> None:
    """Client certificates or a password file: no password in the URL is not a weak one."""
    settings = DatabaseSettings(CARBONFLOW_ENV="production", DATABASE_URL="postgresql://svc@h/db")
    assert settings.database_url == "postgresql://svc@h/db"
    assert MqttSettings(CARBONFLOW_ENV="production", MQTT_URL="mqtts://h:8883").mqtt_url

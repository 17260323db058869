"""``carbonflow grafana push``: upload the data sources and dashboards to a running Grafana.

Idempotent: data sources and dashboards are created or updated in place by uid, each folder
(one per site kind) is created once and kept. The data sources are the provisioning file's
(dashboards/provisioning/datasources/carbonflow.yaml) with ``$VAR`` read from the environment,
as Grafana does when it provisions them itself.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import niquests
import yaml
from grafana_client.api import GrafanaApi
from grafana_client.client import GrafanaClientError, GrafanaException
from pydantic import Field, SecretStr

from carbonflow.grafana.build import FOLDER_UID_PREFIX, FOLDERS, PROVISIONING, dashboards
from carbonflow.grafana.model import Dashboard
from carbonflow.settings import EnvSettings

log = logging.getLogger(__name__)

DATASOURCES_FILE = PROVISIONING / "datasources" / "carbonflow.yaml"
_ENV_RE = re.compile(r"\$\{(\w+)\}|\$(\w+)")
# Fields of a provisioning entry the HTTP API accepts as they are.
_API_FIELDS = ("name", "uid", "type", "access", "url", "user", "isDefault", "jsonData",
               "secureJsonData", "basicAuth", "basicAuthUser", "withCredentials")  # fmt: skip


class PushError(RuntimeError):
    """What went wrong, in words an operator can act on."""


class GrafanaSettings(EnvSettings):
    """Where Grafana is and how to log in: a service-account token, or a user and password."""

    url: str | None = Field(default=None, validation_alias="CARBONFLOW_GRAFANA_URL")
    token: SecretStr | None = Field(default=None, validation_alias="CARBONFLOW_GRAFANA_TOKEN")
    user: str | None = Field(default=None, validation_alias="CARBONFLOW_GRAFANA_USER")
    password: SecretStr | None = Field(default=None, validation_alias="CARBONFLOW_GRAFANA_PASSWORD")
    timeout_s: float = Field(default=10.0, gt=0, validation_alias="CARBONFLOW_GRAFANA_TIMEOUT_S")

    def credentials(self) -> list[tuple[str, str | SecretStr | None]]:
        return [
            *super().credentials(),
            ("CARBONFLOW_GRAFANA_TOKEN", self.token),
            ("CARBONFLOW_GRAFANA_PASSWORD", self.password),
        ]

    def credential(self) -> str | tuple[str, str]:
        if self.token is not None and self.token.get_secret_value():
            return self.token.get_secret_value()
        if self.user and self.password is not None:
            return (self.user, self.password.get_secret_value())
        raise PushError(
            "set CARBONFLOW_GRAFANA_TOKEN (a service-account token with the Editor role, "
            "Admin for data sources) or CARBONFLOW_GRAFANA_USER and CARBONFLOW_GRAFANA_PASSWORD"
        )


@dataclass
class PushReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{len(self.created)} created, {len(self.updated)} updated, "
            f"{len(self.unchanged)} unchanged"
        )


def interpolate_env(value: Any, env: Mapping[str, str]) -> Any:
    """``$VAR`` / ``${VAR}`` in every string of a provisioning document, from ``env``."""
    if isinstance(value, str):
        missing = [a or b for a, b in _ENV_RE.findall(value) if (a or b) not in env]
        if missing:
            raise PushError(f"environment variable {missing[0]} is not set (used in {value!r})")
        return _ENV_RE.sub(lambda m: env[m[1] or m[2]], value)
    if isinstance(value, dict):
        return {k: interpolate_env(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate_env(v, env) for v in value]
    return value


def datasource_payloads(
    path: Path = DATASOURCES_FILE, env: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    sources = interpolate_env(document.get("datasources", []), dict(env or os.environ))
    return [{k: s[k] for k in _API_FIELDS if k in s} for s in sources]


def _missing(get: Callable[[str], Any], uid: str) -> Any | None:
    """The result of a GET by uid, or None when Grafana answers 404."""
    try:
        return get(uid)
    except GrafanaClientError as err:
        if err.status_code == 404:
            return None
        raise


def push(
    api: GrafanaApi,
    *,
    datasources: list[dict[str, Any]],
    boards: list[Dashboard] | None = None,
) -> PushReport:
    report = PushReport()
    grafana: Any = api  # grafana-client's methods are not annotated
    try:
        for source in datasources:
            uid = source["uid"]
            if _missing(grafana.datasource.get_datasource_by_uid, uid) is None:
                grafana.datasource.create_datasource(source)
                report.created.append(f"datasource {uid}")
            else:
                grafana.datasource.update_datasource_by_uid(uid, source)
                report.updated.append(f"datasource {uid}")
        boards = dashboards() if boards is None else boards
        for folder in sorted({b.folder for b in boards}):
            uid = FOLDER_UID_PREFIX + folder
            existing = _missing(grafana.folder.get_folder, uid)
            if existing is None:
                grafana.folder.create_folder(FOLDERS[folder], uid=uid)
                report.created.append(f"folder {uid}")
            else:
                report.unchanged.append(f"folder {uid}")
        for board in boards:
            model = board.to_json()
            model["id"] = None  # Grafana matches by uid; a stale numeric id would conflict
            existed = _missing(grafana.dashboard.get_dashboard, board.uid) is not None
            grafana.dashboard.update_dashboard(
                {
                    "dashboard": model,
                    "folderUid": FOLDER_UID_PREFIX + board.folder,
                    "overwrite": True,
                    "message": "carbonflow grafana push",
                }
            )
            (report.updated if existed else report.created).append(f"dashboard {board.uid}")
    except GrafanaException as err:
        status = f"HTTP {err.status_code}" if err.status_code else "no answer"
        hint = {
            401: "the token or password was refused",
            403: "the account may not do this (Editor for dashboards, Admin for data sources)",
        }.get(err.status_code, "")
        raise PushError(
            f"Grafana refused the push ({status}): {err.message} {hint}".strip()
        ) from err
    except niquests.exceptions.RequestException as err:
        raise PushError(f"no answer from Grafana: {err}") from err
    return report


def connect(settings: GrafanaSettings) -> GrafanaApi:
    if not settings.url:
        raise PushError("CARBONFLOW_GRAFANA_URL is not set (e.g. http://grafana:3000)")
    api: GrafanaApi = GrafanaApi.from_url(
        settings.url, credential=settings.credential(), timeout=settings.timeout_s
    )
    return api

"""What the deployment tests check files against: the settings the code reads, the PostgreSQL
client tools matching a server."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import psycopg
from pydantic_settings import BaseSettings

from carbonflow.settings import DatabaseSettings, MigrateSettings, MqttSettings
from cli.broker import BrokerAclSettings
from services.api.settings import ApiSettings
from services.calc.settings import CalcSettings
from services.ingest.settings import IngestSettings
from services.notify.settings import NotifySettings
from services.push.settings import PushSettings
from tests.support import ROOT as ROOT_DIR

ROOT = ROOT_DIR
# The classes whose settings the deployed containers read.
STACK_SETTINGS: tuple[type[BaseSettings], ...] = (
    DatabaseSettings,
    MigrateSettings,
    MqttSettings,
    IngestSettings,
    CalcSettings,
    ApiSettings,
    NotifySettings,
    PushSettings,
    BrokerAclSettings,
)


def setting_fields() -> dict[str, Any]:
    """Every environment variable a settings class reads → its field (pydantic FieldInfo)."""
    fields: dict[str, Any] = {}
    for cls in STACK_SETTINGS:
        for field in cls.model_fields.values():
            assert isinstance(field.validation_alias, str)
            fields[field.validation_alias] = field
    return fields


def cli_environment() -> set[str]:
    """Variables the CLI itself reads (logging), found in its source."""
    source = (ROOT / "cli" / "main.py").read_text()
    return set(re.findall(r'os\.environ\.get\("([A-Z_]+)"', source))


def server_major(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SHOW server_version_num").fetchone()
    assert row is not None
    return int(row[0]) // 10000


def _client_major(pg_dump: Path) -> int | None:
    try:
        out = subprocess.run(
            [str(pg_dump), "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"\(PostgreSQL\) (\d+)", out)
    return int(match.group(1)) if match else None


def pg_client_bin_dir(major: int) -> Path | None:
    """A directory with pg_dump and pg_restore of PostgreSQL ``major``, or None."""
    candidates = []
    if os.environ.get("CARBONFLOW_PG_BIN"):
        candidates.append(Path(os.environ["CARBONFLOW_PG_BIN"]))
    spec = importlib.util.find_spec("pgserver")
    if spec is not None and spec.submodule_search_locations:
        candidates.append(Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin")
    candidates.append(Path(f"/usr/lib/postgresql/{major}/bin"))
    on_path = shutil.which("pg_dump")
    if on_path:
        candidates.append(Path(on_path).parent)
    for directory in candidates:
        if (directory / "pg_restore").is_file() and _client_major(directory / "pg_dump") == major:
            return directory
    return None

"""Every dashboard, and the JSON files Grafana's file provider reads (dashboards/json)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from carbonflow.grafana import enterprise, mine, park, platform, regulator
from carbonflow.grafana.model import Dashboard

# Folders, one per audience; the file provider makes each directory a Grafana folder.
FOLDERS: dict[str, str] = {
    "park": "carbonflow · Parks",
    "mine": "carbonflow · Mines",
    "enterprise": "carbonflow · Enterprises",
    "regulator": "carbonflow · Regulators",
    "platform": "carbonflow · Platform",
}
FOLDER_UID_PREFIX = "carbonflow-"
BUILDERS: tuple[Callable[[], Dashboard], ...] = (
    park.dashboard,
    mine.dashboard,
    enterprise.dashboard,
    regulator.dashboard,
    platform.dashboard,
)
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "dashboards" / "json"
PROVISIONING = REPO_ROOT / "dashboards" / "provisioning"


def dashboards() -> list[Dashboard]:
    return [build() for build in BUILDERS]


def render(dashboard: Dashboard) -> str:
    """The file's text: sorted keys and a final newline, so a diff shows only real changes."""
    return json.dumps(dashboard.to_json(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def relative_path(dashboard: Dashboard) -> Path:
    return Path(dashboard.folder) / f"{dashboard.uid}.json"


def expected_files() -> dict[Path, str]:
    return {relative_path(d): render(d) for d in dashboards()}


def write(out_dir: Path = DEFAULT_OUT) -> list[Path]:
    """Write every dashboard; remove JSON files no dashboard produces any more."""
    files = expected_files()
    written = []
    for rel, text in files.items():
        path = out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
        written.append(path)
    for stale in out_dir.glob("*/*.json"):
        if stale.relative_to(out_dir) not in files:
            stale.unlink()
    return written


def differences(out_dir: Path = DEFAULT_OUT) -> list[str]:
    """Files that are missing, stale or extra compared to what the code generates."""
    files = expected_files()
    problems = []
    for rel, text in files.items():
        path = out_dir / rel
        if not path.exists():
            problems.append(f"{rel}: missing")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"{rel}: differs from the code")
    for extra in sorted(out_dir.glob("*/*.json")):
        if extra.relative_to(out_dir) not in files:
            problems.append(f"{extra.relative_to(out_dir)}: no dashboard generates it")
    return problems


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data

"""The calc cycle's modules: only the engine commits, and nothing imports the engine."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support import ROOT

CALC = ROOT / "services" / "calc"
# The steps of the cycle and what they use (service.py and settings.py sit above the engine).
STEP_MODULES = sorted(
    [
        *(CALC / n for n in ("changes.py", "context.py", "reference.py", "site_cycle.py")),
        CALC / "windows.py",
        *(CALC / "steps").glob("*.py"),
    ]
)


def _imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def _calls(path: Path) -> set[str]:
    return {
        node.func.attr
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    }


def test_no_step_imports_the_engine() -> None:
    assert len(STEP_MODULES) >= 8
    for path in STEP_MODULES:
        imported = _imports(path)
        assert not any(m.startswith("services.calc.engine") for m in imported), path.name
        assert not any(m.startswith("services.calc.service") for m in imported), path.name


def test_only_the_engine_commits_or_rolls_back() -> None:
    for path in STEP_MODULES:
        assert not {"commit", "rollback"} & _calls(path), path.name
    assert {"commit", "rollback"} <= _calls(CALC / "engine.py")


def test_the_calc_shell_runs_no_sql_of_its_own() -> None:
    for path in [*STEP_MODULES, CALC / "engine.py"]:
        assert "execute" not in _calls(path), path.name


def test_windows_is_pure() -> None:
    imported = _imports(CALC / "windows.py")
    assert not any(m.startswith(("carbonflow.storage", "psycopg", "services")) for m in imported)

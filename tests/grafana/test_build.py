"""The dashboards as code: committed JSON = generated JSON, Grafana's model rules, units,
data sources, variables, and PromQL metric names that the services really export."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from carbonflow.grafana import validate
from carbonflow.grafana.build import (
    DEFAULT_OUT,
    FOLDERS,
    PROVISIONING,
    dashboards,
    differences,
    load,
    render,
    write,
)
from carbonflow.grafana.model import PG_UID, PROMETHEUS_UID, PromQL
from services.api.metrics import ApiMetrics
from services.calc.metrics import CalcMetrics
from services.ingest.metrics import IngestMetrics

DATASOURCES = yaml.safe_load((PROVISIONING / "datasources" / "carbonflow.yaml").read_text())
PROVIDERS = yaml.safe_load((PROVISIONING / "dashboards" / "carbonflow.yaml").read_text())


def _committed() -> list[dict[str, Any]]:
    return [load(p) for p in sorted(DEFAULT_OUT.glob("*/*.json"))]


def test_committed_json_is_what_the_code_generates() -> None:
    assert differences() == [], "run `carbonflow grafana build`"


def test_build_writes_one_file_per_dashboard_in_its_folder(tmp_path: Path) -> None:
    (tmp_path / "park").mkdir()
    (tmp_path / "park" / "removed-dashboard.json").write_text("{}")
    written = write(tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == sorted(
        f"{d.folder}/{d.uid}.json" for d in dashboards()
    )
    assert not (tmp_path / "park" / "removed-dashboard.json").exists()
    assert differences(tmp_path) == []
    (tmp_path / "mine" / "carbonflow-mine-ops.json").write_text("{}\n")
    assert differences(tmp_path) == ["mine/carbonflow-mine-ops.json: differs from the code"]


def test_five_dashboards_one_per_folder_with_unique_uids() -> None:
    boards = dashboards()
    assert sorted(b.folder for b in boards) == sorted(FOLDERS)
    assert len({b.uid for b in boards}) == len(boards)
    assert all(len(b.uid) <= 40 for b in boards)  # Grafana's uid limit


def test_provisioning_files_are_valid_and_name_the_expected_uids() -> None:
    assert validate.check_datasource_provisioning(DATASOURCES) == []
    assert validate.check_dashboard_provisioning(PROVIDERS) == []
    sources = {d["uid"]: d for d in DATASOURCES["datasources"]}
    assert set(sources) == {PG_UID, PROMETHEUS_UID}
    pg = sources[PG_UID]
    assert pg["url"] == "$CARBONFLOW_GRAFANA_PG_HOST"
    assert pg["user"] == "$CARBONFLOW_GRAFANA_PG_USER"
    assert pg["jsonData"]["database"] == "$CARBONFLOW_GRAFANA_PG_DATABASE"
    assert pg["secureJsonData"]["password"] == "$CARBONFLOW_GRAFANA_PG_PASSWORD"
    assert sources[PROMETHEUS_UID]["url"] == "$CARBONFLOW_PROMETHEUS_URL"
    (provider,) = PROVIDERS["providers"]
    assert provider["options"] == {
        "path": "/var/lib/grafana/dashboards",
        "foldersFromFilesStructure": True,
    }


@pytest.mark.parametrize("board", _committed(), ids=lambda b: str(b["uid"]))
def test_every_committed_dashboard_passes_the_model_checks(board: dict[str, Any]) -> None:
    assert validate.check_dashboard(board, validate.provisioned_datasources(DATASOURCES)) == []
    assert board["timezone"] == "Asia/Shanghai"
    panels = [p for p in validate.iter_panels(board) if p["type"] != "row"]
    assert panels and all(p["fieldConfig"]["defaults"]["unit"] for p in panels)


def test_site_dashboards_have_site_organisation_and_period_variables() -> None:
    for board in dashboards():
        names = {v.name for v in board.variables}
        if board.folder in ("park", "mine", "enterprise"):
            assert {"site", "org", "period"} <= names, board.uid
        elif board.folder == "regulator":
            assert {"site", "period"} <= names


def _a_board() -> dict[str, Any]:
    return copy.deepcopy(load(DEFAULT_OUT / "park" / "carbonflow-park-live.json"))


def _first_panel(board: dict[str, Any]) -> dict[str, Any]:
    panel: dict[str, Any] = next(p for p in board["panels"] if p["type"] != "row")
    return panel


@pytest.mark.parametrize(
    ("break_it", "expected"),
    [
        (lambda b: _first_panel(b).update(type="graph-old"), "unknown panel type"),
        (lambda b: _first_panel(b)["fieldConfig"]["defaults"].pop("unit"), "no unit"),
        (lambda b: _first_panel(b)["fieldConfig"]["defaults"].update(unit="none"), "only for"),
        (lambda b: _first_panel(b)["datasource"].update(uid="elsewhere"), "not provisioned"),
        (
            lambda b: _first_panel(b)["targets"][0].update(rawSql="SELECT '$plant'"),
            "undefined variable $plant",
        ),
        (lambda b: _first_panel(b)["gridPos"].update(x=20), "outside the 24-column grid"),
        (lambda b: _first_panel(b)["gridPos"].update(y=0, h=3), "overlaps"),
        (lambda b: b.update(timezone="browser"), "timezone"),
        (lambda b: b["panels"][-1].update(title=_first_panel(b)["title"]), "two panels"),
    ],
)
def test_the_checks_catch_what_grafana_would_show_broken(break_it: Any, expected: str) -> None:
    board = _a_board()
    break_it(board)
    problems = validate.check_dashboard(board, validate.provisioned_datasources(DATASOURCES))
    assert any(expected in p for p in problems), problems


def _exported_names() -> dict[str, set[str]]:
    """Every series name the three services' registries expose, with its label names."""
    names: dict[str, set[str]] = {}
    for create in (IngestMetrics.create, CalcMetrics.create, ApiMetrics.create):
        registry = CollectorRegistry()
        metrics = create(registry)
        for family in registry.collect():
            suffixes = {
                "counter": ("_total",),
                "histogram": ("_bucket", "_count", "_sum"),
                "gauge": ("",),
            }[family.type]
            labels = _labels_of(metrics, family.name)
            for suffix in suffixes:
                names[family.name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return names


def _labels_of(metrics: object, name: str) -> set[str]:
    for field in getattr(metrics, "__slots__", ()):
        collector = getattr(metrics, field)
        if getattr(collector, "_name", None) == name:
            return set(getattr(collector, "_labelnames", ()))
    return set()


def test_every_promql_metric_name_and_label_is_exported_by_the_services() -> None:
    exported = _exported_names()
    assert "carbonflow_ingest_rejected_total" in exported  # the registries were read
    used = 0
    for board in dashboards():
        for panel in board.panels():
            for query in panel.queries:
                if not isinstance(query, PromQL):
                    continue
                for name in re.findall(r"\bcarbonflow_\w+", query.expr):
                    assert name in exported, f"{panel.title}: {name} is not exported"
                    used += 1
                for group in re.findall(r"by \(([^)]*)\)", query.expr):
                    metric = re.findall(r"\bcarbonflow_\w+", query.expr)[0]
                    for label in (g.strip() for g in group.split(",")):
                        assert label in exported[metric], f"{metric} has no label {label}"
    assert used >= 15


def test_rendering_is_deterministic() -> None:
    assert [render(b) for b in dashboards()] == [render(b) for b in dashboards()]

"""Checks of dashboard JSON and provisioning files against Grafana's model, without a Grafana.

What Grafana itself would reject or show broken: unknown panel types, overlapping or
out-of-grid panels, duplicate ids, data source uids the provisioning does not define, template
variables used but not defined, queries without text; and what this project requires: a unit
on every panel and the Asia/Shanghai default time zone. Pure: takes parsed documents, returns
the problems found (empty = valid).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from carbonflow.grafana.macros import used_variables
from carbonflow.grafana.model import DEFAULT_TIMEZONE, GRID_WIDTH, KNOWN_PANEL_TYPES

DATASOURCE_TYPES = frozenset({"grafana-postgresql-datasource", "postgres", "prometheus"})
_REQUIRED_DASHBOARD_KEYS = ("uid", "title", "panels", "schemaVersion", "templating", "time")


def iter_panels(dashboard: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Every panel, rows' collapsed children included."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def query_texts(panel: Mapping[str, Any]) -> list[str]:
    return [t.get("rawSql") or t.get("expr") or "" for t in panel.get("targets", [])]


def provisioned_datasources(document: Mapping[str, Any]) -> dict[str, str]:
    """uid → type of the data sources a provisioning file defines."""
    return {str(d["uid"]): str(d["type"]) for d in document.get("datasources", []) if "uid" in d}


def check_dashboard(dashboard: Mapping[str, Any], datasources: Mapping[str, str]) -> list[str]:  # noqa: C901, PLR0912, PLR0915 — one branch per rule on the dashboard model
    problems: list[str] = []
    for key in _REQUIRED_DASHBOARD_KEYS:
        if key not in dashboard:
            problems.append(f"missing dashboard key {key!r}")
    if problems:
        return problems
    where = f"dashboard {dashboard['uid']}"
    if dashboard.get("timezone") != DEFAULT_TIMEZONE:
        problems.append(f"{where}: timezone is {dashboard.get('timezone')!r}")
    defined = {v["name"] for v in dashboard["templating"].get("list", [])}
    for variable in dashboard["templating"].get("list", []):
        if variable.get("type") not in ("query", "custom", "constant", "interval", "datasource"):
            problems.append(f"{where}: variable {variable.get('name')} of unknown type")
        if variable.get("type") == "query":
            problems.extend(_check_source(where, variable.get("datasource"), datasources))
            text = variable.get("definition", "")
            for name in sorted(used_variables(text) - defined):
                problems.append(f"{where}: variable {variable['name']} uses undefined ${name}")
    ids: set[int] = set()
    titles: set[str] = set()
    cells: dict[tuple[int, int], str] = {}
    for panel in iter_panels(dashboard):
        title = panel.get("title", "?")
        at = f"{where} panel {title!r}"
        if panel.get("type") not in KNOWN_PANEL_TYPES:
            problems.append(f"{at}: unknown panel type {panel.get('type')!r}")
        if panel.get("id") in ids:
            problems.append(f"{at}: duplicate id {panel.get('id')}")
        ids.add(panel.get("id", -1))
        if panel.get("type") != "row":
            if title in titles:
                problems.append(f"{at}: two panels with this title (readers cannot tell them)")
            titles.add(title)
        grid = panel.get("gridPos", {})
        x, y, w, h = (grid.get(k, -1) for k in ("x", "y", "w", "h"))
        if min(x, y) < 0 or w < 1 or h < 1 or x + w > GRID_WIDTH:
            problems.append(f"{at}: gridPos {grid} outside the 24-column grid")
        for cx in range(max(x, 0), max(x, 0) + max(w, 0)):
            for cy in range(max(y, 0), max(y, 0) + max(h, 0)):
                if (cx, cy) in cells:
                    problems.append(f"{at}: overlaps panel {cells[(cx, cy)]!r}")
                    break
                cells[(cx, cy)] = title
            else:
                continue
            break
        if panel.get("type") == "row":
            continue
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
        if not unit:
            problems.append(f"{at}: no unit")
        elif unit == "none" and panel.get("type") != "table":
            problems.append(f"{at}: unit 'none' is only for tables of mixed columns")
        problems.extend(_check_source(at, panel.get("datasource"), datasources))
        targets = panel.get("targets", [])
        if not targets:
            problems.append(f"{at}: no query")
        for target in targets:
            problems.extend(_check_source(at, target.get("datasource"), datasources))
        for text in query_texts(panel):
            if not text.strip():
                problems.append(f"{at}: empty query")
            for name in sorted(used_variables(text) - defined):
                problems.append(f"{at}: uses undefined variable ${name}")
    return problems


def _check_source(
    where: str, ref: Mapping[str, Any] | None, datasources: Mapping[str, str]
) -> list[str]:
    if not ref or "uid" not in ref:
        return [f"{where}: no data source uid"]
    uid = ref["uid"]
    if uid not in datasources:
        return [f"{where}: data source uid {uid!r} is not provisioned"]
    if ref.get("type") and _canonical(ref["type"]) != _canonical(datasources[uid]):
        return [f"{where}: data source {uid!r} is {datasources[uid]!r}, not {ref['type']!r}"]
    return []


def _canonical(kind: str) -> str:
    # Grafana 10.3 renamed the plugin; "postgres" stays an alias of it.
    return "grafana-postgresql-datasource" if kind == "postgres" else kind


def check_datasource_provisioning(document: Mapping[str, Any]) -> list[str]:
    problems = []
    if document.get("apiVersion") != 1:
        problems.append("datasources: apiVersion must be 1")
    for source in document.get("datasources", []):
        name = source.get("name", "?")
        for key in ("name", "type", "uid", "access", "url"):
            if not source.get(key):
                problems.append(f"datasource {name}: missing {key}")
        if source.get("type") not in DATASOURCE_TYPES:
            problems.append(f"datasource {name}: unknown type {source.get('type')!r}")
        if source.get("access") not in ("proxy", "direct"):
            problems.append(f"datasource {name}: access must be proxy")
    return problems


def check_dashboard_provisioning(document: Mapping[str, Any]) -> list[str]:
    problems = []
    if document.get("apiVersion") != 1:
        problems.append("dashboards: apiVersion must be 1")
    for provider in document.get("providers", []):
        name = provider.get("name", "?")
        if provider.get("type") != "file":
            problems.append(f"provider {name}: type must be file")
        options = provider.get("options", {})
        if not options.get("path"):
            problems.append(f"provider {name}: options.path missing")
        if options.get("foldersFromFilesStructure") and provider.get("folder"):
            problems.append(f"provider {name}: folder and foldersFromFilesStructure exclude")
    if not document.get("providers"):
        problems.append("dashboards: no provider")
    return problems

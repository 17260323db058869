"""Typed builders for Grafana's dashboard JSON model (schemaVersion 39, Grafana 10.4 – 11).

Plain frozen dataclasses that emit exactly the JSON Grafana stores for a dashboard: one place
knows the model's field names, the dashboard modules only say what to show. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 39
DEFAULT_TIMEZONE = "Asia/Shanghai"

# The provisioned data sources (dashboards/provisioning/datasources/carbonflow.yaml).
PG_UID = "carbonflow-pg"
PG_TYPE = "grafana-postgresql-datasource"
PROMETHEUS_UID = "carbonflow-prometheus"
PROMETHEUS_TYPE = "prometheus"

# Grafana's built-in panel plugins (public/app/plugins/panel in Grafana 10.4 – 11); a panel of
# another type would need a plugin the deploy does not install.
KNOWN_PANEL_TYPES = frozenset(
    {
        "alertlist", "annolist", "barchart", "bargauge", "candlestick", "canvas", "dashlist",
        "datagrid", "flamegraph", "gauge", "geomap", "heatmap", "histogram", "logs", "news",
        "nodeGraph", "piechart", "row", "stat", "state-timeline", "status-history", "table",
        "text", "timeseries", "traces", "trend", "xychart",
    }
)  # fmt: skip

GRID_WIDTH = 24


@dataclass(frozen=True, slots=True)
class DataSource:
    type: str
    uid: str

    def to_json(self) -> dict[str, str]:
        return {"type": self.type, "uid": self.uid}


POSTGRES = DataSource(PG_TYPE, PG_UID)
PROMETHEUS = DataSource(PROMETHEUS_TYPE, PROMETHEUS_UID)


@dataclass(frozen=True, slots=True)
class Sql:
    """A raw-SQL query of the PostgreSQL data source.

    ``fmt`` is Grafana's result format: ``time_series`` (a ``time`` column, then one numeric
    column per series or a ``metric`` column naming the series) or ``table``.
    """

    sql: str
    fmt: str = "time_series"

    def to_json(self, ref_id: str) -> dict[str, Any]:
        return {
            "datasource": POSTGRES.to_json(),
            "editorMode": "code",
            "format": self.fmt,
            "rawQuery": True,
            "rawSql": self.sql,
            "refId": ref_id,
        }


@dataclass(frozen=True, slots=True)
class PromQL:
    """A Prometheus query; ``legend`` is Grafana's legend format (``{{reason}}``)."""

    expr: str
    legend: str = ""
    instant: bool = False

    def to_json(self, ref_id: str) -> dict[str, Any]:
        return {
            "datasource": PROMETHEUS.to_json(),
            "editorMode": "code",
            "expr": self.expr,
            "instant": self.instant,
            "legendFormat": self.legend or "__auto",
            "range": not self.instant,
            "refId": ref_id,
        }


Query = Sql | PromQL


@dataclass(frozen=True, slots=True)
class Threshold:
    """A colour step: from ``value`` upwards (``None`` = the base step)."""

    value: float | None
    color: str

    def to_json(self) -> dict[str, Any]:
        return {"color": self.color, "value": self.value}


@dataclass(frozen=True, slots=True)
class Override:
    """Per-field settings by field name (a column of a table, a series of a chart)."""

    field_name: str
    properties: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "matcher": {"id": "byName", "options": self.field_name},
            "properties": [{"id": k, "value": v} for k, v in self.properties.items()],
        }


@dataclass(frozen=True, slots=True)
class Panel:
    """One panel. ``unit`` is a Grafana unit id (``kwatt``, ``percentunit``, ``suffix:t/h``)."""

    type: str
    title: str
    unit: str
    queries: Sequence[Query]
    width: int = 12
    height: int = 8
    description: str = ""
    decimals: int | None = None
    minimum: float | None = None
    maximum: float | None = None
    thresholds: Sequence[Threshold] = ()
    overrides: Sequence[Override] = ()
    options: Mapping[str, Any] = field(default_factory=dict)
    custom: Mapping[str, Any] = field(default_factory=dict)
    mappings: Sequence[Mapping[str, Any]] = ()
    transformations: Sequence[Mapping[str, Any]] = ()

    def datasource(self) -> DataSource:
        kinds = {type(q) for q in self.queries}
        if kinds == {PromQL}:
            return PROMETHEUS
        if kinds == {Sql}:
            return POSTGRES
        raise ValueError(f"panel {self.title!r} mixes data sources or has no query")

    def to_json(self, panel_id: int, x: int, y: int) -> dict[str, Any]:
        defaults: dict[str, Any] = {"unit": self.unit, "custom": dict(self.custom)}
        if self.decimals is not None:
            defaults["decimals"] = self.decimals
        if self.minimum is not None:
            defaults["min"] = self.minimum
        if self.maximum is not None:
            defaults["max"] = self.maximum
        steps = self.thresholds or (Threshold(None, "green"),)
        defaults["thresholds"] = {"mode": "absolute", "steps": [s.to_json() for s in steps]}
        defaults["mappings"] = list(self.mappings)
        defaults["color"] = {"mode": "thresholds" if self.thresholds else "palette-classic"}
        return {
            "datasource": self.datasource().to_json(),
            "description": self.description,
            "fieldConfig": {
                "defaults": defaults,
                "overrides": [o.to_json() for o in self.overrides],
            },
            "gridPos": {"h": self.height, "w": self.width, "x": x, "y": y},
            "id": panel_id,
            "options": dict(self.options),
            "targets": [q.to_json(chr(ord("A") + i)) for i, q in enumerate(self.queries)],
            "title": self.title,
            "transformations": list(self.transformations),
            "type": self.type,
        }


@dataclass(frozen=True, slots=True)
class Row:
    """A collapsible row header; the panels after it belong to it."""

    title: str


@dataclass(frozen=True, slots=True)
class Variable:
    """A template variable: ``query`` (SQL / PromQL ``label_values``) or ``custom``.

    A SQL query returns ``__text`` / ``__value`` columns (or one column). Single-value variables
    are written into SQL unquoted (the query quotes them: ``'$site'``); multi-value ones as a
    quoted list (``IN ($site)``), as Grafana's SQL data sources do.
    """

    name: str
    label: str
    kind: str
    query: str
    multi: bool = False
    include_all: bool = False
    datasource: DataSource | None = None
    description: str = ""
    current: str | None = None
    sort: int = 1  # 1: alphabetical ascending, 2: descending (newest month first)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "description": self.description,
            "hide": 0,
            "includeAll": self.include_all,
            "label": self.label,
            "multi": self.multi,
            "name": self.name,
            "skipUrlSync": False,
            "type": self.kind,
        }
        if self.kind == "custom":
            values = [v.strip() for v in self.query.split(",")]
            first = self.current if self.current is not None else values[0]
            data["query"] = self.query
            data["options"] = [{"selected": v == first, "text": v, "value": v} for v in values]
            data["current"] = {"selected": True, "text": first, "value": first}
        else:
            source = self.datasource or POSTGRES
            data["datasource"] = source.to_json()
            data["definition"] = self.query
            data["query"] = (
                {"query": self.query, "refId": "PrometheusVariableQueryEditor-VariableQuery"}
                if source == PROMETHEUS
                else self.query
            )
            data["refresh"] = 2  # on time-range change: sites and months with data appear
            data["sort"] = self.sort
            data["options"] = []
            data["current"] = {}
        return data


Item = Panel | Row


@dataclass(frozen=True, slots=True)
class Dashboard:
    uid: str
    title: str
    folder: str  # site kind folder: park, mine, enterprise, regulator, platform
    items: Sequence[Item]
    variables: Sequence[Variable] = ()
    description: str = ""
    tags: Sequence[str] = ()
    time_from: str = "now-24h"
    time_to: str = "now"
    refresh: str = "1m"
    timezone: str = DEFAULT_TIMEZONE

    def panels(self) -> list[Panel]:
        return [item for item in self.items if isinstance(item, Panel)]

    def to_json(self) -> dict[str, Any]:
        """The dashboard model, panels laid out left to right, wrapping at 24 columns."""
        out: list[dict[str, Any]] = []
        x = y = row_height = 0
        for number, item in enumerate(self.items, start=1):
            if isinstance(item, Row):
                if x:
                    y += row_height
                out.append(
                    {
                        "collapsed": False,
                        "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": y},
                        "id": number,
                        "panels": [],
                        "title": item.title,
                        "type": "row",
                    }
                )
                x, y, row_height = 0, y + 1, 0
                continue
            if x + item.width > GRID_WIDTH:
                x, y, row_height = 0, y + row_height, 0
            out.append(item.to_json(number, x, y))
            x += item.width
            row_height = max(row_height, item.height)
        return {
            "annotations": {"list": []},
            "description": self.description,
            "editable": False,
            "fiscalYearStartMonth": 0,
            "graphTooltip": 1,
            "links": [],
            "panels": out,
            "refresh": self.refresh,
            "schemaVersion": SCHEMA_VERSION,
            "tags": list(self.tags),
            "templating": {"list": [v.to_json() for v in self.variables]},
            "time": {"from": self.time_from, "to": self.time_to},
            "timepicker": {},
            "timezone": self.timezone,
            "title": self.title,
            "uid": self.uid,
            "version": 1,
            "weekStart": "monday",
        }

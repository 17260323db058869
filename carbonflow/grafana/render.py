"""A picture of a dashboard's layout for the docs, drawn from real query results.

No Grafana runs where the docs are built, so this draws each dashboard's grid of panels
(titles, units, and the rows the integration test's queries returned: numbers, lines, bars,
table rows) as HTML, which headless Chromium turns into a PNG. It is a layout rendering, not
a Grafana screenshot, and every picture says so. Pure: results in, HTML text out.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from carbonflow.grafana.model import Dashboard, Panel, PromQL

ROW_PX = 30
COLOURS = ("#73bf69", "#f2cc0c", "#5794f2", "#ff780a", "#b877d9", "#f2495c", "#8ab8ff", "#96d98d")
BANNER = (
    "Layout rendering from real query results (12 simulated hours of the two example sites "
    "through MQTT, ingest and calc) — not a Grafana screenshot"
)
BANNER_PROMQL = (
    "Layout rendering only: Prometheus queries, no Prometheus where this was drawn — "
    "not a Grafana screenshot"
)


def format_value(value: Any, unit: str) -> str:
    if value is None:
        return "–"
    if isinstance(value, str):
        return html.escape(value)
    number = float(value)
    if unit == "percentunit":
        return f"{number * 100:.1f} %"
    if unit == "percent":
        return f"{number:.2f} %"
    if unit == "bool_on_off":
        return "on" if number else "off"
    suffix = {"kwatt": " kW", "s": " s", "reqps": " req/s"}.get(unit, "")
    if unit.startswith("suffix:"):
        suffix = unit.removeprefix("suffix:")
    digits = 0 if abs(number) >= 1000 else 2 if abs(number) >= 1 else 4
    return f"{number:,.{digits}f}{html.escape(suffix)}"


def _series(result: Mapping[str, Any]) -> dict[str, list[tuple[float, float]]]:
    """Long (time, metric, value) or wide (time, v1, v2 …) rows → named point lists."""
    columns: list[str] = result["columns"]
    rows: list[list[Any]] = result["rows"]
    out: dict[str, list[tuple[float, float]]] = {}

    def t(value: Any) -> float:
        return datetime.fromisoformat(value).timestamp() if isinstance(value, str) else value

    if "metric" in columns:
        ti, mi = columns.index("time"), columns.index("metric")
        vi = next(i for i in range(len(columns)) if i not in (ti, mi))
        for row in rows:
            if row[vi] is not None:
                out.setdefault(str(row[mi]), []).append((t(row[ti]), float(row[vi])))
        return out
    ti = columns.index("time")
    for i, name in enumerate(columns):
        if i != ti:
            out[name] = [(t(r[ti]), float(r[i])) for r in rows if r[i] is not None]
    return out


def _svg_lines(result: Mapping[str, Any], unit: str, height_px: int) -> str:
    series = _series(result)
    points = [p for pts in series.values() for p in pts]
    if not points:
        return "<div class=empty>no data</div>"
    t0, t1 = min(p[0] for p in points), max(p[0] for p in points)
    v0, v1 = min(0.0, *(p[1] for p in points)), max(p[1] for p in points)
    w, h = 1000, max(height_px - 70, 40)
    span_t, span_v = (t1 - t0) or 1.0, (v1 - v0) or 1.0
    lines = []
    for colour, (_name, pts) in zip(COLOURS * 4, series.items(), strict=False):
        coords = " ".join(
            f"{(x - t0) / span_t * w:.1f},{h - (y - v0) / span_v * h:.1f}" for x, y in sorted(pts)
        )
        lines.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{coords}"/>'
        )
        if len(pts) == 1:  # a single period (one day of a burn-down) is a dot, not a line
            x, y = coords.split(",")
            lines.append(f'<circle cx="{x}" cy="{y}" r="6" fill="{colour}"/>')
    legend = " ".join(
        f'<span style="color:{c}">■</span> {html.escape(n)}'
        for c, n in zip(COLOURS * 4, series, strict=False)
    )
    axis = f"<div class=axis>{format_value(v1, unit)} max · {format_value(v0, unit)} min</div>"
    return (
        f'<svg viewBox="0 0 {w} {h}" preserveAspectRatio="none" style="height:{h}px">'
        + "".join(lines)
        + f"</svg>{axis}<div class=legend>{legend}</div>"
    )


def _table(result: Mapping[str, Any], rows_max: int) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in result["columns"])
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>"
        for row in result["rows"][:rows_max]
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}"
    if isinstance(value, str) and len(value) > 48:
        return html.escape(value[:45]) + "…"
    return html.escape("" if value is None else str(value))


def _bars(result: Mapping[str, Any], unit: str) -> str:
    rows = result["rows"]
    peak = max((abs(float(r[-1])) for r in rows if r[-1] is not None), default=1.0) or 1.0
    return "".join(
        f"<div class=bar><span>{html.escape(str(r[0]))}</span>"
        f'<i style="width:{abs(float(r[-1])) / peak * 60:.0f}%"></i>'
        f"<b>{format_value(r[-1], unit)}</b></div>"
        for r in rows
        if r[-1] is not None
    )


def _body(panel: Panel, result: Mapping[str, Any] | None, height_px: int) -> str:
    if any(isinstance(q, PromQL) for q in panel.queries):
        exprs = "<br>".join(html.escape(q.expr) for q in panel.queries if isinstance(q, PromQL))
        return f"<div class=promql>PromQL (no Prometheus here):<br>{exprs}</div>"
    if result is None or not result["rows"]:
        return "<div class=empty>no data</div>"
    if panel.type == "stat":
        return f"<div class=stat>{format_value(result['rows'][0][0], panel.unit)}</div>"
    if panel.type == "timeseries":
        return _svg_lines(result, panel.unit, height_px)
    if panel.type in ("bargauge", "piechart", "barchart"):
        return _bars(result, panel.unit)
    return _table(result, max(2, height_px // 24 - 2))


def dashboard_html(board: Dashboard, results: Mapping[str, Any]) -> str:
    model = board.to_json()
    cells = []
    by_title = {p.title: p for p in board.panels()}
    bottom = 0
    for item in model["panels"]:
        g = item["gridPos"]
        bottom = max(bottom, g["y"] + g["h"])
        style = f"grid-column:{g['x'] + 1}/span {g['w']};grid-row:{g['y'] + 1}/span {g['h']}"
        if item["type"] == "row":
            cells.append(f'<div class=row style="{style}">{html.escape(item["title"])}</div>')
            continue
        panel = by_title[item["title"]]
        body = _body(panel, results.get(panel.title), g["h"] * ROW_PX)
        cells.append(
            f'<div class=panel style="{style}"><div class=title>{html.escape(panel.title)}'
            f"<em>{html.escape(panel.unit)}</em></div>{body}</div>"
        )
    variables = " ".join(
        f"<span class=var>{html.escape(v.label)}: <b>{html.escape(', '.join(vals))}</b></span>"
        for v in board.variables
        for vals in [results.get("variables", {}).get(v.name, ["(from Prometheus)"])]
    )
    sql = any(not isinstance(q, PromQL) for p in board.panels() for q in p.queries)
    banner = BANNER if sql else BANNER_PROMQL
    return f"""<!doctype html><html><head><meta charset="utf-8"><style>
body{{background:#111217;color:#ccccdc;font:13px sans-serif;margin:0;padding:12px;width:1576px}}
.banner{{background:#3d2f00;color:#f2cc0c;padding:6px 10px;margin-bottom:8px;font-weight:bold}}
h1{{font-size:18px;margin:4px 0}} .var{{margin-right:14px;color:#9fa7b3}}
.grid{{display:grid;grid-template-columns:repeat(24,1fr);grid-auto-rows:{ROW_PX}px;gap:6px;
margin-top:8px;height:{bottom * (ROW_PX + 6)}px}}
.panel{{background:#181b1f;border:1px solid #2c3235;border-radius:3px;padding:6px;overflow:hidden}}
.title{{font-weight:bold;margin-bottom:4px}}
.title em{{float:right;color:#6e7580;font-weight:normal}}
.row{{font-size:15px;font-weight:bold;border-bottom:1px solid #2c3235;padding-top:6px}}
.stat{{font-size:34px;color:#73bf69;text-align:center;margin-top:4px}}
svg{{width:100%;display:block}} .legend,.axis{{font-size:11px;color:#9fa7b3;margin-top:2px}}
table{{border-collapse:collapse;font-size:11px;width:100%}} td,th{{border-bottom:1px solid #2c3235;
padding:1px 4px;text-align:left;white-space:nowrap}} th{{color:#6e9fff}}
.bar{{display:flex;align-items:center;font-size:11px;margin:2px 0}} .bar span{{width:38%;
overflow:hidden;white-space:nowrap}} .bar i{{background:#5794f2;height:10px;margin:0 6px}}
.promql{{font:11px monospace;color:#9fa7b3}} .empty{{color:#6e7580}}
</style></head><body><div class=banner>{banner}</div><h1>{html.escape(board.title)}</h1>
<div>{variables} <span class=var>time zone: <b>{board.timezone}</b></span></div>
<div class=grid>{"".join(cells)}</div></body></html>"""


def page_height_px(board: Dashboard) -> int:
    bottom = max(int(p["gridPos"]["y"] + p["gridPos"]["h"]) for p in board.to_json()["panels"])
    return 130 + bottom * (ROW_PX + 6)

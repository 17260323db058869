"""``carbonflow grafana``: dashboards as code.

    carbonflow grafana build [--out DIR] [--check]   write (or compare) dashboards/json
    carbonflow grafana push                          upload data sources and dashboards
    carbonflow grafana render --results FILE         layout pictures (docs/img) with Chromium

``push`` reads CARBONFLOW_GRAFANA_URL and CARBONFLOW_GRAFANA_TOKEN (or CARBONFLOW_GRAFANA_USER
and CARBONFLOW_GRAFANA_PASSWORD), and the data sources' CARBONFLOW_GRAFANA_PG_* and
CARBONFLOW_PROMETHEUS_URL; see docs/dashboards.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from carbonflow.grafana.build import DEFAULT_OUT, differences, write


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "grafana", help="build the Grafana dashboards from code; push them to a Grafana"
    )
    actions = parser.add_subparsers(dest="grafana_action", required=True, metavar="ACTION")
    build = actions.add_parser("build", help="write dashboards/json/<folder>/<uid>.json")
    build.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    build.add_argument(
        "--check", action="store_true", help="only compare; exit 1 when the files differ"
    )
    build.set_defaults(handler=run_build)
    push = actions.add_parser("push", help="create or update data sources and dashboards")
    push.set_defaults(handler=run_push)
    render = actions.add_parser(
        "render", help="draw each dashboard's layout with query results to PNG (not Grafana)"
    )
    render.add_argument(
        "--results",
        type=Path,
        required=True,
        help="query results written by tests/grafana/test_queries.py "
        "(CARBONFLOW_DASHBOARD_RESULTS=FILE)",
    )
    render.add_argument("--out", type=Path, default=Path("docs/img"), help="output directory")
    render.add_argument("--chromium", default="/usr/bin/chromium", help="headless browser")
    render.set_defaults(handler=run_render)


def run_build(args: argparse.Namespace) -> int:
    if args.check:
        problems = differences(args.out)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("run `carbonflow grafana build` and commit the result", file=sys.stderr)
        return 1 if problems else 0
    for path in write(args.out):
        print(path)
    return 0


def run_push(args: argparse.Namespace) -> int:
    from carbonflow.grafana.push import (
        GrafanaSettings,
        PushError,
        connect,
        datasource_payloads,
        push,
    )

    settings = GrafanaSettings()
    try:
        report = push(connect(settings), datasources=datasource_payloads())
    except PushError as err:
        print(f"grafana push failed: {err}", file=sys.stderr)
        return 1
    print(f"grafana push to {settings.url}: {report.summary()}")
    return 0


def run_render(args: argparse.Namespace) -> int:
    import json
    import subprocess
    import tempfile

    from carbonflow.grafana.build import dashboards
    from carbonflow.grafana.render import dashboard_html, page_height_px

    results = json.loads(args.results.read_text(encoding="utf-8"))
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for board in dashboards():
            page = Path(tmp) / f"{board.uid}.html"
            page.write_text(dashboard_html(board, results.get(board.uid, {})), encoding="utf-8")
            target = (args.out / f"dashboard-{board.folder}.png").resolve()
            command = [
                args.chromium, "--headless", "--no-sandbox", "--disable-gpu",
                "--hide-scrollbars", f"--window-size=1600,{page_height_px(board)}",
                f"--screenshot={target}", page.as_uri(),
            ]  # fmt: skip
            done = subprocess.run(command, capture_output=True, timeout=120, check=False)
            if done.returncode != 0 or not target.exists():
                print(f"{args.chromium} failed: {done.stderr.decode()[-500:]}", file=sys.stderr)
                return 1
            print(target)
    return 0

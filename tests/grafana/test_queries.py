"""Every SQL query of every dashboard, expanded as Grafana's PostgreSQL data source expands it,
against a database holding demo-like data: both example sites, 12 simulated hours published
through Mosquitto, stored by the ingest service and computed by the calc service.

Each variable query runs first and gives the variable's options (site → organisation → month,
as Grafana refreshes them); every panel query must then succeed for every site option and
return rows for the site the dashboard is checked with. No Grafana runs here: the expansion is
carbonflow.grafana.macros, written after Grafana's data source code.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

from carbonflow.domain.indicators.kpis import Event
from carbonflow.embedded.broker import EmbeddedMosquitto
from carbonflow.grafana.build import dashboards
from carbonflow.grafana.macros import VariableValue, expand
from carbonflow.grafana.model import Dashboard, Sql, Variable
from carbonflow.sites.loader import EXAMPLES, load_site_file
from carbonflow.storage.indicators import event_row, insert_events
from simulators.engine import SimConfig
from simulators.faultspec import FaultSpec
from simulators.runner import register_fleet, run_simulation
from tests.support.calc_generator import run_calc
from tests.support.ingest_harness import count, running_ingest
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

MINE = "shanxi-jinzhong-mine"
PARK = "inner-mongolia-ordos-park"
SIMULATED = timedelta(hours=12)
INTERVAL = timedelta(minutes=15)  # Grafana's $__interval for a 24 h range on a wide panel
# The site each dashboard is checked with: the enterprise month needs a budget of the current
# year, which the example mine has (the example park's budgets are for 2025).
CHECKED_SITE = {"park": PARK, "mine": MINE, "enterprise": MINE}
# Set to a file name to keep the results (docs/img pictures: carbonflow.grafana.render).
RESULTS_ENV = "CARBONFLOW_DASHBOARD_RESULTS"


def _simulate(database_url: str, broker_url: str) -> None:
    now = datetime.now(ZoneInfo("Asia/Shanghai")).replace(minute=0, second=0, microsecond=0)
    configs = [
        SimConfig(
            load_site_file(EXAMPLES / f"{name}.yaml"),
            # ends an hour ago: the simulator never publishes a reading before its time
            start=now - SIMULATED - timedelta(hours=1),
            duration=SIMULATED,
            step=timedelta(minutes=15),
            speed=math.inf,
            seed=seed,
            # default faults (gaps, resets, duplicates, rejects) but no held-back deliveries,
            # which would only be released hours after the simulated period
            faults=FaultSpec.parse("default,late=0,skew=0"),
            batch_size=50,
        )
        for name, seed in (("shanxi-mine", 11), ("inner-mongolia-park", 12))
    ]
    for config in configs:  # registered before ingest starts, so it knows every device
        register_fleet(database_url, config)
    with running_ingest(database_url, broker_url):
        stored = 0
        for config in configs:
            report = run_simulation(config, broker_url, client_id=f"sim-{config.site.site.id}")
            stored += report.tally.stored_readings
        wait_until(
            lambda: count(database_url, "SELECT count(*) FROM reading") >= stored,
            120,
            message="readings stored",
        )
    run_calc(database_url)
    _one_warning_per_site(database_url, [c.site.site.id for c in configs])


def _one_warning_per_site(database_url: str, sites: list[str]) -> None:
    """12 hours of a month are too few to judge (insufficient_data raises no early warning):
    one stored warning per site, raised half an hour ago, for the warnings panels to show."""
    now = datetime.now(UTC)
    month = now.astimezone(ZoneInfo("Asia/Shanghai")).replace(
        day=1, hour=0, minute=0, second=0, microsecond=0
    )
    with psycopg.connect(database_url) as conn:
        for site in sites:
            event = Event(
                "", "indicator", "zero_carbon_energy_share", "month", month.astimezone(UTC),
                "at_risk", None, 0.18, 0.20, "zero_carbon_energy_share: 0.18 vs ≥ 0.2: at_risk",
            )  # fmt: skip
            insert_events(conn, [event_row(site, event, now - timedelta(minutes=30))])


def _options(
    conn: psycopg.Connection[Any],
    variable: Variable,
    values: Mapping[str, VariableValue],
    window: tuple[datetime, datetime],
) -> list[str]:
    if variable.kind == "custom":
        return [v.strip() for v in variable.query.split(",")]
    sql = expand(variable.query, *window, INTERVAL, values)
    rows = conn.execute(sql).fetchall()
    # __text, __value: the value is the last column
    return [str(row[-1]) for row in rows]


def _resolve(
    conn: psycopg.Connection[Any],
    board: Dashboard,
    site: str | None,
    window: tuple[datetime, datetime],
) -> dict[str, VariableValue]:
    """Variables in order, each from its query, as Grafana does on load."""
    values: dict[str, VariableValue] = {}
    for variable in board.variables:
        options = _options(conn, variable, values, window)
        assert options, f"{board.uid}: variable {variable.name} has no options"
        if variable.name == "site" and site is not None:
            assert site in options, (board.uid, options)
            chosen = [site]
        elif variable.include_all:
            chosen = options  # "All"
        elif variable.current is not None:
            chosen = [variable.current]
        else:
            chosen = options[:1]
        values[variable.name] = VariableValue(chosen, multi=variable.multi or variable.include_all)
    return values


def _run(conn: psycopg.Connection[Any], sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    cursor = conn.execute(sql)
    columns = [c.name for c in cursor.description or []]
    return columns, cursor.fetchall()


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return float(value)  # Decimal epochs of $__timeGroup


@pytest.mark.slow
def test_every_dashboard_query_runs_and_returns_rows(
    database_url: str, mosquitto: EmbeddedMosquitto
) -> None:
    _simulate(database_url, mosquitto.url)
    now = datetime.now(UTC)
    # The last 24 h, reaching back to the local midnight before the simulated hours: between
    # 00:00 and 02:00 in Shanghai they all lie in yesterday, whose day rows start more than 24 h
    # ago, and $__timeFilter of a daily panel tests the day's start.
    first_day = (
        now.astimezone(ZoneInfo("Asia/Shanghai")) - SIMULATED - timedelta(hours=1)
    ).replace(hour=0, minute=0, second=0, microsecond=0)
    window = (min(now - timedelta(hours=24), first_day.astimezone(UTC)), now)
    failures: list[str] = []
    results: dict[str, dict[str, Any]] = {}
    checked = 0
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SET statement_timeout = '20s'")
        for board in dashboards():
            queries = [(p, q) for p in board.panels() for q in p.queries if isinstance(q, Sql)]
            if not queries:
                continue  # PromQL only (platform): checked against the metric registries
            site = CHECKED_SITE.get(board.folder)
            values = _resolve(conn, board, site, window)
            board_results: dict[str, Any] = {
                "variables": {k: list(v.values) for k, v in values.items()}
            }
            for panel, query in queries:
                try:
                    columns, rows = _run(conn, expand(query.sql, *window, INTERVAL, values))
                except psycopg.Error as err:
                    failures.append(f"{board.uid} / {panel.title}: {err}")
                    continue
                checked += 1
                if not rows:
                    failures.append(f"{board.uid} / {panel.title}: no rows")
                board_results[panel.title] = {
                    "columns": columns,
                    "rows": [[_jsonable(v) for v in row] for row in rows[:400]],
                }
            results[board.uid] = board_results
            # Every other site the variable offers: the queries must run (rows may be none,
            # e.g. a park has no methane).
            site_variable = next(v for v in board.variables if v.name == "site")
            if not site_variable.multi:
                for other in _options(conn, site_variable, {}, window):
                    if other == site:
                        continue
                    other_values = _resolve(conn, board, other, window)
                    for panel, query in queries:
                        try:
                            _run(conn, expand(query.sql, *window, INTERVAL, other_values))
                        except psycopg.Error as err:
                            failures.append(f"{board.uid} / {panel.title} / {other}: {err}")
    assert failures == []
    total = sum(isinstance(q, Sql) for b in dashboards() for p in b.panels() for q in p.queries)
    assert checked == total >= 35
    target = os.environ.get(RESULTS_ENV)
    if target:
        Path(target).write_text(json.dumps(results, indent=1, ensure_ascii=False))

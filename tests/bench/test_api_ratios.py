"""The API bench's p95 in units of the same run's SQL yardstick (bench/api.py). Pure."""

from __future__ import annotations

from bench.api import relative_p95


def test_each_p95_is_divided_by_the_runs_own_sql_p95() -> None:
    latency = {"flows_month": {"p95_ms": 78.0, "p50_ms": 60.0}, "live": {"p95_ms": 21.65}}
    assert relative_p95(latency, 43.3) == {"flows_month": 1.8, "live": 0.5}

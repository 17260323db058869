"""Platform health: ingest rate, rejects by reason, lag, calc freshness, API latency.

PromQL over the metric names the services export (services/ingest/metrics.py,
services/calc/metrics.py, services/api/metrics.py); a test checks every name used here exists
in those registries. Counters are exported with ``_total``, histograms as ``_bucket``.
"""

from __future__ import annotations

from carbonflow.grafana.model import Dashboard, Panel, PromQL, Row, Threshold

_RI = "$__rate_interval"


def _quantile(q: float, metric: str, by: str = "") -> str:
    labels = f"le, {by}" if by else "le"
    return f"histogram_quantile({q}, sum by ({labels}) (rate({metric}_bucket[{_RI}])))"


def dashboard() -> Dashboard:
    up_thresholds = (Threshold(None, "red"), Threshold(1, "green"))
    return Dashboard(
        uid="carbonflow-platform-health",
        title="Platform health",
        folder="platform",
        description="Ingest, calc and API service metrics (Prometheus).",
        tags=("carbonflow", "platform"),
        time_from="now-6h",
        refresh="30s",
        items=(
            Row("Now"),
            Panel(
                "stat", "Broker connected", "bool_on_off",
                [PromQL("min(carbonflow_ingest_broker_connected)", instant=True)],
                width=4, height=4, thresholds=up_thresholds,
            ),
            Panel(
                "stat", "Calc database up", "bool_on_off",
                [PromQL("min(carbonflow_calc_database_up)", instant=True)],
                width=4, height=4, thresholds=up_thresholds,
            ),
            Panel(
                "stat", "Since last ingest commit", "s",
                [PromQL("time() - max(carbonflow_ingest_last_commit_unixtime)", instant=True)],
                width=4, height=4,
                thresholds=(Threshold(None, "green"), Threshold(60, "orange"),
                            Threshold(300, "red")),
            ),
            Panel(
                "stat", "Since last calc cycle", "s",
                [PromQL("time() - max(carbonflow_calc_last_cycle_unixtime)", instant=True)],
                width=4, height=4,
                thresholds=(Threshold(None, "green"), Threshold(30, "orange"),
                            Threshold(120, "red")),
            ),
            Panel(
                "stat", "Calc pending work", "short",
                [PromQL("sum(carbonflow_calc_pending)", instant=True)], width=4, height=4,
                description="dirty device-hours plus open recomputation requests",
            ),
            Panel(
                "stat", "Live streams open", "suffix: streams",
                [PromQL("sum(carbonflow_api_live_streams)", instant=True)], width=4, height=4,
            ),
            Row("Ingest"),
            Panel(
                "timeseries", "Readings written", "suffix: readings/s",
                [
                    PromQL(f"sum(rate(carbonflow_ingest_readings_written_total[{_RI}]))",
                           "new rows"),
                    PromQL(f"sum(rate(carbonflow_ingest_readings_duplicate_total[{_RI}]))",
                           "redeliveries"),
                ],
            ),
            Panel(
                "timeseries", "Messages by result", "suffix: msg/s",
                [PromQL(f"sum by (result) (rate(carbonflow_ingest_messages_total[{_RI}]))",
                        "{{result}}")],
            ),
            Panel(
                "timeseries", "Rejects by reason", "suffix: rejects/s",
                [PromQL(f"sum by (reason) (rate(carbonflow_ingest_rejected_total[{_RI}])) > 0",
                        "{{reason}}")],
                description="docs/mqtt.md lists every reason; the rows are in rejected_reading",
            ),
            Panel(
                "timeseries", "Ingest lag (commit − reading timestamp)", "s",
                [
                    PromQL(_quantile(0.5, "carbonflow_ingest_lag_seconds"), "p50"),
                    PromQL(_quantile(0.95, "carbonflow_ingest_lag_seconds"), "p95"),
                ],
            ),
            Panel(
                "timeseries", "Batch write time", "s",
                [PromQL(_quantile(0.95, "carbonflow_ingest_write_seconds"), "p95"),
                 PromQL(f"sum(rate(carbonflow_ingest_db_retries_total[{_RI}]))",
                        "retries/s")],
            ),
            Panel(
                "timeseries", "Queue depth", "suffix: messages",
                [PromQL("sum(carbonflow_ingest_queue_depth)", "queued")],
            ),
            Row("Calc"),
            Panel(
                "timeseries", "Calc freshness (results committed − reading received)", "s",
                [
                    PromQL(_quantile(0.5, "carbonflow_calc_freshness_seconds"), "p50"),
                    PromQL(_quantile(0.95, "carbonflow_calc_freshness_seconds"), "p95"),
                ],
            ),
            Panel(
                "timeseries", "Calc cycles", "suffix: cycles/s",
                [
                    PromQL(f"sum by (result) (rate(carbonflow_calc_cycles_total[{_RI}]))",
                           "{{result}}"),
                    PromQL(f"sum(rate(carbonflow_calc_site_errors_total[{_RI}]))",
                           "site errors"),
                ],
            ),
            Panel(
                "timeseries", "Calc cycle duration", "s",
                [PromQL(_quantile(0.95, "carbonflow_calc_cycle_seconds"), "p95")],
            ),
            Panel(
                "timeseries", "Rows written by calc", "suffix: rows/s",
                [
                    PromQL(f"sum(rate(carbonflow_calc_intervals_written_total[{_RI}]))",
                           "intervals"),
                    PromQL(f"sum(rate(carbonflow_calc_carbon_rows_written_total[{_RI}]))",
                           "carbon rows"),
                    PromQL(f"sum(rate(carbonflow_calc_indicators_written_total[{_RI}]))",
                           "indicators"),
                ],
            ),
            Row("API"),
            Panel(
                "timeseries", "API latency p95 by route", "s",
                [PromQL(_quantile(0.95, "carbonflow_api_request_seconds", "route"),
                        "{{route}}")],
            ),
            Panel(
                "timeseries", "API requests by status", "reqps",
                [PromQL(f"sum by (status) (rate(carbonflow_api_requests_total[{_RI}]))",
                        "{{status}}"),
                 PromQL(f"sum(rate(carbonflow_api_audit_failures_total[{_RI}]))",
                        "audit failures")],
            ),
        ),
    )  # fmt: skip

"""The calc service's Prometheus metrics: one closed list, on an injectable registry."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

CYCLE_RESULTS = ("ok", "database_unavailable", "failed")


@dataclass(frozen=True, slots=True)
class CalcMetrics:
    registry: CollectorRegistry
    cycles: Counter
    cycle_seconds: Histogram
    dirty_hours: Counter
    intervals_written: Counter
    carbon_rows_written: Counter
    indicators_written: Counter
    events_raised: Counter
    site_errors: Counter
    sites_locked: Counter
    pending: Gauge
    freshness_seconds: Histogram
    database_up: Gauge
    last_cycle_unixtime: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> CalcMetrics:
        reg = registry if registry is not None else CollectorRegistry()
        metrics = cls(
            registry=reg,
            cycles=Counter(
                "carbonflow_calc_cycles", "calc cycles, by result", ["result"], registry=reg
            ),
            cycle_seconds=Histogram(
                "carbonflow_calc_cycle_seconds",
                "duration of one calc cycle [s]",
                buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
                registry=reg,
            ),
            dirty_hours=Counter(
                "carbonflow_calc_dirty_hours",
                "dirty device-hours consumed (deleted after their results committed)",
                registry=reg,
            ),
            intervals_written=Counter(
                "carbonflow_calc_intervals_written", "15-min device intervals written", registry=reg
            ),
            carbon_rows_written=Counter(
                "carbonflow_calc_carbon_rows_written", "15-min carbon rows written", registry=reg
            ),
            indicators_written=Counter(
                "carbonflow_calc_indicators_written", "indicator results written", registry=reg
            ),
            events_raised=Counter(
                "carbonflow_calc_events_raised",
                "early-warning and data events raised",
                registry=reg,
            ),
            site_errors=Counter(
                "carbonflow_calc_site_errors",
                "sites whose cycle was rolled back by an error",
                registry=reg,
            ),
            sites_locked=Counter(
                "carbonflow_calc_sites_locked",
                "sites skipped because another calc instance held their lock",
                registry=reg,
            ),
            pending=Gauge(
                "carbonflow_calc_pending",
                "dirty device-hours plus open recomputation requests",
                registry=reg,
            ),
            freshness_seconds=Histogram(
                "carbonflow_calc_freshness_seconds",
                "results committed minus reading received_at [s]",
                buckets=(0.25, 0.5, 1, 2, 3, 5, 10, 30, 60, 300, 3600, 86400),
                registry=reg,
            ),
            database_up=Gauge(
                "carbonflow_calc_database_up", "1 while the database answers", registry=reg
            ),
            last_cycle_unixtime=Gauge(
                "carbonflow_calc_last_cycle_unixtime",
                "wall time of the last successful cycle [s]",
                registry=reg,
            ),
        )
        for result in CYCLE_RESULTS:
            metrics.cycles.labels(result)
        return metrics

"""The ingest service's Prometheus metrics: one closed list, on an injectable registry."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from carbonflow.domain.readings.contract import Reason

MESSAGE_RESULTS = ("stored", "partly_rejected", "rejected", "skipped")
# Fine below a second (live freshness), coarse above it (late and backfilled data) [s].
LAG_BUCKETS_S = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75,
    1, 2, 5, 10, 30, 60, 300, 3600, 86400,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class IngestMetrics:
    registry: CollectorRegistry
    messages: Counter
    readings_written: Counter
    readings_duplicate: Counter
    rejected: Counter
    batch_readings: Histogram
    write_seconds: Histogram
    lag_seconds: Histogram
    broker_connected: Gauge
    queue_depth: Gauge
    db_retries: Counter
    last_commit_unixtime: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> IngestMetrics:
        reg = registry if registry is not None else CollectorRegistry()
        metrics = cls(
            registry=reg,
            messages=Counter(
                "carbonflow_ingest_messages",
                "MQTT messages processed, by result",
                ["result"],
                registry=reg,
            ),
            readings_written=Counter(
                "carbonflow_ingest_readings_written", "readings committed as new rows", registry=reg
            ),
            readings_duplicate=Counter(
                "carbonflow_ingest_readings_duplicate",
                "readings already stored with the same value (redeliveries)",
                registry=reg,
            ),
            rejected=Counter(
                "carbonflow_ingest_rejected",
                "messages or readings rejected, by reason",
                ["reason"],
                registry=reg,
            ),
            batch_readings=Histogram(
                "carbonflow_ingest_batch_readings",
                "readings per committed batch",
                buckets=(1, 10, 50, 100, 500, 1000, 5000, 10000, 20000, 50000),
                registry=reg,
            ),
            write_seconds=Histogram(
                "carbonflow_ingest_write_seconds",
                "time to store and commit one batch [s]",
                buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
                registry=reg,
            ),
            lag_seconds=Histogram(
                "carbonflow_ingest_lag_seconds",
                "commit time minus reading timestamp [s]",
                buckets=LAG_BUCKETS_S,
                registry=reg,
            ),
            broker_connected=Gauge(
                "carbonflow_ingest_broker_connected",
                "1 while connected to the broker",
                registry=reg,
            ),
            queue_depth=Gauge(
                "carbonflow_ingest_queue_depth",
                "messages received but not yet batched",
                registry=reg,
            ),
            db_retries=Counter(
                "carbonflow_ingest_db_retries",
                "failed batch writes that will be retried",
                registry=reg,
            ),
            last_commit_unixtime=Gauge(
                "carbonflow_ingest_last_commit_unixtime",
                "wall time of the last commit [s]",
                registry=reg,
            ),
        )
        for result in MESSAGE_RESULTS:
            metrics.messages.labels(result)
        for reason in Reason:
            metrics.rejected.labels(reason.value)
        return metrics

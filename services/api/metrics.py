"""The API service's Prometheus metrics: one closed list, on an injectable registry.

=====================================  ======================================================
carbonflow_api_requests_total          requests by route template, method and status
carbonflow_api_request_seconds         time to the response headers, by route and method [s]
carbonflow_api_live_streams            live snapshot streams open now
carbonflow_api_audit_failures_total    audited requests refused because the audit row failed
=====================================  ======================================================

``route`` is the route template (``/api/v1/sites/{site_id}``), ``unmatched`` for a path no route
matches, so the label set stays bounded whatever clients send.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

UNMATCHED_ROUTE = "unmatched"
# Fine below 100 ms (registry reads, cached auth), coarse above (live aggregates) [s].
LATENCY_BUCKETS_S = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ApiMetrics:
    registry: CollectorRegistry
    requests: Counter
    request_seconds: Histogram
    live_streams: Gauge
    audit_failures: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> ApiMetrics:
        reg = registry if registry is not None else CollectorRegistry()
        return cls(
            registry=reg,
            requests=Counter(
                "carbonflow_api_requests",
                "HTTP requests, by route template, method and status",
                ["route", "method", "status"],
                registry=reg,
            ),
            request_seconds=Histogram(
                "carbonflow_api_request_seconds",
                "time from request to response headers, by route template and method [s]",
                ["route", "method"],
                buckets=LATENCY_BUCKETS_S,
                registry=reg,
            ),
            live_streams=Gauge(
                "carbonflow_api_live_streams", "live snapshot streams open now", registry=reg
            ),
            audit_failures=Counter(
                "carbonflow_api_audit_failures",
                "audited requests refused (503) because their audit row could not be written",
                registry=reg,
            ),
        )

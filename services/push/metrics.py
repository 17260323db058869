"""The push service's metrics: one closed list, on an injectable registry (docs/push.md)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

_LABELS = ("destination",)


class PushMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.queued = self._counter("packets_queued", "packets written to the outbox")
        self.sent = self._counter("packets_sent", "packet sends, resends included")
        self.acked = self._counter("packets_acked", "packets answered by the platform")
        self.link_failures = self._counter(
            "link_failures", "connections refused or lost, answers missing after the resends"
        )
        self.invalid_received = self._counter(
            "invalid_received", "received packets that did not parse"
        )
        self.backlog = Gauge(
            "carbonflow_push_backlog",
            "unanswered packets in the outbox (up to one batch)",
            _LABELS,
            registry=self.registry,
        )

    def _counter(self, name: str, documentation: str) -> Counter:
        return Counter(f"carbonflow_push_{name}", documentation, _LABELS, registry=self.registry)

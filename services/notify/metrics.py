"""The notify service's metrics: one closed list, on an injectable registry (docs/alarms.md)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class NotifyMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.cycles = self._counter("cycles", "cycles completed")
        self.cycle_failures = self._counter("cycle_failures", "cycles failed (database)")
        self.opened = self._counter("alarms_opened", "alarms opened")
        self.resolved = self._counter("alarms_resolved", "alarms resolved")
        self.notifications = self._counter("notifications", "notifications created")
        self.sent = self._counter("deliveries_sent", "deliveries accepted by their channel")
        self.failed = self._counter("deliveries_failed", "delivery attempts that failed")
        self.database_up = Gauge(
            "carbonflow_notify_database_up",
            "1 when the last cycle reached the database",
            registry=self.registry,
        )

    def _counter(self, name: str, documentation: str) -> Counter:
        return Counter(f"carbonflow_notify_{name}", documentation, registry=self.registry)

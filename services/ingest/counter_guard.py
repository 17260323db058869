"""Reject cumulative-counter readings that dip backwards, by the named rule in
:mod:`carbonflow.domain.readings.counters` (``is_noise_dip``). Resets, rollovers and larger,
ambiguous drops pass and are stored: the calc service, which sees the whole series, decides about
them.

State: the newest accepted (ts, value) per (device, metric), seeded from the database the first
time a key is seen. A reading older than that state is passed unchecked (out-of-order delivery);
the calc service orders readings by time and flags dips it finds there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from carbonflow.domain.readings.contract import Reason, Rejection
from carbonflow.domain.readings.counters import is_noise_dip
from services.ingest.validate import Candidate

Key = tuple[int, int]
LatestLookup = Callable[[Sequence[Key]], dict[Key, tuple[datetime, float]]]

# Bound on remembered keys; beyond it the state is cleared and re-seeded from the database.
MAX_KEYS = 500_000


class CounterGuard:
    def __init__(self, lookup: LatestLookup) -> None:
        self._lookup = lookup
        self._latest: dict[Key, tuple[datetime, float] | None] = {}

    def filter(
        self, candidates: Sequence[Candidate]
    ) -> tuple[list[int], list[tuple[int, Rejection]]]:
        """Indices of accepted candidates (in arrival order), and the backwards ones."""
        unseen = {
            (c.device.device_pk, c.metric.metric_id)
            for c in candidates
            if c.metric.kind == "counter"
            and (c.device.device_pk, c.metric.metric_id) not in self._latest
        }
        if unseen:
            if len(self._latest) + len(unseen) > MAX_KEYS:
                self._latest.clear()
            found = self._lookup(sorted(unseen))
            for key in unseen:
                self._latest[key] = found.get(key)
        accepted: list[int] = []
        rejected: list[tuple[int, Rejection]] = []
        for i, c in enumerate(candidates):
            if c.metric.kind != "counter":
                accepted.append(i)
                continue
            key = (c.device.device_pk, c.metric.metric_id)
            last = self._latest.get(key)
            if last is None or c.ts > last[0]:
                if last is not None and is_noise_dip(last[1], c.value, c.device.counter_modulus):
                    rejected.append(
                        (
                            i,
                            Rejection(
                                Reason.COUNTER_BACKWARDS,
                                f"{c.metric.name} fell from {last[1]:g} at "
                                f"{last[0].isoformat()} to {c.value:g}: "
                                "a read-out dip, not a reset or rollover",
                                c.device.device_id,
                                c.metric.name,
                                c.ts,
                                c.value,
                            ),
                        )
                    )
                    continue
                self._latest[key] = (c.ts, c.value)
            accepted.append(i)
        return accepted, rejected

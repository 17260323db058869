"""Per-key token buckets on an injected monotonic clock. Pure (no I/O), one process.

Each key has a bucket of ``capacity`` tokens refilled at ``per_minute / 60`` tokens per second;
a request takes one token or is refused with the time until the next token. The buckets live
in this process's memory: several API processes each allow the full rate (documented in
docs/api.md); a shared limiter (Redis, the proxy) is the way to a global limit.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float  # clock reading [s]


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    remaining: int  # whole tokens left after this request
    retry_after_s: float  # 0 when allowed; else until one token is back [s]

    @property
    def retry_after_header(self) -> str:
        """Whole seconds, rounded up, at least 1 (RFC 9110 ``Retry-After``)."""
        return str(max(1, math.ceil(self.retry_after_s)))


class RateLimiter:
    def __init__(self, capacity: int, clock: Callable[[], float]) -> None:
        if capacity < 1:
            raise ValueError(f"bucket capacity must be at least 1, got {capacity}")
        self._capacity = float(capacity)
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str, per_minute: int) -> Decision:
        """Take one token from ``key``'s bucket, refilled at ``per_minute`` [1/min]."""
        if per_minute < 1:
            raise ValueError(f"rate must be at least 1 per minute, got {per_minute}")
        rate_per_s = per_minute / 60.0
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(self._capacity, now)
            elapsed = max(0.0, now - bucket.updated)
            bucket.tokens = min(self._capacity, bucket.tokens + elapsed * rate_per_s)
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return Decision(True, int(bucket.tokens), 0.0)
            return Decision(False, 0, (1.0 - bucket.tokens) / rate_per_s)


class FailedAuthThrottle:
    """Failed authentications per client (address): ``burst`` at once, then ``per_minute``.

    Only a presented token that does not authenticate counts (a request without one does not).
    While a client's allowance is used up every request of it is refused with 429 before its
    token is even looked up, so guessing cannot go on at full speed (and costs no database
    lookup); a correct token from the same address waits like any other. Pure, one process.
    """

    def __init__(self, burst: int, per_minute: int, clock: Callable[[], float]) -> None:
        self._limiter = RateLimiter(burst, clock)
        self._per_minute = per_minute
        self._blocked_until: dict[str, float] = {}
        self._clock = clock
        self._lock = threading.Lock()

    def refused(self, client: str) -> Decision | None:
        """A refusal while ``client`` has no failed attempt left, else ``None``."""
        now = self._clock()
        with self._lock:
            until = self._blocked_until.get(client)
            if until is None:
                return None
            if until <= now:
                del self._blocked_until[client]
                return None
        return Decision(False, 0, until - now)

    def failed(self, client: str) -> Decision:
        """Count one failed authentication of ``client``; not allowed: the client is blocked
        until one attempt is back."""
        decision = self._limiter.acquire(client, self._per_minute)
        if not decision.allowed:
            with self._lock:
                self._blocked_until[client] = self._clock() + decision.retry_after_s
        return decision

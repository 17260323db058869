"""Waiting on a condition with a bounded timeout: the only synchronisation tests use."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T],
    timeout_s: float,
    interval_s: float = 0.05,
    message: str = "",
) -> T:
    """Call ``predicate`` until it returns something truthy, and return that.

    Fails the test with ``AssertionError`` when ``timeout_s`` [s] passes first. The timeout
    is a bound on a hang, never a statement about speed: choose it generously.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            what = f": {message}" if message else ""
            raise AssertionError(f"condition not met within {timeout_s:g} s{what}")
        time.sleep(interval_s)

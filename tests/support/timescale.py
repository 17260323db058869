"""Tests that need TimescaleDB: skip without it, fail without it under ``make test-timescaledb``.

``CARBONFLOW_REQUIRE_TIMESCALEDB=1`` (set by ``scripts/test-timescaledb.sh``) turns every such
skip into a failure, so CI cannot pass with the TimescaleDB tests silently skipped.
"""

from __future__ import annotations

import os

import psycopg
import pytest

REQUIRE_TIMESCALEDB = os.environ.get("CARBONFLOW_REQUIRE_TIMESCALEDB") == "1"


def uses_timescaledb(url: str) -> bool:
    """Whether the migrated database at ``url`` has the TimescaleDB layout."""
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT timescaledb FROM storage_mode").fetchone() == (True,)


def no_timescaledb(reason: str) -> None:
    """Skip the test for want of TimescaleDB, or fail it when TimescaleDB is required."""
    if REQUIRE_TIMESCALEDB:
        pytest.fail(f"CARBONFLOW_REQUIRE_TIMESCALEDB=1: {reason}")
    pytest.skip(reason)

"""The shared reading rules on hand-worked values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from carbonflow.domain.readings.contract import Reason
from carbonflow.domain.readings.rules import canonical_value, window_problem

NOW = datetime(2026, 12, 1, tzinfo=UTC)
SKEW, KEEP = timedelta(minutes=5), timedelta(days=30)


def test_the_window_is_inclusive_at_both_ends() -> None:
    assert window_problem(NOW + SKEW, NOW, SKEW, KEEP) is None
    assert window_problem(NOW - KEEP, NOW, SKEW, KEEP) is None


def test_a_reading_301_s_ahead_names_the_skew() -> None:
    problem = window_problem(NOW + timedelta(seconds=301), NOW, SKEW, KEEP)
    assert problem is not None and problem[0] is Reason.FUTURE_TIMESTAMP
    assert "301 s ahead" in problem[1] and "allowed skew 300 s" in problem[1]


def test_a_reading_older_than_retention_names_it() -> None:
    problem = window_problem(NOW - KEEP - timedelta(seconds=1), NOW, SKEW, KEEP)
    assert problem is not None and problem[0] is Reason.TOO_OLD and "(30 d)" in problem[1]


def test_units_are_converted_to_the_metric_s() -> None:
    assert canonical_value(1.5, "MWh", "kWh", "counter", "e") == 1500.0
    assert canonical_value(7.0, None, "kWh", "counter", "e") == 7.0


def test_each_value_rule() -> None:
    mismatch = canonical_value(1.0, "Nm3", "kWh", "counter", "e")
    assert isinstance(mismatch, tuple) and mismatch[0] is Reason.UNIT_MISMATCH
    # 1e300 MWh → 1e303 kWh: finite, but beyond the contract's absolute bound
    huge = canonical_value(1e300, "MWh", "kWh", "counter", "e")
    assert isinstance(huge, tuple) and huge[0] is Reason.VALUE_OUT_OF_RANGE
    implausible = canonical_value(2e12, None, "kWh", "counter", "e")
    assert isinstance(implausible, tuple) and implausible[0] is Reason.VALUE_OUT_OF_RANGE
    negative = canonical_value(-0.5, None, "kWh", "counter", "e")
    assert negative == (Reason.NEGATIVE_COUNTER, "e is a cumulative counter; -0.5 is below zero")
    assert canonical_value(-0.5, None, "kW", "gauge", "p") == -0.5

"""The registry rules a reading must pass, however it arrives — MQTT or a history import. Pure.

One place for each rule, so a value refused on MQTT is refused with the same reason and text
when an operator imports it from a file: the ingest clock's window (future skew, retention) and
the value in its metric's unit (unit conversion, the range after conversion, the per-metric
plausible magnitude, counters never below zero). Both callers turn a :data:`Problem` into their
own rejection row.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from carbonflow.domain import units
from carbonflow.domain.readings.contract import (
    Reason,
    converted_value_problem,
    plausibility_problem,
)

Problem = tuple[Reason, str]


def window_problem(
    ts: datetime, now: datetime, future_skew: timedelta, retention: timedelta
) -> Problem | None:
    """Why ``ts`` is outside what the ingest clock accepts, or None."""
    if ts > now + future_skew:
        return (
            Reason.FUTURE_TIMESTAMP,
            f"ts {ts.isoformat()} is {(ts - now).total_seconds():.0f} s ahead of the "
            f"ingest clock (allowed skew {future_skew.total_seconds():.0f} s)",
        )
    if ts < now - retention:
        return (
            Reason.TOO_OLD,
            f"ts {ts.isoformat()} is older than the retention window ({retention.days} d)",
        )
    return None


def canonical_value(
    value: float, unit: str | None, metric_unit: str, metric_kind: str, metric_name: str
) -> float | Problem:
    """``value`` (in ``unit``, or already in the metric's unit when None) in ``metric_unit``,
    or the rule it breaks."""
    if unit is not None:
        try:
            value = units.convert(value, unit, units.lookup(metric_unit))
        except units.UnitError as err:
            return Reason.UNIT_MISMATCH, str(err)
        problem = converted_value_problem(value)
        if problem is not None:
            return problem
    implausible = plausibility_problem(value, metric_unit)
    if implausible is not None:
        return implausible
    if metric_kind == "counter" and value < 0:
        return (
            Reason.NEGATIVE_COUNTER,
            f"{metric_name} is a cumulative counter; {value:g} is below zero",
        )
    return value

"""Import rows are checked as MQTT readings are: the same reasons."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from carbonflow.domain.readings.contract import Reason, parse_timestamp
from carbonflow.domain.readings.import_rows import (
    Checks,
    HeaderError,
    KnownDevice,
    KnownMetric,
    Reading,
    RowProblem,
    check_row,
    column_positions,
)
from carbonflow.domain.readings.rules import canonical_value, window_problem

NOW = datetime(2026, 12, 1, tzinfo=UTC)
METER = KnownDevice(
    7,
    True,
    {
        "energy_import_kwh": KnownMetric(1, "kWh", "counter"),
        "power_kw": KnownMetric(2, "kW", "gauge"),
    },
)
CHECKS = Checks(
    {"m1": METER, "old": KnownDevice(8, False, {})},
    NOW,
    timedelta(minutes=5),
    timedelta(days=3650),
)
COLUMNS = column_positions(["Device", "metric", "TIME", "value", "unit"])


def _row(*cells: object) -> Reading | RowProblem:
    return check_row(2, cells, COLUMNS, CHECKS)


def test_a_good_row_in_another_unit_is_converted() -> None:
    # 1.5 MWh = 1 500 kWh; 08:15 +08:00 = 00:15 UTC
    assert _row("m1", "energy_import_kwh", "2026-11-01T08:15:00+08:00", "1.5", "MWh") == Reading(
        2, 7, 1, datetime(2026, 11, 1, 0, 15, tzinfo=UTC), 1500.0
    )


def test_no_unit_means_the_metric_s_own_unit() -> None:
    found = _row("m1", "power_kw", "2026-11-01T00:00:00Z", 12, None)
    assert isinstance(found, Reading) and found.value == 12.0


@pytest.mark.parametrize(
    ("cells", "reason"),
    [
        (("nobody", "power_kw", "2026-11-01T00:00:00Z", "1", ""), Reason.UNKNOWN_DEVICE),
        (("old", "power_kw", "2026-11-01T00:00:00Z", "1", ""), Reason.INACTIVE_DEVICE),
        (("m1", "volts", "2026-11-01T00:00:00Z", "1", ""), Reason.UNKNOWN_METRIC),
        (("m1", "power_kw", "2026-11-01 00:00", "1", ""), Reason.INVALID_TIMESTAMP),
        (("m1", "power_kw", datetime(2026, 11, 1), "1", ""), Reason.INVALID_TIMESTAMP),
        (("m1", "power_kw", "2026-11-01T00:00:00Z", "abc", ""), Reason.INVALID_VALUE),
        (("m1", "power_kw", "2026-11-01T00:00:00Z", "nan", ""), Reason.INVALID_VALUE),
        (("m1", "power_kw", "2026-11-01T00:00:00Z", True, ""), Reason.INVALID_VALUE),
        (("m1", "power_kw", "2026-11-01T00:00:00Z", "1", "degC"), Reason.UNIT_MISMATCH),
        (("m1", "power_kw", "2026-12-01T00:10:00Z", "1", ""), Reason.FUTURE_TIMESTAMP),
        (("m1", "power_kw", "2010-01-01T00:00:00Z", "1", ""), Reason.TOO_OLD),
        (("m1", "energy_import_kwh", "2026-11-01T00:00:00Z", "-1", ""), Reason.NEGATIVE_COUNTER),
    ],
)
def test_each_problem_has_the_mqtt_reason(cells: tuple[object, ...], reason: Reason) -> None:
    found = _row(*cells)
    assert isinstance(found, RowProblem) and found.reason is reason, found


def test_a_short_row_is_a_problem_not_a_crash() -> None:
    found = check_row(3, ["m1"], COLUMNS, CHECKS)
    assert isinstance(found, RowProblem) and found.reason is Reason.UNKNOWN_METRIC


def test_the_header_names_every_required_column() -> None:
    assert column_positions(["time", "value", "device", "metric"]) == {
        "time": 0,
        "value": 1,
        "device": 2,
        "metric": 3,
    }
    with pytest.raises(HeaderError, match="missing value; unknown reading"):
        column_positions(["device", "metric", "time", "reading"])


def test_an_implausible_value_is_refused_as_on_mqtt() -> None:
    # The per-metric magnitude rule (power beyond ±1e8 kW) was MQTT-only before the rules were
    # shared: 2e8 kW = 200 GW, more than any meter reads.
    found = _row("m1", "power_kw", "2026-11-01T00:00:00Z", "2e8", "")
    assert isinstance(found, RowProblem) and found.reason is Reason.VALUE_OUT_OF_RANGE
    assert "plausible" in found.detail


@pytest.mark.parametrize(
    ("value", "unit", "ts"),
    [
        ("2e8", None, "2026-11-01T00:00:00Z"),
        ("-3", None, "2026-11-01T00:00:00Z"),
        ("1", "Nm3", "2026-11-01T00:00:00Z"),
        ("1", None, "2026-12-01T01:00:00Z"),
        ("1", None, "2000-01-01T00:00:00Z"),
    ],
)
def test_a_row_and_an_mqtt_reading_break_the_same_rule_with_the_same_text(
    value: str, unit: str | None, ts: str
) -> None:
    metric = "energy_import_kwh" if value == "-3" else "power_kw"
    found = _row("m1", metric, ts, value, unit or "")
    assert isinstance(found, RowProblem)
    when = parse_timestamp(ts)
    rule = window_problem(when, NOW, CHECKS.future_skew, CHECKS.retention) or canonical_value(
        float(value), unit, METER.metrics[metric].unit, METER.metrics[metric].kind, metric
    )
    assert isinstance(rule, tuple)
    assert (found.reason, found.detail) == rule

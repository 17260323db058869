"""Energy online monitoring payloads and their quality rules, worked by hand.

Asia/Shanghai is UTC+8: local midnight of 2025-06-14 is 2025-06-13 16:00 UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from carbonflow.domain.reporting.energy import (
    EnergyProfile,
    EnergyValue,
    Grain,
    ItemMap,
    completeness_check,
    consistency_check,
    day_batch,
    month_batch,
    period_start_check,
    quarter_batch,
)

CN = "Asia/Shanghai"
PROFILE = EnergyProfile(
    unit_code="91140700MA0000000X",
    items=(ItemMap("electricity", "E0101", "kWh", 1), ItemMap("energy_tce", "Z0001", "t", 4)),
)
DAY = datetime(2025, 6, 13, 16, tzinfo=UTC)  # 2025-06-14 00:00 Beijing
Q = timedelta(minutes=15)


def quarters(count: int, *, missing: int = 0) -> list[EnergyValue]:
    return [
        EnergyValue(
            "electricity",
            DAY + i * Q,
            0.0125,
            "MWh",
            "missing" if i < missing else "measured",
        )
        for i in range(count)
    ]


def test_a_quarter_hour_is_labelled_by_its_start_in_local_time() -> None:
    batch = quarter_batch(PROFILE, DAY + Q, quarters(2)[1:])
    # 0.0125 MWh = 12.5 kWh, one decimal as the profile asks.
    assert batch.body["data"] == [
        {
            "code": "E0101",
            "periodStart": "2025-06-14T00:15:00+08:00",
            "value": "12.5",
            "unit": "kWh",
            "quality": "measured",
        }
    ]
    assert not batch.held


def test_completeness_is_ninety_percent_of_the_days_quarters() -> None:
    # 87 of 96 = 90.6 % passes; 86 of 96 = 89.6 % does not.
    assert completeness_check("electricity", 87, 96).passed
    assert not completeness_check("electricity", 86, 96).passed
    daily = [EnergyValue("electricity", DAY, 1.2, "MWh", "estimated")]
    batch = day_batch(PROFILE, DAY, daily, quarters(96, missing=9))
    # electricity 87 / 96 passes; energy_tce has no 15-min values at all: 0 / 96 holds the day.
    assert [c.value for c in batch.checks if c.rule == "completeness"] == [87 / 96, 0.0]
    assert batch.held and batch.reasons[0].startswith("energy_tce: 0 of 96")


def test_a_batch_failing_quality_is_held_with_the_reason() -> None:
    only_electricity = EnergyProfile("X", PROFILE.items[:1])
    daily = [EnergyValue("electricity", DAY, 1.2, "MWh", "estimated")]
    held = day_batch(only_electricity, DAY, daily, quarters(96, missing=10))
    assert held.held
    (reason,) = held.reasons
    assert "86 of 96" in reason and "数据完整率" in reason
    passed = day_batch(only_electricity, DAY, daily, quarters(96, missing=9))
    assert not passed.held


def test_a_dst_day_expects_its_own_number_of_quarters() -> None:
    # Europe/Berlin 2026-03-29 lasts 23 h: 92 quarters; 83 of 92 = 90.2 % passes.
    profile = EnergyProfile("X", PROFILE.items[:1], tz="Europe/Berlin")
    start = datetime(2026, 3, 28, 23, tzinfo=UTC)
    values = [EnergyValue("electricity", start + i * Q, 1.0, "kWh", "measured") for i in range(83)]
    batch = day_batch(profile, start, [], values)
    assert batch.checks[1].value == pytest.approx(83 / 92)
    assert not batch.held


def test_daily_and_monthly_must_agree_within_five_percent() -> None:
    # 30 days × 100 kWh = 3.0 MWh. Monthly 3.1 MWh: |3.0 − 3.1| / 3.1 = 3.2 % → passes;
    # monthly 3.2 MWh: 0.2 / 3.2 = 6.25 % → held.
    month = datetime(2025, 5, 31, 16, tzinfo=UTC)  # 2025-06-01 00:00 Beijing
    daily = [
        EnergyValue("electricity", month + timedelta(days=d), 100.0, "kWh", "measured")
        for d in range(30)
    ]
    ok = month_batch(
        PROFILE, month, [EnergyValue("electricity", month, 3.1, "MWh", "measured")], daily
    )
    assert not ok.held
    assert ok.checks[1].value == pytest.approx(0.1 / 3.1)
    off = month_batch(
        PROFILE, month, [EnergyValue("electricity", month, 3.2, "MWh", "measured")], daily
    )
    assert off.held and "6.25%" in off.reasons[0]
    assert off.body["quality"][1] == {  # type: ignore[index]
        "rule": "consistency",
        "item": "electricity",
        "value": "0.0625",
        "limit": "0.0500",
        "passed": False,
    }
    assert consistency_check("x", 0.0, 0.0).passed
    assert not consistency_check("x", 1.0, 0.0).passed


def test_period_starts_within_their_tolerance() -> None:
    # Daily: 30 s after midnight passes, 2 min does not. Monthly: 1 day passes either side.
    assert period_start_check(Grain.DAY, DAY + timedelta(seconds=30), CN).passed
    assert period_start_check(Grain.DAY, DAY - timedelta(seconds=30), CN).passed
    assert not period_start_check(Grain.DAY, DAY + timedelta(minutes=2), CN).passed
    july = datetime(2025, 6, 30, 16, tzinfo=UTC)  # 2025-07-01 00:00 Beijing
    assert period_start_check(Grain.MONTH, july - timedelta(minutes=30), CN).passed
    assert period_start_check(Grain.MONTH, july + timedelta(days=1), CN).passed
    assert not period_start_check(Grain.MONTH, july + timedelta(days=2), CN).passed
    assert not period_start_check(Grain.QUARTER_HOUR, DAY + timedelta(minutes=7), CN).passed
    assert period_start_check(Grain.QUARTER_HOUR, DAY + timedelta(minutes=15), CN).passed

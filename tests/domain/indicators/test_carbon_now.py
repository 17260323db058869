"""Carbon now: the newest calculated hour as an hourly rate (domain/indicators/live.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from carbonflow.domain.indicators.live import RECENT_SLOTS, SLOT_H, carbon_now

T = datetime(2026, 11, 23, 5, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Slot:
    period_start: datetime
    energy_tce: float
    zero_carbon_tce: float
    tco2e_location: float
    tco2e_market: float
    completeness: float = 1.0
    scope2_location_tco2e: float = 0.0
    scope2_market_tco2e: float = 0.0


def slot(minute: int, tco2e: float, energy: float, zero: float, completeness: float = 1.0) -> Slot:
    return Slot(T + timedelta(minutes=minute), energy, zero, tco2e, tco2e / 2, completeness)


def test_the_newest_four_slots_as_an_hourly_rate() -> None:
    assert (RECENT_SLOTS, SLOT_H) == (4, 0.25)
    points = [
        slot(-15, 9.0, 9.0, 0.0),  # older than the newest hour: left out
        slot(0, 0.5, 1.0, 0.25),
        slot(15, 0.6, 1.0, 0.25),
        slot(30, 0.4, 1.0, 0.25, completeness=0.5),
        slot(45, 0.5, 1.0, 0.25),
    ]
    now = carbon_now(points)
    assert (now.window_start, now.window_end, now.slots) == (T, T + timedelta(hours=1), 4)
    # 0.5 + 0.6 + 0.4 + 0.5 = 2.0 tCO2e over 4 × 0.25 h; market-based is half of it.
    assert now.tco2e_location == 2.0 and now.emission_rate_location_tco2e_h == 2.0
    assert now.tco2e_market == 1.0 and now.emission_rate_market_tco2e_h == 1.0
    # 4 × 0.25 tce of 4 × 1.0 tce is zero-carbon.
    assert (now.energy_tce, now.zero_carbon_tce, now.zero_carbon_share) == (4.0, 1.0, 0.25)
    assert now.completeness == 3.5 / 4


def test_fewer_slots_and_none() -> None:
    # Two slots (half an hour): 1.1 tCO2e / 0.5 h = 2.2 tCO2e/h.
    half = carbon_now([slot(0, 0.5, 1.0, 0.0), slot(15, 0.6, 1.0, 0.0)])
    assert half.slots == 2 and half.emission_rate_location_tco2e_h == pytest.approx(2.2)
    assert half.window_end == T + timedelta(minutes=30)
    nothing = carbon_now([])
    assert nothing.slots == 0 and nothing.window_start is None
    assert nothing.emission_rate_location_tco2e_h is None and nothing.completeness is None
    # No energy: no share (not a division by zero).
    assert carbon_now([slot(0, 0.0, 0.0, 0.0)]).zero_carbon_share is None


def test_the_budgets_consume_energy_and_market_based_co2() -> None:
    from carbonflow.domain.flows.graph import COMPONENTS
    from carbonflow.domain.indicators.kpis import BUDGET_COMPONENT

    assert BUDGET_COMPONENT == {"energy_tce": "energy_tce", "co2_t": "co2_t_market"}
    assert set(BUDGET_COMPONENT.values()) <= set(COMPONENTS)


def test_the_running_quarter_hour_is_left_out() -> None:
    # Newest reading at 05:55: the slot 05:45–06:00 is running (10 of 15 min) and would read
    # 1/3 low; the hour is 04:45–05:45 instead: 0.4 + 0.5 + 0.6 + 0.4 = 1.9 tCO2e/h.
    points = [
        slot(-15, 0.4, 1.0, 0.0), slot(0, 0.5, 1.0, 0.0), slot(15, 0.6, 1.0, 0.0),
        slot(30, 0.4, 1.0, 0.0), slot(45, 0.2, 1.0, 0.0),
    ]  # fmt: skip
    now = carbon_now(points, complete_before=T + timedelta(minutes=55))
    assert (now.window_start, now.window_end) == (
        T - timedelta(minutes=15),
        T + timedelta(minutes=45),
    )
    assert now.emission_rate_location_tco2e_h == pytest.approx(1.9)
    # At 06:00 exactly the 05:45 slot is complete and counts.
    at_six = carbon_now(points, complete_before=T + timedelta(hours=1))
    assert at_six.window_end == T + timedelta(hours=1)
    assert at_six.emission_rate_location_tco2e_h == pytest.approx(1.7)  # 0.5+0.6+0.4+0.2


def test_a_net_exporting_hour_is_never_a_negative_rate() -> None:
    # Scope 1 is 0.2 t, scope 2 −0.6 t (the PV park exported more than it imported): the raw
    # sum −0.4 t would be a negative rate. Settled: scope 2 = 0 → 0.2 t over 0.25 h
    # = 0.8 tCO2e/h, and the 0.6 t offset is shown apart.
    exporting = Slot(T, 1.0, 1.0, -0.4, -0.4, 1.0, -0.6, -0.6)
    now = carbon_now([exporting])
    assert now.emission_rate_location_tco2e_h == pytest.approx(0.8)
    assert now.emission_rate_market_tco2e_h == pytest.approx(0.8)
    assert now.net_export_tco2e_location == pytest.approx(0.6)
    assert now.tco2e_location == pytest.approx(0.2)
    # An importing hour has no offset.
    assert carbon_now([slot(0, 0.5, 1.0, 0.0)]).net_export_tco2e_location == 0.0

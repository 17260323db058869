"""The devices behind ledger lines (carbonflow.domain.ledger.devices), worked by hand."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from carbonflow.domain.ledger.devices import (
    DeviceMeter,
    device_row,
    feeds,
    line_shares,
    meters_of,
)
from carbonflow.domain.ledger.document import rounded

T0 = datetime(2025, 4, 30, 16, tzinfo=UTC)
# A grid meter with a CT×PT ratio of 100 over a 30-day month (2 880 intervals of 15 min):
# 2 000 measured intervals (7 000 kWh), 80 estimated (300 kWh), 800 without data.
GRID = DeviceMeter(
    "grid-1", "grid_import", "electricity", "plant-co", "energy_import_kwh", "counter", "kWh",
    100.0, serials=("SN-1", "SN-2"), opening=1000.0, opening_at=T0, closing=1073.0,
    closing_at=T0, readings=2100, intervals={"measured": (2000, 7000.0), "estimated": (80, 300.0)},
    expected_intervals=2880,
)  # fmt: skip
PV = DeviceMeter(
    "pv-1", "generation_pv", "electricity", "plant-co", "energy_export_kwh", "interval", "kWh",
    1.0, intervals={"measured": (2880, 500.0)}, expected_intervals=2880,
)  # fmt: skip


def test_quantity_and_quality_shares() -> None:
    assert GRID.quantity == 7300.0
    # 2000/2880 = 0.69444…, 80/2880 = 0.02777…, the rest 800/2880 = 0.27777…
    assert GRID.shares() == pytest.approx((2000 / 2880, 80 / 2880, 800 / 2880))
    # Two meters pooled: (2000 + 2880) measured of 5760 intervals.
    assert line_shares([GRID, PV]) == pytest.approx((4880 / 5760, 80 / 5760, 800 / 5760))
    assert line_shares([]) is None
    assert (
        DeviceMeter("x", "grid_import", "electricity", None, "m", "counter", "kWh", 1).shares()
        is None
    )


def test_which_meters_feed_which_line() -> None:
    meters = [PV, GRID]
    assert meters_of(meters, "purchased_electricity", "electricity") == [GRID]
    assert meters_of(meters, "green_electricity", "electricity") == [GRID]
    assert meters_of(meters, "self_generation", "electricity") == [PV]
    assert meters_of(meters, "purchased_electricity", "heat") == []


def test_a_device_feeds_lines_by_its_role_and_carrier() -> None:
    # What the API decides before reading a device's registers (services/api/reads.py).
    assert feeds("grid_import", "electricity", "purchased_electricity", "electricity")
    assert not feeds("grid_import", "electricity", "purchased_electricity", "heat")
    assert not feeds("consumption", "electricity", "purchased_electricity", "electricity")
    assert feeds("methane_flared", "coal_mine_methane", "flaring", "coal_mine_methane")
    assert GRID.feeds("green_electricity", "electricity") and not PV.feeds("process", "electricity")


def test_device_row_registers_and_booking() -> None:
    line = {"category": "purchased_electricity", "carrier": "electricity", "scope": "scope_2"}
    row = device_row(GRID, line, None, rounded)
    assert row["serials"] == "SN-1, SN-2" and row["booking"] == "own"
    # (1073 − 1000) × 100 = 7 300 kWh: the register difference times the ratio
    assert (row["closing_reading"] - row["opening_reading"]) * row["multiplier"] == row[
        "device_quantity"
    ]
    assert row["measured_share"] == rounded(2000 / 2880) and row["missing_share"] == rounded(
        800 / 2880
    )
    # The site's grid meter on another organisation's ledger is its attributed share.
    assert device_row(GRID, line, "data-centre", rounded)["booking"] == "attributed_share"
    # An interval meter has no registers.
    interval = device_row(PV, {**line, "category": "self_generation"}, None, rounded)
    assert interval["opening_reading"] is None and interval["device_quantity"] == 500.0

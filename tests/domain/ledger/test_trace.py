"""Traces of ledger lines and indicators (carbonflow.domain.ledger.trace), worked by hand."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from carbonflow.domain.ledger.devices import DeviceMeter
from carbonflow.domain.ledger.trace import (
    device_trace,
    indicator_inputs,
    line_id,
    line_ids,
    parse_line_id,
    readings_summary,
    trace_indicator,
    trace_line,
)
from tests.domain.ledger.test_devices import GRID, PV, T0
from tests.domain.ledger.test_document import INPUTS

LINE = "purchased_electricity.electricity.scope_2"
# A methane drainage meter the mine's fugitive line reads: 96 measured intervals of 30 days.
DRAINED = DeviceMeter(
    "drain-1", "methane_drained", "coal_mine_methane", None, "ch4_volume_nm3", "interval", "Nm3",
    1.0, readings=97, first_reading_at=T0, last_reading_at=T0 + timedelta(hours=24),
    intervals={"measured": (96, 700.0)}, expected_intervals=2880,
)  # fmt: skip
GRID_READ = replace(
    GRID, first_reading_at=T0 + timedelta(minutes=3), last_reading_at=T0 + timedelta(days=29)
)
METERED = replace(INPUTS, meters=(GRID_READ, PV, DRAINED))


def test_line_ids_name_the_activity_lines() -> None:
    assert line_id("purchased_electricity", "electricity", "scope_2") == LINE
    assert parse_line_id(LINE) == ("purchased_electricity", "electricity", "scope_2")
    for bad in ("purchased_electricity.electricity", "a.b.scope_4", "A.b.scope_1", "a.b.c.d"):
        assert parse_line_id(bad) is None, bad
    assert line_ids(INPUTS) == [
        "fugitive.coal_mine_methane.scope_1", "purchased_electricity.electricity.scope_2",
    ]  # fmt: skip


def test_a_device_counts_its_readings_and_intervals_by_quality() -> None:
    row = {"category": "purchased_electricity", "carrier": "electricity", "scope": "scope_2"}
    traced = device_trace(GRID_READ, row, None)
    # 2 100 readings from 00:03 on the 1st to the 30th; of 2 880 intervals 2 000 measured,
    # 80 estimated (gap-filled), 2 880 − 2 000 − 80 = 800 without data.
    assert traced["readings"] == {
        "count": 2100, "unit": "reading", "first_at": "2025-04-30T16:03:00+00:00",
        "last_at": "2025-05-29T16:00:00+00:00",
    }  # fmt: skip
    assert traced["intervals"] == {
        "unit": "15-min interval", "expected": 2880, "measured": 2000, "estimated": 80,
        "missing": 800,
    }  # fmt: skip
    assert traced["device_quantity"] == 7300.0 and traced["serials"] == "SN-1, SN-2"
    # Together: 2 100 + 97 readings; the first and last of either.
    assert readings_summary([GRID_READ, DRAINED]) == {
        "count": 2197, "unit": "reading", "first_at": T0.isoformat(),
        "last_at": "2025-05-29T16:00:00+00:00",
    }  # fmt: skip
    assert readings_summary([])["first_at"] is None


def test_a_line_traces_to_its_meters_factors_and_gwp() -> None:
    traced = trace_line(METERED, LINE)
    assert traced is not None
    # The grid meter feeds purchased electricity; the PV meter does not.
    assert [d["device_id"] for d in traced["devices"]] == ["grid-1"]
    assert traced["line"]["quantity"] == 12.5 and traced["line"]["unit"] == "MWh"
    # Both views' factors: the location grid factor and the market residual mix.
    assert {f["factor_key"] for f in traced["factors"]} == {
        "electricity.mee_nbs.province.shanxi.average.2023", "electricity.residual.2023",
    }  # fmt: skip
    assert traced["gwp"] == [
        {"gas": "CO2", "gwp_key": "co2", "gwp_set": None, "gwp": 1.0, "unit": "tCO2e/t"}
    ]
    # 7.12875 t location + 6.096 t market, one row each
    assert sorted(r["tco2e"] for r in traced["emissions"]) == [6.096, 7.12875]
    methane = trace_line(METERED, "fugitive.coal_mine_methane.scope_1")
    assert methane is not None
    assert methane["gwp"] == [
        {"gas": "CH4", "gwp_key": "gwp.ch4.ar5", "gwp_set": "ar5", "gwp": 28.0, "unit": "tCO2e/t"}
    ]
    assert [d["device_id"] for d in methane["devices"]] == ["drain-1"]
    assert trace_line(METERED, "process.carbonate.scope_1") is None
    assert trace_line(METERED, "not a line") is None


def test_an_indicator_traces_to_the_inventory_or_the_roles_it_reads() -> None:
    assert indicator_inputs("co2_per_energy").inventory
    assert indicator_inputs("methane_utilisation_rate").roles >= {"methane_drained"}
    assert indicator_inputs("product_intensity.widget").inventory  # not listed: the inventory
    drainage = trace_indicator(METERED, "methane_drainage_rate")
    # Volumes only: no inventory line, no factor, the drainage meter.
    assert drainage["lines"] == [] and drainage["factors"] == [] and not drainage["inventory"]
    assert [d["device_id"] for d in drainage["devices"]] == ["drain-1"]
    assert drainage["devices"][0]["category"] is None  # read directly, under no ledger line
    energy = trace_indicator(METERED, "co2_per_energy")
    assert energy["lines"] == line_ids(INPUTS) and energy["energy_tce"] == 1.53625
    assert [(d["device_id"], d["category"]) for d in energy["devices"]] == [
        ("drain-1", "fugitive"), ("grid-1", "purchased_electricity"),
    ]  # fmt: skip
    assert energy["readings"]["count"] == 2197
    assert trace_indicator(METERED, "low_carbon_vehicle_share")["devices"] == []

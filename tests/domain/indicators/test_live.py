"""Live values from latest readings (carbonflow/domain/indicators/live.py): multipliers, freshness,
sums."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from carbonflow.domain.indicators.live import (
    LatestValue,
    LiveState,
    PowerGroup,
    applied_multiplier,
    device_freshness,
    electricity_now,
    freshness,
    methane_now,
    power_now,
    site_state,
    stale_limit_s,
    true_value,
)

NOW = datetime(2026, 11, 23, 6, 15, tzinfo=UTC)
STALE_S = 900.0


def _v(
    device: str,
    metric: str,
    value: float | None,
    *,
    age_s: float | None = 5.0,
    role: str = "grid_import",
    carrier: str = "electricity",
    multiplier: float = 1.0,
) -> LatestValue:
    ts = None if age_s is None else NOW - timedelta(seconds=age_s)
    return LatestValue(device, carrier, role, metric, ts, None if ts is None else value, multiplier)


def test_multiplier_applies_to_power_and_flow_not_to_concentration() -> None:
    # A 10 kV feeder with CT 600/5 and PT 10 kV/100 V: 120 × 100 = 12 000.
    assert true_value("power_kw", 1.04, 12_000) == pytest.approx(12_480.0)  # 1.04 × 12 000
    assert true_value("mixture_flow_nm3_min", 80.0, 2.0) == pytest.approx(160.0)
    assert true_value("ch4_pct", 32.0, 2.0) == pytest.approx(32.0)
    assert applied_multiplier("air_temp_degc", 5.0) == 1.0


def test_power_now_sums_fresh_gauges_by_carrier_and_role() -> None:
    values = [
        _v("grid-line-1", "power_kw", 0.05, multiplier=132_000),  # 0.05 × 132 000 = 6 600 kW
        _v("grid-line-2", "power_kw", 0.04, multiplier=132_000),  # 0.04 × 132 000 = 5 280 kW
        _v("pv-a", "power_kw", 0.1, multiplier=28_000, role="generation_pv"),  # 2 800 kW
        _v("pv-b", "power_kw", 0.2, multiplier=28_000, role="generation_pv", age_s=901),  # stale
        _v("pv-c", "power_kw", None, role="generation_pv", age_s=None),  # never reported
        _v("grid-line-1", "energy_import_kwh", 123.0),  # not a power gauge
        _v("boiler-heat", "power_kw", 900.0, carrier="heat", role="generation_heat"),
    ]
    groups = {(g.carrier, g.role): g for g in power_now(values, NOW, STALE_S)}
    assert list(groups) == [
        ("electricity", "generation_pv"),
        ("electricity", "grid_import"),
        ("heat", "generation_heat"),
    ]
    grid = groups[("electricity", "grid_import")]
    assert grid.power_kw == pytest.approx(11_880.0)  # 6 600 + 5 280
    assert (grid.devices, grid.devices_reporting, grid.stale_device_ids) == (2, 2, ())
    pv = groups[("electricity", "generation_pv")]
    assert pv.power_kw == pytest.approx(2_800.0)  # only pv-a is fresh
    assert (pv.devices, pv.devices_reporting, pv.stale_device_ids) == (3, 1, ("pv-b", "pv-c"))
    assert pv.newest_ts == NOW - timedelta(seconds=5)
    assert groups[("heat", "generation_heat")].power_kw == pytest.approx(900.0)


def test_power_now_at_the_freshness_limit_and_with_nothing() -> None:
    exactly = [_v("m", "power_kw", 10.0, age_s=STALE_S)]  # 900 s old: still fresh (≤)
    assert power_now(exactly, NOW, STALE_S)[0].power_kw == 10.0
    assert power_now([], NOW, STALE_S) == ()
    silent = power_now([_v("m", "power_kw", None, age_s=None)], NOW, STALE_S)[0]
    assert (silent.power_kw, silent.devices_reporting, silent.newest_ts) == (0.0, 0, None)


def _gas(device: str, role: str, flow: float, pct: float, **kw: object) -> list[LatestValue]:
    return [
        _v(device, "mixture_flow_nm3_min", flow, role=role, carrier="coal_mine_methane", **kw),  # type: ignore[arg-type]
        _v(device, "ch4_pct", pct, role=role, carrier="coal_mine_methane", **kw),  # type: ignore[arg-type]
    ]


def test_methane_now_pure_ch4_by_role_and_rates() -> None:
    values = [
        # drained: 160 × 32 % = 51.2 and 140 × 12 % = 16.8 → 68.0 Nm³/min CH4
        *_gas("drainage-high", "methane_drained", 160.0, 32.0),
        *_gas("drainage-low", "methane_drained", 140.0, 12.0),
        # utilised on site: 85 × 32 % = 27.2; sold: 10 × 40 % = 4.0 → 31.2
        *_gas("to-engines", "methane_utilised", 85.0, 32.0),
        *_gas("to-town", "methane_sold", 10.0, 40.0),
        # flared 60 × 12 % = 7.2; vented 180 × 16 % = 28.8
        *_gas("flare", "methane_flared", 60.0, 12.0),
        *_gas("vent", "methane_vented", 180.0, 16.0),
        # ventilation air: 12 000 × 0.35 % = 42 and 8 000 × 0.30 % = 24 → 66
        _v("shaft-n", "air_flow_nm3_min", 12_000, role="methane_ventilation"),
        _v("shaft-n", "ch4_pct", 0.35, role="methane_ventilation"),
        _v("shaft-s", "air_flow_nm3_min", 8_000, role="methane_ventilation"),
        _v("shaft-s", "ch4_pct", 0.30, role="methane_ventilation"),
        _v("grid", "power_kw", 5.0),  # ignored
    ]
    m = methane_now(values, NOW, STALE_S)
    assert m is not None
    assert m.drained_ch4_nm3_min == pytest.approx(68.0)
    assert m.utilised_ch4_nm3_min == pytest.approx(31.2)
    assert m.flared_ch4_nm3_min == pytest.approx(7.2)
    assert m.vented_ch4_nm3_min == pytest.approx(28.8)
    assert m.ventilation_ch4_nm3_min == pytest.approx(66.0)
    # utilisation 31.2 / 68.0 = 0.45882; drainage 68 / (68 + 66) = 0.50746
    assert m.utilisation_rate == pytest.approx(31.2 / 68.0)
    assert m.drainage_rate == pytest.approx(68.0 / 134.0)
    drained = m.flows[0]
    assert drained.role == "methane_drained"
    assert drained.gas_flow_nm3_min == pytest.approx(300.0)  # 160 + 140
    assert (drained.devices, drained.devices_reporting) == (2, 2)
    assert [f.role for f in m.flows] == [
        "methane_drained",
        "methane_utilised",
        "methane_sold",
        "methane_flared",
        "methane_vented",
        "methane_ventilation",
    ]


def test_methane_devices_without_fresh_or_valid_concentration_are_unmeasured() -> None:
    values = [
        *_gas("ok", "methane_drained", 100.0, 30.0),  # 30 Nm³/min CH4
        *_gas("stale", "methane_drained", 100.0, 30.0, age_s=1000),
        _v("no-pct", "mixture_flow_nm3_min", 50.0, role="methane_drained"),
        *_gas("bad-pct", "methane_drained", 100.0, 130.0),  # a broken sensor: > 100 %
    ]
    m = methane_now(values, NOW, STALE_S)
    assert m is not None
    flow = m.flows[0]
    assert flow.ch4_flow_nm3_min == pytest.approx(30.0)
    assert flow.devices == 4 and flow.devices_reporting == 1
    assert flow.unmeasured_device_ids == ("bad-pct", "no-pct", "stale")
    # Nothing utilised and no ventilation shafts: utilisation 0 / 30 = 0; drainage 30 / 30 = 1.
    assert m.utilisation_rate == 0.0 and m.drainage_rate == 1.0


def test_methane_rates_undefined_without_drainage_and_none_without_devices() -> None:
    m = methane_now(_gas("vent", "methane_vented", 10.0, 10.0), NOW, STALE_S)
    assert m is not None and m.utilisation_rate is None and m.drainage_rate is None
    assert methane_now([_v("grid", "power_kw", 5.0)], NOW, STALE_S) is None


def test_freshness_counts() -> None:
    values = [
        _v("a", "power_kw", 1.0),
        _v("a", "energy_import_kwh", 1.0, age_s=3600),
        _v("b", "power_kw", None, age_s=None),
    ]
    f = freshness(values, NOW, STALE_S)
    assert (f.device_metrics, f.fresh, f.stale, f.never_reported) == (3, 1, 1, 1)
    assert f.newest_ts == NOW - timedelta(seconds=5)


def test_the_stale_limit_is_three_reporting_periods_else_the_default() -> None:
    every_minute = LatestValue("m1", "electricity", "grid_import", "power_kw", NOW, 1.0, 1.0, 60.0)
    assert stale_limit_s(every_minute, STALE_S) == 180.0  # 3 × 60 s
    assert stale_limit_s(_v("m2", "power_kw", 1.0), STALE_S) == STALE_S  # undeclared: 900 s
    # 200 s old: stale for the minute meter (limit 180 s), fresh for an undeclared one.
    old = LatestValue("m1", "electricity", "grid_import", "power_kw", NOW - timedelta(seconds=200),
                      1.0, 1.0, 60.0)  # fmt: skip
    groups = power_now([old, _v("m2", "power_kw", 5.0, age_s=200)], NOW, STALE_S)
    assert groups[0].devices_reporting == 1 and groups[0].stale_device_ids == ("m1",)
    assert groups[0].power_kw == 5.0


def test_as_of_is_the_newest_reading_and_the_site_goes_stale_when_the_feed_stops() -> None:
    values = [
        _v("a", "power_kw", 1.0, age_s=30),
        _v("a", "energy_import_kwh", 9.0, age_s=10),  # the device's newest: 10 s old
        _v("b", "power_kw", 1.0, age_s=1000),  # older than 900 s
        _v("spare", "power_kw", None, age_s=None),  # never reported
    ]
    devices = {d.device_id: d for d in device_freshness(values, NOW, STALE_S)}
    assert devices["a"].newest_ts == NOW - timedelta(seconds=10) and not devices["a"].stale
    assert devices["b"].age_s == 1000 and devices["b"].stale
    assert devices["spare"].newest_ts is None and devices["spare"].stale
    assert site_state(list(devices.values())) is LiveState.PARTIAL
    # Fifteen minutes after the feed stopped nothing is fresh: stale, not live.
    later = NOW + timedelta(minutes=15)
    assert site_state(device_freshness(values, later, STALE_S)) is LiveState.STALE
    assert site_state(device_freshness(values[:2], NOW, STALE_S)) is LiveState.LIVE
    assert site_state(device_freshness(values[3:], NOW, STALE_S)) is LiveState.NO_DATA
    assert freshness(values, later, STALE_S).newest_ts == NOW - timedelta(seconds=10)


def _group(role: str, kw: float, carrier: str = "electricity") -> PowerGroup:
    return PowerGroup(carrier, role, kw, 1, 1, (), NOW, NOW)


def test_power_in_is_never_negative_and_renewable_never_exceeds_it() -> None:
    # Grid +1 000 kW, PV 400, wind 100: in 1 500, renewable 500 = 33.3 %.
    now = electricity_now(
        [_group("grid_import", 1000.0), _group("generation_pv", 400.0),
         _group("generation_wind", 100.0), _group("generation_heat", 50.0, "heat")]
    )  # fmt: skip
    assert (now.power_in_kw, now.renewable_kw, now.net_export_kw) == (1500.0, 500.0, 0.0)
    assert now.renewable_share == pytest.approx(500 / 1500)
    # A bidirectional grid meter at −300 kW while PV makes 800: export, not negative supply.
    # In 800 (PV only), renewable 800 (100 %), net export 300.
    exporting = electricity_now([_group("grid_import", -300.0), _group("generation_pv", 800.0)])
    assert (exporting.power_in_kw, exporting.renewable_kw) == (800.0, 800.0)
    assert exporting.renewable_share == 1.0
    assert (exporting.grid_export_kw, exporting.net_export_kw) == (300.0, 300.0)
    # An export register of 200 kW against 500 kW import: no net export.
    both = electricity_now([_group("grid_import", 500.0), _group("grid_export", 200.0)])
    assert (both.grid_export_kw, both.net_export_kw, both.power_in_kw) == (200.0, 0.0, 500.0)
    # Night: PV inverters draw 3 kW (−3) → 0 generation; nothing in → no share.
    night = electricity_now([_group("generation_pv", -3.0)])
    assert (night.power_in_kw, night.renewable_kw, night.renewable_share) == (0.0, 0.0, None)


def test_methane_hour_by_the_inventory_formulas() -> None:
    from carbonflow.domain.factors.library import default_library
    from carbonflow.domain.indicators.live import MethaneFlow, MethaneNow, methane_hour
    from carbonflow.domain.inventory.methane import methane_parameters

    params = methane_parameters(default_library())  # 7.17 t/10⁴ Nm³, GWP (SAR) 21, 0.98, 0.99
    flows = (
        MethaneFlow("methane_drained", 30.0, 100.0, 1, 1, ()),  # 30 % CH4
        MethaneFlow("methane_utilised", 15.0, 50.0, 1, 1, ()),
        MethaneFlow("methane_flared", 5.0, 16.0, 1, 1, ()),
        MethaneFlow("methane_vented", 10.0, 33.0, 1, 1, ()),
    )
    now = MethaneNow(flows, 30.0, 15.0, 5.0, 10.0, 70.0, 0.5, 0.3)
    hour = methane_hour(now, params)
    assert (hour.drained_ch4_nm3_h, hour.utilised_ch4_nm3_h) == (1800.0, 900.0)  # × 60
    assert (hour.flared_ch4_nm3_h, hour.vented_ch4_nm3_h) == (300.0, 600.0)
    # Vented 600 Nm³/h = 0.06 × 10⁴ Nm³ × 7.17 = 0.4302 tCH4/h × 21 = 9.0342 tCO2e/h.
    assert hour.vented_tco2e_h == pytest.approx(9.0342)
    # Flared 300 Nm³/h → 0.2151 tCH4 × 44/16 × 0.98 = 0.579692 tCO2/h.
    assert hour.flared_tco2e_h == pytest.approx(0.2151 * 44 / 16 * 0.98)
    # Utilised on site 900 Nm³/h → 0.6453 tCH4 × 44/16 × 0.99 = 1.756829 tCO2/h.
    assert hour.utilised_tco2e_h == pytest.approx(0.6453 * 44 / 16 * 0.99)
    # Drained 1 800 Nm³/h if released: 1.2906 tCH4 × 21 = 27.1026 tCO2e/h.
    assert hour.drained_tco2e_h == pytest.approx(27.1026)
    assert hour.drained_ch4_pct == pytest.approx(30.0)  # 30 ÷ 100 Nm³/min

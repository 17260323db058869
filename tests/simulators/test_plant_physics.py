"""Physical plausibility of the simulated sites: sun, PV, wind, shifts, mine and park physics."""

from __future__ import annotations

import math
from datetime import datetime
from functools import cache
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from carbonflow.domain.site.model import SiteDocument
from carbonflow.sites.loader import EXAMPLES, load_site_file
from simulators.assumptions import default_assumptions
from simulators.clock import make_calendar
from simulators.plant import ChunkTruth, SitePlant, hint
from simulators.profiles import CalendarKind, Profile, parse_shift_pattern, production_days
from simulators.randomness import AR1, stream
from simulators.weather import (
    Weather,
    expected_wind_fraction,
    pv_power_kw,
    solar_position,
    wind_power_fraction,
)

TZ = ZoneInfo("Asia/Shanghai")
A = default_assumptions()


@cache
def site(name: str) -> SiteDocument:
    return load_site_file(EXAMPLES / f"{name}.yaml")


@cache
def month(name: str, first: str = "2026-10-01", step_s: float = 900.0, days: int = 31):
    """(calendar arrays, truth per device) of a month, concatenated over daily chunks."""
    doc = site(name)
    plant = SitePlant(doc, seed=5, step_s=step_s)
    start = datetime.fromisoformat(first).replace(tzinfo=TZ).timestamp()
    per_day = round(86400 / step_s)
    cals, truths = [], []
    for day in range(days):
        cal = make_calendar(start + day * 86400, per_day, step_s, TZ, A.calendar)
        cals.append(cal)
        truths.append(plant.advance(cal))
    return cals, truths


def series(truths: list[ChunkTruth], device: str, metric: str, gauge: bool = False):
    parts = [(t[device].gauges if gauge else t[device].quantities)[metric] for t in truths]
    return np.concatenate(parts)


def calendar_of(cals, field: str):
    return np.concatenate([getattr(c, field) for c in cals])


# --- sun, PV, wind ------------------------------------------------------------------------------


def test_sun_at_equinox_noon_stands_at_ninety_minus_latitude() -> None:
    # 2026-03-20, 112.7 °E: solar noon ≈ 12:00 − 112.7 × 4 min − 7.5 min (equation of time)
    # = 04:21 UTC; zenith = latitude − declination ≈ 37.7° − 0°.
    noon = datetime.fromisoformat("2026-03-20T04:22:00+00:00").timestamp()
    times = noon + np.arange(-30, 31, 1, dtype=np.float64) * 60.0
    cos_z, _decl, _ha = solar_position(times, 37.7, 112.7)
    zenith_deg = math.degrees(math.acos(cos_z.max()))
    assert zenith_deg == pytest.approx(37.7, abs=1.0)


def test_pv_is_zero_at_night_and_never_above_capacity() -> None:
    cals, truths = month("inner-mongolia-park", "2026-06-10", step_s=60.0, days=3)
    cos_z = np.concatenate([solar_position(c.mid_s, 39.6, 109.8)[0] for c in cals])
    for block in ("pv-block-1", "pv-block-4"):
        power = series(truths, block, "power_kw", gauge=True)
        assert np.all(power[cos_z <= 0] == 0.0)  # night: exactly nothing
        assert power.max() <= 37_500  # kWp of the block
        assert power.max() > 0.6 * 37_500  # a June noon gets near it
    energy = series(truths, "pv-block-1", "energy_export_kwh")
    assert np.allclose(energy, series(truths, "pv-block-1", "power_kw", gauge=True) / 60.0)


def test_pv_yield_per_kwp_matches_the_site_files() -> None:
    """Fixed-tilt yield of a year, hourly: ≈ 1,350 kWh/kWp (Shanxi), ≈ 1,600 (Ordos)."""
    for province, lat, lon, low, high in (
        ("shanxi", 37.7, 112.7, 1200, 1500),
        ("inner_mongolia", 39.6, 109.8, 1450, 1750),
    ):
        weather = Weather(stream(3, province), 3600.0, lat, lon, A.climate(province), A.physics)
        start = datetime(2026, 1, 1, tzinfo=TZ).timestamp()
        cal = make_calendar(start, 8760, 3600.0, TZ, A.calendar)
        wx = weather.advance(cal)
        kwh_per_kwp = pv_power_kw(1.0, wx.poa_w_m2, wx.air_temp_degc, A.physics).sum()
        assert low <= kwh_per_kwp <= high, (province, kwh_per_kwp)
        winter = wx.air_temp_degc[cal.month == 1].mean()
        summer = wx.air_temp_degc[cal.month == 7].mean()
        assert winter < 0.0
        assert summer > 15.0


def test_wind_power_curve_and_capacity_factor() -> None:
    physics = A.physics
    speeds = np.array([0.0, 2.9, 3.0, 7.5, 12.0, 20.0, 25.0, 30.0])
    frac = wind_power_fraction(speeds, physics)
    assert frac.tolist()[:3] == [0.0, 0.0, 0.0]
    assert frac[3] == pytest.approx((7.5**3 - 27) / (12**3 - 27))
    assert frac.tolist()[4:] == [1.0, 1.0, 0.0, 0.0]  # rated to cut-out, then stopped
    # The Ordos wind farm: ≈ 2,400 full-load hours a year (27 %) before availability losses.
    cf = expected_wind_fraction(A.climate("inner_mongolia").wind_mean_m_s_hub, physics)
    assert 0.24 <= cf <= 0.33
    _cals, truths = month("inner-mongolia-park", "2026-03-01", days=31)
    power = series(truths, "wind-line-1", "power_kw", gauge=True)
    assert power.min() >= 0.0 and power.max() <= 40_000
    assert 0.15 <= power.mean() / 40_000 <= 0.45


def test_ar1_is_the_same_chunked_or_in_one_call() -> None:
    whole = AR1(stream(9, "x"), 60.0, 3600.0).next(5000)
    chunked = AR1(stream(9, "x"), 60.0, 3600.0)
    parts = np.concatenate([chunked.next(n) for n in (1, 999, 3000, 1000)])
    assert np.allclose(whole, parts)
    assert abs(whole.std() - 1.0) < 0.3


# --- shifts and calendars -----------------------------------------------------------------------


def test_four_six_shifts_give_twenty_hours_of_hoisting_per_day() -> None:
    pattern = parse_shift_pattern("4x6")
    assert pattern.equivalent_hours_per_day == pytest.approx(20.0)  # 18 h + 6 h × 1/3
    hours = np.array([3.0, 9.0, 15.0, 21.0, 6.0])
    # 06:00 opens the maintenance shift (1/3) at a handover (× 0.5): 1/6
    assert pattern.factor(hours).tolist() == pytest.approx([1.0, 1 / 3, 1.0, 1.0, 1 / 6])
    with pytest.raises(ValueError, match="shift pattern"):
        parse_shift_pattern("5x6")


def test_mines_stop_at_the_spring_festival_and_on_maintenance_days() -> None:
    start = datetime(2026, 2, 1, tzinfo=TZ).timestamp()
    cal = make_calendar(start, 28 * 24, 3600.0, TZ, A.calendar)
    producing = production_days(cal, CalendarKind.MINE, A.calendar)
    by_day = dict(zip(cal.day.tolist(), producing.tolist(), strict=False))
    # Spring Festival 2026-02-17: idle 14th–25th; the 10th and the 25th are maintenance days.
    assert [d for d in range(1, 29) if not by_day[d]] == [10, *range(14, 26)]


def test_profiles_average_one_over_their_active_time() -> None:
    for name in ("office", "heating_season", "cooling", "ev_charging", "production_shift"):
        profile = Profile(name, "4x6", CalendarKind.MINE, TZ, A.calendar, A.climate("shanxi"))
        start = datetime(2025, 1, 1, tzinfo=TZ).timestamp()
        cal = make_calendar(start, 8760, 3600.0, TZ, A.calendar)
        from simulators.weather import deterministic_temperature

        temp = deterministic_temperature(cal, A.climate("shanxi"))
        shape, active = profile.shape(cal, temp), profile.active(cal, temp)
        assert shape[active].mean() == pytest.approx(1.0, rel=1e-9), name
        assert shape.min() >= 0.0


# --- the mine -----------------------------------------------------------------------------------


@cache
def mine_month():
    return month("shanxi-mine", "2026-10-01")


def test_mine_electricity_per_tonne_is_in_its_range() -> None:
    """GB 29444 production system ÷ raw coal: the site file aims at ≈ 17 kWh/t (15–25)."""
    doc = site("shanxi-mine")
    _cals, truths = mine_month()
    nodes = {n.id: n for n in doc.nodes}
    kwh = sum(
        series(truths, d.id, "energy_import_kwh").sum()
        for d in doc.devices
        if d.carrier.value == "electricity"
        and d.role.value == "consumption"
        and nodes[d.node or ""].production_system
    )
    raw_t = series(truths, "raw-coal-scale", "output_t").sum()
    # October: 29 production days × 20 h × 1,800 t/h × 84 % ≈ 877,000 t
    assert 800_000 <= raw_t <= 950_000
    assert 15.0 <= kwh / raw_t <= 25.0


def test_hoist_draws_power_when_coal_is_hoisted() -> None:
    cals, truths = month("shanxi-mine", "2026-10-09", step_s=60.0, days=3)
    coal_t_h = series(truths, "raw-coal-scale", "output_rate_t_h", gauge=True)
    hoist_kw = series(truths, "main-hoist", "power_kw", gauge=True)
    assert np.corrcoef(coal_t_h, hoist_kw)[0, 1] > 0.8
    day = calendar_of(cals, "day")
    idle = day == 10  # a maintenance day: no coal, the hoist at standby
    assert coal_t_h[idle].max() == 0.0
    # standby: 8 % of 9,000 kW = 720 kW (± noise), against ≈ 3,400 kW while hoisting
    assert hoist_kw[idle].mean() == pytest.approx(720, rel=0.1)
    assert hoist_kw[~idle].mean() > 4 * hoist_kw[idle].mean()


def test_methane_balance_closes_and_utilisation_is_within_the_configuration() -> None:
    doc = site("shanxi-mine")
    _cals, truths = mine_month()

    def ch4(device: str) -> float:
        return float(series(truths, device, "ch4_nm3").sum())

    drained = ch4("drainage-high") + ch4("drainage-low")
    used = ch4("methane-to-engines") + ch4("methane-to-boiler")
    flared, vented = ch4("flare"), ch4("methane-vent")
    # every Nm³ drained is used, flared or vented
    assert used + flared + vented == pytest.approx(drained, rel=1e-9)
    # The configuration (sim hints): engines 85 Nm³/min × 32 % = 27.2, boiler 25 × 32 % = 8
    # of 160 × 32 % + 140 × 12 % = 68 Nm³/min pure CH4 → 40 % (engines) … 52 % (with boiler).
    by_id = {d.id: d for d in doc.devices}

    def pure(device: str) -> float:
        d = by_id[device]
        return (hint(d, "rated_flow_nm3_min") or 0) * (hint(d, "ch4_pct_mean") or 0) / 100

    configured_low = pure("methane-to-engines") / (pure("drainage-high") + pure("drainage-low"))
    configured_high = (pure("methane-to-engines") + pure("methane-to-boiler")) / (
        pure("drainage-high") + pure("drainage-low")
    )
    assert configured_low == pytest.approx(0.4, abs=0.01)
    assert 0.85 * configured_low <= used / drained <= 1.1 * configured_high
    # drainage rate ≈ 50 % (the site file: ventilation ~66, drained ~68 Nm³/min)
    ventilation = ch4("vent-shaft-north") + ch4("vent-shaft-south")
    assert 0.4 <= drained / (drained + ventilation) <= 0.6


def test_gas_engines_output_follows_the_gas_they_burn() -> None:
    _cals, truths = mine_month()
    gas_ch4_nm3 = series(truths, "methane-to-engines", "ch4_nm3")
    kwh = sum(series(truths, f"gas-engine-{i}", "energy_export_kwh") for i in range(1, 5))
    # 1 Nm³ CH4 × 35.8 MJ × 38 % / 3.6 MJ/kWh = 3.779 kWh
    ratio = kwh.sum() / gas_ch4_nm3.sum()
    assert ratio == pytest.approx(35.8 * 0.38 / 3.6, rel=0.01)
    assert np.corrcoef(gas_ch4_nm3, kwh)[0, 1] > 0.99


def test_heat_only_in_the_heating_season_and_heat_pumps_run_at_their_cop() -> None:
    cals, truths = mine_month()
    heating = calendar_of(cals, "heating_season")  # from 15 October
    heat = series(truths, "heat-pumps-heat", "heat_gj")
    power = series(truths, "heat-pumps-power", "energy_import_kwh")
    assert heat[~heating].sum() == 0.0 and heat[heating].sum() > 0
    # COP from the hints: 12,600 kW × 25 % ÷ (3,600 kW × 25 %) = 3.5; 1 kWh = 0.0036 GJ
    assert heat[heating].sum() / 0.0036 / power[heating].sum() == pytest.approx(3.5, rel=1e-6)


def test_washed_coal_leaves_in_train_batches() -> None:
    _cals, truths = mine_month()
    loaded = series(truths, "washed-coal-scale", "output_t")
    total = loaded.sum()
    assert total == pytest.approx(round(total / 4000) * 4000, abs=4000)  # whole trains ± one
    assert loaded.max() <= 1200 * 0.25 + 1e-9  # the scale's 1,200 t/h over 15 min


# --- the park -----------------------------------------------------------------------------------


@cache
def park_days():
    return month("inner-mongolia-park", "2026-05-01", step_s=300.0, days=7)


def test_storage_charges_at_midday_and_discharges_in_the_evening() -> None:
    cals, truths = park_days()
    hour = calendar_of(cals, "local_hour")
    for unit in ("bess-1", "bess-2"):
        charge = series(truths, unit, "energy_charge_kwh")
        discharge = series(truths, unit, "energy_discharge_kwh")
        soc = series(truths, unit, "soc_pct", gauge=True)
        assert np.all((charge == 0) | ((hour >= 9) & (hour < 16)))
        assert np.all((discharge == 0) | ((hour >= 17) & (hour < 23)))
        assert charge.sum() > 0 and discharge.sum() > 0
        assert soc.min() >= 5.0 - 1e-9 and soc.max() <= 95.0 + 1e-9


def test_grid_meters_carry_the_balance_and_incomers_their_submeters() -> None:
    doc = site("inner-mongolia-park")
    _cals, truths = park_days()
    loss = A.physics.substation_loss_fraction

    def kwh(device: str, metric: str = "energy_import_kwh"):
        return series(truths, device, metric)

    grid = sum(kwh(g) - kwh(g, "energy_export_kwh") for g in ("grid-line-1", "grid-line-2"))
    loads = sum(
        kwh(d)
        for d in ("cathode-incomer-1", "cathode-incomer-2", "dc-incomer-a", "dc-incomer-b",
                  "logistics-incomer", "park-services-power", "heat-recovery-power")
    )  # fmt: skip
    generation = sum(
        kwh(g, "energy_export_kwh")
        for g in ("pv-block-1", "pv-block-2", "pv-block-3", "pv-block-4",
                  "wind-line-1", "wind-line-2", "wind-line-3")
    ) + kwh("green-line-meter")  # fmt: skip
    storage = sum(
        kwh(b, "energy_discharge_kwh") - kwh(b, "energy_charge_kwh") for b in ("bess-1", "bess-2")
    )
    assert np.allclose(grid, loads * (1 + loss) - generation - storage)
    intake = kwh("cathode-incomer-1") + kwh("cathode-incomer-2")
    sub = kwh("cathode-kilns") + kwh("cathode-processing") + kwh("cathode-utilities-power")
    assert np.allclose(intake, sub * (1 + loss + 0.005))
    # the data centre's product is its IT energy, metered at the UPS output
    assert np.allclose(kwh("dc-it-energy", "output_kwh"), kwh("dc-ups-output"))
    assert doc.site.kind.value == "park"


def test_cathode_is_packed_in_whole_tonnes() -> None:
    _cals, truths = park_days()
    bags = series(truths, "cathode-output", "output_t")
    assert np.all(bags == np.round(bags))
    # 7 t/h × 82 % × 24 h × 7 d ≈ 964 t
    assert 850 <= bags.sum() <= 1050

"""Weather and renewable physics: sun position, irradiance, temperature, wind — pure.

- **Sun position**: the NOAA "General Solar Position Calculations" (fractional-year series for
  the equation of time and the declination; hour angle from true solar time), accurate to a few
  tenths of a degree — plenty for hourly-scale PV.
- **Clear-sky irradiance**: Haurwitz (1945), ``GHI = 1098 cos Z exp(-0.057 / cos Z)`` [W/m²].
- **Clouds**: a clear-sky index ``kc`` (all-sky ÷ clear-sky) from two AR(1) processes — a slow one
  for weather systems (τ 10 h) and a fast one for passing clouds (τ 15 min) — through a logistic
  map whose offset is solved so the mean equals the climate's ``clear_sky_index_mean``.
- **Plane of array**: beam on a south-facing plane tilted at a fraction of the latitude, sky
  diffuse (isotropic) and ground-reflected light; diffuse fraction rises as ``kc`` falls.
- **PV**: ``P = kWp × POA/1000 × PR × (1 + γ (T_cell − 25))``, ``T_cell = T_air + c × POA/1000``,
  bounded by the DC capacity, zero at night.
- **Temperature**: annual cosine (coldest on ``coldest_day_of_year``) + daily cosine (warmest at
  15:00) + AR(1) weather noise (τ 2 d, σ 2.5 °C).
- **Wind**: hub-height speed ``v = σ √(X₁² + X₂²)`` with X₁, X₂ AR(1) processes (τ 8 h): Rayleigh
  (Weibull k = 2) marginals with the climate's mean; a spring maximum and a summer minimum; a
  power curve cubic between cut-in and rated speed, flat to cut-out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from simulators.assumptions import Climate, Physics
from simulators.clock import Calendar
from simulators.randomness import AR1, FloatArray

_DEG = math.pi / 180.0
_HAURWITZ_W_M2 = 1098.0
_TEMP_NOISE_DEGC = 2.5
_TEMP_NOISE_TAU_S = 2 * 86400.0
_CLOUD_SLOW_TAU_S = 10 * 3600.0
_CLOUD_FAST_TAU_S = 15 * 60.0
_CLOUD_SLOW_GAIN = 1.8
_CLOUD_FAST_GAIN = 0.5
_KC_MIN, _KC_MAX = 0.08, 1.05
_WIND_TAU_S = 8 * 3600.0
_HEATING_BASE_DEGC = 18.0


def solar_position(
    t_utc_s: FloatArray, latitude_deg: float, longitude_deg: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(cos zenith, declination [rad], hour angle [rad]) at epoch seconds ``t_utc_s`` (NOAA)."""
    days = np.floor(t_utc_s / 86400.0).astype(np.int64).astype("datetime64[D]")
    doy = (days - days.astype("datetime64[Y]")).astype(np.float64) + 1.0
    hour = (t_utc_s % 86400.0) / 3600.0
    g = 2.0 * math.pi / 365.0 * (doy - 1.0 + (hour - 12.0) / 24.0)
    eqtime_min = 229.18 * (
        0.000075
        + 0.001868 * np.cos(g)
        - 0.032077 * np.sin(g)
        - 0.014615 * np.cos(2 * g)
        - 0.040849 * np.sin(2 * g)
    )
    decl = (
        0.006918
        - 0.399912 * np.cos(g)
        + 0.070257 * np.sin(g)
        - 0.006758 * np.cos(2 * g)
        + 0.000907 * np.sin(2 * g)
        - 0.002697 * np.cos(3 * g)
        + 0.00148 * np.sin(3 * g)
    )
    true_solar_min = hour * 60.0 + eqtime_min + 4.0 * longitude_deg
    hour_angle = (true_solar_min / 4.0 - 180.0) * _DEG
    lat = latitude_deg * _DEG
    cos_z = np.sin(lat) * np.sin(decl) + np.cos(lat) * np.cos(decl) * np.cos(hour_angle)
    return np.clip(cos_z, -1.0, 1.0), decl, hour_angle


def clear_sky_ghi(cos_zenith: FloatArray) -> FloatArray:
    """Haurwitz clear-sky global horizontal irradiance [W/m²]; 0 with the sun below the horizon."""
    cz = np.maximum(cos_zenith, 0.0)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        ghi = _HAURWITZ_W_M2 * cz * np.exp(-0.057 / cz)
    return np.where(cz > 0.0, ghi, 0.0)


def plane_of_array(
    ghi: FloatArray,
    kc: FloatArray,
    cos_zenith: FloatArray,
    decl: FloatArray,
    hour_angle: FloatArray,
    latitude_deg: float,
    physics: Physics,
) -> FloatArray:
    """Irradiance on a south-facing plane tilted at ``pv_tilt_fraction_of_latitude`` × latitude."""
    lat = latitude_deg * _DEG
    tilt = physics.pv_tilt_fraction_of_latitude * abs(latitude_deg) * _DEG
    diffuse_fraction = np.clip(0.15 + 0.85 * (1.0 - kc), 0.15, 1.0)
    dhi = ghi * diffuse_fraction
    beam_h = ghi - dhi
    cz = np.maximum(cos_zenith, 0.0)
    dni = np.where(cz > 0.087, beam_h / np.maximum(cz, 0.087), 0.0)  # sun above 5°
    sign = 1.0 if latitude_deg >= 0 else -1.0
    cos_inc = np.sin(decl) * np.sin(lat - sign * tilt) + np.cos(decl) * np.cos(
        lat - sign * tilt
    ) * np.cos(hour_angle)
    beam = dni * np.maximum(cos_inc, 0.0)
    sky = dhi * (1.0 + math.cos(tilt)) / 2.0
    ground = ghi * physics.ground_albedo * (1.0 - math.cos(tilt)) / 2.0
    poa: FloatArray = np.where(cz > 0.0, beam + sky + ground, 0.0)
    return poa


def pv_power_kw(
    capacity_kwp: float, poa_w_m2: FloatArray, air_temp_degc: FloatArray, physics: Physics
) -> FloatArray:
    """AC power of a fixed-tilt PV plant [kW], within [0, capacity_kwp]."""
    cell = air_temp_degc + physics.pv_cell_heating_degc_per_kw_m2 * poa_w_m2 / 1000.0
    derate = 1.0 + physics.pv_power_temp_coefficient_per_degc * (cell - 25.0)
    power = capacity_kwp * poa_w_m2 / 1000.0 * physics.pv_performance_ratio * derate
    clipped: FloatArray = np.clip(power, 0.0, capacity_kwp)
    return clipped


def wind_power_fraction(speed_m_s: FloatArray, physics: Physics) -> FloatArray:
    """Power curve: output ÷ rated power [fraction] at hub-height speed [m/s]."""
    v_in, v_r, v_out = physics.wind_cut_in_m_s, physics.wind_rated_m_s, physics.wind_cut_out_m_s
    partial = (speed_m_s**3 - v_in**3) / (v_r**3 - v_in**3)
    frac = np.where(speed_m_s < v_in, 0.0, np.where(speed_m_s < v_r, partial, 1.0))
    out: FloatArray = np.where(speed_m_s >= v_out, 0.0, frac)
    return out


def expected_wind_fraction(mean_speed_m_s: float, physics: Physics) -> float:
    """Mean of :func:`wind_power_fraction` over Rayleigh speeds of the given mean (quadrature)."""
    sigma = mean_speed_m_s / math.sqrt(math.pi / 2.0)
    v = np.linspace(0.0, 40.0, 8001)
    pdf = v / sigma**2 * np.exp(-(v**2) / (2 * sigma**2))
    return float(np.trapezoid(wind_power_fraction(v, physics) * pdf, v))


def deterministic_temperature(cal: Calendar, climate: Climate) -> FloatArray:
    """Air temperature without weather noise [°C]: the annual and daily cycles."""
    annual = -climate.temp_annual_amplitude_degc * np.cos(
        2.0 * math.pi * (cal.day_of_year - climate.coldest_day_of_year) / 365.25
    )
    daily = climate.temp_diurnal_amplitude_degc * np.cos(2.0 * math.pi * (cal.local_hour - 15) / 24)
    temp: FloatArray = climate.temp_mean_degc + annual + daily
    return temp


def heating_degrees(temp_degc: FloatArray, heating_season: NDArray[np.bool_]) -> FloatArray:
    """Heating demand driver: ``max(0, 18 °C − T)`` inside the heating season, else 0 [K]."""
    out: FloatArray = np.where(heating_season, np.maximum(0.0, _HEATING_BASE_DEGC - temp_degc), 0.0)
    return out


def _solve_logistic_offset(mean_kc: float) -> float:
    """Offset ``a`` with E[kc(a + g·X)] = mean_kc for X ~ N(0, 1 + fast²) (Gauss–Hermite)."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(40)
    weights = weights / weights.sum()
    spread = math.sqrt(_CLOUD_SLOW_GAIN**2 + _CLOUD_FAST_GAIN**2)

    def mean_for(a: float) -> float:
        return float(np.sum(weights * _kc_map(a + spread * nodes)))

    lo, hi = -10.0, 10.0
    target = min(max(mean_kc, _KC_MIN + 1e-3), _KC_MAX - 1e-3)
    for _ in range(80):
        mid = (lo + hi) / 2.0
        if mean_for(mid) < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2.0


def _kc_map(z: FloatArray) -> FloatArray:
    out: FloatArray = _KC_MIN + (_KC_MAX - _KC_MIN) / (1.0 + np.exp(-z))
    return out


@dataclass(frozen=True, slots=True)
class WeatherChunk:
    """The weather of one chunk of steps (step midpoints)."""

    air_temp_degc: FloatArray
    clear_sky_index: FloatArray  # all-sky ÷ clear-sky irradiance
    ghi_w_m2: FloatArray
    poa_w_m2: FloatArray  # plane of array of the site's fixed-tilt PV
    wind_hub_m_s: FloatArray
    wind_10m_m_s: FloatArray
    heating_degrees: FloatArray  # max(0, 18 − T) in the heating season [K]
    cos_zenith: FloatArray


class Weather:
    """One site's weather, chunk by chunk (state carries over; seeded by the caller's rng)."""

    def __init__(
        self,
        rng: np.random.Generator,
        step_s: float,
        latitude_deg: float,
        longitude_deg: float,
        climate: Climate,
        physics: Physics,
    ) -> None:
        self.latitude_deg = latitude_deg
        self.longitude_deg = longitude_deg
        self.climate = climate
        self.physics = physics
        # One generator per process, so chunk lengths do not change the weather.
        temp, slow, fast, wind_1, wind_2 = rng.spawn(5)
        self._temp = AR1(temp, step_s, _TEMP_NOISE_TAU_S)
        self._cloud_slow = AR1(slow, step_s, _CLOUD_SLOW_TAU_S)
        self._cloud_fast = AR1(fast, step_s, _CLOUD_FAST_TAU_S)
        self._wind = (AR1(wind_1, step_s, _WIND_TAU_S), AR1(wind_2, step_s, _WIND_TAU_S))
        self._kc_offset = _solve_logistic_offset(climate.clear_sky_index_mean)

    def advance(self, cal: Calendar) -> WeatherChunk:
        n = cal.n
        temp = deterministic_temperature(cal, self.climate) + _TEMP_NOISE_DEGC * self._temp.next(n)
        kc = _kc_map(
            self._kc_offset
            + _CLOUD_SLOW_GAIN * self._cloud_slow.next(n)
            + _CLOUD_FAST_GAIN * self._cloud_fast.next(n)
        )
        cos_z, decl, hour_angle = solar_position(cal.mid_s, self.latitude_deg, self.longitude_deg)
        ghi = clear_sky_ghi(cos_z) * kc
        poa = plane_of_array(ghi, kc, cos_z, decl, hour_angle, self.latitude_deg, self.physics)
        x1, x2 = self._wind[0].next(n), self._wind[1].next(n)
        season = 1.0 + 0.12 * np.cos(2.0 * math.pi * (cal.day_of_year - 105) / 365.25)
        sigma = self.climate.wind_mean_m_s_hub / math.sqrt(math.pi / 2.0)
        wind = sigma * np.sqrt(x1**2 + x2**2) * season
        shear = (10.0 / self.physics.wind_hub_height_m) ** self.physics.wind_shear_exponent
        return WeatherChunk(
            air_temp_degc=temp,
            clear_sky_index=kc,
            ghi_w_m2=ghi,
            poa_w_m2=poa,
            wind_hub_m_s=wind,
            wind_10m_m_s=wind * shear,
            heating_degrees=heating_degrees(temp, cal.heating_season),
            cos_zenith=cos_z,
        )

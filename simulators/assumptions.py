"""The simulators' physical and climate assumptions, loaded from ``assumptions.yaml`` — pure data.

Accounting factors are not here (they live in :mod:`carbonflow.domain.factors`); these are the
numbers the physics models need that a site file's ``sim:`` hints do not give: efficiencies,
heating values, losses, climate per province, the Spring Festival dates. Loading reads package
data and is the only I/O of the generation core; :func:`default_assumptions` caches it.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import date
from pathlib import Path
from typing import Any

import yaml

SCHEMA = "carbonflow-sim-assumptions/1"
DEFAULT_FILE = Path(__file__).with_name("assumptions.yaml")


class AssumptionsError(ValueError):
    """The assumptions file is malformed (names the file and the key)."""


@dataclass(frozen=True, slots=True)
class Physics:
    ch4_lhv_mj_per_nm3: float
    gas_engine_electrical_efficiency: float
    methane_boiler_efficiency: float
    gas_boiler_efficiency: float
    steam_enthalpy_gj_per_t: float
    heat_pump_cop_default: float
    diesel_density_kg_per_l: float
    substation_loss_fraction: float
    heat_network_loss_fraction: float
    steam_network_loss_fraction: float
    storage_charge_efficiency: float
    storage_discharge_efficiency: float
    storage_soc_min_pct: float
    storage_soc_max_pct: float
    pv_performance_ratio: float
    pv_power_temp_coefficient_per_degc: float
    pv_cell_heating_degc_per_kw_m2: float
    pv_tilt_fraction_of_latitude: float
    ground_albedo: float
    wind_cut_in_m_s: float
    wind_rated_m_s: float
    wind_cut_out_m_s: float
    wind_hub_height_m: float
    wind_shear_exponent: float
    flare_flame_temp_degc: float
    idle_fraction_process: float
    idle_fraction_utility: float


@dataclass(frozen=True, slots=True)
class Climate:
    temp_mean_degc: float
    temp_annual_amplitude_degc: float
    temp_diurnal_amplitude_degc: float
    coldest_day_of_year: float
    clear_sky_index_mean: float
    wind_mean_m_s_hub: float


@dataclass(frozen=True, slots=True)
class CalendarAssumptions:
    heating_season_start: tuple[int, int]  # (month, day), first day of the season
    heating_season_end: tuple[int, int]  # (month, day), last day of the season
    spring_festival: Mapping[int, date]
    spring_festival_fallback: tuple[int, int]
    mine_idle_days_before_spring_festival: int
    mine_idle_days_after_spring_festival: int
    process_plant_spring_festival_days: int
    mine_maintenance_days_of_month: tuple[int, ...]

    def spring_festival_day(self, year: int) -> date:
        found = self.spring_festival.get(year)
        if found is not None:
            return found
        month, day = self.spring_festival_fallback
        return date(year, month, day)


@dataclass(frozen=True, slots=True)
class Assumptions:
    version: str
    physics: Physics
    climates: Mapping[str, Climate]
    calendar: CalendarAssumptions

    def climate(self, province: str) -> Climate:
        """The climate of ``province`` (pinyin id), or the default climate."""
        return self.climates.get(province) or self.climates["default"]


def _floats(cls: type[Any], raw: Mapping[str, Any], where: str) -> Any:
    names = [f.name for f in fields(cls)]
    missing = [n for n in names if n not in raw]
    unknown = sorted(set(raw) - set(names))
    if missing or unknown:
        raise AssumptionsError(f"{where}: missing {missing}, unknown {unknown}")
    return cls(**{n: float(raw[n]) for n in names})


def _month_day(text: object, where: str) -> tuple[int, int]:
    try:
        month, day = (int(p) for p in str(text).split("-"))
        date(2001, month, day)
    except ValueError:
        raise AssumptionsError(f"{where}: expected 'MM-DD', got {text!r}") from None
    return month, day


def parse_assumptions(doc: Mapping[str, Any], name: str = "assumptions.yaml") -> Assumptions:
    if doc.get("schema") != SCHEMA:
        raise AssumptionsError(f"{name}: schema must be {SCHEMA!r}, got {doc.get('schema')!r}")
    climates = {
        str(k): _floats(Climate, v, f"{name} climate.{k}") for k, v in doc["climate"].items()
    }
    if "default" not in climates:
        raise AssumptionsError(f"{name}: climate.default is required")
    cal = doc["calendar"]
    festival: dict[int, date] = {}
    for year, day in cal["spring_festival"].items():
        if not isinstance(day, date):
            raise AssumptionsError(f"{name}: spring_festival.{year} must be a date")
        festival[int(year)] = day
    calendar = CalendarAssumptions(
        heating_season_start=_month_day(cal["heating_season_start"], f"{name} calendar"),
        heating_season_end=_month_day(cal["heating_season_end"], f"{name} calendar"),
        spring_festival=festival,
        spring_festival_fallback=_month_day(cal["spring_festival_fallback"], f"{name} calendar"),
        mine_idle_days_before_spring_festival=int(cal["mine_idle_days_before_spring_festival"]),
        mine_idle_days_after_spring_festival=int(cal["mine_idle_days_after_spring_festival"]),
        process_plant_spring_festival_days=int(cal["process_plant_spring_festival_days"]),
        mine_maintenance_days_of_month=tuple(int(d) for d in cal["mine_maintenance_days_of_month"]),
    )
    return Assumptions(
        version=str(doc["version"]),
        physics=_floats(Physics, doc["physics"], f"{name} physics"),
        climates=climates,
        calendar=calendar,
    )


def load_assumptions(path: Path = DEFAULT_FILE) -> Assumptions:
    with path.open(encoding="utf-8") as fh:
        doc = yaml.safe_load(fh)
    if not isinstance(doc, Mapping):
        raise AssumptionsError(f"{path.name}: not a YAML mapping")
    return parse_assumptions(doc, path.name)


@functools.cache
def default_assumptions() -> Assumptions:
    """The shipped assumptions, loaded once per process."""
    return load_assumptions()

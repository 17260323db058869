"""Load profiles: shift patterns, production calendars and the named shapes of ``sim.load_profile``.

A profile is a deterministic *pattern* of the local calendar (and of the air temperature for
heating and cooling), normalised so that its mean over the profile's **active time** is 1; a
device's load is then ``rated × mean_load_pct/100 × shape × (1 + noise)``. Active time is:

- ``production_shift``, ``hoist_cycle``: the full production shifts of production days — the
  site files give loads *while producing* (e.g. the mine's longwall 4.5 MW × 6,600 h);
- ``heating_season``: the heating season (15 Oct – 15 Apr);
- every other profile: all the time.

Normalisation is computed once per profile over an hourly reference year with the site's
deterministic temperature (:func:`simulators.weather.deterministic_temperature`). Unknown profile
names behave as ``continuous``. Pure: no I/O, no randomness (noise is added by the plant model).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from zoneinfo import ZoneInfo

import numpy as np

from simulators.assumptions import CalendarAssumptions, Climate
from simulators.clock import BoolArray, Calendar, reference_year_calendar
from simulators.randomness import FloatArray
from simulators.weather import deterministic_temperature, heating_degrees

# Output of a maintenance shift (检修班) relative to a production shift: in the 4×6 pattern of
# Chinese mines three shifts produce and one maintains, ≈ 20 h-equivalent of hoisting per day.
MAINTENANCE_OUTPUT_FRACTION = 1.0 / 3.0
# Output at a shift handover, relative to full production, and the half-width of the dip [h].
HANDOVER_OUTPUT_FRACTION = 0.5
HANDOVER_HALF_WIDTH_H = 0.25

_PATTERN = re.compile(r"^\s*(\d+)\s*x\s*(\d+(?:\.\d+)?)\s*(\+\s*maintenance)?\s*$")


class Named(StrEnum):
    CONTINUOUS = "continuous"
    FLAT = "flat"
    OFFICE = "office"
    DATA_CENTRE = "data_centre"
    COOLING = "cooling"
    HEATING_SEASON = "heating_season"
    LOGISTICS_SHIFT = "logistics_shift"
    EV_CHARGING = "ev_charging"
    COLD_STORE = "cold_store"
    PUMPING_OFF_PEAK = "pumping_off_peak"
    PRODUCTION_SHIFT = "production_shift"
    SHIFT = "shift"
    HOIST_CYCLE = "hoist_cycle"


PRODUCTION_PROFILES = frozenset({Named.PRODUCTION_SHIFT, Named.SHIFT, Named.HOIST_CYCLE})


@dataclass(frozen=True, slots=True)
class ShiftPattern:
    """Shifts of a day: (start hour, end hour, output fraction); hours not covered are idle."""

    text: str
    shifts: tuple[tuple[float, float, float], ...]

    def factor(self, local_hour: FloatArray) -> FloatArray:
        """Output fraction at local time ``local_hour`` [h], with handover dips between shifts."""
        out = np.zeros_like(local_hour)
        for start, end, level in self.shifts:
            inside = _within(local_hour, start, end)
            out = np.where(inside, level, out)
        boundaries = {s for s, _e, lvl in self.shifts if lvl >= 1.0}
        boundaries |= {e % 24.0 for _s, e, lvl in self.shifts if lvl >= 1.0}
        for b in boundaries:
            distance = np.abs(((local_hour - b + 12.0) % 24.0) - 12.0)
            dip = 1.0 - (1.0 - HANDOVER_OUTPUT_FRACTION) * np.maximum(
                0.0, 1.0 - distance / HANDOVER_HALF_WIDTH_H
            )
            out = np.where(out > 0, out * dip, out)
        return out

    def full_production(self, local_hour: FloatArray) -> BoolArray:
        """Inside a full (non-maintenance) production shift."""
        mask = np.zeros(local_hour.shape, dtype=bool)
        for start, end, level in self.shifts:
            if level >= 1.0:
                mask |= _within(local_hour, start, end)
        return mask

    @property
    def equivalent_hours_per_day(self) -> float:
        return sum(((e - s) % 24.0 or 24.0) * lvl for s, e, lvl in self.shifts)


def _within(hour: FloatArray, start: float, end: float) -> BoolArray:
    start, end = start % 24.0, end % 24.0
    if start < end:
        return (hour >= start) & (hour < end)
    return (hour >= start) | (hour < end)  # spans midnight (or the whole day when equal)


def parse_shift_pattern(text: str | None) -> ShiftPattern:
    """``"3x8"``, ``"4x6"`` (one of four 6-h shifts is maintenance: the mines' 四六制),
    ``"2x10+maintenance"`` (two 10-h shifts from 06:00, maintenance in the rest of the day).
    ``None`` → ``"3x8"``; shifts start at 00:00 when they fill the day, else at 06:00."""
    raw = text or "3x8"
    match = _PATTERN.match(raw)
    if not match:
        raise ValueError(f"shift pattern {raw!r}: write NxH, e.g. 3x8, 4x6, 2x10+maintenance")
    count, hours = int(match.group(1)), float(match.group(2))
    maintenance = match.group(3) is not None
    if count < 1 or hours <= 0 or count * hours > 24.0 + 1e-9:
        raise ValueError(f"shift pattern {raw!r}: {count} shifts of {hours} h exceed a day")
    first = 0.0 if count * hours >= 24.0 - 1e-9 else 6.0
    shifts: list[tuple[float, float, float]] = []
    for i in range(count):
        start = first + i * hours
        level = MAINTENANCE_OUTPUT_FRACTION if (count == 4 and i == 1) else 1.0
        shifts.append((start % 24.0, (start + hours) % 24.0, level))
    if maintenance and count * hours < 24.0:
        shifts.append(((first + count * hours) % 24.0, first, MAINTENANCE_OUTPUT_FRACTION))
    return ShiftPattern(raw, tuple(shifts))


class CalendarKind(StrEnum):
    MINE = "mine"  # idle around the Spring Festival and on monthly maintenance days
    PLANT = "plant"  # a continuous process plant: a few days' stop at the Spring Festival
    ALWAYS = "always"


def production_days(
    cal: Calendar, kind: CalendarKind, assumptions: CalendarAssumptions
) -> BoolArray:
    """Whether each step's local date is a production day."""
    producing = np.ones(cal.n, dtype=bool)
    if kind is CalendarKind.ALWAYS:
        return producing
    for year in np.unique(cal.year):
        festival = assumptions.spring_festival_day(int(year))
        first_day = (festival - date(1970, 1, 1)).days
        if kind is CalendarKind.MINE:
            lo = first_day - assumptions.mine_idle_days_before_spring_festival
            hi = first_day + assumptions.mine_idle_days_after_spring_festival
        else:
            lo, hi = first_day, first_day + assumptions.process_plant_spring_festival_days - 1
        producing &= ~((cal.local_day >= lo) & (cal.local_day <= hi))
    if kind is CalendarKind.MINE:
        for day in assumptions.mine_maintenance_days_of_month:
            producing &= cal.day != day
    return producing


def _band(hour: FloatArray, start: float, end: float) -> BoolArray:
    return _within(hour, start, end)


def pattern(
    name: str,
    cal: Calendar,
    temp_degc: FloatArray,
    shift: ShiftPattern,
    producing: BoolArray,
) -> tuple[FloatArray, BoolArray]:
    """(un-normalised pattern, active-time mask) of profile ``name``."""
    h, weekday = cal.local_hour, cal.weekday
    all_time = np.ones(cal.n, dtype=bool)
    profile = Named(name) if name in Named.__members__.values() else Named.CONTINUOUS
    if profile in PRODUCTION_PROFILES:
        values = shift.factor(h) * producing
        return values, shift.full_production(h) & producing
    if profile is Named.OFFICE:
        workday = weekday < 5
        day = np.where(_band(h, 8, 18), 1.6, np.where(_band(h, 18, 22), 0.8, 0.45))
        weekend = np.where(_band(h, 9, 17), 0.7, 0.45)
        return np.where(workday, day, weekend), all_time
    if profile is Named.DATA_CENTRE:
        return 1.0 + 0.015 * np.cos(2.0 * math.pi * (h - 15.0) / 24.0), all_time
    if profile is Named.COOLING:
        return 0.35 + 0.045 * np.maximum(0.0, temp_degc - 5.0), all_time
    if profile is Named.HEATING_SEASON:
        return heating_degrees(temp_degc, cal.heating_season), cal.heating_season
    if profile is Named.LOGISTICS_SHIFT:
        base = np.where(_band(h, 6, 22), 1.3, 0.45)
        return np.where(weekday == 6, 0.6 * base, base), all_time
    if profile is Named.EV_CHARGING:
        values = np.where(
            _band(h, 11, 15),
            1.6,
            np.where(_band(h, 0, 6), 1.2, np.where(_band(h, 18, 22), 0.9, 0.5)),
        )
        return values, all_time
    if profile is Named.COLD_STORE:
        active = np.where(_band(h, 6, 22), 0.15, 0.0)
        return 0.85 + 0.015 * (temp_degc - 10.0) + active, all_time
    if profile is Named.PUMPING_OFF_PEAK:
        values = np.where(
            _band(h, 23, 7),
            1.5,
            np.where(_band(h, 8, 11) | _band(h, 18, 21), 0.5, 1.0),
        )
        return values, all_time
    return np.ones(cal.n), all_time


class Profile:
    """A named profile calibrated for one site: :meth:`shape` has mean 1 over its active time."""

    def __init__(
        self,
        name: str | None,
        shift_pattern: str | None,
        calendar_kind: CalendarKind,
        tz: ZoneInfo,
        calendar: CalendarAssumptions,
        climate: Climate,
    ) -> None:
        self.name = name or Named.CONTINUOUS.value
        self.shift = parse_shift_pattern(shift_pattern)
        self.calendar_kind = calendar_kind
        self._calendar = calendar
        ref = reference_year_calendar(tz, calendar)
        values, active = self._pattern(ref, deterministic_temperature(ref, climate))
        mean = float(values[active].mean()) if active.any() else 0.0
        self._scale = 1.0 / mean if mean > 0 else 0.0
        # Mean of the normalised shape over all time, and over production days only (for
        # quantities given per day, like a dispenser's litres per production day).
        self.all_time_mean = float(values.mean()) * self._scale
        producing = production_days(ref, calendar_kind, calendar)
        self.active_day_mean = (
            float(values[producing].mean()) * self._scale
            if self.is_production and producing.any()
            else self.all_time_mean
        )

    @property
    def is_production(self) -> bool:
        return self.name in PRODUCTION_PROFILES

    def _pattern(self, cal: Calendar, temp: FloatArray) -> tuple[FloatArray, BoolArray]:
        producing = production_days(cal, self.calendar_kind, self._calendar)
        return pattern(self.name, cal, temp, self.shift, producing)

    def shape(self, cal: Calendar, temp_degc: FloatArray) -> FloatArray:
        values, _active = self._pattern(cal, temp_degc)
        out: FloatArray = values * self._scale
        return out

    def active(self, cal: Calendar, temp_degc: FloatArray) -> BoolArray:
        return self._pattern(cal, temp_degc)[1]

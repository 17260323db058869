"""Simulated time: durations, the step grid and the local calendar of each step — pure.

Step ``k`` covers ``[start + k·step, start + (k+1)·step)``; reading ``k`` is taken at
``start + k·step``, so reading ``k+1`` shows the registers after step ``k``. Physics is evaluated
at step midpoints, in the site's local time (its IANA zone) for shifts, weekdays and seasons.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

from simulators.assumptions import CalendarAssumptions

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d|w)\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DAY_S = 86400


def parse_duration(text: str) -> timedelta:
    """``"30d"``, ``"12h"``, ``"15m"``, ``"90s"``, ``"2w"`` (one number, one unit) → timedelta."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"duration {text!r}: write a number and a unit: 30d, 12h, 15m, 90s, 2w")
    return timedelta(seconds=float(match.group(1)) * _UNIT_S[match.group(2)])


@dataclass(frozen=True, slots=True)
class Calendar:
    """Local calendar features of ``n`` consecutive steps (evaluated at step midpoints)."""

    start_s: FloatArray  # epoch seconds of each step's start
    mid_s: FloatArray  # epoch seconds of each step's midpoint
    step_s: float
    local_hour: FloatArray  # local time of day [h], 0 ≤ h < 24
    weekday: IntArray  # local weekday, 0 = Monday
    day_of_year: IntArray  # local day of the year, 1–366
    year: IntArray
    month: IntArray
    day: IntArray
    local_day: IntArray  # local date as days since 1970-01-01
    heating_season: BoolArray  # local date inside the heating season

    @property
    def n(self) -> int:
        return len(self.start_s)

    @property
    def step_h(self) -> float:
        return self.step_s / 3600.0

    @property
    def step_min(self) -> float:
        return self.step_s / 60.0


def _offsets_s(mid_s: FloatArray, tz: ZoneInfo) -> FloatArray:
    def offset(t: float) -> float:
        delta = datetime.fromtimestamp(t, tz=tz).utcoffset()
        return delta.total_seconds() if delta is not None else 0.0

    first, last = offset(float(mid_s[0])), offset(float(mid_s[-1]))
    if first == last and mid_s[-1] - mid_s[0] <= 2 * _DAY_S:
        return np.full(len(mid_s), first)
    return np.array([offset(float(t)) for t in mid_s])


def make_calendar(
    start_s: float, n: int, step_s: float, tz: ZoneInfo, calendar: CalendarAssumptions
) -> Calendar:
    """The calendar of steps ``start_s + k·step_s``, k = 0 … n-1."""
    if n <= 0:
        raise ValueError("a calendar needs at least one step")
    starts = start_s + step_s * np.arange(n, dtype=np.float64)
    mids = starts + step_s / 2.0
    local = mids + _offsets_s(mids, tz)
    local_day = np.floor(local / _DAY_S).astype(np.int64)
    hour = (local - local_day * _DAY_S) / 3600.0
    days = local_day.astype("datetime64[D]")
    years = days.astype("datetime64[Y]")
    months = days.astype("datetime64[M]")
    year = years.astype(np.int64) + 1970
    month = (months - years).astype(np.int64) + 1
    day = (days - months).astype(np.int64) + 1
    doy = (days - years).astype(np.int64) + 1
    weekday = (local_day + 3) % 7  # 1970-01-01 was a Thursday
    md = month * 100 + day
    start_md = calendar.heating_season_start[0] * 100 + calendar.heating_season_start[1]
    end_md = calendar.heating_season_end[0] * 100 + calendar.heating_season_end[1]
    if start_md <= end_md:
        heating = (md >= start_md) & (md <= end_md)
    else:  # the season spans the new year
        heating = (md >= start_md) | (md <= end_md)
    return Calendar(
        start_s=starts,
        mid_s=mids,
        step_s=step_s,
        local_hour=hour,
        weekday=weekday,
        day_of_year=doy,
        year=year,
        month=month,
        day=day,
        local_day=local_day,
        heating_season=heating,
    )


def reference_year_calendar(
    tz: ZoneInfo, calendar: CalendarAssumptions, year: int = 2025
) -> Calendar:
    """Hourly calendar of one whole (non-leap) year: for calibrating profile means."""
    start = datetime(year, 1, 1, tzinfo=tz).timestamp()
    return make_calendar(start, 8760, 3600.0, tz, calendar)

"""Request checks of the calc-result routes: request ranges and how many points a range holds at
a grain. Pure. The bounds of a site-local day, month or year and the periods before one (a
trend) are the domain's calendar (:mod:`carbonflow.domain.calendar`).

A naive time in a request is the site's local time (China Standard Time for the example sites);
one with an offset is taken as given. Days and months are the site's local calendar, as the calc
service's rollups (docs/calc.md).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

_FIXED = {"15min": timedelta(minutes=15), "hour": timedelta(hours=1)}
# Times a request may name: far enough either side for any accounting, near enough that adding a
# year or converting between zones can never leave Python's datetime range.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


class RangeError(ValueError):
    """A requested range the API refuses (422), with a message for the caller."""


def as_site_time(value: datetime, tz: str) -> datetime:
    """``value`` with its offset, or a naive value as the site's local time; in UTC."""
    if value.tzinfo is None or value.utcoffset() is None:
        value = value.replace(tzinfo=ZoneInfo(tz))
    return value.astimezone(UTC)


def checked_range(start: datetime, end: datetime, tz: str) -> tuple[datetime, datetime]:
    """[start, end) in UTC; refused when empty, reversed or outside 1970–2200."""
    try:
        lo, hi = as_site_time(start, tz), as_site_time(end, tz)
    except OverflowError:  # year 1 or 9999 moved across an offset
        raise RangeError("start and end must lie between 1970-01-01 and 2200-01-01") from None
    if not (EARLIEST <= lo <= LATEST and EARLIEST <= hi <= LATEST):
        raise RangeError("start and end must lie between 1970-01-01 and 2200-01-01")
    if hi <= lo:
        raise RangeError("end must be after start")
    return lo, hi


def _month_index(local: datetime) -> int:
    return local.year * 12 + local.month - 1


def points_in(grain: str, start: datetime, end: datetime, tz: str) -> int:
    """How many periods of ``grain`` start in [start, end) (local calendar for day and month).

    Hour and 15 min count grid points: 09:07–10:00 holds none of 15 min starting at 09:00 but
    three starting at 09:15, 09:30, 09:45.
    """
    step = _FIXED.get(grain)
    if step is not None:
        # Grid points p = k × step (k integer, from the epoch) with start <= p < end.
        first = math.ceil((start - EARLIEST) / step)
        last = math.ceil((end - EARLIEST) / step)
        return max(0, last - first)
    zone = ZoneInfo(tz)
    lo, hi = start.astimezone(zone), end.astimezone(zone)
    if grain == "day":
        first_day = lo.date() if lo.time() == datetime.min.time() else lo.date() + timedelta(1)
        last_day = hi.date() if hi.time() == datetime.min.time() else hi.date() + timedelta(1)
        return max(0, (last_day - first_day).days)
    if grain == "month":
        at_month_start = lo.day == 1 and lo.time() == datetime.min.time()
        first_m = _month_index(lo) + (0 if at_month_start else 1)
        hi_at_start = hi.day == 1 and hi.time() == datetime.min.time()
        last_m = _month_index(hi) + (0 if hi_at_start else 1)
        return max(0, last_m - first_m)
    raise ValueError(f"unknown grain {grain!r}")

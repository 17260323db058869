"""Time ranges of the calc cycle: pure calendar arithmetic, no I/O.

``merge_ranges`` and ``month_utc`` belong with the site-local calendar of the domain
(``carbonflow/domain/calendar.py`` in the layout plan); they wait here until that module exists.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from carbonflow.domain.readings.intervals import ACCOUNTING_INTERVAL

#: A [start, end) range in UTC.
Range = tuple[datetime, datetime]

SLOT = ACCOUNTING_INTERVAL
HOUR = timedelta(hours=1)


def merge_ranges(ranges: Iterable[Range]) -> list[Range]:
    """Overlapping or touching [start, end) ranges merged, sorted."""
    out: list[Range] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def next_month(month: date) -> date:
    """The first day of the month after ``month`` (a first of the month)."""
    return (month + timedelta(days=32)).replace(day=1)


def month_utc(month: date, zone: ZoneInfo) -> Range:
    """The local month starting on ``month`` as a UTC range."""
    start = datetime(month.year, month.month, 1, tzinfo=zone)
    nxt = next_month(month)
    end = datetime(nxt.year, nxt.month, 1, tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)

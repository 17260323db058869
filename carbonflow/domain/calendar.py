"""The site-local calendar: days, months and years of a site's time zone as [start, end) in UTC.
Pure.

Accounting periods are the site's local calendar (docs/calc.md): a local day starts at local
midnight, so it lasts 23 or 25 hours across a daylight-saving change; a month starts at local
midnight of its first day. A local midnight is ``datetime(y, m, d, tzinfo=zone)`` (``fold=0``)
converted to UTC, everywhere.

``tz`` is a zone name (``"Asia/Shanghai"``) or a :class:`~zoneinfo.ZoneInfo`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

Zone = str | ZoneInfo


def zone_of(tz: Zone) -> ZoneInfo:
    """The time zone named ``tz`` (a zone is returned as it is)."""
    return tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)


def local_start(day: date, tz: Zone) -> datetime:
    """The start of the local day ``day`` as a local time (``fold=0``). Where midnight falls in
    a daylight-saving gap this wall time does not exist: compare or convert it, do not show it
    (:func:`local_midnight` is the same instant in UTC)."""
    return datetime(day.year, day.month, day.day, tzinfo=zone_of(tz))


def local_midnight(day: date, tz: Zone) -> datetime:
    """The start of the local day ``day``, in UTC."""
    return local_start(day, tz).astimezone(UTC)


def first_of_month(day: date) -> date:
    """The first day of the month holding ``day``."""
    return day.replace(day=1)


def next_month(day: date) -> date:
    """The first day of the month after the one holding ``day``."""
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def last_of_month(day: date) -> date:
    """The last day of the month holding ``day``."""
    return next_month(day) - timedelta(days=1)


def day_range(start: date, end: date, tz: Zone) -> tuple[datetime, datetime]:
    """Local days [start, end) as UTC times (``end`` exclusive)."""
    return local_midnight(start, tz), local_midnight(end, tz)


def day_bounds(day: date, tz: Zone) -> tuple[datetime, datetime]:
    """The local day ``day`` as [start, end) in UTC (23 or 25 hours across a DST change)."""
    return day_range(day, day + timedelta(days=1), tz)


def month_bounds(day: date, tz: Zone) -> tuple[datetime, datetime]:
    """The local month holding ``day`` as [start, end) in UTC."""
    return day_range(first_of_month(day), next_month(day), tz)


def year_bounds(day: date, tz: Zone) -> tuple[datetime, datetime]:
    """The local year holding ``day`` as [start, end) in UTC."""
    return day_range(date(day.year, 1, 1), date(day.year + 1, 1, 1), tz)


def period_of(grain: str, day: date, tz: Zone) -> tuple[datetime, datetime]:
    """The local day, month or year containing ``day``, as [start, end) in UTC."""
    if grain == "day":
        return day_bounds(day, tz)
    if grain == "month":
        return month_bounds(day, tz)
    if grain == "year":
        return year_bounds(day, tz)
    raise ValueError(f"unknown grain {grain!r}")


def periods_before(grain: str, start: datetime, count: int, tz: Zone) -> datetime:
    """The start (UTC) of the period ``count`` periods of ``grain`` before the one at ``start``."""
    local = start.astimezone(zone_of(tz)).date()
    if grain == "day":
        earlier = local - timedelta(days=count)
    elif grain == "month":
        index = local.year * 12 + local.month - 1 - count
        earlier = date(index // 12, index % 12 + 1, 1)
    elif grain == "year":
        earlier = date(local.year - count, 1, 1)
    else:
        raise ValueError(f"unknown grain {grain!r}")
    return local_midnight(earlier, tz)


def merge_ranges(ranges: Iterable[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """Overlapping or touching [start, end) ranges merged, sorted."""
    out: list[tuple[datetime, datetime]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def uncovered(
    lo: datetime, hi: datetime, covered: Iterable[tuple[datetime, datetime]]
) -> list[tuple[datetime, datetime]]:
    """The parts of [lo, hi) outside the ``covered`` [start, end) ranges (any order, may
    overlap), sorted."""
    out: list[tuple[datetime, datetime]] = []
    cursor = lo
    for a, b in merge_ranges(covered):
        if a > cursor:
            out.append((cursor, min(a, hi)))
        cursor = max(cursor, b)
    if cursor < hi:
        out.append((cursor, hi))
    return [(a, b) for a, b in out if a < b]


def results_watermark(
    ranges: Iterable[tuple[datetime, datetime]], now: datetime, newest_data_end: datetime | None
) -> datetime | None:
    """How far results are complete after recomputing ``ranges``: the end of the last range, but
    never past ``now`` nor past the end of the newest data (a recompute of a whole month or year,
    e.g. after a green-power change, covers the future too; that does not make it computed).
    ``None`` (the watermark stays as it is) without ranges or without data."""
    ends = [hi for _lo, hi in ranges]
    if not ends or newest_data_end is None:
        return None
    return min(max(ends), now, newest_data_end)


def overlaps(span: tuple[datetime, datetime], ranges: Iterable[tuple[datetime, datetime]]) -> bool:
    """Whether the half-open ``span`` shares an instant with any of the half-open ``ranges``
    (ranges that only touch at an end do not overlap)."""
    lo, hi = span
    return any(a < hi and b > lo for a, b in ranges)


def settled_periods(
    periods: Iterable[tuple[datetime, datetime]],
    later: Iterable[tuple[datetime, datetime]],
    live: Iterable[tuple[datetime, datetime]],
) -> list[tuple[datetime, datetime]]:
    """The ``periods`` whose figures are final for this pass: all but those that a ``later``
    range (what an unfinished recompute will still compute) overlaps, unless a ``live`` range
    (new data of this pass) overlaps them too — a day, month or year spanning several chunks of
    a recompute is then evaluated once, by the chunk that completes it, while a period that
    live data touch is evaluated at once."""
    later_ranges, live_ranges = merge_ranges(later), merge_ranges(live)
    return [p for p in periods if overlaps(p, live_ranges) or not overlaps(p, later_ranges)]

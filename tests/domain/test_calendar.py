"""The site-local calendar (carbonflow.domain.calendar), worked by hand.

Europe/Berlin in 2026: CET (UTC+1) until Sunday 29 March 02:00, which becomes 03:00 CEST (UTC+2),
so that day lasts 23 hours; back to CET on Sunday 25 October at 03:00 CEST → 02:00 CET, a day of
25 hours. Asia/Shanghai is UTC+8 all year.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from carbonflow.domain.calendar import (
    day_bounds,
    day_range,
    first_of_month,
    last_of_month,
    local_midnight,
    local_start,
    merge_ranges,
    month_bounds,
    next_month,
    overlaps,
    period_of,
    periods_before,
    results_watermark,
    settled_periods,
    uncovered,
    year_bounds,
)

BERLIN = "Europe/Berlin"
CN = "Asia/Shanghai"


def utc(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


def test_local_midnight_takes_a_name_or_a_zone() -> None:
    assert local_midnight(date(2026, 3, 1), BERLIN) == utc(2026, 2, 28, 23)  # CET
    assert local_midnight(date(2026, 7, 1), ZoneInfo(BERLIN)) == utc(2026, 6, 30, 22)  # CEST
    assert local_midnight(date(2026, 1, 1), CN) == utc(2025, 12, 31, 16)


def test_months_of_dst_changes_in_berlin() -> None:
    # March 2026: from 1 March 00:00 CET to 1 April 00:00 CEST, one hour short of 31 days.
    start, end = month_bounds(date(2026, 3, 17), BERLIN)
    assert (start, end) == (utc(2026, 2, 28, 23), utc(2026, 3, 31, 22))
    assert end - start == timedelta(days=31, hours=-1)
    # October 2026: from 1 October 00:00 CEST to 1 November 00:00 CET, one hour over 31 days.
    start, end = month_bounds(date(2026, 10, 1), BERLIN)
    assert (start, end) == (utc(2026, 9, 30, 22), utc(2026, 10, 31, 23))
    assert end - start == timedelta(days=31, hours=1)


def test_days_of_23_and_25_hours() -> None:
    start, end = day_bounds(date(2026, 3, 29), BERLIN)
    assert (start, end) == (utc(2026, 3, 28, 23), utc(2026, 3, 29, 22))
    assert end - start == timedelta(hours=23)
    start, end = day_bounds(date(2026, 10, 25), BERLIN)
    assert (start, end) == (utc(2026, 10, 24, 22), utc(2026, 10, 25, 23))
    assert end - start == timedelta(hours=25)
    # An ordinary day either side.
    assert day_bounds(date(2026, 3, 28), BERLIN) == (utc(2026, 3, 27, 23), utc(2026, 3, 28, 23))
    assert day_bounds(date(2026, 3, 30), BERLIN) == (utc(2026, 3, 29, 22), utc(2026, 3, 30, 22))


def test_month_and_year_ends_in_shanghai() -> None:
    # December 2025 ends where 2026 begins: 1 January 00:00 +08:00 = 31 December 16:00 UTC.
    assert month_bounds(date(2025, 12, 31), CN) == (utc(2025, 11, 30, 16), utc(2025, 12, 31, 16))
    assert year_bounds(date(2025, 12, 31), CN) == (utc(2024, 12, 31, 16), utc(2025, 12, 31, 16))
    assert year_bounds(date(2026, 1, 1), CN) == (utc(2025, 12, 31, 16), utc(2026, 12, 31, 16))
    # February of a leap year: 29 days of 24 hours.
    start, end = month_bounds(date(2024, 2, 10), CN)
    assert (start, end) == (utc(2024, 1, 31, 16), utc(2024, 2, 29, 16))
    assert end - start == timedelta(days=29)


def test_year_of_berlin_spans_both_changes() -> None:
    start, end = year_bounds(date(2026, 6, 1), BERLIN)
    assert (start, end) == (utc(2025, 12, 31, 23), utc(2026, 12, 31, 23))
    assert end - start == timedelta(days=365)  # the lost and the regained hour cancel


def test_next_first_and_last_of_month() -> None:
    assert next_month(date(2025, 12, 31)) == date(2026, 1, 1)
    assert next_month(date(2025, 12, 1)) == date(2026, 1, 1)
    assert next_month(date(2024, 1, 31)) == date(2024, 2, 1)  # not 2 March (31 + 32 days)
    assert next_month(date(2026, 11, 30)) == date(2026, 12, 1)
    assert first_of_month(date(2026, 3, 29)) == date(2026, 3, 1)
    assert last_of_month(date(2024, 2, 5)) == date(2024, 2, 29)
    assert last_of_month(date(2025, 2, 5)) == date(2025, 2, 28)
    assert last_of_month(date(2100, 2, 1)) == date(2100, 2, 28)  # not a leap year
    assert last_of_month(date(2025, 12, 1)) == date(2025, 12, 31)


def test_period_of_each_grain() -> None:
    day = date(2026, 10, 25)
    assert period_of("day", day, BERLIN) == day_bounds(day, BERLIN)
    assert period_of("month", day, BERLIN) == (utc(2026, 9, 30, 22), utc(2026, 10, 31, 23))
    assert period_of("year", day, BERLIN) == (utc(2025, 12, 31, 23), utc(2026, 12, 31, 23))
    with pytest.raises(ValueError, match="unknown grain 'week'"):
        period_of("week", day, BERLIN)


def test_periods_before_across_dst_and_year_ends() -> None:
    # The day before 30 March 2026 (CEST) is the 23-hour day, starting 23 hours earlier.
    start = local_midnight(date(2026, 3, 30), BERLIN)
    assert periods_before("day", start, 1, BERLIN) == utc(2026, 3, 28, 23)
    assert start - periods_before("day", start, 1, BERLIN) == timedelta(hours=23)
    # Months back over a year end: from January 2026, 1 → December 2025, 13 → December 2024.
    january = utc(2025, 12, 31, 16)
    assert periods_before("month", january, 1, CN) == utc(2025, 11, 30, 16)
    assert periods_before("month", january, 13, CN) == utc(2024, 11, 30, 16)
    # From November 2026 (CET) back to October (CEST starts the month).
    assert periods_before("month", utc(2026, 10, 31, 23), 1, BERLIN) == utc(2026, 9, 30, 22)
    assert periods_before("year", january, 2, CN) == utc(2023, 12, 31, 16)
    with pytest.raises(ValueError, match="unknown grain"):
        periods_before("hour", january, 1, CN)


def test_day_range_is_local_days_end_exclusive() -> None:
    # 28 to 30 March 2026 in Berlin: 24 + 23 hours.
    lo, hi = day_range(date(2026, 3, 28), date(2026, 3, 30), BERLIN)
    assert (lo, hi) == (utc(2026, 3, 27, 23), utc(2026, 3, 29, 22))
    assert hi - lo == timedelta(hours=47)


def test_merge_ranges() -> None:
    t = utc(2026, 3, 29)
    h = timedelta(hours=1)
    assert merge_ranges([]) == []
    # Unsorted; touching ranges merge; a gap does not.
    assert merge_ranges([(t + 3 * h, t + 4 * h), (t, t + h), (t + h, t + 2 * h)]) == [
        (t, t + 2 * h),
        (t + 3 * h, t + 4 * h),
    ]
    # Overlapping and nested.
    assert merge_ranges([(t, t + 3 * h), (t + h, t + 2 * h), (t + 2 * h, t + 5 * h)]) == [
        (t, t + 5 * h)
    ]
    assert merge_ranges(iter([(t, t + h)])) == [(t, t + h)]


def test_a_local_start_in_a_dst_gap_is_the_utc_instant_of_local_midnight() -> None:
    # Santiago moves its clocks from 00:00 to 01:00 on 2026-09-06: midnight does not exist.
    start = local_start(date(2026, 9, 6), "America/Santiago")
    assert (start.hour, start.utcoffset()) == (0, timedelta(hours=-4))  # wall time as built
    assert start.astimezone(UTC) == local_midnight(date(2026, 9, 6), "America/Santiago")
    assert local_midnight(date(2026, 9, 6), "America/Santiago") == utc(2026, 9, 6, 4)
    assert day_bounds(date(2026, 9, 6), "America/Santiago") == (
        utc(2026, 9, 6, 4),
        utc(2026, 9, 7, 3),
    )  # a day of 23 hours


def test_the_watermark_never_passes_now_nor_the_newest_data() -> None:
    t0 = datetime(2025, 5, 1, tzinfo=UTC)
    year = [(t0, t0 + timedelta(days=245))]  # a recompute of the rest of the year
    now = t0 + timedelta(days=7, hours=3)
    data_end = t0 + timedelta(days=7, minutes=15)
    assert results_watermark(year, now, data_end) == data_end
    assert results_watermark(year, t0 + timedelta(days=2), data_end) == t0 + timedelta(days=2)
    short = [
        (t0, t0 + timedelta(hours=1)),
        (t0 + timedelta(days=1), t0 + timedelta(days=1, hours=1)),
    ]
    assert results_watermark(short, now, data_end) == t0 + timedelta(days=1, hours=1)
    assert results_watermark([], now, data_end) is None
    assert results_watermark(year, now, None) is None


def test_uncovered_is_the_complement_in_the_range() -> None:
    h = [utc(2026, 3, 29) + timedelta(hours=i) for i in range(10)]
    assert uncovered(h[0], h[9], []) == [(h[0], h[9])]
    assert uncovered(h[0], h[9], [(h[5], h[7]), (h[1], h[2])]) == [
        (h[0], h[1]),
        (h[2], h[5]),
        (h[7], h[9]),
    ]
    assert uncovered(h[2], h[6], [(h[0], h[3]), (h[5], h[8])]) == [(h[3], h[5])]
    assert uncovered(h[2], h[6], [(h[0], h[8])]) == []
    # Overlapping covered ranges: one hole between them.
    assert uncovered(h[0], h[9], [(h[1], h[4]), (h[3], h[5]), (h[7], h[8])]) == [
        (h[0], h[1]),
        (h[5], h[7]),
        (h[8], h[9]),
    ]


def test_overlaps_is_half_open() -> None:
    h = [utc(2026, 1, 1, i) for i in range(6)]
    assert overlaps((h[1], h[3]), [(h[2], h[4])])
    assert overlaps((h[1], h[4]), [(h[0], h[5])])  # inside a range
    assert overlaps((h[0], h[5]), [(h[4], h[5])])  # a range inside it
    assert not overlaps((h[1], h[2]), [(h[2], h[3]), (h[0], h[1])])  # touching ends only
    assert not overlaps((h[1], h[2]), [])


def test_settled_periods_leave_what_a_later_chunk_completes() -> None:
    d = [utc(2026, 1, 1) + timedelta(days=i) for i in range(6)]
    days = [(d[i], d[i + 1]) for i in range(5)]
    # A chunk ending mid-day 3 leaves day 3 (and the days after) to the next chunk.
    later = [(d[2] + timedelta(hours=7), d[5])]
    assert settled_periods(days, later, []) == days[:2]
    # Live data in day 4 make it final now although the recompute comes back to it.
    live = [(d[3] + timedelta(hours=1), d[3] + timedelta(hours=2))]
    assert settled_periods(days, later, live) == [*days[:2], days[3]]
    # Nothing left to later: every period; ranges that only touch do not overlap.
    assert settled_periods(days, [], []) == days
    assert settled_periods(days, [(d[5], d[5] + timedelta(days=1))], []) == days
    year = [(d[0], utc(2027, 1, 1))]
    assert settled_periods(year, later, []) == []
    assert settled_periods(year, [], live) == year

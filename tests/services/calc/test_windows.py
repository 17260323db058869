"""The calc cycle's pure range and month arithmetic."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from services.calc.windows import merge_ranges, month_utc, next_month

T = datetime(2025, 3, 1, tzinfo=UTC)
H = timedelta(hours=1)


def test_merge_ranges_joins_overlapping_and_touching_ranges() -> None:
    assert merge_ranges([(T + 3 * H, T + 4 * H), (T, T + H), (T + H, T + 2 * H)]) == [
        (T, T + 2 * H),
        (T + 3 * H, T + 4 * H),
    ]
    assert merge_ranges([(T, T + 3 * H), (T + H, T + 2 * H)]) == [(T, T + 3 * H)]
    assert merge_ranges(iter([(T, T + H)])) == [(T, T + H)]
    assert merge_ranges([]) == []


def test_next_month_crosses_the_year() -> None:
    assert next_month(date(2025, 1, 1)) == date(2025, 2, 1)
    assert next_month(date(2025, 12, 1)) == date(2026, 1, 1)


def test_month_utc_is_the_local_month() -> None:
    # Shanghai is UTC+8 all year: local midnight 1 March = 28 Feb 16:00 UTC.
    assert month_utc(date(2025, 3, 1), ZoneInfo("Asia/Shanghai")) == (
        datetime(2025, 2, 28, 16, tzinfo=UTC),
        datetime(2025, 3, 31, 16, tzinfo=UTC),
    )
    # A month with a DST change is shorter or longer than its days in UTC.
    start, end = month_utc(date(2025, 3, 1), ZoneInfo("Europe/Berlin"))
    assert (start, end) == (
        datetime(2025, 2, 28, 23, tzinfo=UTC),
        datetime(2025, 3, 31, 22, tzinfo=UTC),
    )

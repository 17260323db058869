"""Pure parts of the calc-result routes: site-local periods, point counts, request ranges, the
totals of inventory rows, and the CORS setting. No services."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from carbonflow.domain.calendar import day_range, period_of, periods_before
from carbonflow.domain.inventory.lines import InventoryLine
from services.api.periods import RangeError, as_site_time, checked_range, points_in
from services.api.routers.carbon import period_end
from services.api.routers.regulator import totals_of
from services.api.settings import ApiSettings
from tests.support.lines import line

CN = "Asia/Shanghai"  # UTC+8, no DST
BERLIN = "Europe/Berlin"  # DST: 2025-03-30 has 23 hours, 2025-10-26 has 25
SH = ZoneInfo(CN)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_naive_times_are_site_local() -> None:
    # 2025-05-02 00:00 in Shanghai is 2025-05-01 16:00 UTC; an offset is kept as given.
    assert as_site_time(datetime(2025, 5, 2), CN) == utc(2025, 5, 1, 16)
    assert as_site_time(datetime(2025, 5, 2, tzinfo=UTC), CN) == utc(2025, 5, 2)


def test_ranges_are_refused_when_empty_reversed_or_out_of_bounds() -> None:
    assert checked_range(datetime(2025, 5, 1), datetime(2025, 5, 2), CN) == (
        utc(2025, 4, 30, 16),
        utc(2025, 5, 1, 16),
    )
    for start, end in (
        (datetime(2025, 5, 2), datetime(2025, 5, 2)),
        (datetime(2025, 5, 3), datetime(2025, 5, 2)),
        (datetime(1900, 1, 1), datetime(2025, 5, 2)),
        (datetime(2025, 1, 1), datetime(9999, 12, 31, 23)),
        (datetime(1, 1, 1), datetime(2025, 1, 1)),  # year 1 in +08:00 is before datetime.min UTC
    ):
        with pytest.raises(RangeError):
            checked_range(start, end, CN)


def test_points_in_a_range() -> None:
    # One day: 96 quarter hours, 24 hours, 1 day, no whole month starting in it.
    day = (utc(2025, 4, 30, 16), utc(2025, 5, 1, 16))
    assert [points_in(g, *day, CN) for g in ("15min", "hour", "day", "month")] == [96, 24, 1, 1]
    # 09:07–10:00 holds the quarter hours starting 09:15, 09:30, 09:45, and no hour start.
    assert points_in("15min", utc(2025, 5, 1, 9, 7), utc(2025, 5, 1, 10), CN) == 3
    assert points_in("hour", utc(2025, 5, 1, 9, 7), utc(2025, 5, 1, 10), CN) == 0
    # 40 days of 15 min: 40 × 96 = 3 840.
    assert points_in("15min", utc(2025, 5, 1), utc(2025, 6, 10), CN) == 3_840
    # A year of local months from 1 January: 12; from 2 January: 11 month starts follow.
    jan1 = datetime(2025, 1, 1, tzinfo=SH).astimezone(UTC)
    jan2 = datetime(2025, 1, 2, tzinfo=SH).astimezone(UTC)
    next_jan1 = datetime(2026, 1, 1, tzinfo=SH).astimezone(UTC)
    assert points_in("month", jan1, next_jan1, CN) == 12
    assert points_in("month", jan2, next_jan1, CN) == 11
    assert points_in("day", jan1, next_jan1, CN) == 365
    # Local days across DST in Berlin: 2025-03-29 to 2025-04-01 are 3 days (71 hours).
    berlin = ZoneInfo(BERLIN)
    lo = datetime(2025, 3, 29, tzinfo=berlin).astimezone(UTC)
    hi = datetime(2025, 4, 1, tzinfo=berlin).astimezone(UTC)
    assert points_in("day", lo, hi, BERLIN) == 3
    assert points_in("hour", lo, hi, BERLIN) == 71


def test_local_periods_and_their_predecessors() -> None:
    # May 2025 in Shanghai: 2025-04-30 16:00 UTC to 2025-05-31 16:00 UTC.
    assert period_of("month", date(2025, 5, 17), CN) == (utc(2025, 4, 30, 16), utc(2025, 5, 31, 16))
    assert period_of("year", date(2025, 5, 17), CN) == (
        utc(2024, 12, 31, 16),
        utc(2025, 12, 31, 16),
    )
    assert period_of("day", date(2025, 12, 31), CN) == (
        utc(2025, 12, 30, 16),
        utc(2025, 12, 31, 16),
    )
    # December's successor is January of the next year.
    assert period_of("month", date(2025, 12, 5), CN)[1] == utc(2025, 12, 31, 16)
    may = utc(2025, 4, 30, 16)
    assert periods_before("month", may, 5, CN) == utc(2024, 11, 30, 16)  # December 2024
    assert periods_before("day", may, 2, CN) == utc(2025, 4, 28, 16)
    assert periods_before("year", may, 1, CN) == utc(2023, 12, 31, 16)
    assert day_range(date(2025, 5, 1), date(2025, 5, 4), CN) == (
        utc(2025, 4, 30, 16),
        utc(2025, 5, 3, 16),
    )


def test_period_end_by_grain() -> None:
    start = utc(2025, 4, 30, 16)  # 2025-05-01 00:00 local
    assert period_end("15min", start, CN) == utc(2025, 4, 30, 16, 15)
    assert period_end("hour", start, CN) == utc(2025, 4, 30, 17)
    assert period_end("day", start, CN) == utc(2025, 5, 1, 16)
    assert period_end("month", start, CN) == utc(2025, 5, 31, 16)
    # A Berlin DST day (2025-10-26) lasts 25 hours.
    berlin = ZoneInfo(BERLIN)
    day = datetime(2025, 10, 26, tzinfo=berlin).astimezone(UTC)
    assert period_end("day", day, BERLIN) - day == timedelta(hours=25)


def _row(
    basis: str,
    scope: str,
    tco2e: float,
    *,
    gas: str = "CO2",
    energy_tce: float = 0.0,
    org: str = "a",
    quality: str = "measured",
    completeness: float = 1.0,
) -> InventoryLine:
    return line(
        org_id=org,
        basis=basis,
        gas=gas,
        scope=scope,
        energy_tce=energy_tce,
        gas_t=tco2e,
        tco2e=tco2e,
        quality=quality,
        completeness=completeness,
    )


def test_totals_of_rows_in_both_views() -> None:
    rows = [
        _row("location", "scope_2", 5.703, energy_tce=1.229),  # 10 MWh × 0.5703 tCO2/MWh
        _row("market", "scope_2", 3.0),  # residual mix on what certificates did not cover
        _row("both", "scope_1", 2.0, energy_tce=0.5, quality="estimated", completeness=0.5),
        _row("both", "scope_1", 0.25, gas="CH4"),  # 0.25 tCO2e of methane
    ]
    t = totals_of(rows)
    # location: 5.703 + 2.0 + 0.25 = 7.953; market: 3.0 + 2.0 + 0.25 = 5.25
    assert t.location_tco2e == pytest.approx(7.953)
    assert t.market_tco2e == pytest.approx(5.25)
    # CO2 only: location 5.703 + 2.0 = 7.703, market 3.0 + 2.0 = 5.0
    assert t.co2_location_t == pytest.approx(7.703)
    assert t.co2_market_t == pytest.approx(5.0)
    # energy on location and both rows only: 1.229 + 0.5 = 1.729 tce
    assert t.energy_tce == pytest.approx(1.729)
    assert t.scope1_tco2e == pytest.approx(2.25)
    assert (t.scope2_location_tco2e, t.scope2_market_tco2e) == (5.703, 3.0)
    # mean completeness (1 + 1 + 0.5 + 1) / 4 = 0.875; one estimated row makes it estimated
    assert t.completeness == pytest.approx(0.875) and t.quality == "estimated"
    empty = totals_of([])
    assert empty.quality is None and empty.completeness == 0.0 and empty.location_tco2e == 0.0


def _settings(origins: str | None = None) -> ApiSettings:
    values: dict[str, Any] = {"DATABASE_URL": "postgresql://u@h/db"}
    if origins is not None:
        values["CARBONFLOW_API_CORS_ORIGINS"] = origins
    return ApiSettings(**values)


def test_cors_origins_setting() -> None:
    assert _settings().cors_origins == ()
    given = _settings(" https://a.example ,http://b:3000,")
    assert given.cors_origins == ("https://a.example", "http://b:3000")
    assert _settings("*").cors_origins == ("*",)
    for bad in ("https://a.example/", "a.example", "ftp://a.example", "https://a/b"):
        with pytest.raises(ValidationError, match="CARBONFLOW_API_CORS_ORIGINS"):
            _settings(bad)

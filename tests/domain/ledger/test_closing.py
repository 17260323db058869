"""The rule for closing a month's ledger (revision 1)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from carbonflow.domain.ledger.closing import close_refusal

END = datetime(2026, 10, 31, 16, tzinfo=UTC)  # 2026-11-01 00:00 Asia/Shanghai
WITH_DATA = {"activity": [{"category": "purchased_electricity", "quantity": 12.5}]}
FIRST = datetime(2026, 3, 1, tzinfo=UTC)


def _refusal(document: Mapping[str, object], now: datetime, first: datetime | None) -> str | None:
    return close_refusal(document, month="2026-10", end=END, now=now, first_reading=first)


def test_a_finished_month_with_data_may_be_closed() -> None:
    assert _refusal(WITH_DATA, END, FIRST) is None  # from the first instant after it


def test_an_open_month_is_refused() -> None:
    refusal = _refusal(WITH_DATA, datetime(2026, 10, 31, 15, 59, tzinfo=UTC), FIRST)
    assert refusal is not None and "has not ended yet" in refusal and "该月尚未结束" in refusal


def test_a_month_before_onboarding_is_refused_even_if_the_draft_has_lines() -> None:
    onboarded = datetime(2026, 10, 31, 16, tzinfo=UTC)  # first reading after the month ended
    refusal = _refusal(WITH_DATA, datetime(2026, 12, 1, tzinfo=UTC), onboarded)
    assert refusal is not None and "2026-10-31" in refusal and "早于站点接入" in refusal
    assert "no reading is stored" in (_refusal(WITH_DATA, END, None) or "")


def test_a_month_without_activity_data_is_refused() -> None:
    refusal = _refusal({"activity": []}, END, FIRST)
    assert refusal is not None and "no activity data" in refusal and "不能关账" in refusal

"""When a month's ledger may be closed (revision 1). Pure: the rule, stated once.

A closed ledger is what an enterprise submits and signs, so it is refused (HTTP 409, the reason
in Chinese and English) for a month that

- has not ended in the site's time zone (its figures still change);
- ends before the site's first stored reading (before the site was onboarded: nothing was
  measured, and a ledger of zeros would read as "no emissions");
- has no activity data at all for the ledger's site or organisation (an empty document).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any


def close_refusal(
    document: Mapping[str, Any],
    *,
    month: str,
    end: datetime,
    now: datetime,
    first_reading: datetime | None,
) -> str | None:
    """Why ``document`` (the month's draft) may not be closed now, or None."""
    if end > now:
        return f"{month} has not ended yet: it can be closed from {end.isoformat()} / 该月尚未结束"
    if first_reading is None or first_reading >= end:
        since = "no reading is stored" if first_reading is None else (
            f"the first reading is of {first_reading.date().isoformat()} UTC"
        )  # fmt: skip
        return f"{month} is before the site was onboarded ({since}) / 该月早于站点接入, 无数据"
    if not document.get("activity"):
        return f"{month} has no activity data for this ledger / 该月无活动数据, 不能关账"
    return None

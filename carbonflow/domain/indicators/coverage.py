"""How sure an indicator is: the data coverage of its period, the rule that makes it
``insufficient_data``, and annualisation by the data that exists. Pure. (docs/accounting.md
"Coverage and conclusive statuses".)

**Coverage** of a period = the share of the period's expected 15-min intervals that have data,
over the site's accounting meters (every active device with a flow metric). For a period in
progress only its elapsed part counts (up to the newest stored interval). A meter without any
interval counts 0 %.

**Conclusive** (:func:`inconclusive_reason`): a status other than ``insufficient_data`` needs

- coverage ≥ :data:`MIN_COVERAGE` (80 %), and
- for a year still in progress, at least :data:`MIN_DAYS_YEAR_IN_PROGRESS` (30) local days
  with data;

otherwise the status is ``insufficient_data`` with the reason in English and Chinese; the value
is still shown.

**Annualisation** (:func:`annualise`): a total of a year in progress is scaled by
``days in the year ÷ days with data``, never by the calendar time since 1 January.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

# Configurable constants, stated once (docs/accounting.md).
MIN_COVERAGE = 0.80  # share of the elapsed period's expected intervals with data
MIN_DAYS_YEAR_IN_PROGRESS = 30  # local days with data before a year in progress is judged
EVENT_MIN_DURATION = timedelta(hours=1)  # data time a crossing must hold before it counts
EVENT_CLEAR_MARGIN = 0.02  # recovery: 2 % of |threshold| past the threshold on the good side


@dataclass(frozen=True, slots=True)
class Coverage:
    """The data behind one period's indicators."""

    label: str  # "2026", "2026-03", "2026-03-05" (site-local)
    grain: str  # day | month | year
    local_start: datetime  # period bounds in the site's zone
    local_end: datetime
    in_progress: bool  # the data does not reach the period's end yet
    share: float  # 0–1 of the elapsed part's expected intervals over the accounting meters
    days_with_data: int  # local days with at least one interval of data
    measured_share: float  # 0–1 of the stored intervals, by quality
    estimated_share: float
    gap_filled_share: float

    @property
    def is_year_in_progress(self) -> bool:
        return self.grain == "year" and self.in_progress


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a status is ``insufficient_data``, in English and Chinese."""

    en: str
    zh: str


def inconclusive_reason(coverage: Coverage | None) -> Reason | None:
    """None when the period's data supports a status (module doc), else why not."""
    if coverage is None:
        return None
    if coverage.share < MIN_COVERAGE:
        return Reason(
            f"coverage {coverage.share:.1%} of {coverage.label} is below the minimum "
            f"{MIN_COVERAGE:.0%}",
            f"{coverage.label} 数据覆盖率 {coverage.share:.1%}，低于最低要求 {MIN_COVERAGE:.0%}",
        )
    if coverage.is_year_in_progress and coverage.days_with_data < MIN_DAYS_YEAR_IN_PROGRESS:
        return Reason(
            f"only {coverage.days_with_data} days with data in {coverage.label} "
            f"(a year in progress needs {MIN_DAYS_YEAR_IN_PROGRESS})",
            f"{coverage.label} 仅 {coverage.days_with_data} 天有数据"
            f"（进行中的年度至少需要 {MIN_DAYS_YEAR_IN_PROGRESS} 天）",
        )
    return None


def missing_input(what_en: str, what_zh: str) -> Reason:
    """An input the indicator needs is not metered (never a ratio of 0)."""
    return Reason(f"missing input: {what_en}", f"缺少输入：{what_zh}")


def annualise(total: float, days_with_data: int, year_days: int) -> float | None:
    """``total`` of a year's data scaled to the whole year by days with data; None without
    any day of data. Example: 12 t over 30 days with data, 365-day year → 146 t/yr."""
    if days_with_data <= 0:
        return None
    return total * year_days / min(days_with_data, year_days)


def coverage_share(completeness: list[float], meters: int) -> float:
    """Coverage over ``meters`` accounting meters from the completeness of those with data
    (each 0–1 of the elapsed part's intervals); a meter without data counts 0."""
    if meters <= 0:
        return 0.0
    return min(1.0, sum(completeness) / meters)

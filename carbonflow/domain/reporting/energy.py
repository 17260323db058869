"""Payloads for the key energy-using units' online energy monitoring. Pure.

重点用能单位能耗在线监测.

The enterprise ↔ provincial platform interface (transport, schema, data-item codes) is handed to
registered units by each province and is not public (REPORTING.md §2.2, evidence U). So the
province's data-item codes and units are a profile (:class:`EnergyProfile`), and the body built
here is our own JSON: rows labelled by **period start** (local time with its offset), numbers as
decimal strings, and the quality checks computed before sending next to the data.

Quality rules (REPORTING.md §2.4, vendor reprints, S): completeness of the 15-minute data of a
day ≥ 90 % (uploaded ÷ expected); the sum of a month's daily values within 5 % of the monthly
value; a daily period starting within 1 minute of local midnight, a monthly one within 1 day of
the first day's midnight. A batch failing any check is *held* for review with the reasons
(:attr:`EnergyBatch.held`), never sent silently.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from carbonflow.domain.calendar import Zone, day_bounds, month_bounds, zone_of
from carbonflow.domain.readings.quality import Quality
from carbonflow.domain.units import convert, lookup

QUARTER = timedelta(minutes=15)
COMPLETENESS_MIN = 0.90
"""Uploaded ÷ expected 15-minute values of a day, at least [fraction] (§2.4)."""
CONSISTENCY_MAX = 0.05
"""|Σ daily − monthly| ÷ monthly, at most [fraction] (§2.4)."""
DAILY_START_TOLERANCE = timedelta(minutes=1)
MONTHLY_START_TOLERANCE = timedelta(days=1)


class Grain(StrEnum):
    QUARTER_HOUR = "15min"
    DAY = "day"
    MONTH = "month"


@dataclass(frozen=True)
class ItemMap:
    """One data item: our source key (``electricity``, ``energy_tce`` …), the province's code
    and the unit it wants (a symbol of the unit table)."""

    source: str
    code: str
    unit: str
    places: int = 4


@dataclass(frozen=True)
class EnergyProfile:
    """A province's profile: the unit's registered code and the item map."""

    unit_code: str
    items: tuple[ItemMap, ...]
    tz: str = "Asia/Shanghai"


@dataclass(frozen=True)
class EnergyDestination:
    """One provincial platform (``protocol: energy`` in the destinations file): where batches
    are POSTed, the bearer token, the unit's profile, which grains go and from when."""

    name: str
    site_id: str
    url: str
    token: str
    profile: EnergyProfile
    grains: tuple[Grain, ...] = (Grain.QUARTER_HOUR, Grain.DAY, Grain.MONTH)
    start: datetime | None = None
    timeout_s: float = 10.0
    ca_file: str | None = None  # a private CA for the province's certificate; else the system's


@dataclass(frozen=True)
class EnergyValue:
    """A stored quantity of one source over one period starting at ``period_start`` (UTC)."""

    source: str
    period_start: datetime
    value: float
    unit: str
    quality: str


@dataclass(frozen=True)
class Check:
    """One quality rule evaluated: the measured figure, its limit and whether it passed."""

    rule: str
    item: str
    value: float | None
    limit: float
    passed: bool
    text: str


@dataclass(frozen=True)
class EnergyBatch:
    """One upload: its body and the checks; held when any check failed."""

    grain: Grain
    period_start: datetime
    body: Mapping[str, object]
    checks: tuple[Check, ...]

    @property
    def held(self) -> bool:
        return not all(check.passed for check in self.checks)

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(check.text for check in self.checks if not check.passed)


def local_label(instant: datetime, tz: Zone) -> str:
    """ISO 8601 local time with offset: ``2025-06-14T00:00:00+08:00``."""
    return instant.astimezone(zone_of(tz)).isoformat(timespec="seconds")


def period_start_check(grain: Grain, start: datetime, tz: Zone) -> Check:
    """Whether a daily (monthly) period starts within 1 minute (1 day) of local midnight (of the
    month's first day); a 15-minute period must sit on the 15-minute grid within 1 minute."""
    tolerance = MONTHLY_START_TOLERANCE if grain is Grain.MONTH else DAILY_START_TOLERANCE
    # The nearest boundary: the one at or before the label moved forward by the tolerance.
    local = (start + tolerance).astimezone(zone_of(tz))
    if grain is Grain.MONTH:
        expected = month_bounds(local.date(), tz)[0]
    elif grain is Grain.DAY:
        expected = day_bounds(local.date(), tz)[0]
    else:
        expected = local.replace(minute=local.minute - local.minute % 15, second=0, microsecond=0)
    offset = abs(start - expected)
    passed = offset <= tolerance
    return Check(
        "period_start",
        "*",
        offset.total_seconds(),
        tolerance.total_seconds(),
        passed,
        f"{grain} period starts {offset.total_seconds():.0f} s from its boundary "
        f"(limit {tolerance.total_seconds():.0f} s) / "
        f"统计起始时间偏差 {offset.total_seconds():.0f} 秒",
    )


def completeness_check(item: str, present: int, expected: int) -> Check:
    """Completeness of one item's 15-minute values over a day: present ÷ expected ≥ 90 %."""
    share = present / expected if expected else 0.0
    return Check(
        "completeness",
        item,
        share,
        COMPLETENESS_MIN,
        share >= COMPLETENESS_MIN,
        f"{item}: {present} of {expected} 15-min values ({share:.1%}, at least 90 %) / "
        f"数据完整率 {share:.1%}（不低于 90%）",
    )


def consistency_check(item: str, daily_sum: float, monthly: float) -> Check:
    """Daily vs monthly: |Σ daily − monthly| ÷ monthly ≤ 5 % (both zero is consistent)."""
    if monthly == 0:
        deviation = 0.0 if daily_sum == 0 else None
    else:
        deviation = abs(daily_sum - monthly) / abs(monthly)
    passed = deviation is not None and deviation <= CONSISTENCY_MAX
    shown = "undefined" if deviation is None else f"{deviation:.2%}"
    return Check(
        "consistency",
        item,
        deviation,
        CONSISTENCY_MAX,
        passed,
        f"{item}: daily sum {daily_sum:g} vs monthly {monthly:g}, deviation {shown} (at most 5 %) "
        f"/ 日月数据偏差 {shown}（不超过 5%）",
    )


def _rows(profile: EnergyProfile, values: Iterable[EnergyValue]) -> list[dict[str, str]]:
    by_source = {item.source: item for item in profile.items}
    rows = []
    for value in sorted(values, key=lambda v: (v.period_start, v.source)):
        item = by_source.get(value.source)
        if item is None or value.quality == Quality.MISSING:
            continue
        amount = Decimal(repr(convert(value.value, value.unit, lookup(item.unit))))
        rows.append(
            {
                "code": item.code,
                "periodStart": local_label(value.period_start, profile.tz),
                "value": f"{amount.quantize(Decimal(1).scaleb(-item.places)):f}",
                "unit": item.unit,
                "quality": value.quality,
            }
        )
    return rows


def _batch(
    profile: EnergyProfile,
    grain: Grain,
    start: datetime,
    values: Sequence[EnergyValue],
    checks: Sequence[Check],
) -> EnergyBatch:
    body = {
        "unitCode": profile.unit_code,
        "grain": str(grain),
        "periodStart": local_label(start, profile.tz),
        "data": _rows(profile, values),
        "quality": [
            {
                "rule": c.rule,
                "item": c.item,
                "value": None if c.value is None else f"{c.value:.4f}",
                "limit": f"{c.limit:.4f}",
                "passed": c.passed,
            }
            for c in checks
        ],
    }
    return EnergyBatch(grain, start, body, tuple(checks))


def quarter_batch(
    profile: EnergyProfile, start: datetime, values: Sequence[EnergyValue]
) -> EnergyBatch:
    """The real-time upload of one 15-minute period (labelled by its start)."""
    return _batch(
        profile,
        Grain.QUARTER_HOUR,
        start,
        values,
        [period_start_check(Grain.QUARTER_HOUR, start, profile.tz)],
    )


def day_batch(
    profile: EnergyProfile,
    start: datetime,
    daily: Sequence[EnergyValue],
    quarters: Sequence[EnergyValue],
) -> EnergyBatch:
    """The daily upload of the local day starting at ``start``: its daily values, checked
    against the completeness of that day's 15-minute values of every mapped item."""
    local_day = start.astimezone(zone_of(profile.tz)).date()
    day_start, day_end = day_bounds(local_day, profile.tz)
    expected = int((day_end - day_start) / QUARTER)  # 96; 92 or 100 across a DST change
    checks = [period_start_check(Grain.DAY, start, profile.tz)]
    for item in profile.items:
        present = sum(
            1
            for q in quarters
            if q.source == item.source
            and q.quality != Quality.MISSING
            and day_start <= q.period_start < day_end
        )
        checks.append(completeness_check(item.source, present, expected))
    return _batch(profile, Grain.DAY, start, daily, checks)


def month_batch(
    profile: EnergyProfile,
    start: datetime,
    monthly: Sequence[EnergyValue],
    daily: Sequence[EnergyValue],
) -> EnergyBatch:
    """The monthly upload: monthly values, each checked against the sum of that month's daily
    values (in the monthly value's unit)."""
    checks = [period_start_check(Grain.MONTH, start, profile.tz)]
    for value in monthly:
        if value.source not in {item.source for item in profile.items}:
            continue
        unit = lookup(value.unit)
        daily_sum = sum(convert(d.value, d.unit, unit) for d in daily if d.source == value.source)
        checks.append(consistency_check(value.source, daily_sum, value.value))
    return _batch(profile, Grain.MONTH, start, monthly, checks)


def batch_digest(batch: EnergyBatch) -> str:
    """A fingerprint of what a batch says (rows and checks), to tell whether recomputed results
    change it."""
    return hashlib.sha256(canonical_json(batch.body)).hexdigest()


def canonical_json(body: Mapping[str, object]) -> bytes:
    """The bytes sent: UTF-8 JSON, keys sorted, no spaces — the same body gives the same bytes."""
    return json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def wire_body(batch: EnergyBatch, batch_id: str, version: int) -> bytes:
    """What is POSTed: the batch's body with its id (``<destination>:<grain>:<period start>``,
    the receiver's de-duplication key) and version (2, 3 … after late data changed it)."""
    return canonical_json({**batch.body, "batchId": batch_id, "version": version})

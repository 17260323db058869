"""Indicators, the targets that apply to them, and on-track status (ACCOUNTING.md §6). Pure.

Every indicator is a :class:`Ratio` whose value is ``None`` — with the reason — when its
denominator is zero (no raw coal hoisted, no energy consumed, no gas drained): zero production
never raises a division error and never reads as 0.

**Which target applies** (:func:`applicable_target`), from ``factors/targets.yaml`` by site kind,
industry, size band and year:

- a milestone year (2025, 2030) applies its own threshold;
- a year between two milestones applies the straight line between them (the trajectory), e.g.
  mine zero-carbon share in 2027 = 20 % + (50 % − 20 %) × 2/5 = 32 %;
- a year before the first milestone applies the first milestone (the target being worked
  towards); a year after the last applies the last;
- a standing target (``from_year``, e.g. the national park core indicator) applies from that year.

**Status** (:func:`status_against`), with ``band`` = ``status_rule.at_risk_band`` of the targets
file (0.10):

- ``on_track``: the value meets the target (``value <comparator> threshold``);
- ``at_risk``: it misses, but by at most ``band × |threshold|`` (within 10 % of the target, on the
  wrong side);
- comparisons treat values within 1e-9 relative of the threshold as equal to it (float rounding);
- ``off_track``: it misses by more;
- ``no_target``: no target applies (e.g. a park below 200 000 tce/yr has no core-indicator
  threshold);
- ``insufficient_data``: the value itself is undefined (zero production, a missing input), or
  its period's data is too thin to judge (:mod:`carbonflow.domain.indicators.coverage`); the
  reason says which.

Budgets (:func:`budget_status`) project consumption linearly to the end of the period:
``on_track`` if the projection stays within the budget, ``at_risk`` if it exceeds it by at most
``band × budget``, ``off_track`` beyond that or once the budget is already used up;
``insufficient_data`` before the period starts or when the data is too thin to project
(``reason``), unless the budget is already used up.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from carbonflow.domain import units
from carbonflow.domain.factors.targets import Comparator, Target, TargetSet
from carbonflow.domain.indicators.coverage import Reason
from carbonflow.domain.inventory.energy_totals import EnergyTotal
from carbonflow.domain.units import Ratio, ratio

# Values within this relative distance of a threshold count as equal to it, so that float
# rounding ((0.7 − 0.56) / 0.7 = 0.19999999999999987) does not turn a met target into a miss.
FLOAT_TOLERANCE = 1e-9


class Indicator(StrEnum):
    """Indicator ids (the ``indicator`` column of targets.yaml)."""

    CO2_PER_RAW_COAL = "co2_per_raw_coal"  # tCO2/t raw coal (scope 1 + 2)
    CO2_PER_RAW_COAL_REDUCTION = "co2_per_raw_coal_reduction"  # fraction vs baseline
    ELECTRICITY_PER_RAW_COAL = "electricity_per_raw_coal"  # kWh/t raw coal
    ENERGY_PER_RAW_COAL = "energy_per_raw_coal"  # kgce/t raw coal
    ENERGY_PER_RAW_COAL_REDUCTION = "energy_per_raw_coal_reduction"  # fraction vs baseline
    ZERO_CARBON_ENERGY_SHARE = "zero_carbon_energy_share"  # fraction of tce
    METHANE_UTILISATION_RATE = "methane_utilisation_rate"  # Q_utilised / Q_drained
    METHANE_DRAINAGE_RATE = "methane_drainage_rate"  # Q_drained / (Q_drained + Q_ventilation)
    CO2_PER_ENERGY = "co2_per_energy"  # tCO2/tce, national zero-carbon park core indicator
    CLEAN_ENERGY_SHARE = "clean_energy_share"  # fraction of tce
    TOTAL_CO2_REDUCTION = "total_co2_reduction"  # fraction vs baseline
    LOW_CARBON_VEHICLE_SHARE = "low_carbon_vehicle_share"  # fraction of vehicles
    UNIT_PRODUCT_CO2_REDUCTION = "unit_product_co2_reduction"  # fraction vs project start
    SUPPLY_COAL_CONSUMPTION = "supply_coal_consumption"  # gce/kWh supplied


# Which comprehensive energy total (:mod:`carbonflow.domain.inventory.energy_totals`) each
# energy-based indicator divides by or is built on; indicators not listed use no energy total.
# All count the coal-mine methane a mine burns on site (energy it consumes, GB/T 2589).
ENERGY_TOTAL: Mapping[Indicator, EnergyTotal] = {
    Indicator.ENERGY_PER_RAW_COAL: EnergyTotal.WITH_UTILISED_METHANE,
    Indicator.ENERGY_PER_RAW_COAL_REDUCTION: EnergyTotal.WITH_UTILISED_METHANE,
    Indicator.ZERO_CARBON_ENERGY_SHARE: EnergyTotal.WITH_UTILISED_METHANE,
    Indicator.CO2_PER_ENERGY: EnergyTotal.WITH_UTILISED_METHANE,
    Indicator.CLEAN_ENERGY_SHARE: EnergyTotal.WITH_UTILISED_METHANE,
}


def energy_total_of(indicator: str) -> EnergyTotal | None:
    """The energy total an indicator uses (:data:`ENERGY_TOTAL`), None if it uses none."""
    try:
        return ENERGY_TOTAL.get(Indicator(indicator))
    except ValueError:
        return None


class Status(StrEnum):
    ON_TRACK = "on_track"
    AT_RISK = "at_risk"
    OFF_TRACK = "off_track"
    INSUFFICIENT_DATA = "insufficient_data"
    NO_TARGET = "no_target"


#: The closed list of statuses, in the order dashboards show them.
STATUSES: tuple[str, ...] = tuple(s.value for s in Status)
#: Statuses that say something about the target (the others are not conclusive).
CONCLUSIVE = frozenset({Status.ON_TRACK, Status.AT_RISK, Status.OFF_TRACK})


def _scaled(r: Ratio, factor: float, unit: str) -> Ratio:
    return Ratio(
        r.numerator, r.denominator, unit, None if r.value is None else r.value * factor,
        r.undefined_reason,
    )  # fmt: skip


# --- coal mine -----------------------------------------------------------------------------------


def co2_per_raw_coal(total_tco2e: float, raw_coal_t: float) -> Ratio:
    """Mine CO2e (scope 1 + 2) [tCO2e] ÷ raw coal output [t] → [tCO2/t]."""
    return ratio(total_tco2e, raw_coal_t, "tCO2/t", what="CO2 per tonne of raw coal")


def electricity_per_raw_coal(production_electricity_kwh: float, raw_coal_t: float) -> Ratio:
    """Production-system electricity [kWh] ÷ raw coal output [t] → [kWh/t] (GB 29444-2012 scope)."""
    return ratio(
        production_electricity_kwh, raw_coal_t, "kWh/t", what="electricity per tonne of raw coal"
    )


def energy_per_raw_coal(production_energy_tce: float, raw_coal_t: float) -> Ratio:
    """Production-system comprehensive energy [tce] ÷ raw coal output [t] → [kgce/t]."""
    r = ratio(
        production_energy_tce,
        raw_coal_t,
        "tce/t",
        what="comprehensive energy per tonne of raw coal",
    )
    return _scaled(r, units.convert(1.0, "t", units.lookup("kg")), "kgce/t")


# --- shares, park ------------------------------------------------------------------------------


def zero_carbon_energy_share(zero_carbon_tce: float, total_tce: float) -> Ratio:
    """Zero-carbon energy [tce] ÷ total energy consumption [tce] → [fraction]."""
    return ratio(zero_carbon_tce, total_tce, "fraction", what="zero-carbon energy share")


def clean_energy_share(clean_tce: float, total_tce: float) -> Ratio:
    """Clean energy [tce] ÷ total energy consumption [tce] → [fraction] (guiding ≥ 90 %)."""
    return ratio(clean_tce, total_tce, "fraction", what="clean energy share")


def low_carbon_vehicle_share(low_carbon_vehicles: float, vehicles: float) -> Ratio:
    """Low-carbon transport vehicles ÷ all vehicles [fraction]."""
    return ratio(low_carbon_vehicles, vehicles, "fraction", what="low-carbon vehicle share")


@dataclass(frozen=True, slots=True)
class FleetGroup:
    """``count`` vehicles in service over [in_service_from, in_service_to) (None = unbounded)."""

    count: int
    low_carbon: bool
    in_service_from: datetime | None = None
    in_service_to: datetime | None = None


SECONDS_PER_DAY = 86_400.0  # SI: 24 h × 3600 s


def fleet_low_carbon_share(groups: Iterable[FleetGroup], start: datetime, end: datetime) -> Ratio:
    """Low-carbon share of the transport fleet over [start, end) [fraction]: low-carbon
    vehicle-days ÷ all vehicle-days, so a vehicle in service for half the period counts half
    (区内低碳运输工具比例). Undefined when no vehicle was in service."""
    if end <= start:
        raise ValueError(f"fleet share: period ends before it starts ({start} → {end})")
    low: list[float] = []
    every: list[float] = []
    for g in groups:
        if g.count < 0:
            raise ValueError(f"fleet share: negative vehicle count {g.count}")
        a = start if g.in_service_from is None else max(start, g.in_service_from)
        b = end if g.in_service_to is None else min(end, g.in_service_to)
        if b <= a:
            continue
        vehicle_days = g.count * (b - a).total_seconds() / SECONDS_PER_DAY
        every.append(vehicle_days)
        if g.low_carbon:
            low.append(vehicle_days)
    return low_carbon_vehicle_share(math.fsum(low), math.fsum(every))


def co2_per_energy(park_co2_t: float, energy_tce: float) -> Ratio:
    """Park CO2 [t] ÷ park comprehensive energy consumption [tce] → [tCO2/tce].

    National zero-carbon park core indicator: CO2 only, energy activities + industrial processes,
    including net imported electricity and heat.
    """
    return ratio(park_co2_t, energy_tce, "tCO2/tce", what="CO2 per unit of energy")


@dataclass(frozen=True, slots=True)
class Reduction:
    """(baseline − current) ÷ baseline [fraction], positive when the value fell."""

    value: Ratio
    baseline: float | None
    current: float | None
    baseline_label: str  # e.g. "2020" or "project start 2023"


def reduction_vs_baseline(
    baseline: float | Ratio, current: float | Ratio, *, baseline_label: str = "2020"
) -> Reduction:
    """Reduction of ``current`` against ``baseline`` (same unit; intensities as :class:`Ratio`).

    Undefined when either is undefined (zero production) or the baseline is 0.
    """
    base = baseline.value if isinstance(baseline, Ratio) else baseline
    now = current.value if isinstance(current, Ratio) else current
    what = f"reduction against {baseline_label}"
    if base is None or now is None:
        missing = "baseline" if base is None else "current value"
        undefined = Ratio(
            0.0, 0.0, "fraction", None, f"{what}: undefined, the {missing} is undefined"
        )
        return Reduction(undefined, base, now, baseline_label)
    if base < 0:
        raise ValueError(f"{what}: negative baseline {base}")
    return Reduction(ratio(base - now, base, "fraction", what=what), base, now, baseline_label)


# --- targets and status --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApplicableTarget:
    """The threshold that applies in ``year``, and the target rows (sources) it comes from."""

    indicator: str
    comparator: Comparator
    threshold: float
    unit: str
    year: int
    basis: str  # how it was derived, in words
    rows: tuple[Target, ...]


def applicable_target(
    targets: TargetSet,
    indicator: Indicator | str,
    site_kind: str,
    year: int,
    *,
    industry: str | None = None,
    annual_energy_tce: float | None = None,
) -> ApplicableTarget | None:
    """The target of ``indicator`` for a site of ``site_kind`` in ``year`` (module doc), or None.

    ``annual_energy_tce`` selects size-banded targets (the park core indicator); without it no
    banded target applies.
    """
    rows = [
        t
        for t in targets.targets
        if t.indicator == str(indicator)
        and t.site_kind == site_kind
        and (t.industry is None or t.industry == industry)
        and t.applies_to_size(annual_energy_tce)
    ]
    milestones = sorted((t for t in rows if t.year is not None), key=lambda t: t.year or 0)
    if milestones:
        years = [t.year or 0 for t in milestones]
        for t in milestones:
            if t.year == year:
                return _from_row(t, year, f"milestone {year}")
        if year < years[0]:
            return _from_row(milestones[0], year, f"next milestone {years[0]}")
        if year > years[-1]:
            return _from_row(milestones[-1], year, f"latest milestone {years[-1]}")
        after = next(t for t in milestones if (t.year or 0) > year)
        before = [t for t in milestones if (t.year or 0) < year][-1]
        y0, y1 = before.year or 0, after.year or 0
        if before.comparator.higher_is_better != after.comparator.higher_is_better:
            raise ValueError(
                f"targets {before.target_id} and {after.target_id} point different ways"
            )
        slope = (after.threshold - before.threshold) / (y1 - y0)
        threshold = before.threshold + slope * (year - y0)
        return ApplicableTarget(
            indicator=str(indicator),
            comparator=after.comparator,
            threshold=threshold,
            unit=after.unit,
            year=year,
            basis=(
                f"interpolated between {y0} ({before.threshold:g}) and {y1} "
                f"({after.threshold:g}) {after.unit}"
            ),
            rows=(before, after),
        )
    standing = [t for t in rows if t.from_year is not None and t.from_year <= year]
    if standing:
        t = standing[0]
        return _from_row(t, year, f"standing target from {t.from_year}")
    return None


def _from_row(t: Target, year: int, basis: str) -> ApplicableTarget:
    return ApplicableTarget(t.indicator, t.comparator, t.threshold, t.unit, year, basis, (t,))


def status_against(value: float | None, target: ApplicableTarget | None, band: float) -> Status:
    """on_track / at_risk / off_track of ``value`` against ``target`` (module doc)."""
    if value is None:
        return Status.INSUFFICIENT_DATA
    if target is None:
        return Status.NO_TARGET
    threshold = target.threshold
    equal = math.isclose(value, threshold, rel_tol=FLOAT_TOLERANCE, abs_tol=FLOAT_TOLERANCE**2)
    inclusive = target.comparator in (Comparator.GE, Comparator.LE)
    if (target.comparator.satisfied(value, threshold) and not (equal and not inclusive)) or (
        equal and inclusive
    ):
        return Status.ON_TRACK
    if abs(value - threshold) <= band * abs(threshold) * (1 + FLOAT_TOLERANCE):
        return Status.AT_RISK
    return Status.OFF_TRACK


@dataclass(frozen=True, slots=True)
class IndicatorResult:
    indicator: str
    value: Ratio
    target: ApplicableTarget | None
    status: Status
    explanation: str
    reason: Reason | None = None  # why insufficient_data, en and zh


def inconclusive(result: IndicatorResult, reason: Reason) -> IndicatorResult:
    """``result`` made ``insufficient_data`` for ``reason``; the value is kept."""
    return IndicatorResult(
        result.indicator, result.value, result.target, Status.INSUFFICIENT_DATA,
        f"{reason.en} (as computed: {result.explanation})", reason,
    )  # fmt: skip


def evaluate(
    indicator: Indicator | str,
    value: Ratio,
    *,
    site_kind: str,
    year: int,
    targets: TargetSet,
    industry: str | None = None,
    annual_energy_tce: float | None = None,
) -> IndicatorResult:
    """``value`` of ``indicator`` with the target that applies and its status."""
    target = applicable_target(
        targets, indicator, site_kind, year, industry=industry, annual_energy_tce=annual_energy_tce
    )
    status = status_against(value.value, target, targets.at_risk_band)
    reason: Reason | None = None
    if value.value is None:
        explanation = value.undefined_reason or "undefined"
        reason = Reason(explanation, f"无法计算：{explanation}")
    elif target is None:
        explanation = f"no {indicator} target for a {site_kind} in {year}" + (
            "" if annual_energy_tce is not None else " (size-banded targets need annual tce)"
        )
    else:
        if target.unit != value.unit:
            raise ValueError(
                f"{indicator}: value in {value.unit} but the target is in {target.unit}"
            )
        explanation = (
            f"{value.value:.6g} {value.unit} vs {target.comparator.value} "
            f"{target.threshold:.6g} {target.unit} ({target.basis}): {status.value}"
        )
    return IndicatorResult(str(indicator), value, target, status, explanation, reason)


def park_core_indicator(
    park_co2_t: float,
    energy_tce: float,
    *,
    year: int,
    targets: TargetSet,
    annual_energy_tce: float | None = None,
) -> IndicatorResult:
    """The national zero-carbon park core indicator [tCO2/tce] against 0.20 / 0.30 by size band.

    ``annual_energy_tce`` (default ``energy_tce``) picks the band: 200 000–1 000 000 tce/yr → 0.20,
    ≥ 1 000 000 → 0.30, below 200 000 → no threshold (``no_target``).
    """
    return evaluate(
        Indicator.CO2_PER_ENERGY,
        co2_per_energy(park_co2_t, energy_tce),
        site_kind="park",
        year=year,
        targets=targets,
        annual_energy_tce=energy_tce if annual_energy_tce is None else annual_energy_tce,
    )


# --- budgets ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Budget:
    """An energy or carbon budget of one enterprise over [period_start, period_end)."""

    owner_id: str
    budget: float
    unit: str  # "tce" or "tCO2e"
    period_start: datetime
    period_end: datetime

    def __post_init__(self) -> None:
        if self.period_end <= self.period_start:
            raise ValueError(f"budget period of {self.owner_id} ends before it starts")
        if self.budget < 0:
            raise ValueError(f"budget of {self.owner_id} is negative: {self.budget}")

    def elapsed_fraction(self, at: datetime) -> float:
        span = (self.period_end - self.period_start).total_seconds()
        done = (at - self.period_start).total_seconds()
        return min(1.0, max(0.0, done / span))


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    budget: Budget
    as_of: datetime
    consumed: float  # [budget unit]
    remaining: float  # budget − consumed; negative once overrun
    elapsed_fraction: float  # 0–1 of the period
    used_fraction: Ratio  # consumed ÷ budget
    projected_total: float | None  # linear projection to the period end
    projected_overrun: float | None  # max(0, projected − budget)
    projected_exhaustion: datetime | None  # when the budget runs out at the average rate so far
    status: Status
    explanation: str
    reason: Reason | None = None  # why insufficient_data, en and zh


def budget_status(
    budget: Budget,
    consumed: float,
    as_of: datetime,
    *,
    at_risk_band: float,
    inconclusive: Reason | None = None,
) -> BudgetStatus:
    """Burn-down of ``budget`` after ``consumed`` [budget unit] by ``as_of``, projected linearly.

    ``at_risk_band``: use ``TargetSet.at_risk_band``. ``inconclusive``: the period's data is too
    thin to project (coverage): ``insufficient_data`` unless the budget is already used up.
    """
    if consumed < 0:
        raise ValueError(f"consumption of {budget.owner_id} is negative: {consumed}")
    elapsed = budget.elapsed_fraction(as_of)
    used = ratio(consumed, budget.budget, "fraction", what=f"budget use of {budget.owner_id}")
    remaining = budget.budget - consumed
    projected: float | None = None
    overrun: float | None = None
    exhaustion: datetime | None = None
    if elapsed > 0:
        projected = consumed / elapsed
        overrun = max(0.0, projected - budget.budget)
        if consumed > 0:
            run_out = budget.budget / consumed * elapsed  # fraction of the period
            if run_out <= 1.0:
                period = budget.period_end - budget.period_start
                exhaustion = budget.period_start + run_out * period
    reason: Reason | None = None
    if consumed > budget.budget:
        status = Status.OFF_TRACK
        explanation = f"budget exceeded by {consumed - budget.budget:.6g} {budget.unit}"
    elif projected is None:
        status = Status.INSUFFICIENT_DATA
        explanation = "the budget period has not started: no rate to project"
        reason = Reason(explanation, "预算期尚未开始，无法预测")
    elif inconclusive is not None:
        status = Status.INSUFFICIENT_DATA
        explanation = f"{inconclusive.en} (projected {projected:.6g} of {budget.budget:.6g})"
        reason = inconclusive
    elif projected <= budget.budget:
        status = Status.ON_TRACK
        explanation = f"projected {projected:.6g} of {budget.budget:.6g} {budget.unit}"
    elif projected <= budget.budget * (1 + at_risk_band):
        status = Status.AT_RISK
        explanation = (
            f"projected overrun {projected - budget.budget:.6g} {budget.unit} "
            f"(within {at_risk_band:.0%} of the budget)"
        )
    else:
        status = Status.OFF_TRACK
        explanation = f"projected overrun {projected - budget.budget:.6g} {budget.unit}"
    return BudgetStatus(
        budget=budget,
        as_of=as_of,
        consumed=consumed,
        remaining=remaining,
        elapsed_fraction=elapsed,
        used_fraction=used,
        projected_total=projected,
        projected_overrun=overrun,
        projected_exhaustion=exhaustion,
        status=status,
        explanation=explanation,
        reason=reason,
    )


@dataclass(frozen=True, slots=True)
class BurnDownPoint:
    ts: datetime
    consumed: float  # cumulative [budget unit]
    remaining: float  # budget − consumed
    ideal_remaining: float  # budget × (1 − elapsed fraction): the straight burn-down line


def burn_down(
    budget: Budget, consumption: Sequence[tuple[datetime, float]]
) -> tuple[BurnDownPoint, ...]:
    """The burn-down line from per-step consumption ``(step end, quantity)``, in time order."""
    points: list[BurnDownPoint] = []
    consumed = 0.0
    previous: datetime | None = None
    for ts, quantity in consumption:
        if previous is not None and ts <= previous:
            raise ValueError("burn-down consumption must be in increasing time order")
        previous = ts
        consumed += quantity
        points.append(
            BurnDownPoint(
                ts=ts,
                consumed=consumed,
                remaining=budget.budget - consumed,
                ideal_remaining=budget.budget * (1.0 - budget.elapsed_fraction(ts)),
            )
        )
    return tuple(points)


def budgets_by_owner(
    budgets: Iterable[Budget],
    consumed: Mapping[str, float],
    as_of: datetime,
    *,
    at_risk_band: float,
) -> dict[str, BudgetStatus]:
    """:func:`budget_status` per enterprise; an enterprise with no consumption row has used 0."""
    return {
        b.owner_id: budget_status(
            b, consumed.get(b.owner_id, 0.0), as_of, at_risk_band=at_risk_band
        )
        for b in budgets
    }

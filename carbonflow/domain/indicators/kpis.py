"""Indicators of a site (and its enterprises) for a period, with the target that applies and a
status; budget burn-down; early-warning events. Pure.

Formulas, targets and statuses are the pure core's (:mod:`carbonflow.domain.indicators.formulas`);
this module gathers the period's inputs from the stored totals and decides which indicators a site
kind has (ACCOUNTING §6):

========================================= =======================================================
mine                                      ``co2_per_raw_coal`` [tCO2/t] (scope 1 + 2 CO2e, on
                                          the baseline's basis, location by default), its
                                          reduction vs the baseline year;
                                          ``electricity_per_raw_coal`` [kWh/t] (consumption
                                          meters at production-system end-use nodes);
                                          ``energy_per_raw_coal`` [kgce/t] (site energy minus
                                          what non-production nodes consume), its reduction;
                                          ``zero_carbon_energy_share``;
                                          ``methane_utilisation_rate``, ``methane_drainage_rate``
park                                      ``co2_per_energy`` [tCO2/tce] (CO2 only, market-based:
                                          evidenced green power at zero), ``clean_energy_share``
                                          (non-fossil only — whether gas counts is unconfirmed),
                                          ``zero_carbon_energy_share``, ``total_co2_reduction``
                                          (annualised by days with data, vs the baseline year,
                                          on the baseline's basis: location by default)
enterprise                                ``zero_carbon_energy_share``, ``co2_per_energy``
every organisation with flows (month,     ``energy_tce``, ``tco2e`` (attributed), and
year)                                     ``product_intensity.<product>`` [tCO2e/t, gCO2e/kWh]
                                          (cradle-to-gate within the site: product links carry
                                          upstream footprints); with a ``project_baseline`` in
                                          the site file ``unit_product_co2_reduction.<product>``
                                          (target by the organisation's industry)
any site with ``vehicles``                ``low_carbon_vehicle_share`` (vehicle-days in service
                                          in the period; targets for parks only)
========================================= =======================================================

Period values are compared with annual targets as they are (intensities and shares); totals
against a baseline year are annualised by the data that exists (× days in the year ÷ days with
data, never by calendar time). A reduction compares figures on one basis, the baseline's
(``baseline.basis``, location unless the site file says market). The park core indicator's
size band uses the baseline's annual energy when the site declares one, else the period's energy
annualised. A site's own targets (site file ``targets``) replace the defaults of the same
indicator and year.

Every value carries its period's :class:`~carbonflow.domain.indicators.coverage.Coverage`; with
too little data (below 80 % coverage, or fewer than 30 days with data in a year in progress) or
a missing input (no production meter, no production-system electricity meter, no ventilation
meter, zero production) the status is ``insufficient_data`` with the reason (en, zh), the value
still shown.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time
from typing import Protocol
from zoneinfo import ZoneInfo

from carbonflow.domain import units
from carbonflow.domain.factors import Comparator, Target, TargetSet
from carbonflow.domain.factors.library import Confidence
from carbonflow.domain.flows.graph import FlowGraph
from carbonflow.domain.indicators.coverage import (
    EVENT_CLEAR_MARGIN,
    EVENT_MIN_DURATION,
    Coverage,
    Reason,
    annualise,
    inconclusive_reason,
    missing_input,
)
from carbonflow.domain.indicators.formulas import (
    Budget,
    BudgetStatus,
    FleetGroup,
    Indicator,
    IndicatorResult,
    Status,
    budget_status,
    clean_energy_share,
    co2_per_energy,
    co2_per_raw_coal,
    electricity_per_raw_coal,
    energy_per_raw_coal,
    evaluate,
    fleet_low_carbon_share,
    inconclusive,
    reduction_vs_baseline,
    zero_carbon_energy_share,
)
from carbonflow.domain.inventory.energy import to_tce
from carbonflow.domain.inventory.lines import Gas, InventoryLine, View, in_view
from carbonflow.domain.inventory.methane import methane_drainage_rate, methane_utilisation_rate
from carbonflow.domain.inventory.site_factors import SiteFactors
from carbonflow.domain.site.model import Baseline, Role, SiteDocument
from carbonflow.domain.site.plan import SitePlan, flow_metric
from carbonflow.domain.units import Ratio, ratio

# Site-file target fields → (indicator, unit, scale to that unit, comparator).
_PCT_TO_FRACTION = units.convert(1.0, "%", units.lookup("fraction"))
SITE_TARGET_FIELDS: Mapping[str, tuple[str, str, float, Comparator]] = {
    "co2_reduction_pct": ("total_co2_reduction", "fraction", _PCT_TO_FRACTION, Comparator.GE),
    "co2_per_raw_coal_reduction_pct": (
        "co2_per_raw_coal_reduction", "fraction", _PCT_TO_FRACTION, Comparator.GE,
    ),
    "electricity_per_raw_coal_kwh_t": ("electricity_per_raw_coal", "kWh/t", 1.0, Comparator.LE),
    "energy_per_raw_coal_reduction_pct": (
        "energy_per_raw_coal_reduction", "fraction", _PCT_TO_FRACTION, Comparator.GE,
    ),
    "zero_carbon_energy_share_pct": (
        "zero_carbon_energy_share", "fraction", _PCT_TO_FRACTION, Comparator.GE,
    ),
    "methane_utilisation_pct": (
        "methane_utilisation_rate", "fraction", _PCT_TO_FRACTION, Comparator.GE,
    ),
    "co2_per_energy_t_tce": ("co2_per_energy", "tCO2/tce", 1.0, Comparator.LE),
    "clean_energy_share_pct": ("clean_energy_share", "fraction", _PCT_TO_FRACTION, Comparator.GE),
    "low_carbon_vehicle_share_pct": (
        "low_carbon_vehicle_share", "fraction", _PCT_TO_FRACTION, Comparator.GE,
    ),
}  # fmt: skip
G_PER_KG = 1000.0  # SI: grams per kilogram (intensities of electricity products in gCO2e/kWh)
ALERT_STATUSES = frozenset({Status.AT_RISK.value, Status.OFF_TRACK.value})


def site_targets(defaults: TargetSet, doc: SiteDocument | None, site_id: str) -> TargetSet:
    """The default targets with the site file's targets replacing those of the same indicator,
    site kind and year (recorded with the site as their source)."""
    if doc is None or not doc.targets:
        return defaults
    kind = doc.site.kind.value
    own: list[Target] = []
    for year, values in sorted(doc.targets.items()):
        for name, (indicator, unit, scale, comparator) in SITE_TARGET_FIELDS.items():
            given = getattr(values, name)
            if given is None:
                continue
            own.append(
                Target(
                    target_id=f"site.{site_id}.{indicator}.{year}",
                    indicator=indicator,
                    site_kind=kind,
                    comparator=comparator,
                    threshold=float(given) * scale,
                    unit=unit,
                    source=f"site file of {site_id} (targets.{year}.{name})",
                    confidence=Confidence.A,
                    version=f"site:{site_id}",
                    year=int(year),
                )
            )
    replaced = {(t.indicator, t.year) for t in own}
    kept = tuple(
        t
        for t in defaults.targets
        if not (t.site_kind == kind and (t.indicator, t.year) in replaced)
    )
    return replace(defaults, targets=kept + tuple(own))


@dataclass(frozen=True, slots=True)
class PeriodInputs:
    """What one period of one site consists of, read from the stored totals."""

    plan: SitePlan
    year: int
    period_days: float
    year_days: int
    carbon: Sequence[InventoryLine]
    devices: Mapping[tuple[int, int], float]  # (device_pk, metric_id) → quantity
    completeness: float
    # The period's time span (the fleet share weighs vehicles by days in service in it).
    period_start: datetime | None = None
    period_end: datetime | None = None
    # How much data the period has (None: not assessed, every status conclusive).
    coverage: Coverage | None = None

    @property
    def days_with_data(self) -> int:
        """Local days with data; without a coverage assessment, the period's length."""
        if self.coverage is not None:
            return self.coverage.days_with_data
        return max(1, math.ceil(self.period_days - 1e-9)) if self.period_days > 0 else 0

    def has_role(self, roles: Iterable[str], *, carrier: str | None = None) -> bool:
        """Whether an active device with a flow metric meters one of ``roles``."""
        wanted = set(roles)
        return any(
            d.role in wanted
            and (carrier is None or d.carrier == carrier)
            and flow_metric(d) is not None
            for d in self.plan.active_devices()
        )

    def has_end_use(self, carrier: str, *, production_system: bool) -> bool:
        """Whether a consumption meter of ``carrier`` sits at such an end-use node."""
        for d in self.plan.active_devices():
            node = self.plan.node(d.node_id)
            if d.role != Role.CONSUMPTION or node is None or not node.end_use:
                continue
            if d.carrier == carrier and node.production_system == production_system:
                return True
        return False

    def _sum(self, pick: Iterable[float]) -> float:
        return math.fsum(pick)

    # Energy and zero-carbon energy are summed over every row, whatever its basis (not over one
    # View): the market-based green rows' zero-carbon energy counts here, unlike in the
    # aggregates (location view) and on the park dashboard (``both`` rows only).
    @property
    def energy_tce(self) -> float:
        return self._sum(r.energy_tce for r in self.carbon)

    @property
    def zero_carbon_tce(self) -> float:
        return self._sum(r.zero_carbon_tce for r in self.carbon)

    def tco2e(self, view: View) -> float:
        return self._sum(r.tco2e for r in in_view(self.carbon, view))

    def co2_t(self, view: View) -> float:
        return self._sum(r.gas_t for r in in_view(self.carbon, view) if r.gas == Gas.CO2)

    def role_quantity(self, roles: Iterable[str], *, carrier: str | None = None) -> float:
        wanted = set(roles)
        values: list[float] = []
        for d in self.plan.active_devices():
            if d.role not in wanted or (carrier is not None and d.carrier != carrier):
                continue
            metric = flow_metric(d)
            if metric is not None:
                values.append(self.devices.get((d.device_pk, metric.metric_id), 0.0))
        return math.fsum(values)

    def end_use_consumption(self, carrier: str, *, production_system: bool) -> float:
        """Consumption meters of ``carrier`` at end-use nodes inside / outside production."""
        values: list[float] = []
        for d in self.plan.active_devices():
            node = self.plan.node(d.node_id)
            if d.role != Role.CONSUMPTION or node is None or not node.end_use:
                continue
            if d.carrier != carrier or node.production_system != production_system:
                continue
            metric = flow_metric(d)
            if metric is not None:
                values.append(self.devices.get((d.device_pk, metric.metric_id), 0.0))
        return math.fsum(values)


@dataclass(frozen=True, slots=True)
class Outcome:
    """One indicator value with the target that applies and its status."""

    org_id: str
    indicator: str
    result: IndicatorResult
    basis: str  # what the figure is built on: location | market | energy | volumes | …
    coverage: Coverage | None = None  # the period's data behind it


def gated(outcome: Outcome, coverage: Coverage | None, missing: Reason | None = None) -> Outcome:
    """``outcome`` with its period's coverage; ``insufficient_data`` (value kept) when an input
    is missing or the coverage is too thin (module doc)."""
    reason = missing or inconclusive_reason(coverage)
    result = outcome.result
    if reason is not None and result.value.value is not None:
        result = inconclusive(result, reason)
    elif missing is not None:
        result = replace(result, reason=missing, explanation=f"{missing.en}; {result.explanation}")
    return replace(outcome, result=result, coverage=coverage)


def _eval(
    indicator: str,
    value: Ratio,
    *,
    kind: str,
    year: int,
    targets: TargetSet,
    basis: str,
    annual_energy_tce: float | None = None,
    org_id: str = "",
) -> Outcome:
    return Outcome(
        org_id,
        indicator,
        evaluate(
            indicator, value, site_kind=kind, year=year, targets=targets,
            annual_energy_tce=annual_energy_tce,
        ),
        basis,
    )  # fmt: skip


def site_indicators(
    inputs: PeriodInputs,
    targets: TargetSet,
    factors: SiteFactors,
    baseline: Baseline | None,
) -> list[Outcome]:
    """Indicators of the site as a whole for one period (module doc)."""
    plan = inputs.plan
    kind, year = plan.kind, inputs.year
    out: list[Outcome] = []

    def add(
        indicator: str,
        value: Ratio,
        basis: str,
        annual_energy_tce: float | None = None,
        missing: Reason | None = None,
    ) -> None:
        outcome = _eval(
            indicator, value, kind=kind, year=year, targets=targets, basis=basis,
            annual_energy_tce=annual_energy_tce,
        )  # fmt: skip
        out.append(gated(outcome, inputs.coverage, missing))

    total_tce = inputs.energy_tce
    add(
        Indicator.ZERO_CARBON_ENERGY_SHARE,
        zero_carbon_energy_share(inputs.zero_carbon_tce, total_tce),
        "energy",
    )
    doc = plan.document
    start, end = inputs.period_start, inputs.period_end
    if doc is not None and doc.vehicles and start is not None and end is not None and end > start:
        add(
            Indicator.LOW_CARBON_VEHICLE_SHARE,
            fleet_low_carbon_share(fleet_groups(doc, plan.timezone), start, end),
            "fleet",
        )
    if kind == "mine":
        _mine_indicators(inputs, factors, baseline, add)
    else:
        _energy_site_indicators(inputs, baseline, add)
    return out


class _Add(Protocol):
    def __call__(
        self,
        indicator: str,
        value: Ratio,
        basis: str,
        annual_energy_tce: float | None = None,
        missing: Reason | None = None,
    ) -> None: ...


def baseline_view(baseline: Baseline | None) -> View:
    """The basis a reduction against ``baseline`` compares on (location unless it says market)."""
    if baseline is not None and baseline.basis == "market":
        return View.MARKET
    return View.LOCATION


def _mine_indicators(
    inputs: PeriodInputs, factors: SiteFactors, baseline: Baseline | None, add: _Add
) -> None:
    label = str(baseline.year) if baseline is not None else "baseline"
    view = baseline_view(baseline)
    total_tce = inputs.energy_tce
    raw_coal = inputs.role_quantity([Role.PRODUCTION.value], carrier="raw_coal")
    no_output = (
        None
        if inputs.has_role([Role.PRODUCTION.value], carrier="raw_coal")
        else missing_input("no raw-coal production meter", "无原煤产量计量")
    )
    intensity = co2_per_raw_coal(inputs.tco2e(view), raw_coal)
    add(Indicator.CO2_PER_RAW_COAL, intensity, view.value, missing=no_output)
    if baseline is not None and baseline.co2e_t is not None and baseline.raw_coal_t:
        base = co2_per_raw_coal(baseline.co2e_t, baseline.raw_coal_t)
        add(
            Indicator.CO2_PER_RAW_COAL_REDUCTION,
            reduction_vs_baseline(base, intensity, baseline_label=label).value,
            view.value,
            missing=no_output,
        )
    kwh = inputs.end_use_consumption("electricity", production_system=True)
    no_kwh = no_output or (
        None
        if inputs.has_end_use("electricity", production_system=True)
        else missing_input(
            "no electricity meter at a production-system end use", "生产系统末端无电量计量"
        )
    )
    add(
        Indicator.ELECTRICITY_PER_RAW_COAL,
        electricity_per_raw_coal(kwh, raw_coal),
        "energy",
        missing=no_kwh,
    )
    outside_kwh = inputs.end_use_consumption("electricity", production_system=False)
    outside_gj = inputs.end_use_consumption("heat", production_system=False)
    outside_tce = _tce(factors, outside_kwh, "kWh", "electricity") + _tce(
        factors, outside_gj, "GJ", "heat"
    )
    production_tce = max(0.0, total_tce - outside_tce)
    energy = energy_per_raw_coal(production_tce, raw_coal)
    add(Indicator.ENERGY_PER_RAW_COAL, energy, "energy", missing=no_output)
    if baseline is not None and baseline.energy_tce is not None and baseline.raw_coal_t:
        base = energy_per_raw_coal(baseline.energy_tce, baseline.raw_coal_t)
        add(
            Indicator.ENERGY_PER_RAW_COAL_REDUCTION,
            reduction_vs_baseline(base, energy, baseline_label=label).value,
            "energy",
            missing=no_output,
        )
    drained = inputs.role_quantity([Role.METHANE_DRAINED.value])
    utilised = inputs.role_quantity([Role.METHANE_UTILISED.value, Role.METHANE_SOLD.value])
    ventilation = inputs.role_quantity([Role.METHANE_VENTILATION.value])
    add(
        Indicator.METHANE_UTILISATION_RATE,
        methane_utilisation_rate(utilised, drained),
        "volumes",
    )
    no_ventilation = (
        None
        if inputs.has_role([Role.METHANE_VENTILATION.value])
        else missing_input("no ventilation-air methane meter", "无乏风瓦斯计量")
    )
    add(
        Indicator.METHANE_DRAINAGE_RATE,
        methane_drainage_rate(drained, ventilation),
        "volumes",
        missing=no_ventilation,
    )


def _energy_site_indicators(inputs: PeriodInputs, baseline: Baseline | None, add: _Add) -> None:
    kind = inputs.plan.kind
    label = str(baseline.year) if baseline is not None else "baseline"
    total_tce = inputs.energy_tce
    co2 = inputs.co2_t(View.MARKET)
    annual_tce = annualise(total_tce, inputs.days_with_data, inputs.year_days)
    annual = (
        baseline.energy_tce
        if baseline is not None and baseline.energy_tce is not None
        else annual_tce
    )
    add(Indicator.CO2_PER_ENERGY, co2_per_energy(co2, total_tce), "market",
        annual_energy_tce=annual)  # fmt: skip
    if kind != "park":
        return
    add(
        Indicator.CLEAN_ENERGY_SHARE,
        clean_energy_share(inputs.zero_carbon_tce, total_tce),
        "energy",
    )
    if baseline is not None and baseline.co2_t is not None:
        view = baseline_view(baseline)
        annual_co2 = annualise(inputs.co2_t(view), inputs.days_with_data, inputs.year_days)
        current: float | Ratio = (
            Ratio(0.0, 0.0, "tCO2", None, "no day with data to annualise")
            if annual_co2 is None
            else annual_co2
        )
        add(
            Indicator.TOTAL_CO2_REDUCTION,
            reduction_vs_baseline(baseline.co2_t, current, baseline_label=label).value,
            view.value,
        )


def fleet_groups(doc: SiteDocument, timezone: str) -> list[FleetGroup]:
    """The site file's vehicles with their service dates as site-local midnights."""
    zone = ZoneInfo(timezone)

    def at(day: date | None) -> datetime | None:
        return None if day is None else datetime.combine(day, time(), zone)

    return [
        FleetGroup(v.count, v.is_low_carbon, at(v.in_service_from), at(v.in_service_to))
        for v in doc.vehicles
    ]


def _tce(factors: SiteFactors, quantity: float, unit: str, carrier: str) -> float:
    if quantity == 0:
        return 0.0
    return to_tce(quantity, unit, factors.tce(carrier)).energy_tce


def org_indicators(
    graph: FlowGraph,
    *,
    kind: str,
    year: int,
    targets: TargetSet,
    doc: SiteDocument | None = None,
) -> list[Outcome]:
    """Per organisation: attributed energy and CO2e, the intensity of each product
    (cradle-to-gate within the site) and, for products with a project baseline in the site file,
    its reduction against it (``unit_product_co2_reduction.<product>``)."""
    out: list[Outcome] = []
    for org, vector in sorted(graph.orgs.items()):
        if not org:
            continue
        energy, _zero, loc, _mkt, _co2l, _co2m = vector
        for name, value, unit in (("energy_tce", energy, "tce"), ("tco2e", loc, "tCO2e")):
            out.append(
                _eval(
                    name, Ratio(value, 1.0, unit, value), kind=kind, year=year, targets=targets,
                    basis="location" if name == "tco2e" else "energy", org_id=org,
                )
            )  # fmt: skip
    for product in graph.products:
        intensity = product.intensity_location
        if units.lookup(product.unit).dimension is units.Dimension.ENERGY:
            # tCO2e per MWh-equivalent → gCO2e/kWh: t → kg (unit table) × 1000 g/kg, per kWh.
            per_kwh = units.convert(1.0, product.unit, units.lookup("kWh"))
            scale = units.convert(1.0, "t", units.lookup("kg")) * G_PER_KG / per_kwh
            intensity = ratio(
                intensity.numerator * scale, intensity.denominator, "gCO2e/kWh",
                what=f"intensity of {product.product_id}",
            )  # fmt: skip
        out.append(
            _eval(
                f"product_intensity.{product.product_id}", intensity, kind=kind, year=year,
                targets=targets, basis="location", org_id=product.org_id or "",
            )
        )  # fmt: skip
    if doc is not None and doc.project_baseline is not None:
        out.extend(_product_reductions(graph, doc, year=year, targets=targets))
    return out


def _product_reductions(
    graph: FlowGraph, doc: SiteDocument, *, year: int, targets: TargetSet
) -> list[Outcome]:
    """Unit-product CO2e against the year before the project (深度降碳示范: coal power −5 %,
    steel and non-ferrous −15 %, coking, coal chemicals, building materials −10 % by 2030).

    The targets are for enterprises by industry, so the organisation's ``industry`` picks the
    target whatever the site's kind; other industries have none (``no_target``)."""
    assert doc.project_baseline is not None
    base_year = doc.project_baseline.year
    industry = {o.id: o.industry for o in doc.organisations}
    out: list[Outcome] = []
    for product in graph.products:
        base = doc.project_baseline.products.get(product.product_id)
        if base is None:
            continue
        # Both tCO2e per product unit, cradle-to-gate within the site, location-based.
        baseline = ratio(base.co2e_t, base.output, f"tCO2e/{product.unit}", what="baseline")
        reduction = reduction_vs_baseline(
            baseline, product.intensity_location, baseline_label=f"project start {base_year}"
        ).value
        org = product.org_id or ""
        result = evaluate(
            Indicator.UNIT_PRODUCT_CO2_REDUCTION, reduction, site_kind="enterprise", year=year,
            targets=targets, industry=industry.get(org),
        )  # fmt: skip
        name = f"{Indicator.UNIT_PRODUCT_CO2_REDUCTION}.{product.product_id}"
        out.append(Outcome(org, name, replace(result, indicator=name), "location"))
    return out


# --- budgets -----------------------------------------------------------------------------------

# What each budget quantity consumes of an organisation's attributed flow vector
# (:data:`carbonflow.domain.flows.graph.COMPONENTS`): energy, and CO2 market-based, so evidenced
# green power offsets it.
BUDGET_COMPONENT = {"energy_tce": "energy_tce", "co2_t": "co2_t_market"}


def budget_outcomes(
    doc: SiteDocument | None,
    year: int,
    *,
    year_start: datetime,
    year_end: datetime,
    consumed: Mapping[str, tuple[float, float]],
    as_of: datetime,
    band: float,
    inconclusive: Reason | None = None,
) -> list[tuple[str, str, BudgetStatus]]:
    """(org, quantity, status) for every budget of ``year``: ``consumed`` maps an org to its
    (energy [tce], CO2 [t], market-based so evidenced green power offsets it) so far;
    ``inconclusive``: the year's data is too thin to project (``insufficient_data``)."""
    if doc is None:
        return []
    out: list[tuple[str, str, BudgetStatus]] = []
    for b in doc.budgets:
        if b.year != year:
            continue
        energy, co2 = consumed.get(b.org, (0.0, 0.0))
        for quantity, amount, unit, used in (
            ("energy_tce", b.energy_tce, "tce", energy),
            ("co2_t", b.co2_t, "tCO2", co2),
        ):
            if amount is None:
                continue
            budget = Budget(b.org, amount, unit, year_start, year_end)
            status = budget_status(
                budget, used, as_of, at_risk_band=band, inconclusive=inconclusive
            )
            out.append((b.org, quantity, status))
    return out


# --- events ------------------------------------------------------------------------------------
#
# An early warning opens once per crossing and closes once per recovery (hysteresis and a
# minimum duration, :data:`EVENT_MIN_DURATION`, :data:`EVENT_CLEAR_MARGIN`):
#
# - it opens after the status has been at_risk / off_track for 1 h of data (at once for a
#   finished period, or a budget already used up: consumption cannot fall back);
# - it closes when the value has been at least 2 % of |threshold| past the threshold, on the
#   good side, for 1 h of data (at once for a finished period);
# - insufficient_data and no_target never open one, and leave an open one as it is;
# - at_risk ↔ off_track while open raises nothing new.
#
# The state between calc cycles is :class:`AlertState` (table ``calc_alert_state``).


@dataclass(frozen=True, slots=True)
class AlertState:
    """One indicator's or budget's early-warning state for one period."""

    is_open: bool = False
    status: str | None = None  # the status the open event was raised with
    pending_since: datetime | None = None  # data time the opposite condition began
    crossings: int = 0  # events opened so far


@dataclass(frozen=True, slots=True)
class Reading:
    """What an alert step looks at: the status, the value and where it must be."""

    status: str
    value: float | None
    threshold: float | None
    higher_is_better: bool
    settled: bool = False  # the miss cannot recover in this period (a budget already used up)


def clear_of(r: Reading) -> bool:
    """The value is past the threshold by the clearing margin, on the good side."""
    if r.status != Status.ON_TRACK.value or r.value is None or r.threshold is None:
        return False
    margin = EVENT_CLEAR_MARGIN * abs(r.threshold)
    if r.higher_is_better:
        return bool(r.value >= r.threshold + margin)
    return bool(r.value <= r.threshold - margin)


def alert_step(
    state: AlertState, r: Reading, *, at: datetime, finished: bool
) -> tuple[AlertState, str | None]:
    """The next state after reading ``r`` with data up to ``at``, and ``"open"`` / ``"close"``
    when an event opens or closes now (section comment)."""
    if r.status not in ALERT_STATUSES and r.status != Status.ON_TRACK.value:
        return replace(state, pending_since=None), None  # insufficient_data, no_target
    flipping = clear_of(r) if state.is_open else r.status in ALERT_STATUSES
    if not flipping:
        status = r.status if state.is_open and r.status in ALERT_STATUSES else state.status
        return replace(state, pending_since=None, status=status), None
    since = state.pending_since or at
    settled = r.settled and not state.is_open
    if not (finished or settled) and at - since < EVENT_MIN_DURATION:
        return replace(state, pending_since=since), None
    if state.is_open:
        return AlertState(False, None, None, state.crossings), "close"
    return AlertState(True, r.status, None, state.crossings + 1), "open"


@dataclass(frozen=True, slots=True)
class Event:
    org_id: str
    kind: str  # indicator | budget | data
    subject: str
    grain: str
    period_start: datetime
    status: str
    previous_status: str | None
    value: float | None
    threshold: float | None
    message: str
    crossing: int = 1  # the how-many-th event opened for this subject and period

    def dedup_key(self, site_id: str) -> str:
        parts: tuple[str, ...] = (
            site_id, self.org_id, self.kind, self.subject, self.grain,
            self.period_start.isoformat(), self.status, self.previous_status or "",
        )  # fmt: skip
        if self.crossing > 1:
            parts = (*parts, str(self.crossing))
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


_StateKey = tuple[str, str]  # (org, indicator or budget quantity)


def indicator_events(
    outcomes: Sequence[Outcome],
    states: Mapping[_StateKey, AlertState],
    *,
    grain: str,
    period_start: datetime,
    at: datetime,
    finished: bool,
) -> tuple[list[Event], dict[_StateKey, AlertState]]:
    """Events of indicators that crossed a threshold (section comment), and every new state."""
    out: list[Event] = []
    after: dict[_StateKey, AlertState] = {}
    for o in outcomes:
        key = (o.org_id, o.indicator)
        before = states.get(key, AlertState())
        target = o.result.target
        r = Reading(
            o.result.status.value,
            o.result.value.value,
            None if target is None else target.threshold,
            target is not None and target.comparator.higher_is_better,
        )
        state, change = alert_step(before, r, at=at, finished=finished)
        if state != before or key in states:
            after[key] = state
        if change is None:
            continue
        out.append(
            Event(
                org_id=o.org_id,
                kind="indicator",
                subject=o.indicator,
                grain=grain,
                period_start=period_start,
                status=r.status,
                previous_status=before.status if change == "close" else None,
                value=r.value,
                threshold=r.threshold,
                message=f"{o.indicator}: {o.result.explanation}",
                crossing=max(1, state.crossings),
            )
        )
    return out, after


def budget_events(
    statuses: Sequence[tuple[str, str, BudgetStatus]],
    states: Mapping[_StateKey, AlertState],
    *,
    period_start: datetime,
    at: datetime,
    finished: bool,
) -> tuple[list[Event], dict[_StateKey, AlertState]]:
    """Events of budgets whose projection crossed the budget (section comment)."""
    out: list[Event] = []
    after: dict[_StateKey, AlertState] = {}
    for org, quantity, s in statuses:
        key = (org, quantity)
        before = states.get(key, AlertState())
        used_up = s.consumed > s.budget.budget
        projected = s.consumed if used_up else s.projected_total
        r = Reading(s.status.value, projected, s.budget.budget, False, settled=used_up)
        state, change = alert_step(before, r, at=at, finished=finished)
        if state != before or key in states:
            after[key] = state
        if change is None:
            continue
        out.append(
            Event(
                org_id=org,
                kind="budget",
                subject=quantity,
                grain="year",
                period_start=period_start,
                status=r.status,
                previous_status=before.status if change == "close" else None,
                value=s.consumed,
                threshold=s.budget.budget,
                message=f"budget {quantity} of {org}: {s.explanation}",
                crossing=max(1, state.crossings),
            )
        )
    return out, after

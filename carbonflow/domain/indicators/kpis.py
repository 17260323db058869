"""Indicators of a site (and its enterprises) for a period, with the target that applies and a
status; budget burn-down; early-warning events. Pure.

Formulas, targets and statuses are the pure core's (:mod:`carbonflow.domain.indicators.formulas`);
this module gathers the period's inputs from the stored totals and decides which indicators a site
kind has (ACCOUNTING §6):

========================================= =======================================================
mine                                      ``co2_per_raw_coal`` [tCO2/t] (scope 1 + 2 CO2e,
                                          location-based), its reduction vs the baseline year;
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
                                          (annualised, vs the baseline year)
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
against a baseline year are annualised (× days in the year ÷ days in the period). The park
core indicator's size band uses the baseline's annual energy when the site declares one, else
the period's energy annualised. A site's own targets (site file ``targets``) replace the
defaults of the same indicator and year.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from carbonflow.domain import units
from carbonflow.domain.factors import Comparator, Target, TargetSet
from carbonflow.domain.factors.library import Confidence
from carbonflow.domain.flows.graph import FlowGraph
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
    label = str(baseline.year) if baseline is not None else "baseline"
    out: list[Outcome] = []

    def add(
        indicator: str, value: Ratio, basis: str, annual_energy_tce: float | None = None
    ) -> None:
        out.append(
            _eval(
                indicator, value, kind=kind, year=year, targets=targets, basis=basis,
                annual_energy_tce=annual_energy_tce,
            )
        )  # fmt: skip

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
        raw_coal = inputs.role_quantity([Role.PRODUCTION.value], carrier="raw_coal")
        co2e = inputs.tco2e(View.LOCATION)
        intensity = co2_per_raw_coal(co2e, raw_coal)
        add(Indicator.CO2_PER_RAW_COAL, intensity, "location")
        if baseline is not None and baseline.co2e_t is not None and baseline.raw_coal_t:
            base = co2_per_raw_coal(baseline.co2e_t, baseline.raw_coal_t)
            add(
                Indicator.CO2_PER_RAW_COAL_REDUCTION,
                reduction_vs_baseline(base, intensity, baseline_label=label).value,
                "location",
            )
        kwh = inputs.end_use_consumption("electricity", production_system=True)
        add(Indicator.ELECTRICITY_PER_RAW_COAL, electricity_per_raw_coal(kwh, raw_coal), "energy")
        outside_kwh = inputs.end_use_consumption("electricity", production_system=False)
        outside_gj = inputs.end_use_consumption("heat", production_system=False)
        outside_tce = _tce(factors, outside_kwh, "kWh", "electricity") + _tce(
            factors, outside_gj, "GJ", "heat"
        )
        production_tce = max(0.0, total_tce - outside_tce)
        energy = energy_per_raw_coal(production_tce, raw_coal)
        add(Indicator.ENERGY_PER_RAW_COAL, energy, "energy")
        if baseline is not None and baseline.energy_tce is not None and baseline.raw_coal_t:
            base = energy_per_raw_coal(baseline.energy_tce, baseline.raw_coal_t)
            add(
                Indicator.ENERGY_PER_RAW_COAL_REDUCTION,
                reduction_vs_baseline(base, energy, baseline_label=label).value,
                "energy",
            )
        drained = inputs.role_quantity([Role.METHANE_DRAINED.value])
        utilised = inputs.role_quantity([Role.METHANE_UTILISED.value, Role.METHANE_SOLD.value])
        ventilation = inputs.role_quantity([Role.METHANE_VENTILATION.value])
        add(
            Indicator.METHANE_UTILISATION_RATE,
            methane_utilisation_rate(utilised, drained),
            "volumes",
        )
        add(
            Indicator.METHANE_DRAINAGE_RATE,
            methane_drainage_rate(drained, ventilation),
            "volumes",
        )
    else:
        co2 = inputs.co2_t(View.MARKET)
        annualise = inputs.year_days / inputs.period_days if inputs.period_days else 0.0
        annual = (
            baseline.energy_tce
            if baseline is not None and baseline.energy_tce is not None
            else total_tce * annualise
        )
        add(Indicator.CO2_PER_ENERGY, co2_per_energy(co2, total_tce), "market",
            annual_energy_tce=annual)  # fmt: skip
        if kind == "park":
            add(
                Indicator.CLEAN_ENERGY_SHARE,
                clean_energy_share(inputs.zero_carbon_tce, total_tce),
                "energy",
            )
            if baseline is not None and baseline.co2_t is not None:
                add(
                    Indicator.TOTAL_CO2_REDUCTION,
                    reduction_vs_baseline(
                        baseline.co2_t, co2 * annualise, baseline_label=label
                    ).value,
                    "market",
                )
    return out


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
) -> list[tuple[str, str, BudgetStatus]]:
    """(org, quantity, status) for every budget of ``year``: ``consumed`` maps an org to its
    (energy [tce], CO2 [t], market-based so evidenced green power offsets it) so far."""
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
            out.append((b.org, quantity, budget_status(budget, used, as_of, at_risk_band=band)))
    return out


# --- events ------------------------------------------------------------------------------------


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

    def dedup_key(self, site_id: str) -> str:
        parts = (
            site_id, self.org_id, self.kind, self.subject, self.grain,
            self.period_start.isoformat(), self.status, self.previous_status or "",
        )  # fmt: skip
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def transition(previous: str | None, current: str) -> bool:
    """An early warning: entering at_risk / off_track, moving between them, or recovering."""
    if current == previous:
        return False
    if current in ALERT_STATUSES:
        return True
    return previous in ALERT_STATUSES and current == Status.ON_TRACK.value


def indicator_events(
    outcomes: Sequence[Outcome],
    previous: Mapping[tuple[str, str], str],
    *,
    grain: str,
    period_start: datetime,
) -> list[Event]:
    """Events for indicators whose status crossed a threshold since the stored result."""
    out: list[Event] = []
    for o in outcomes:
        status = o.result.status.value
        before = previous.get((o.org_id, o.indicator))
        if not transition(before, status):
            continue
        target = o.result.target
        out.append(
            Event(
                org_id=o.org_id,
                kind="indicator",
                subject=o.indicator,
                grain=grain,
                period_start=period_start,
                status=status,
                previous_status=before,
                value=o.result.value.value,
                threshold=None if target is None else target.threshold,
                message=f"{o.indicator}: {o.result.explanation}",
            )
        )
    return out


def budget_events(
    statuses: Sequence[tuple[str, str, BudgetStatus]],
    previous: Mapping[tuple[str, str], str],
    *,
    period_start: datetime,
) -> list[Event]:
    out: list[Event] = []
    for org, quantity, s in statuses:
        before = previous.get((org, quantity))
        if not transition(before, s.status.value):
            continue
        out.append(
            Event(
                org_id=org,
                kind="budget",
                subject=quantity,
                grain="year",
                period_start=period_start,
                status=s.status.value,
                previous_status=before,
                value=s.consumed,
                threshold=s.budget.budget,
                message=f"budget {quantity} of {org}: {s.explanation}",
            )
        )
    return out

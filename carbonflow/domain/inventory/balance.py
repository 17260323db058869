"""One site's energy and carbon inventory for one 15-min interval, by source. Pure.

Input: the site plan, the interval quantities of its devices (``calc_interval``), the factors of
the accounting year and what is left of the month's green-power pool. Output: the rows of
``calc_carbon`` for the interval — each with org, node, carrier, category, scope, basis
(``location`` / ``market`` / ``both``), gas, activity, tce, gas mass, CO2e and the factors used.
The formulas are the pure core's (:mod:`carbonflow.domain.inventory.carbon`, ``energy``,
``methane``); this module only decides which device feeds which formula (by its role), and where a
row is booked (the node and organisation of the metering device).

Bookings by device role (ACCOUNTING §3–4):

- ``grid_import`` / ``grid_export``: import and export registers of all grid meters are netted
  **per interval** (15-min is the accounting grain): net import ≥ 0 → scope 2, location-based at
  the grid average, market-based at the residual factor on what the green pool does not cover
  (:mod:`carbonflow.domain.inventory.green`); a surplus export reduces the self-generation consumed
  on site. Site-level figures are booked at the grid meters' nodes in proportion to their imports
  — unless the site file attributes the grid meters' node (``attribution``, ACCOUNTING §6a):
  then each line is split exactly (:func:`attribution_shares`) between the organisations behind
  the node's metered outgoing edges and the park's common account, booked at that node under
  each owner, so the site total is the sum of its owners' lines by construction.
- ``green_import`` (绿电直连, metered): zero in both views, zero-carbon energy; not grid power.
- ``generation_pv`` / ``generation_wind``: zero (self-generated), zero-carbon energy, net of the
  surplus export. ``generation_gas``: secondary energy — its fuel is what is accounted.
- ``heat_import`` / ``heat_export``: purchased heat, steam or cooling [GJ], scope 2 (both
  views), netted **per interval** against the heat the site delivers off site: net = Σ imports −
  Σ exports, signed (a period's net below 0 is settled to 0 by :func:`settle_period`, the excess
  reported as :func:`heat_export_surplus_gj`). Booked at the import meters' nodes in proportion
  to their imports; at a node an ``attribution`` rule shares (its ``heat`` group), split exactly
  between the organisations behind the node's metered heat edges and the common account, as for
  electricity.
- ``fuel_supply``: combustion CO2, scope 1 (litres → kg by the fuel's density).
- ``process_carbonate``: process CO2 of carbonates (GB/T 32151), scope 1 process: t fed × the
  carbonate's mass fraction × the fraction calcined × its Table C.2 factor (site file
  ``carbonate`` of the device).
- ``methane_*``: the mine balance of :func:`carbonflow.domain.inventory.methane.mine_methane` —
  escape (CH4, fugitive) booked at the drainage node, flaring at the flare, on-site utilisation as
  fuel combustion at the engines/boilers (with the tce of the CH4 burnt). In an interval where
  flared + utilised exceed ventilation + drained (meter timing), the escape is 0 and the excess
  noted.

**Energy is counted once**: ``energy_tce`` is carried by ``location`` and ``both`` rows only;
``zero_carbon_tce`` by the row that makes energy zero-carbon (self-generation and direct supply:
``both``; certificates and contracts: the ``market`` green row). Consumption meters, storage and
production meters are not inventory sources (they feed flows and indicators).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date

from carbonflow.domain import units
from carbonflow.domain.exact import allocate_exact
from carbonflow.domain.factors import FactorNotFound, SelectedFactor, use_factor
from carbonflow.domain.inventory.carbon import (
    Emission,
    GreenInstrument,
    InstrumentKind,
    carbonate_process_co2,
    electricity_location_based,
    electricity_market_based,
    fuel_combustion_co2,
    purchased_heat_co2,
    self_generated_electricity,
)
from carbonflow.domain.inventory.energy import to_tce
from carbonflow.domain.inventory.lines import Basis, Category, FactorTrail, InventoryLine, LineKey
from carbonflow.domain.inventory.methane import MethaneFlows, mine_methane
from carbonflow.domain.inventory.site_factors import SiteFactors
from carbonflow.domain.readings.quality import Quality
from carbonflow.domain.site.model import Role
from carbonflow.domain.site.plan import (
    DevicePlan,
    MetricPlan,
    ShareRule,
    SitePlan,
    flow_metric,
    reverse_metric,
)

_MWH = units.lookup("MWh")
_KWH = "kWh"

_FUEL_CARRIERS = frozenset(
    {"natural_gas", "lng", "lpg", "diesel", "gasoline", "fuel_oil", "raw_coal", "washed_coal",
     "coke", "hydrogen", "coal_mine_methane"}
)  # fmt: skip
_METHANE_ROLES = {
    Role.METHANE_VENTILATION.value: "ventilation",
    Role.METHANE_DRAINED.value: "drained",
    Role.METHANE_FLARED.value: "flared",
    Role.METHANE_UTILISED.value: "utilised",
    Role.METHANE_SOLD.value: "sold",
    Role.METHANE_VENTED.value: "vented",
}


INVENTORY_ROLES = frozenset(
    {
        Role.GRID_IMPORT.value,
        Role.GRID_EXPORT.value,
        Role.GREEN_IMPORT.value,
        Role.GENERATION_PV.value,
        Role.GENERATION_WIND.value,
        Role.HEAT_IMPORT.value,
        Role.HEAT_EXPORT.value,
        Role.FUEL_SUPPLY.value,
        Role.PROCESS_CARBONATE.value,
        *_METHANE_ROLES,
    }
)


def inventory_devices(plan: SitePlan) -> tuple[DevicePlan, ...]:
    """The devices whose intervals the inventory reads: the inventory roles, and the meters an
    attribution rule shares purchased electricity by (other consumption, storage and
    production meters feed flows and indicators, not the inventory)."""
    shared = {d.device_pk for rule in plan.shares for d, _m in rule.registers()}
    return tuple(
        d for d in plan.active_devices() if d.role in INVENTORY_ROLES or d.device_pk in shared
    )


@dataclass(frozen=True, slots=True)
class Quantity:
    """A device metric's quantity in one interval [metric unit × multiplier]."""

    quantity: float
    quality: str
    completeness: float


MISSING = Quantity(0.0, Quality.MISSING.value, 0.0)


@dataclass(frozen=True, slots=True)
class SlotResult:
    rows: tuple[InventoryLine, ...]
    net_import_mwh: float
    covered_mwh: float  # by the site-wide pool
    problems: tuple[str, ...]
    # per holder with a pool: (holder, its share of the net import left after the site-wide
    # pool [MWh, signed], what its own pool covered of it [MWh, signed])
    holders: tuple[tuple[str, float, float], ...] = ()


def combined_quality(parts: Sequence[Quantity]) -> tuple[str, float]:
    """:meth:`Quality.combine` of the parts, and their mean completeness; no parts is
    missing."""
    if not parts:
        return Quality.MISSING.value, 0.0
    quality = Quality.combine(p.quality for p in parts).value
    return quality, math.fsum(p.completeness for p in parts) / len(parts)


def split_exact(total: float, weights: Sequence[float]) -> tuple[float, ...]:
    """``total`` in proportion to ``weights`` (equal parts when all are zero), summing exactly."""
    if not weights:
        return ()
    if len(weights) == 1:
        return (total,)
    if total == 0:
        return tuple(0.0 for _ in weights)
    if not any(w > 0 for w in weights):
        weights = [1.0] * len(weights)
    return allocate_exact(total, [max(0.0, w) for w in weights])


class _Slot:
    """Collects the rows of one interval."""

    def __init__(
        self, plan: SitePlan, quantities: Mapping[tuple[int, int], Quantity], factors: SiteFactors
    ) -> None:
        self.plan = plan
        self.q = quantities
        self.f = factors
        self.rows: list[InventoryLine] = []
        self.problems: list[str] = []

    def get(self, device: DevicePlan, metric: MetricPlan | None) -> Quantity:
        if metric is None:
            return MISSING
        return self.q.get((device.device_pk, metric.metric_id), MISSING)

    def add(
        self,
        device_place: tuple[str | None, str | None],
        emission: Emission,
        *,
        carrier: str,
        basis: Basis,
        parts: Sequence[Quantity],
        energy_tce: float = 0.0,
        zero_carbon_tce: float = 0.0,
    ) -> None:
        org, node = device_place
        quality, completeness = combined_quality(parts)
        self.rows.append(
            InventoryLine(
                org_id=org or "",
                node_id=node or "",
                carrier=carrier,
                category=emission.category,
                basis=basis,
                gas=emission.gas,
                scope=emission.scope,
                activity=emission.activity,
                activity_unit=emission.activity_unit,
                energy_tce=energy_tce,
                zero_carbon_tce=zero_carbon_tce,
                gas_t=emission.gas_t,
                tco2e=emission.emissions_tco2e,
                factors=FactorTrail.of(emission.factors),
                quality=Quality(quality),
                completeness=completeness,
            )
        )

    def split(
        self,
        places: Sequence[tuple[str | None, str | None]],
        weights: Sequence[float],
        emission: Emission,
        *,
        carrier: str,
        basis: Basis,
        parts: Sequence[Quantity],
        energy_tce: float = 0.0,
        zero_carbon_tce: float = 0.0,
    ) -> None:
        """Book a site-level figure at several places in proportion to ``weights`` (exactly)."""
        activity = split_exact(emission.activity, weights)
        gas_t = split_exact(emission.gas_t, weights)
        tco2e = split_exact(emission.emissions_tco2e, weights)
        tce = split_exact(energy_tce, weights)
        zero = split_exact(zero_carbon_tce, weights)
        for i, place in enumerate(places):
            part = replace(emission, activity=activity[i], gas_t=gas_t[i], emissions_tco2e=tco2e[i])
            self.add(
                place, part, carrier=carrier, basis=basis, parts=parts,
                energy_tce=tce[i], zero_carbon_tce=zero[i],
            )  # fmt: skip

    def tce_of(
        self, quantity: float, unit: str, carrier: str, *, pure_ch4: bool = False
    ) -> tuple[float, SelectedFactor]:
        """``quantity`` [unit] in tce, and the coefficient used (recorded with the line)."""
        coefficient = self.f.tce(carrier, pure_ch4=pure_ch4)
        return to_tce(quantity, unit, coefficient, carrier=carrier).energy_tce, coefficient


def _with_factor(emission: Emission, factor: SelectedFactor) -> Emission:
    """``emission`` with one more factor behind it (a tce coefficient): the principal factor
    stays first, and the line's factor set names every factor its figures used."""
    if factor in emission.factors:
        return emission
    return replace(emission, factors=(*emission.factors, factor))


def _places_weights(
    items: Iterable[tuple[DevicePlan, float]],
) -> tuple[list[tuple[str | None, str | None]], list[float]]:
    """Distinct (org, node) of the devices, with their summed weights, in first-seen order."""
    places: list[tuple[str | None, str | None]] = []
    weights: list[float] = []
    for device, weight in items:
        place = (device.org_id, device.node_id)
        if place in places:
            weights[places.index(place)] += weight
        else:
            places.append(place)
            weights.append(weight)
    return places, weights


def attribution_shares(
    rule: ShareRule, quantity_kwh: Callable[[DevicePlan, MetricPlan], float]
) -> tuple[list[tuple[str | None, str | None]], list[float]]:
    """Owners of ``rule``'s node's purchased electricity in one interval, with weights [kWh].

    Each organisation other than the common account takes what its metered edges out of the
    node measured; the common account the rest of what the node received (its own edges, losses
    and unmetered use): ``received − Σ enterprises``, where received = edges in − edges into
    sinks. With ``pro_rata`` the losses go to all edges in proportion (the weights sum to the
    metered outflow). Nothing received or passed on: all to the common account.
    """

    def total(registers: Iterable[tuple[DevicePlan, MetricPlan]]) -> float:
        return math.fsum(max(0.0, quantity_kwh(d, m)) for d, m in registers)

    received = max(0.0, total(rule.inflows) - total(rule.sink_outflows))
    enterprise: dict[str, float] = {}
    passed = 0.0
    for edge in rule.outflows:
        kwh = total(edge.registers)
        passed += kwh
        if edge.org_id != rule.common_org:
            enterprise[edge.org_id] = enterprise.get(edge.org_id, 0.0) + kwh
    denominator = passed if rule.pro_rata else max(received, passed)
    taken = math.fsum(enterprise.values())
    places: list[tuple[str | None, str | None]] = [(org, rule.node_id) for org in enterprise]
    weights = list(enterprise.values())
    places.append((rule.common_org, rule.node_id))
    weights.append(max(0.0, denominator - taken))
    if not any(w > 0 for w in weights):
        return [(rule.common_org, rule.node_id)], [1.0]
    return places, weights


def _kwh_to_mwh(kwh: float) -> float:
    return units.convert(kwh, _KWH, _MWH)


def slot_inventory(
    plan: SitePlan,
    quantities: Mapping[tuple[int, int], Quantity],
    factors: SiteFactors,
    *,
    day: date,
    pool_mwh: float = 0.0,
    month_net_before_mwh: float = 0.0,
    holder_pools: Mapping[str, float] | None = None,
    holder_before_mwh: Mapping[str, float] | None = None,
) -> SlotResult:
    """The inventory rows of one interval (module doc); ``day`` is its local date, ``pool_mwh``
    the month's accepted site-wide green volume and ``month_net_before_mwh`` the month's net
    grid import before this interval (green pool matching, :func:`covered_in_interval`).
    ``holder_pools``: each holder organisation's own accepted volume of the month, covering only
    its share; ``holder_before_mwh``: each such holder's share left after the site-wide pool in
    the month before this interval (:attr:`SlotResult.holders` accumulated) [MWh]."""
    slot = _Slot(plan, quantities, factors)
    # Every rule below picks its devices by an inventory role (the meters an attribution rule
    # reads come with the rule): the others are left out once per plan, not per interval.
    devices = plan.active_with_roles(INVENTORY_ROLES)
    holders = _Holders(
        {o: p for o, p in (holder_pools or {}).items() if p > 0}, holder_before_mwh or {}
    )
    net_mwh, covered = _electricity(slot, devices, day, pool_mwh, month_net_before_mwh, holders)
    _heat(slot, devices)
    _fuels(slot, devices)
    _process(slot, devices)
    _methane(slot, devices)
    return SlotResult(
        tuple(merge_rows(slot.rows)), net_mwh, covered, tuple(slot.problems),
        tuple(holders.result),
    )  # fmt: skip


@dataclass(slots=True)
class _Holders:
    """Holder pools of the month and their running state (see :func:`slot_inventory`)."""

    pools: Mapping[str, float]
    before: Mapping[str, float]
    result: list[tuple[str, float, float]] = field(default_factory=list)


def _signed(emission: Emission, sign: float) -> Emission:
    """An emission figure of a negative quantity (the core computes magnitudes)."""
    if sign >= 0:
        return emission
    return replace(
        emission,
        activity=-emission.activity,
        gas_t=-emission.gas_t,
        emissions_tco2e=-emission.emissions_tco2e,
    )


def _electricity(
    slot: _Slot,
    devices: Sequence[DevicePlan],
    day: date,
    pool_mwh: float,
    net_before_mwh: float,
    holders: _Holders,
) -> tuple[float, float]:
    elec = [d for d in devices if d.carrier == "electricity"]
    imports: list[tuple[DevicePlan, Quantity]] = []
    exports: list[tuple[DevicePlan, Quantity]] = []
    for d in elec:
        if d.role == Role.GRID_IMPORT:
            imports.append((d, slot.get(d, flow_metric(d))))
            back = reverse_metric(d)
            if back is not None:
                exports.append((d, slot.get(d, back)))
        elif d.role == Role.GRID_EXPORT:
            exports.append((d, slot.get(d, flow_metric(d))))
    renewables = [
        (d, slot.get(d, flow_metric(d)))
        for d in elec
        if d.role in (Role.GENERATION_PV, Role.GENERATION_WIND)
    ]
    direct = [(d, slot.get(d, flow_metric(d))) for d in elec if d.role == Role.GREEN_IMPORT]

    net_mwh = covered = 0.0
    f = slot.f
    if imports or exports:
        # Signed net import of the interval: exports offset imports linearly, so any period's
        # net import is the sum of its intervals' (settle_period clamps a net-exporting period).
        net_mwh = _kwh_to_mwh(
            math.fsum(q.quantity for _, q in imports) - math.fsum(q.quantity for _, q in exports)
        )
        sign = -1.0 if net_mwh < 0 else 1.0
        parts = [q for _, q in imports] + [q for _, q in exports]
        booked = imports or exports
        places, weights = _owners(slot, booked)
        tce, coefficient = slot.tce_of(abs(net_mwh), "MWh", "electricity")
        location = _signed(electricity_location_based(abs(net_mwh), f.location), sign)
        slot.split(
            places, weights, _with_factor(location, coefficient), carrier="electricity",
            basis=Basis.LOCATION, parts=parts, energy_tce=sign * tce,
        )  # fmt: skip
        covered = covered_in_interval(net_before_mwh, net_mwh, pool_mwh)
        if holders.pools and any(org in holders.pools for org, _node in places):
            _market_by_holder(slot, day, places, weights, parts, net_mwh, covered, holders)
        else:
            _market_site_wide(slot, day, places, weights, parts, net_mwh, covered)

    # Self-generated PV / wind and direct green supply at zero, all zero-carbon energy. What the
    # site exports is netted against its imports above; a period that exports more than it
    # imports takes the surplus out of these (settle_period).
    for group, own in ((renewables, True), (direct, False)):
        if not group:
            continue
        places, weights = _places_weights((d, q.quantity) for d, q in group)
        for place, kwh in zip(places, weights, strict=True):
            mwh = _kwh_to_mwh(kwh)
            tce, coefficient = slot.tce_of(mwh, "MWh", "electricity")
            parts = [q for d, q in group if (d.org_id, d.node_id) == place]
            emission = (
                self_generated_electricity(mwh, f.self_zero) if own else _direct_supply(mwh, f, day)
            )
            slot.add(
                place, _with_factor(emission, coefficient), carrier="electricity",
                basis=Basis.BOTH, parts=parts, energy_tce=tce, zero_carbon_tce=tce,
            )  # fmt: skip
    return net_mwh, covered


def _market_site_wide(
    slot: _Slot,
    day: date,
    places: Sequence[tuple[str | None, str | None]],
    weights: Sequence[float],
    parts: Sequence[Quantity],
    net_mwh: float,
    covered: float,
) -> None:
    """Market-based lines when no holder has its own pool: the site-level figures (what the
    site-wide pool covers at zero, the rest at the residual factor) split by the weights."""
    f = slot.f
    remainder = net_mwh - covered
    market = electricity_market_based(
        abs(remainder), [], f.residual, period_start=day, period_end=day,
        zero_factor=f.green_zero,
    )  # fmt: skip
    slot.split(
        places, weights, _signed(market.remainder, -1.0 if remainder < 0 else 1.0),
        carrier="electricity", basis=Basis.MARKET, parts=parts,
    )  # fmt: skip
    if covered != 0:
        green, zero_tce = _pool_green(slot, day, covered)
        slot.split(
            places, weights, green, carrier="electricity", basis=Basis.MARKET, parts=parts,
            zero_carbon_tce=zero_tce,
        )  # fmt: skip


def _pool_green(slot: _Slot, day: date, covered_mwh: float) -> tuple[Emission, float]:
    """The market green row of ``covered_mwh`` (signed) of the month's pool: zero emissions
    through the core's market-based rule, and its zero-carbon energy [tce] (signed)."""
    f = slot.f
    volume = abs(covered_mwh)
    instrument = GreenInstrument(
        InstrumentKind.GREEN_POWER_CONTRACT, "month-pool", volume, day, day,
        "monthly pool of the green-power register (calc_green_claim)",
    )  # fmt: skip
    green = electricity_market_based(
        volume, [instrument], f.residual, period_start=day, period_end=day,
        zero_factor=f.green_zero,
    ).green  # fmt: skip
    sign = -1.0 if covered_mwh < 0 else 1.0
    zero_tce, coefficient = slot.tce_of(volume, "MWh", "electricity")
    return _with_factor(_signed(green, sign), coefficient), sign * zero_tce


def _market_by_holder(
    slot: _Slot,
    day: date,
    places: Sequence[tuple[str | None, str | None]],
    weights: Sequence[float],
    parts: Sequence[Quantity],
    net_mwh: float,
    covered: float,
    holders: _Holders,
) -> None:
    """Market-based lines place by place when holders have their own pools in the month.

    The site-wide pool's coverage and the remainder are split over the places by the weights,
    as without holders; then each holder's own pool covers what is left of its own places'
    share, in time order over the month (:func:`covered_in_interval` on the holder's running
    share), and nobody else's. Each place's figures are its own, so the site total is the sum
    of the owners' lines."""
    f = slot.f
    remainder = split_exact(net_mwh - covered, weights)
    site_covered = split_exact(covered, weights)
    own = [0.0] * len(places)
    for org in sorted({o for o, _node in places if o is not None and o in holders.pools}):
        index = [i for i, (o, _node) in enumerate(places) if o == org]
        share = math.fsum(remainder[i] for i in index)
        got = covered_in_interval(holders.before.get(org, 0.0), share, holders.pools[org])
        holders.result.append((org, share, got))
        for i, part in zip(index, split_exact(got, [weights[i] for i in index]), strict=True):
            own[i] = part
    for i, place in enumerate(places):
        left = remainder[i] - own[i]
        market = electricity_market_based(
            abs(left), [], f.residual, period_start=day, period_end=day, zero_factor=f.green_zero
        )
        slot.add(
            place, _signed(market.remainder, -1.0 if left < 0 else 1.0), carrier="electricity",
            basis=Basis.MARKET, parts=parts,
        )  # fmt: skip
        green_mwh = site_covered[i] + own[i]
        if green_mwh == 0:
            continue
        green, zero_tce = _pool_green(slot, day, green_mwh)
        slot.add(
            place, green, carrier="electricity", basis=Basis.MARKET, parts=parts,
            zero_carbon_tce=zero_tce,
        )  # fmt: skip


def _owners(
    slot: _Slot, booked: Sequence[tuple[DevicePlan, Quantity]], group: str = "electricity"
) -> tuple[list[tuple[str | None, str | None]], list[float]]:
    """Where purchased electricity (or heat, ``group``) is booked: by the attribution rule of
    the meters' node for that carrier group, if the site file has one, else at the meters'
    places in proportion to their quantities."""
    meter_nodes = {d.node_id for d, _q in booked}
    rule = next(
        (r for r in slot.plan.shares if r.group == group and {r.node_id} == meter_nodes), None
    )
    if rule is None:
        return _places_weights((d, q.quantity) for d, q in booked)
    unit = units.lookup(_KWH if group == "electricity" else "GJ")

    def common(device: DevicePlan, metric: MetricPlan) -> float:
        return units.convert(slot.get(device, metric).quantity, metric.unit, unit)

    return attribution_shares(rule, common)


def _direct_supply(mwh: float, f: SiteFactors, day: date) -> Emission:
    """Metered 绿电直连 at zero, through the core's market-based rule (direct supply)."""
    instrument = GreenInstrument(InstrumentKind.DIRECT_SUPPLY, "direct", mwh, day, day, "metered")
    return electricity_market_based(
        mwh, [instrument], f.residual, period_start=day, period_end=day, zero_factor=f.green_zero
    ).green


def covered_in_interval(net_before_mwh: float, net_mwh: float, pool_mwh: float) -> float:
    """The part of an interval's net import the month's green pool covers [MWh], signed.

    With ``N`` the month's cumulative net import, the pool covers ``clamp(N, 0, pool)`` so far;
    an interval covers the change of that: exporting intervals give coverage back. Over the
    month the covered volume is therefore min(pool, max(0, month net import)) — the period rule.
    """
    if pool_mwh <= 0:
        return 0.0
    total = net_before_mwh + net_mwh
    if 0.0 <= net_before_mwh <= pool_mwh and 0.0 <= total <= pool_mwh:
        return net_mwh  # inside the pool all along: exactly the interval's net import
    before = min(pool_mwh, max(0.0, net_before_mwh))
    after = min(pool_mwh, max(0.0, total))
    return after - before


def _net_heat_gj(rows: Iterable[InventoryLine]) -> float:
    return math.fsum(r.activity for r in rows if r.category == Category.PURCHASED_HEAT)


def heat_export_surplus_gj(rows: Sequence[InventoryLine]) -> float:
    """Heat delivered off site beyond the heat bought in a period [GJ] (0 if none): reported as
    its own figure, as the surplus export of electricity; the purchased heat is then 0."""
    return max(0.0, -_net_heat_gj(rows))


def _settle_heat(rows: Sequence[InventoryLine]) -> Sequence[InventoryLine]:
    """Purchased heat of a period never below 0: a period whose heat exports exceed its heat
    imports books 0 (the excess is :func:`heat_export_surplus_gj`)."""
    if _net_heat_gj(rows) >= 0:
        return rows
    return [
        replace(r, activity=0.0, energy_tce=0.0, zero_carbon_tce=0.0, gas_t=0.0, tco2e=0.0)
        if r.category == Category.PURCHASED_HEAT
        else r
        for r in rows
    ]


def settle_period(rows: Sequence[InventoryLine]) -> tuple[list[InventoryLine], float]:
    """A period's summed rows as reported, and its surplus export [MWh] (ACCOUNTING §3).

    Intervals store signed net imports so that periods add up; a period whose net import is
    negative exported more than it imported: its purchased electricity is 0 (scope 2 is never
    negative) and the surplus is taken out of the self-generated and directly supplied
    zero-carbon electricity it was made of (in proportion). Other periods are unchanged.
    Purchased heat likewise: a period whose net heat is negative books 0 purchased heat
    (:func:`heat_export_surplus_gj` is the excess, taken from the rows before settling).
    """
    net = math.fsum(
        r.activity
        for r in rows
        if r.category == Category.PURCHASED_ELECTRICITY and r.basis == Basis.LOCATION
    )
    rows = _settle_heat(rows)
    if net >= 0:
        return list(rows), 0.0
    surplus = -net
    zero_rows = [
        r
        for r in rows
        if r.category in (Category.SELF_GENERATION, Category.GREEN_ELECTRICITY)
        and r.basis == Basis.BOTH
    ]
    generated = math.fsum(r.activity for r in zero_rows)
    keep = 1.0 - min(1.0, surplus / generated) if generated > 0 else 1.0
    out: list[InventoryLine] = []
    for r in rows:
        if r.category == Category.PURCHASED_ELECTRICITY or (
            r.category == Category.GREEN_ELECTRICITY and r.basis == Basis.MARKET
        ):
            r = replace(  # noqa: PLW2901
                r, activity=0.0, energy_tce=0.0, zero_carbon_tce=0.0, gas_t=0.0, tco2e=0.0
            )
        elif r in zero_rows:
            r = replace(  # noqa: PLW2901
                r, activity=r.activity * keep, energy_tce=r.energy_tce * keep,
                zero_carbon_tce=r.zero_carbon_tce * keep,
            )  # fmt: skip
        out.append(r)
    return out, surplus


def _heat(slot: _Slot, devices: Sequence[DevicePlan]) -> None:
    """Purchased heat net of heat delivered off site, one interval (module doc)."""
    imports: list[tuple[DevicePlan, Quantity]] = []
    exports: list[tuple[DevicePlan, Quantity]] = []
    for d in devices:
        if d.role not in (Role.HEAT_IMPORT, Role.HEAT_EXPORT):
            continue
        metric = flow_metric(d)
        if metric is None:
            continue
        q = slot.get(d, metric)
        gj = replace(q, quantity=units.convert(q.quantity, metric.unit, units.lookup("GJ")))
        (imports if d.role == Role.HEAT_IMPORT else exports).append((d, gj))
    if not imports and not exports:
        return
    net_gj = math.fsum(q.quantity for _, q in imports) - math.fsum(q.quantity for _, q in exports)
    sign = -1.0 if net_gj < 0 else 1.0
    tce, coefficient = slot.tce_of(abs(net_gj), "GJ", "heat")
    emission = _signed(
        _with_factor(purchased_heat_co2(abs(net_gj), slot.f.heat), coefficient), sign
    )
    parts = [q for _, q in imports] + [q for _, q in exports]
    booked = imports or exports
    # By node of the booked meters first (in proportion to what each measured), then each
    # node's part by its attribution rule (or at its meters' places): exact at both levels.
    nodes = list(dict.fromkeys(d.node_id for d, _q in booked))
    node_weights = [math.fsum(q.quantity for d, q in booked if d.node_id == n) for n in nodes]
    activity = split_exact(emission.activity, node_weights)
    gas_t = split_exact(emission.gas_t, node_weights)
    tco2e = split_exact(emission.emissions_tco2e, node_weights)
    tces = split_exact(sign * tce, node_weights)
    for i, node in enumerate(nodes):
        here = [(d, q) for d, q in booked if d.node_id == node]
        carriers = {d.carrier for d, _q in here}
        carrier = carriers.pop() if len(carriers) == 1 else "heat"
        places, weights = _owners(slot, here, "heat")
        part = replace(emission, activity=activity[i], gas_t=gas_t[i], emissions_tco2e=tco2e[i])
        slot.split(
            places, weights, part, carrier=carrier, basis=Basis.BOTH, parts=parts,
            energy_tce=tces[i],
        )  # fmt: skip


def _process(slot: _Slot, devices: Sequence[DevicePlan]) -> None:
    """Process CO2 of carbonates (GB/T 32151): each ``process_carbonate`` device's material [t]
    × its carbonate's mass fraction × the fraction calcined × the carbonate's factor (Table
    C.2), scope 1 process, booked at the device's node and organisation."""
    calcined = [d for d in devices if d.role == Role.PROCESS_CARBONATE]
    if not calcined:
        return
    doc = slot.plan.document
    feeds = {d.id: d.carbonate for d in doc.devices if d.carbonate} if doc is not None else {}
    for d in calcined:
        feed, metric = feeds.get(d.device_id), flow_metric(d)
        if feed is None or metric is None:
            slot.problems.append(f"{d.device_id}: process_carbonate without carbonate or metric")
            continue
        q = slot.get(d, metric)
        try:
            mass_t = units.convert(q.quantity, metric.unit, units.lookup("t"))
            factor = use_factor(slot.f.library.get(f"carbonate.{feed.carbonate}"))
            emission = carbonate_process_co2(
                mass_t, factor, purity=feed.purity, calcination=feed.calcination
            )
        except (FactorNotFound, units.UnitError, ValueError) as exc:
            slot.problems.append(f"{d.device_id}: {exc}")
            continue
        slot.add((d.org_id, d.node_id), emission, carrier=d.carrier, basis=Basis.BOTH, parts=[q])


def _fuels(slot: _Slot, devices: Sequence[DevicePlan]) -> None:
    # The formulas are linear: devices of one place, carrier and unit are summed first.
    groups: dict[tuple[str | None, str | None, str, str], list[tuple[DevicePlan, Quantity]]] = {}
    for d in devices:
        if d.role != Role.FUEL_SUPPLY or d.carrier not in _FUEL_CARRIERS:
            continue
        if d.carrier == "hydrogen":
            continue  # burns to water: no CO2, and no tce coefficient in the method
        metric = flow_metric(d)
        if metric is None:
            continue
        key = (d.org_id, d.node_id, d.carrier, metric.unit)
        groups.setdefault(key, []).append((d, slot.get(d, metric)))
    for (org, node, carrier, unit), members in groups.items():
        quantity = math.fsum(q.quantity for _, q in members)
        parts = [q for _, q in members]
        names = ", ".join(d.device_id for d, _ in members)
        try:
            params = slot.f.fuel(carrier)
            amounts: list[tuple[float, str]] = [(quantity, unit)]
            extra: tuple[SelectedFactor, ...] = ()
            if units.lookup(unit).dimension is units.Dimension.LIQUID_VOLUME:
                density = slot.f.density(carrier)
                litres = units.convert(quantity, unit, units.lookup("L"))
                amounts = [(litres * density.value, "kg")]
                extra = (density,)
            target = units.lookup(params.activity_unit).dimension
            fuel_amount = _in_dimension(amounts, target, carrier, params.activity_unit)
            emission = fuel_combustion_co2(*fuel_amount, params)
            coefficient = slot.f.tce(carrier)
            tce_dim = units.lookup(str(coefficient.factor.denominator_unit)).dimension
            tce = to_tce(*_in_dimension(amounts, tce_dim, carrier, coefficient.unit), coefficient)
        except (FactorNotFound, units.UnitError) as exc:
            slot.problems.append(f"{names}: {exc}")
            continue
        if extra:
            emission = replace(emission, factors=(*emission.factors, *extra))
        emission = _with_factor(emission, coefficient)
        slot.add(
            (org, node), emission, carrier=carrier, basis=Basis.BOTH, parts=parts,
            energy_tce=tce.energy_tce,
        )  # fmt: skip


def _in_dimension(
    amounts: Sequence[tuple[float, str]], dimension: units.Dimension, carrier: str, wanted: str
) -> tuple[float, str]:
    for value, unit in amounts:
        if units.lookup(unit).dimension is dimension:
            return value, unit
    have = ", ".join(u for _, u in amounts)
    raise units.UnitError(
        f"{carrier} metered in {have} cannot be expressed as {wanted} "
        f"(meter it in {wanted}, or in litres with a density)"
    )


def _methane(slot: _Slot, devices: Sequence[DevicePlan]) -> None:  # noqa: C901 — one branch per methane role of the mine balance
    lines: dict[str, list[tuple[DevicePlan, Quantity]]] = {}
    for d in devices:
        flow = _METHANE_ROLES.get(d.role)
        if flow is None:
            continue
        metric = flow_metric(d)
        if metric is None:
            continue
        lines.setdefault(flow, []).append((d, slot.get(d, metric)))
    if not lines:
        return

    def total(flow: str) -> float:
        return math.fsum(q.quantity for _, q in lines.get(flow, ()))

    volumes = {f: total(f) for f in ("ventilation", "drained", "flared", "utilised", "sold")}
    # The same sums, in the same order, as mine_methane's consistency check.
    released = volumes["ventilation"] + volumes["drained"]
    destroyed = volumes["flared"] + (volumes["utilised"] + volumes["sold"])
    ventilation = volumes["ventilation"]
    if released - destroyed < 0:
        # One message per kind (no figures in it): the service raises one event per day.
        slot.problems.append(
            "methane: flared + utilised + sold exceed ventilation + drained in an interval "
            "(meter timing or a missing meter); its escape is set to 0"
        )
        ventilation += destroyed - released
        while (ventilation + volumes["drained"]) - destroyed < 0:  # float rounding
            ventilation = math.nextafter(ventilation, math.inf)
    balance = mine_methane(
        MethaneFlows(
            ventilation_ch4_nm3=ventilation,
            drained_ch4_nm3=volumes["drained"],
            flared_ch4_nm3=volumes["flared"],
            utilised_onsite_ch4_nm3=volumes["utilised"],
            sold_offsite_ch4_nm3=volumes["sold"],
        ),
        slot.f.methane,
    )
    everything = [q for group in lines.values() for _, q in group]
    home = lines.get("drained") or lines.get("ventilation") or next(iter(lines.values()))
    slot.add(
        (home[0][0].org_id, home[0][0].node_id), balance.escape, carrier="coal_mine_methane",
        basis=Basis.BOTH, parts=everything,
    )  # fmt: skip
    for flow, figure in (("flared", balance.flaring), ("utilised", balance.utilisation)):
        group = lines.get(flow, [])
        if not group:
            continue
        places, weights = _places_weights((d, q.quantity) for d, q in group)
        tce, emission = 0.0, figure
        if flow == "utilised":
            tce, coefficient = slot.tce_of(
                volumes["utilised"], "Nm3", "coal_mine_methane", pure_ch4=True
            )
            emission = _with_factor(figure, coefficient)
        slot.split(
            places, weights, emission, carrier="coal_mine_methane", basis=Basis.BOTH,
            parts=[q for _, q in group], energy_tce=tce,
        )  # fmt: skip


def merge_rows(rows: Iterable[InventoryLine]) -> list[InventoryLine]:
    """Rows with the same key summed (exactly rounded), in first-seen order."""
    groups: dict[LineKey, list[InventoryLine]] = {}
    for row in rows:
        groups.setdefault(row.key(), []).append(row)
    out: list[InventoryLine] = []
    for group in groups.values():
        first = group[0]
        if len(group) == 1:
            out.append(first)
            continue
        out.append(
            replace(
                first,
                activity=math.fsum(r.activity for r in group),
                energy_tce=math.fsum(r.energy_tce for r in group),
                zero_carbon_tce=math.fsum(r.zero_carbon_tce for r in group),
                gas_t=math.fsum(r.gas_t for r in group),
                tco2e=math.fsum(r.tco2e for r in group),
                quality=Quality.combine(r.quality for r in group),
                completeness=math.fsum(r.completeness for r in group) / len(group),
            )
        )
    return out

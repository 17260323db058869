"""The expected energy and carbon of a simulated period, from the true totals — pure.

Computed with the accounting core of :mod:`carbonflow.domain` (no formula is re-implemented
here), from the oracle's true quantities, so a calc service can be checked against it:

- **activity data** by role: grid import and export, green import (绿电直连), PV, wind and
  gas-engine generation, fuels dispensed or metered (natural gas Nm³, diesel L → kg by the
  simulator's density assumption, LNG t), purchased heat, coal-mine methane flows (pure CH4);
- **energy** (GB/T 2589, :mod:`carbonflow.domain.inventory.energy`): grid electricity at its net
  import; zero-carbon electricity = PV + wind + green import − any surplus export; natural gas,
  diesel, purchased heat by their carrier coefficients; coal-mine methane burnt on site as heat
  (CH4 Nm³ × LHV → MJ × the heat coefficient, the example site file's convention); gas-engine
  electricity is not counted again (its methane is). A carrier without a GB/T 2589 coefficient
  (LNG) takes the calc's derived one, NCV ÷ 29.3076 GJ/tce; one without either is listed in
  ``not_counted``;
- **emissions** (:mod:`carbonflow.domain.inventory.carbon`,
  :mod:`carbonflow.domain.inventory.methane`): location- based scope 2 = net grid import × the
  MEE/NBS provincial average factor selected for the accounting year (green import left out); fuel
  combustion; purchased heat; the mine methane balance (GWP set SAR by default: escape, flaring,
  utilisation);
- **indicators** (:mod:`carbonflow.domain.indicators.formulas`): electricity and CO2 per tonne of
  raw coal (GB 29444 production system), methane drainage and utilisation rates, zero-carbon
  energy share, the park core indicator (CO2 only ÷ tce; market-based like the platform's: with
  no green register in a simulation, the net grid import at the national residual factor).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from carbonflow.domain import units
from carbonflow.domain.factors import (
    ElectricityBasis,
    FactorLibrary,
    FactorNotFound,
    default_library,
    select_electricity_factor,
)
from carbonflow.domain.indicators.formulas import (
    co2_per_energy,
    co2_per_raw_coal,
    electricity_per_raw_coal,
    zero_carbon_energy_share,
)
from carbonflow.domain.inventory.carbon import (
    Emission,
    Scope2Method,
    electricity_location_based,
    electricity_market_based,
    fuel_combustion_co2,
    fuel_parameters,
    net_electricity_import,
    purchased_heat_co2,
    scope_totals,
)
from carbonflow.domain.inventory.energy import (
    TceConversion,
    energy_balance,
    tce_coefficient,
    to_tce,
)
from carbonflow.domain.inventory.methane import (
    GwpSet,
    MethaneFlows,
    methane_drainage_rate,
    methane_parameters,
    methane_utilisation_rate,
    mine_methane,
)
from carbonflow.domain.inventory.site_factors import SiteFactors, site_factors
from carbonflow.domain.site.model import (
    Carrier,
    Device,
    NodeKind,
    Role,
    SiteDocument,
    SiteKind,
)
from carbonflow.domain.units import Ratio
from simulators.assumptions import Assumptions, default_assumptions
from simulators.oracle import PeriodTotals

HEAT_FACTOR_KEY = "heat.purchased.default"
_KWH, _MWH = units.lookup("kWh"), units.lookup("MWh")


@dataclass
class Activity:
    """Activity data of a period, summed by role from the true quantities."""

    grid_import_kwh: float = 0.0
    grid_export_kwh: float = 0.0
    green_import_kwh: float = 0.0
    pv_kwh: float = 0.0
    wind_kwh: float = 0.0
    gas_generation_kwh: float = 0.0
    production_system_kwh: float = 0.0  # GB 29444 scope (mines)
    consumption_kwh: float = 0.0  # first-level consumption meters (not sub-meters)
    natural_gas_nm3: float = 0.0
    diesel_l: float = 0.0
    lng_t: float = 0.0
    heat_import_gj: float = 0.0
    heat_export_gj: float = 0.0  # heat delivered off site, netted against heat_import_gj
    ch4_ventilation_nm3: float = 0.0
    ch4_drained_nm3: float = 0.0
    ch4_flared_nm3: float = 0.0
    ch4_utilised_nm3: float = 0.0
    ch4_sold_nm3: float = 0.0
    ch4_vented_nm3: float = 0.0
    raw_coal_t: float = 0.0
    products: dict[str, float] = field(default_factory=dict)


def activity(doc: SiteDocument, totals: PeriodTotals) -> Activity:
    """Sum the true quantities of ``totals`` by the role of each device."""
    a = Activity(products=dict(totals.products))
    nodes = {n.id: n for n in doc.nodes}
    devices = {d.id: d for d in doc.devices}
    distribution_with_children = {
        e.source
        for e in doc.edges
        if e.carrier is Carrier.ELECTRICITY
        and nodes.get(e.source) is not None
        and nodes[e.source].kind is NodeKind.DISTRIBUTION
        and e.meters
    }

    def q(d: Device, metric: str) -> float:
        return totals.quantities.get(d.id, {}).get(metric, 0.0)

    for d in devices.values():
        if d.id not in totals.quantities:
            continue
        role, carrier = d.role, d.carrier
        if carrier is Carrier.ELECTRICITY:
            if role is Role.GRID_IMPORT:
                a.grid_import_kwh += q(d, "energy_import_kwh")
                a.grid_export_kwh += q(d, "energy_export_kwh")
            elif role is Role.GRID_EXPORT:
                a.grid_export_kwh += q(d, "energy_export_kwh") or q(d, "energy_import_kwh")
            elif role is Role.GREEN_IMPORT:
                a.green_import_kwh += q(d, "energy_import_kwh")
            elif role is Role.GENERATION_PV:
                a.pv_kwh += q(d, "energy_export_kwh")
            elif role is Role.GENERATION_WIND:
                a.wind_kwh += q(d, "energy_export_kwh")
            elif role is Role.GENERATION_GAS:
                a.gas_generation_kwh += q(d, "energy_export_kwh")
            elif role is Role.CONSUMPTION:
                node = nodes.get(d.node or "")
                is_intake = node is not None and node.id in distribution_with_children
                if node is not None and node.production_system and not is_intake:
                    a.production_system_kwh += q(d, "energy_import_kwh")
        elif role in (Role.FUEL_SUPPLY,) and carrier is Carrier.NATURAL_GAS:
            a.natural_gas_nm3 += q(d, "volume_nm3")
        elif role is Role.FUEL_SUPPLY and carrier is Carrier.DIESEL:
            a.diesel_l += q(d, "volume_l")
        elif role is Role.FUEL_SUPPLY and carrier is Carrier.LNG:
            a.lng_t += q(d, "lng_t")
        elif role is Role.HEAT_IMPORT:
            a.heat_import_gj += q(d, "heat_gj")
        elif role is Role.HEAT_EXPORT:
            a.heat_export_gj += q(d, "heat_gj")
        elif role is Role.METHANE_VENTILATION:
            a.ch4_ventilation_nm3 += q(d, "ch4_nm3")
        elif role is Role.METHANE_DRAINED:
            a.ch4_drained_nm3 += q(d, "ch4_nm3")
        elif role is Role.METHANE_FLARED:
            a.ch4_flared_nm3 += q(d, "ch4_nm3")
        elif role is Role.METHANE_UTILISED:
            a.ch4_utilised_nm3 += q(d, "ch4_nm3")
        elif role is Role.METHANE_SOLD:
            a.ch4_sold_nm3 += q(d, "ch4_nm3")
        elif role is Role.METHANE_VENTED:
            a.ch4_vented_nm3 += q(d, "ch4_nm3")
    raw_products = {
        d.product for d in devices.values() if d.carrier is Carrier.RAW_COAL and d.product
    }
    a.raw_coal_t = sum(totals.products.get(p, 0.0) for p in raw_products)
    return a


def _ratio(r: Ratio) -> dict[str, Any]:
    return {"value": r.value, "unit": r.unit, "numerator": r.numerator,
            "denominator": r.denominator}  # fmt: skip


def _emission(e: Emission) -> dict[str, Any]:
    return {
        "label": e.label,
        "category": e.category.value,
        "scope": e.scope.value,
        "gas": e.gas.value,
        "gas_t": e.gas_t,
        "tco2e": e.emissions_tco2e,
        "activity": e.activity,
        "activity_unit": e.activity_unit,
        "formula": e.formula,
        "factors": [f.record() for f in e.factors],
    }


def _conversion(c: TceConversion) -> dict[str, Any]:
    return {
        "carrier": c.carrier,
        "quantity": c.quantity,
        "unit": c.quantity_unit,
        "tce": c.energy_tce,
        "zero_carbon": c.zero_carbon,
        "coefficient": c.coefficient.record(),
        "formula": c.formula,
    }


def _grid_market(net_mwh: float, site: SiteFactors, start: datetime) -> Emission:
    """Market-based scope 2 of the net grid import with no instrument: the residual factor."""
    day = start.date()
    return electricity_market_based(
        net_mwh, [], site.residual, period_start=day, period_end=day, zero_factor=site.green_zero
    ).remainder


def expected_ledger(
    doc: SiteDocument,
    totals: PeriodTotals,
    tz: ZoneInfo,
    *,
    month: str | None = None,
    gwp: GwpSet = GwpSet.SAR,
    library: FactorLibrary | None = None,
    assumptions: Assumptions | None = None,
) -> dict[str, Any]:
    """The ``ledger`` record of one period (``month`` = ``"YYYY-MM"`` for a calendar month)."""
    lib = library or default_library()
    physics = (assumptions or default_assumptions()).physics
    a = activity(doc, totals)
    start = datetime.fromtimestamp(totals.start_s, tz=tz)
    year = start.year
    not_counted: list[str] = []

    # --- energy ---------------------------------------------------------------------------
    net = net_electricity_import(
        units.convert(a.grid_import_kwh, _KWH.symbol, _MWH),
        units.convert(a.grid_export_kwh, _KWH.symbol, _MWH),
    )
    surplus_kwh = units.convert(net.surplus_export_mwh, _MWH.symbol, _KWH)
    zero_carbon_kwh = max(0.0, a.pv_kwh + a.wind_kwh + a.green_import_kwh - surplus_kwh)
    electricity = tce_coefficient(lib, "electricity")
    conversions = [
        to_tce(
            units.convert(net.net_import_mwh, _MWH.symbol, _KWH),
            "kWh",
            electricity,
            carrier="electricity (grid, net import)",
        ),
        to_tce(
            zero_carbon_kwh,
            "kWh",
            electricity,
            carrier="electricity (zero-carbon)",
            zero_carbon=True,
        ),
    ]
    if a.natural_gas_nm3:
        conversions.append(
            to_tce(
                a.natural_gas_nm3, "Nm3", tce_coefficient(lib, "natural_gas"), carrier="natural_gas"
            )
        )
    diesel_kg = a.diesel_l * physics.diesel_density_kg_per_l
    if diesel_kg:
        conversions.append(
            to_tce(diesel_kg, "kg", tce_coefficient(lib, "diesel"), carrier="diesel")
        )
    # net purchased heat, never below 0 (the calc's settle_period)
    heat_net_gj = max(0.0, a.heat_import_gj - a.heat_export_gj)
    if heat_net_gj:
        conversions.append(
            to_tce(heat_net_gj, "GJ", tce_coefficient(lib, "heat"), carrier="heat (purchased)")
        )
    if a.ch4_utilised_nm3:
        ch4_mj = a.ch4_utilised_nm3 * physics.ch4_lhv_mj_per_nm3
        conversions.append(
            to_tce(ch4_mj, "MJ", tce_coefficient(lib, "heat"), carrier="coal-mine methane (burnt)")
        )
    site = site_factors(
        lib, province=doc.site.province.value, grid_region=doc.site.grid_region.value, year=year
    )
    if a.lng_t:
        # As the calc does (site_factors.SiteFactors.tce): no GB/T 2589 coefficient for LNG, so
        # NCV ÷ 29.3076 GJ/tce (a derived factor) — left out before, 5 % of a park's energy.
        try:
            conversions.append(to_tce(a.lng_t, "t", site.tce("lng"), carrier="lng"))
        except FactorNotFound as exc:
            not_counted.append(f"lng {a.lng_t:g} t: {exc}")
    balance = energy_balance(conversions)

    # --- emissions ------------------------------------------------------------------------
    emissions: list[Emission] = []
    grid_factor = select_electricity_factor(
        doc.site.province.value,
        doc.site.grid_region.value,
        ElectricityBasis.AVERAGE,
        year,
        library=lib,
    )
    grid_location = electricity_location_based(net.net_import_mwh, grid_factor)
    emissions.append(grid_location)
    if a.natural_gas_nm3:
        emissions.append(
            fuel_combustion_co2(a.natural_gas_nm3, "Nm3", fuel_parameters(lib, "natural_gas"))
        )
    if diesel_kg:
        emissions.append(fuel_combustion_co2(diesel_kg, "kg", fuel_parameters(lib, "diesel")))
    if a.lng_t:
        emissions.append(fuel_combustion_co2(a.lng_t, "t", fuel_parameters(lib, "lng")))
    if heat_net_gj:
        emissions.append(purchased_heat_co2(heat_net_gj, lib.get(HEAT_FACTOR_KEY)))
    methane: dict[str, Any] | None = None
    if a.ch4_drained_nm3 or a.ch4_ventilation_nm3:
        balance_ch4 = mine_methane(
            MethaneFlows(
                ventilation_ch4_nm3=a.ch4_ventilation_nm3,
                drained_ch4_nm3=a.ch4_drained_nm3,
                flared_ch4_nm3=a.ch4_flared_nm3,
                utilised_onsite_ch4_nm3=a.ch4_utilised_nm3,
                sold_offsite_ch4_nm3=a.ch4_sold_nm3,
            ),
            methane_parameters(lib, gwp),
        )
        emissions.extend(balance_ch4.emissions)
        methane = {
            "escape_ch4_nm3": balance_ch4.escape_ch4_nm3,
            "drainage_rate": _ratio(balance_ch4.drainage_rate),
            "utilisation_rate": _ratio(balance_ch4.utilisation_rate),
            "gwp": balance_ch4.gwp.record(),
        }
    totals_lb = scope_totals(emissions, Scope2Method.LOCATION_BASED)

    # --- indicators -----------------------------------------------------------------------
    indicators: dict[str, Any] = {
        "zero_carbon_energy_share": _ratio(
            zero_carbon_energy_share(balance.zero_carbon_tce, balance.total_tce)
        ),
    }
    if doc.site.kind is SiteKind.MINE:
        indicators["electricity_per_raw_coal"] = _ratio(
            electricity_per_raw_coal(a.production_system_kwh, a.raw_coal_t)
        )
        indicators["co2_per_raw_coal"] = _ratio(
            co2_per_raw_coal(totals_lb.total_tco2e, a.raw_coal_t)
        )
        indicators["methane_utilisation_rate"] = _ratio(
            methane_utilisation_rate(a.ch4_utilised_nm3 + a.ch4_sold_nm3, a.ch4_drained_nm3)
        )
        indicators["methane_drainage_rate"] = _ratio(
            methane_drainage_rate(a.ch4_drained_nm3, a.ch4_ventilation_nm3)
        )
    else:
        # The platform's park core indicator is market-based (kpis: evidenced green power at
        # zero, the rest at the residual factor); a simulation has no green register, so the
        # whole net import takes the residual factor.
        market = _grid_market(net.net_import_mwh, site, start)
        co2_market_t = totals_lb.co2_t - grid_location.gas_t + market.gas_t
        indicators["co2_per_energy"] = _ratio(co2_per_energy(co2_market_t, balance.total_tce))
    return {
        "record": "ledger",
        "scope": "month" if month else "period",
        "month": month,
        "start": datetime.fromtimestamp(totals.start_s, tz=tz).isoformat(),
        "end": datetime.fromtimestamp(totals.end_s, tz=tz).isoformat(),
        "intervals": totals.intervals,
        "accounting_year": year,
        "activity": {k: v for k, v in vars(a).items()},
        "energy": {
            "total_tce": balance.total_tce,
            "zero_carbon_tce": balance.zero_carbon_tce,
            "conversions": [_conversion(c) for c in balance.conversions],
            "not_counted": not_counted,
            "assumptions": {
                "diesel_density_kg_per_l": physics.diesel_density_kg_per_l,
                "ch4_lhv_mj_per_nm3": physics.ch4_lhv_mj_per_nm3,
            },
        },
        "emissions": [_emission(e) for e in emissions],
        "methane": methane,
        "totals": {
            "method": totals_lb.method.value,
            "scope1_tco2e": totals_lb.scope1_tco2e,
            "scope2_tco2e": totals_lb.scope2_tco2e,
            "total_tco2e": totals_lb.total_tco2e,
            "co2_t": totals_lb.co2_t,
            "ch4_t": totals_lb.ch4_t,
        },
        "indicators": indicators,
    }


def ledger_records(
    doc: SiteDocument,
    period: PeriodTotals | None,
    months: Mapping[str, PeriodTotals],
    tz: ZoneInfo,
) -> list[dict[str, Any]]:
    """The whole period's ledger and one per local calendar month."""
    if period is None:
        return []
    out = [expected_ledger(doc, period, tz)]
    out.extend(expected_ledger(doc, months[m], tz, month=m) for m in sorted(months))
    return out

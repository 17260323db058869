"""Energy and activity data → CO2 (ACCOUNTING.md §3). Pure.

- **Fuel combustion** (GB/T 32150 / GB/T 32151; REFERENCE.md §8.1):
  ``tCO2 = FC × NCV × CC × OF × 44/12`` with FC in t or 10⁴ Nm³, NCV in GJ per unit, CC in tC/GJ,
  OF a fraction; defaults from GB/T 32151.34—2024 Appendix C, overridable per site.
- **Purchased electricity, location-based**: ``tCO2 = MWh_net_import × EF_grid`` with the MEE/NBS
  average factor picked by :func:`carbonflow.domain.factors.select_electricity_factor`.
- **Purchased electricity, market-based**: evidenced green power (green-power trading
  settlement, 绿电直连 direct supply, green certificates at 1 GEC = 1 MWh) at zero, the remainder
  × the residual factor (MEE/NBS *excluding market-traded non-fossil electricity*). The plain
  average is refused for the remainder: it would count the claimed green power twice.
- **Self-generated PV / wind** at zero; **exports** are subtracted from imports (net import).
- **Purchased heat**: ``tCO2 = GJ × 0.11`` unless the supplier's factor is given.
- **Scopes**: combustion, process, fugitive and flaring = scope 1; purchased electricity and heat
  = scope 2, reported both location-based and market-based (GHG Protocol Scope 2 Guidance).

Every function returns an :class:`Emission` recording the factors used (key, version, value,
unit, source, why chosen) and the arithmetic in words, so each figure can be traced.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from carbonflow.domain import units
from carbonflow.domain.factors.electricity import ELECTRICITY_FACTOR_UNIT
from carbonflow.domain.factors.library import (
    FactorLibrary,
    FactorNotFound,
    FactorValue,
    SelectedFactor,
    Selection,
    SiteOverride,
    require_unit,
    use_factor,
)
from carbonflow.domain.inventory.lines import Basis, Category, Gas, Scope, View

# Molar-mass ratio CO2 : C [tCO2/tC] as the Chinese guidelines write it (REFERENCE.md unit
# conventions): 44/12, not 44.01/12.011.
CO2_PER_C = 44.0 / 12.0

_MWH = units.lookup("MWh")


class Scope2Method(StrEnum):
    LOCATION_BASED = "location_based"
    MARKET_BASED = "market_based"

    @property
    def view(self) -> View:
        """The scope-2 view the method reports."""
        return View.LOCATION if self is Scope2Method.LOCATION_BASED else View.MARKET


class DoubleCountingError(ValueError):
    """A market-based remainder priced with a grid-average factor."""


@dataclass(frozen=True, slots=True)
class Emission:
    """One emission figure with its activity data and the factors used.

    ``gas_t`` is the mass of ``gas`` [t]; ``emissions_tco2e`` the same in CO2e [tCO2e] (equal for
    CO2). ``scope2_method`` is set on electricity figures that belong to only one of the two
    scope-2 totals; ``None`` counts in both (scope 1, heat).
    """

    category: Category
    scope: Scope
    gas: Gas
    gas_t: float
    emissions_tco2e: float
    activity: float
    activity_unit: str
    factors: tuple[SelectedFactor, ...]
    formula: str
    scope2_method: Scope2Method | None = None
    label: str = ""

    @property
    def basis(self) -> Basis:
        """The views the figure counts in: its ``scope2_method``'s, or both."""
        if self.scope2_method is None:
            return Basis.BOTH
        return Basis(self.scope2_method.view.value)


# --- fuel combustion ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FuelParameters:
    """NCV [GJ/t or GJ/10^4 Nm3], CC [tC/GJ] and OF [fraction] of one fuel, as used."""

    fuel: str
    ncv: SelectedFactor
    cc: SelectedFactor
    of: SelectedFactor

    @property
    def activity_unit(self) -> str:
        """The unit fuel quantities are converted to: ``t`` or ``10^4 Nm3``."""
        return str(self.ncv.factor.denominator_unit)


def fuel_parameters(
    library: FactorLibrary,
    fuel: str,
    *,
    ncv: SiteOverride | None = None,
    cc: SiteOverride | None = None,
    of: SiteOverride | None = None,
) -> FuelParameters:
    """Default parameters of ``fuel``, each replaced by a site override where given (recorded).

    ``fuel``: a fuel id (``natural_gas``), its Chinese name (``天然气``) or a site-model carrier
    id (``raw_coal`` is accounted as 烟煤 bituminous coal, ``washed_coal`` as 洗精煤).
    """
    fuel_id = _fuel_id(library, fuel)

    def pick(parameter: str, override: SiteOverride | None) -> SelectedFactor:
        default = library.get(f"fuel.{fuel_id}.{parameter}")
        if override is None:
            return use_factor(default)
        selected = library.resolve_pin(override)
        if selected.unit != default.unit:
            raise ValueError(
                f"override {override.key} for {fuel_id} {parameter} is in {override.unit}, "
                f"the default in {default.unit}"
            )
        return selected

    params = FuelParameters(fuel_id, pick("ncv", ncv), pick("cc", cc), pick("of", of))
    if params.ncv.factor.numerator_unit != "GJ" or params.cc.unit != "tC/GJ":
        raise ValueError(f"unexpected units for {fuel_id}: {params.ncv.unit}, {params.cc.unit}")
    return params


def _fuel_id(library: FactorLibrary, fuel: str) -> str:
    """The fuel id for a fuel id, Chinese name or site-model carrier id (raw_coal → 烟煤)."""
    names = {f.tag("fuel"): (f.tag("name_zh"), f.tag("carrier")) for f in library.find("fuel.")}
    for fuel_id, aliases in names.items():
        if fuel == fuel_id or fuel in aliases:
            return str(fuel_id)
    known = ", ".join(f"{zh} ({fid})" for fid, (zh, _) in names.items())
    raise FactorNotFound(f"no default parameters for fuel {fuel!r}; fuels: {known}")


def fuel_combustion_co2(
    fuel_quantity: float, fuel_quantity_unit: str, params: FuelParameters, *, label: str = ""
) -> Emission:
    """Combustion CO2 [t] = FC × NCV × CC × OF × 44/12 (GB/T 32150; scope 1).

    ``fuel_quantity`` [fuel_quantity_unit] is converted to the NCV's unit (t or 10^4 Nm3) through
    the unit table (kg → t, Nm3 → 10^4 Nm3).
    """
    if fuel_quantity < 0:
        raise ValueError(f"fuel quantity is negative: {fuel_quantity}")
    fc = units.convert(fuel_quantity, fuel_quantity_unit, units.lookup(params.activity_unit))
    heat_gj = fc * params.ncv.value
    co2_t = heat_gj * params.cc.value * params.of.value * CO2_PER_C
    return Emission(
        category=Category.FUEL_COMBUSTION,
        scope=Scope.SCOPE_1,
        gas=Gas.CO2,
        gas_t=co2_t,
        emissions_tco2e=co2_t,
        activity=fc,
        activity_unit=params.activity_unit,
        factors=(params.ncv, params.cc, params.of),
        formula=(
            f"{fc:g} {params.activity_unit} × {params.ncv.value:g} {params.ncv.unit} × "
            f"{params.cc.value:g} tC/GJ × {params.of.value:g} × 44/12 = {co2_t:g} tCO2"
        ),
        label=label or params.fuel,
    )


# --- electricity -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NetImport:
    """Net electricity import [MWh] = import − export, never below zero.

    A net exporter has ``net_import_mwh`` 0 and the excess in ``surplus_export_mwh``: scope 2 is
    not negative (GHG Protocol); the surplus is reported beside it.
    """

    import_mwh: float
    export_mwh: float
    net_import_mwh: float
    surplus_export_mwh: float


def net_electricity_import(import_mwh: float, export_mwh: float) -> NetImport:
    """Imports and exports of the same period [MWh] netted (ACCOUNTING §3)."""
    if import_mwh < 0 or export_mwh < 0:
        raise ValueError(f"import and export must be >= 0: {import_mwh}, {export_mwh}")
    net = import_mwh - export_mwh
    return NetImport(import_mwh, export_mwh, max(0.0, net), max(0.0, -net))


def electricity_location_based(
    net_import_mwh: float, factor: FactorValue | SelectedFactor, *, label: str = ""
) -> Emission:
    """Location-based scope 2 [tCO2] = net grid import [MWh] × grid factor [tCO2/MWh]."""
    if net_import_mwh < 0:
        raise ValueError(
            f"net import is negative ({net_import_mwh} MWh): use net_electricity_import"
        )
    used = require_unit(factor, ELECTRICITY_FACTOR_UNIT, "location-based electricity")
    co2_t = net_import_mwh * used.value
    return Emission(
        category=Category.PURCHASED_ELECTRICITY,
        scope=Scope.SCOPE_2,
        gas=Gas.CO2,
        gas_t=co2_t,
        emissions_tco2e=co2_t,
        activity=net_import_mwh,
        activity_unit=_MWH.symbol,
        factors=(used,),
        formula=f"{net_import_mwh:g} MWh × {used.value:g} tCO2/MWh = {co2_t:g} tCO2",
        scope2_method=Scope2Method.LOCATION_BASED,
        label=label or "grid electricity (location-based)",
    )


class InstrumentKind(StrEnum):
    GREEN_POWER_CONTRACT = "green_power_contract"  # 绿电交易 with settlement voucher
    DIRECT_SUPPLY = "direct_supply"  # 绿电直连, metered
    CERTIFICATE = "certificate"  # 绿证 GEC, 1 certificate = 1 MWh


@dataclass(frozen=True, slots=True)
class GreenInstrument:
    """Evidence of green electricity claimed for an accounting period.

    ``volume_mwh`` is the volume claimed for this period (for certificates: count × 1 MWh, see
    :func:`certificates`); ``valid_from``/``valid_to`` the period the instrument may be claimed
    in (generation or validity period, inclusive).
    """

    kind: InstrumentKind
    instrument_id: str
    volume_mwh: float
    valid_from: date
    valid_to: date
    evidence: str  # settlement voucher no., certificate serial range, meter id …


def certificates(
    count: int,
    *,
    instrument_id: str,
    valid_from: date,
    valid_to: date,
    evidence: str,
    mwh_per_certificate: FactorValue | SelectedFactor,
) -> GreenInstrument:
    """``count`` green certificates as an instrument: volume = count × 1 MWh.

    发改能源〔2023〕1044号: 1 GEC = 1 000 kWh.

    ``mwh_per_certificate``: the library factor ``green.gec.mwh_per_certificate``.
    """
    per = require_unit(mwh_per_certificate, "MWh/certificate", "green certificates")
    if count < 0:
        raise ValueError(f"certificate count is negative: {count}")
    return GreenInstrument(
        InstrumentKind.CERTIFICATE, instrument_id, count * per.value, valid_from, valid_to, evidence
    )


@dataclass(frozen=True, slots=True)
class InstrumentClaim:
    instrument: GreenInstrument
    accepted: bool
    applied_mwh: float  # volume set against this period's consumption
    unused_mwh: float  # accepted volume beyond the consumption (not applied)
    reason: str


@dataclass(frozen=True, slots=True)
class MarketBasedElectricity:
    """Market-based scope 2 of purchased electricity: green part at zero, remainder at residual."""

    consumption_mwh: float
    green_mwh: float
    remainder_mwh: float
    claims: tuple[InstrumentClaim, ...]
    green: Emission  # green_mwh × 0
    remainder: Emission  # remainder_mwh × residual factor

    @property
    def emissions_tco2e(self) -> float:
        return self.green.emissions_tco2e + self.remainder.emissions_tco2e

    @property
    def emissions(self) -> tuple[Emission, Emission]:
        return (self.green, self.remainder)


_AVERAGE_BASES = ("average", "ets_reporting")


def electricity_market_based(  # noqa: C901 — each acceptance rule of an instrument is one condition, in the guide's order
    consumption_mwh: float,
    instruments: Sequence[GreenInstrument],
    residual_factor: FactorValue | SelectedFactor,
    *,
    period_start: date,
    period_end: date,
    zero_factor: FactorValue | SelectedFactor,
    label: str = "",
) -> MarketBasedElectricity:
    """Market-based scope 2 [tCO2] of ``consumption_mwh`` purchased electricity (net of exports).

    Instruments are accepted when their validity overlaps [period_start, period_end], they carry
    evidence, their volume is >= 0 and their id has not been claimed before in the same call;
    accepted volume covers consumption in the order given, any excess is recorded as unused.
    The remainder is priced with ``residual_factor`` (basis ``residual`` or a site/supplier
    override) — a grid-average factor raises :class:`DoubleCountingError`. ``zero_factor`` is the
    library's ``green.evidenced_purchase.zero``.
    """
    if consumption_mwh < 0:
        raise ValueError(f"consumption is negative ({consumption_mwh} MWh): net exports first")
    if period_end < period_start:
        raise ValueError(f"period ends {period_end} before it starts {period_start}")
    residual = require_unit(residual_factor, ELECTRICITY_FACTOR_UNIT, "market-based remainder")
    if (
        residual.selection is not Selection.OVERRIDE
        and residual.factor.tag("basis") in _AVERAGE_BASES
    ):
        raise DoubleCountingError(
            f"market-based remainder needs the residual-mix factor (basis 'residual', e.g. "
            f"electricity.mee_nbs.national.residual.<year>) or a supplier-specific override; "
            f"{residual.key} is a grid average and would count claimed green power twice"
        )
    zero = require_unit(zero_factor, ELECTRICITY_FACTOR_UNIT, "green electricity")
    if zero.value != 0.0:
        raise ValueError(f"{zero.key} is not a zero factor: {zero.value}")

    claims: list[InstrumentClaim] = []
    seen: set[str] = set()
    left = consumption_mwh
    for inst in instruments:
        problem = ""
        if inst.instrument_id in seen:
            problem = "already claimed in this period (double claim)"
        elif inst.volume_mwh < 0 or not math.isfinite(inst.volume_mwh):
            problem = f"invalid volume {inst.volume_mwh} MWh"
        elif not inst.evidence.strip():
            problem = "no evidence given"
        elif inst.valid_to < period_start or inst.valid_from > period_end:
            problem = (
                f"valid {inst.valid_from}..{inst.valid_to}, outside the period "
                f"{period_start}..{period_end}"
            )
        if problem:
            claims.append(InstrumentClaim(inst, False, 0.0, 0.0, problem))
            continue
        seen.add(inst.instrument_id)
        applied = min(inst.volume_mwh, left)
        left -= applied
        unused = inst.volume_mwh - applied
        claims.append(
            InstrumentClaim(
                inst,
                True,
                applied,
                unused,
                f"{inst.kind.value} accepted: {applied:g} MWh applied"
                + (f", {unused:g} MWh beyond consumption unused" if unused else ""),
            )
        )
    green_mwh = math.fsum(c.applied_mwh for c in claims)
    remainder_mwh = max(0.0, consumption_mwh - green_mwh)
    remainder_t = remainder_mwh * residual.value
    tag = label or "grid electricity (market-based)"
    green = Emission(
        category=Category.GREEN_ELECTRICITY,
        scope=Scope.SCOPE_2,
        gas=Gas.CO2,
        gas_t=0.0,
        emissions_tco2e=0.0,
        activity=green_mwh,
        activity_unit=_MWH.symbol,
        factors=(zero,),
        formula=f"{green_mwh:g} MWh evidenced green electricity × 0 tCO2/MWh = 0 tCO2",
        scope2_method=Scope2Method.MARKET_BASED,
        label=f"{tag}: green",
    )
    remainder = Emission(
        category=Category.PURCHASED_ELECTRICITY,
        scope=Scope.SCOPE_2,
        gas=Gas.CO2,
        gas_t=remainder_t,
        emissions_tco2e=remainder_t,
        activity=remainder_mwh,
        activity_unit=_MWH.symbol,
        factors=(residual,),
        formula=(
            f"({consumption_mwh:g} − {green_mwh:g}) MWh × {residual.value:g} tCO2/MWh "
            f"= {remainder_t:g} tCO2"
        ),
        scope2_method=Scope2Method.MARKET_BASED,
        label=f"{tag}: remainder",
    )
    return MarketBasedElectricity(
        consumption_mwh, green_mwh, remainder_mwh, tuple(claims), green, remainder
    )


def self_generated_electricity(
    energy_mwh: float, zero_factor: FactorValue | SelectedFactor, *, label: str = ""
) -> Emission:
    """Self-generated PV / wind consumed on site [MWh] at zero (factor
    ``green.self_generated_non_fossil.zero``); recorded so the energy is traceable."""
    zero = require_unit(zero_factor, ELECTRICITY_FACTOR_UNIT, "self-generated electricity")
    if zero.value != 0.0:
        raise ValueError(f"{zero.key} is not a zero factor: {zero.value}")
    return Emission(
        Category.SELF_GENERATION, Scope.SCOPE_1, Gas.CO2, 0.0, 0.0, energy_mwh, _MWH.symbol,
        (zero,), f"{energy_mwh:g} MWh self-generated × 0 tCO2/MWh = 0 tCO2",
        label=label or "self-generated PV/wind",
    )  # fmt: skip


# --- heat --------------------------------------------------------------------------------------


def purchased_heat_co2(
    heat_gj: float, factor: FactorValue | SelectedFactor, *, label: str = ""
) -> Emission:
    """Scope 2 [tCO2] = net purchased heat [GJ] × factor [tCO2/GJ] (default 0.11, or supplier's)."""
    if heat_gj < 0:
        raise ValueError(f"purchased heat is negative: {heat_gj} GJ")
    used = require_unit(factor, "tCO2/GJ", "purchased heat")
    co2_t = heat_gj * used.value
    return Emission(
        Category.PURCHASED_HEAT, Scope.SCOPE_2, Gas.CO2, co2_t, co2_t, heat_gj, "GJ", (used,),
        f"{heat_gj:g} GJ × {used.value:g} tCO2/GJ = {co2_t:g} tCO2",
        label=label or "purchased heat",
    )  # fmt: skip


def carbonate_process_co2(
    mass_t: float,
    factor: FactorValue | SelectedFactor,
    *,
    purity: float = 1.0,
    calcination: float = 1.0,
    label: str = "",
) -> Emission:
    """Process CO2 of carbonates (GB/T 32151 method, scope 1 process) [tCO2] = material fed
    [t] × carbonate mass fraction (purity) × calcination fraction × the carbonate's factor
    [tCO2/t] (GB/T 32151.34—2024 Table C.2, e.g. CaCO3 0.440 = 44.01/100.09)."""
    if mass_t < 0:
        raise ValueError(f"carbonate fed is negative: {mass_t} t")
    for name, share in (("purity", purity), ("calcination", calcination)):
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"carbonate {name} must be a fraction 0–1, got {share}")
    used = require_unit(factor, "tCO2/t", "carbonate factor")
    co2_t = mass_t * purity * calcination * used.value
    return Emission(
        Category.PROCESS, Scope.SCOPE_1, Gas.CO2, co2_t, co2_t, mass_t, "t", (used,),
        f"{mass_t:g} t × {purity:g} (carbonate) × {calcination:g} (calcined) × "
        f"{used.value:g} tCO2/t = {co2_t:g} tCO2",
        label=label or f"process CO2 ({used.key})",
    )  # fmt: skip


# --- totals ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScopeTotals:
    """Totals of one scope-2 view (location- or market-based) [tCO2e], and gas masses [t]."""

    method: Scope2Method
    scope1_tco2e: float
    scope2_tco2e: float
    total_tco2e: float
    co2_t: float
    ch4_t: float
    n2o_t: float


def scope_totals(emissions: Iterable[Emission], method: Scope2Method) -> ScopeTotals:
    """Scope 1 + the scope-2 figures of ``method`` (and those valid for both, like heat)."""
    chosen = [e for e in emissions if e.basis.in_view(method.view)]
    scope1 = math.fsum(e.emissions_tco2e for e in chosen if e.scope is Scope.SCOPE_1)
    scope2 = math.fsum(e.emissions_tco2e for e in chosen if e.scope is Scope.SCOPE_2)
    return ScopeTotals(
        method=method,
        scope1_tco2e=scope1,
        scope2_tco2e=scope2,
        total_tco2e=math.fsum(e.emissions_tco2e for e in chosen),
        co2_t=math.fsum(e.gas_t for e in chosen if e.gas is Gas.CO2),
        ch4_t=math.fsum(e.gas_t for e in chosen if e.gas is Gas.CH4),
        n2o_t=math.fsum(e.gas_t for e in chosen if e.gas is Gas.N2O),
    )


def dual_scope_totals(emissions: Iterable[Emission]) -> tuple[ScopeTotals, ScopeTotals]:
    """(location-based, market-based) totals: the dual report of the Scope 2 Guidance."""
    items = tuple(emissions)
    return (
        scope_totals(items, Scope2Method.LOCATION_BASED),
        scope_totals(items, Scope2Method.MARKET_BASED),
    )

"""Coal-mine methane: volume → CH4 mass → CO2e; flaring and utilisation CO2 (ACCOUNTING §4). Pure.

China coal-production enterprise guideline (NDRC 2015, as implemented; REFERENCE.md §3.3):

- escape ``CH4_t = (Q_ventilation + Q_drained − Q_flared − Q_utilised) × 7.17`` with Q in 10⁴ Nm³
  of pure CH4 (volume × measured concentration) at 0 °C, 101.325 kPa; utilised includes gas sold
  off site (it does not escape from the mine);
- ``tCO2e = CH4_t × GWP`` with the GWP set selectable and recorded (SAR 21 for the Chinese
  enterprise method, AR5 28 for GHG-Protocol-style reports, …);
- flared: ``tCO2 = Q_flared × 7.17 × 44/16 × 0.98`` (flare oxidation), scope 1 flaring;
- utilised on site in gas engines or boilers: ``tCO2 = Q × 7.17 × 44/16 × 0.99`` (oxidation of
  gaseous fuels), scope 1 fuel combustion; sold off site: recorded separately, its combustion CO2
  is not the mine's;
- open-pit and post-mining: ``CH4_t = production_t × EF [kg CH4/t] × 10⁻³``;
- drainage rate = Q_drained / (Q_drained + Q_ventilation); utilisation rate = Q_utilised /
  Q_drained (utilised = on site + sold).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from carbonflow.domain import units
from carbonflow.domain.factors.library import (
    FactorLibrary,
    FactorValue,
    SelectedFactor,
    Selection,
    require_unit,
    use_factor,
)
from carbonflow.domain.inventory.carbon import Emission
from carbonflow.domain.inventory.lines import Category, Gas, Scope
from carbonflow.domain.units import Ratio, ratio

# Molar-mass ratio CO2 : CH4 [tCO2/tCH4] for complete oxidation, as the guidelines write it.
CO2_PER_CH4 = 44.0 / 16.0

_NM3 = units.lookup("Nm3")
_10K_NM3 = units.lookup("10^4 Nm3")
_KG = units.lookup("kg")
_T = units.lookup("t")
_PCT = units.lookup("%")

DENSITY_KEY = "methane.ch4_density.standard"
FLARE_OXIDATION_KEY = "methane.flare_oxidation"
UTILISATION_OXIDATION_KEY = "methane.utilisation_oxidation"


class GwpSet(StrEnum):
    """IPCC 100-year GWP sets for CH4 (key ``gwp.ch4.<value>`` in gwp.yaml)."""

    SAR = "sar"  # 21, the Chinese enterprise guidelines
    AR4 = "ar4"  # 25
    AR5 = "ar5"  # 28, default for GHG-Protocol-style reports
    AR6_FOSSIL = "ar6_fossil"  # 29.8 — coal-mine methane is fossil
    AR6_NON_FOSSIL = "ar6_non_fossil"  # 27.0


@dataclass(frozen=True, slots=True)
class MethaneParameters:
    """The values a methane balance uses, each recorded with the figures."""

    density: SelectedFactor  # t/10^4 Nm3
    flare_oxidation: SelectedFactor  # fraction
    utilisation_oxidation: SelectedFactor  # fraction
    gwp: SelectedFactor  # tCO2e/tCH4


def methane_parameters(
    library: FactorLibrary,
    gwp_set: GwpSet | str = GwpSet.SAR,
    *,
    density: FactorValue | SelectedFactor | None = None,
    flare_oxidation: FactorValue | SelectedFactor | None = None,
    utilisation_oxidation: FactorValue | SelectedFactor | None = None,
) -> MethaneParameters:
    """Library defaults (7.17 t/10^4 Nm3, 0.98, 0.99) and the GWP of ``gwp_set``; any of them
    may be replaced by a site-measured value (a :class:`SelectedFactor` from an override)."""
    chosen = GwpSet(gwp_set)
    gwp = SelectedFactor(
        library.get(f"gwp.ch4.{chosen.value}"), Selection.RULE, f"GWP set {chosen.name} selected"
    )
    return MethaneParameters(
        density=require_unit(density or library.get(DENSITY_KEY), "t/10^4 Nm3", "CH4 density"),
        flare_oxidation=require_unit(
            flare_oxidation or library.get(FLARE_OXIDATION_KEY), "fraction", "flare oxidation"
        ),
        utilisation_oxidation=require_unit(
            utilisation_oxidation or library.get(UTILISATION_OXIDATION_KEY),
            "fraction",
            "utilisation oxidation",
        ),
        gwp=require_unit(gwp, "tCO2e/tCH4", "CH4 GWP"),
    )


def pure_ch4_nm3(gas_nm3: float, ch4_concentration_pct: float) -> float:
    """Pure CH4 volume [Nm3] in ``gas_nm3`` [Nm3] of mixed gas at ``ch4_concentration_pct`` [%].

    Sum per interval (flow × concentration of the same interval), not total × mean concentration.
    """
    if gas_nm3 < 0:
        raise ValueError(f"gas volume is negative: {gas_nm3} Nm3")
    if not 0.0 <= ch4_concentration_pct <= 100.0:
        raise ValueError(f"CH4 concentration must be 0–100 %, got {ch4_concentration_pct}")
    return gas_nm3 * units.convert(ch4_concentration_pct, _PCT.symbol, units.lookup("fraction"))


def _ch4_t(ch4_nm3: float, density: SelectedFactor) -> float:
    """Pure CH4 [Nm3] → [t] with a density in t/10^4 Nm3."""
    return units.convert(ch4_nm3, _NM3.symbol, _10K_NM3) * density.value


@dataclass(frozen=True, slots=True)
class MethaneFlows:
    """Pure-CH4 volumes of one mine and period [Nm3 at 0 °C, 101.325 kPa]."""

    ventilation_ch4_nm3: float  # 风排: leaves with the ventilation air
    drained_ch4_nm3: float  # 抽采: drained by the gas drainage system
    flared_ch4_nm3: float = 0.0  # 火炬销毁
    utilised_onsite_ch4_nm3: float = 0.0  # 回收利用 on site: gas engines, boilers, VAM oxidisers
    sold_offsite_ch4_nm3: float = 0.0  # utilised off site: sold or piped away

    def __post_init__(self) -> None:
        for name in (
            "ventilation_ch4_nm3",
            "drained_ch4_nm3",
            "flared_ch4_nm3",
            "utilised_onsite_ch4_nm3",
            "sold_offsite_ch4_nm3",
        ):
            value = getattr(self, name)
            if value < 0 or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite volume >= 0, got {value}")

    @property
    def utilised_ch4_nm3(self) -> float:
        """On site + sold [Nm3]: the guideline's Q_utilised."""
        return self.utilised_onsite_ch4_nm3 + self.sold_offsite_ch4_nm3


@dataclass(frozen=True, slots=True)
class MineMethane:
    escape_ch4_nm3: float  # pure CH4 released [Nm3]
    escape: Emission  # CH4, scope 1 fugitive, CO2e by the recorded GWP
    flaring: Emission  # CO2, scope 1 flaring
    utilisation: Emission  # CO2, scope 1 fuel combustion (on-site use only)
    sold_offsite_ch4_nm3: float  # recorded separately: not the mine's combustion
    sold_offsite_ch4_t: float
    drainage_rate: Ratio
    utilisation_rate: Ratio
    gwp: SelectedFactor

    @property
    def emissions(self) -> tuple[Emission, Emission, Emission]:
        return (self.escape, self.flaring, self.utilisation)

    @property
    def emissions_tco2e(self) -> float:
        return math.fsum(e.emissions_tco2e for e in self.emissions)


def mine_methane(flows: MethaneFlows, params: MethaneParameters, *, label: str = "") -> MineMethane:
    """The underground-mine methane balance of one period (module doc).

    Raises ``ValueError`` when more methane is flared and utilised than was captured and vented.
    """
    destroyed_or_used = flows.flared_ch4_nm3 + flows.utilised_ch4_nm3
    released = flows.ventilation_ch4_nm3 + flows.drained_ch4_nm3
    escape_nm3 = released - destroyed_or_used
    if escape_nm3 < 0:
        raise ValueError(
            f"flared + utilised ({destroyed_or_used:g} Nm3) exceed ventilation + drained "
            f"({released:g} Nm3): inconsistent methane volumes"
        )
    density, gwp = params.density, params.gwp
    escape_t = _ch4_t(escape_nm3, density)
    escape_tco2e = escape_t * gwp.value
    escape_1e4 = units.convert(escape_nm3, _NM3.symbol, _10K_NM3)
    tag = label or "coal-mine methane"
    escape = Emission(
        category=Category.FUGITIVE,
        scope=Scope.SCOPE_1,
        gas=Gas.CH4,
        gas_t=escape_t,
        emissions_tco2e=escape_tco2e,
        activity=escape_nm3,
        activity_unit=_NM3.symbol,
        factors=(density, gwp),
        formula=(
            f"({flows.ventilation_ch4_nm3:g} + {flows.drained_ch4_nm3:g} − "
            f"{flows.flared_ch4_nm3:g} − {flows.utilised_ch4_nm3:g}) Nm3 = {escape_1e4:g} "
            f"10^4 Nm3 × {density.value:g} t/10^4 Nm3 = {escape_t:g} tCH4 × GWP {gwp.value:g} "
            f"= {escape_tco2e:g} tCO2e"
        ),
        label=f"{tag}: escape",
    )
    flaring = _oxidised(
        flows.flared_ch4_nm3, density, params.flare_oxidation, Category.FLARING, f"{tag}: flared"
    )
    utilisation = _oxidised(
        flows.utilised_onsite_ch4_nm3,
        density,
        params.utilisation_oxidation,
        Category.FUEL_COMBUSTION,
        f"{tag}: utilised on site",
    )
    return MineMethane(
        escape_ch4_nm3=escape_nm3,
        escape=escape,
        flaring=flaring,
        utilisation=utilisation,
        sold_offsite_ch4_nm3=flows.sold_offsite_ch4_nm3,
        sold_offsite_ch4_t=_ch4_t(flows.sold_offsite_ch4_nm3, density),
        drainage_rate=methane_drainage_rate(flows.drained_ch4_nm3, flows.ventilation_ch4_nm3),
        utilisation_rate=methane_utilisation_rate(flows.utilised_ch4_nm3, flows.drained_ch4_nm3),
        gwp=gwp,
    )


def _oxidised(
    ch4_nm3: float,
    density: SelectedFactor,
    oxidation: SelectedFactor,
    category: Category,
    label: str,
) -> Emission:
    """CO2 [t] from burning ``ch4_nm3`` pure CH4: Nm3 → t CH4 × 44/16 × oxidation fraction."""
    ch4_t = _ch4_t(ch4_nm3, density)
    co2_t = ch4_t * CO2_PER_CH4 * oxidation.value
    return Emission(
        category=category,
        scope=Scope.SCOPE_1,
        gas=Gas.CO2,
        gas_t=co2_t,
        emissions_tco2e=co2_t,
        activity=ch4_nm3,
        activity_unit=_NM3.symbol,
        factors=(density, oxidation),
        formula=(
            f"{units.convert(ch4_nm3, _NM3.symbol, _10K_NM3):g} 10^4 Nm3 × {density.value:g} "
            f"t/10^4 Nm3 × 44/16 × {oxidation.value:g} = {co2_t:g} tCO2"
        ),
        label=label,
    )


def production_methane(
    raw_coal_t: float,
    emission_factor: FactorValue | SelectedFactor,
    gwp: FactorValue | SelectedFactor,
    *,
    label: str = "",
) -> Emission:
    """Open-pit or post-mining CH4: raw coal [t] × EF [kg CH4/t] → t CH4 × GWP (scope 1 fugitive).

    ``emission_factor``: a library key ``methane.ef.*`` or a site-measured override.
    """
    if raw_coal_t < 0:
        raise ValueError(f"raw coal output is negative: {raw_coal_t} t")
    ef = require_unit(emission_factor, "kgCH4/t", "production-based methane")
    gwp_used = require_unit(use_factor(gwp), "tCO2e/tCH4", "CH4 GWP")
    ch4_t = units.convert(raw_coal_t * ef.value, _KG.symbol, _T)
    tco2e = ch4_t * gwp_used.value
    return Emission(
        category=Category.FUGITIVE,
        scope=Scope.SCOPE_1,
        gas=Gas.CH4,
        gas_t=ch4_t,
        emissions_tco2e=tco2e,
        activity=raw_coal_t,
        activity_unit=_T.symbol,
        factors=(ef, gwp_used),
        formula=(
            f"{raw_coal_t:g} t × {ef.value:g} kgCH4/t = {ch4_t:g} tCH4 × GWP {gwp_used.value:g} "
            f"= {tco2e:g} tCO2e"
        ),
        label=label or ef.key,
    )


def methane_utilisation_rate(utilised_ch4_nm3: float, drained_ch4_nm3: float) -> Ratio:
    """Utilised (on site + sold) ÷ drained pure CH4 [fraction] (瓦斯抽采利用率)."""
    return ratio(utilised_ch4_nm3, drained_ch4_nm3, "fraction", what="methane utilisation rate")


def methane_drainage_rate(drained_ch4_nm3: float, ventilation_ch4_nm3: float) -> Ratio:
    """Drained ÷ (drained + ventilation) pure CH4 [fraction] (瓦斯抽采率)."""
    return ratio(
        drained_ch4_nm3,
        drained_ch4_nm3 + ventilation_ch4_nm3,
        "fraction",
        what="methane drainage rate",
    )

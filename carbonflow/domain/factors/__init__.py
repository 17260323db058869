"""Reference data as data: emission factors, calorific values, tce coefficients, GWPs, targets.

The YAML files in this package are the only place such numbers live. Each carries a version
string, and each value its unit, source, confidence tag (A / B / B+ / U, REFERENCE.md) and
validity; every figure computed from a value records it as a :class:`SelectedFactor`.

Files (schema in :mod:`carbonflow.domain.factors.library`):

- ``mee_nbs_electricity.yaml`` — MEE/NBS grid factors, national/regional/provincial, 2021–2023
- ``mee_ets_reporting_electricity.yaml`` — ETS reporting factor 0.5703 (and earlier values, U)
- ``electricity_carbon_footprint.yaml`` — electricity carbon-footprint factors (product footprints)
- ``green_electricity.yaml`` — 1 GEC = 1 MWh; zero factors for evidenced and self-generated power
- ``gbt32151_34_2024_fuels.yaml`` — default NCV / CC / OF of 26 fuels; carbonate factors
- ``gbt2589_2020_tce.yaml`` — standard-coal coefficients and the carrier defaults
- ``purchased_heat.yaml`` — 0.11 tCO2/GJ
- ``coal_mine_methane.yaml`` — CH4 density, flare / gaseous-fuel oxidation, open-pit EFs
- ``gwp.yaml`` — GWP100 sets SAR / AR4 / AR5 / AR6 for CH4 and N2O
- ``geography.yaml`` — provinces and grid regions (ids, Chinese names)
- ``targets.yaml`` — 2025 / 2030 targets by site kind, zero-carbon park thresholds
"""

from carbonflow.domain.factors.electricity import (
    ELECTRICITY_FACTOR_UNIT,
    ELECTRICITY_FILE,
    ElectricityBasis,
    GridGeography,
    select_electricity_factor,
)
from carbonflow.domain.factors.geography import Geography, Province, Region, UnknownAreaError
from carbonflow.domain.factors.library import (
    CarrierCoefficients,
    Confidence,
    FactorError,
    FactorFile,
    FactorLibrary,
    FactorNotFound,
    FactorPin,
    FactorValue,
    PinnedFactor,
    SelectedFactor,
    Selection,
    SiteOverride,
    Source,
    default_library,
    load_library,
    require_unit,
    use_factor,
)
from carbonflow.domain.factors.targets import (
    Comparator,
    Target,
    TargetSet,
    default_targets,
    load_targets,
)

__all__ = [
    "ELECTRICITY_FACTOR_UNIT",
    "ELECTRICITY_FILE",
    "CarrierCoefficients",
    "Comparator",
    "Confidence",
    "ElectricityBasis",
    "FactorError",
    "FactorFile",
    "FactorLibrary",
    "FactorNotFound",
    "FactorPin",
    "FactorValue",
    "Geography",
    "GridGeography",
    "PinnedFactor",
    "Province",
    "Region",
    "SelectedFactor",
    "Selection",
    "SiteOverride",
    "Source",
    "Target",
    "TargetSet",
    "UnknownAreaError",
    "default_library",
    "default_targets",
    "load_library",
    "load_targets",
    "require_unit",
    "select_electricity_factor",
    "use_factor",
]

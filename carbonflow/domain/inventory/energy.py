"""Energy quantities → tonnes of standard coal equivalent (tce). Pure.

GB/T 2589-2020《综合能耗计算通则》: ``E_tce = Σ quantity_i × coefficient_i`` (ACCOUNTING.md §2).
Coefficients come from ``factors/gbt2589_2020_tce.yaml`` in ``kgce/<unit>``; electricity at the
equivalent value 0.1229 kgce/kWh by default, the equal value on request. Zero-carbon energy
(self-generated PV and wind, green electricity with evidence) counts in the energy consumption
and in the zero-carbon share (zero-carbon tce ÷ total tce).

Every conversion returns a :class:`TceConversion` that records the coefficient used.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from carbonflow.domain import units
from carbonflow.domain.factors.library import (
    FactorLibrary,
    FactorValue,
    SelectedFactor,
    Selection,
    use_factor,
)
from carbonflow.domain.units import Ratio, ratio

_KG = units.lookup("kg")
_T = units.lookup("t")


def kgce_to_tce(energy_kgce: float) -> float:
    """[kgce] → [tce] through the unit table (1 tce = 1 000 kgce)."""
    return units.convert(energy_kgce, _KG.symbol, _T)


def tce_to_kgce(energy_tce: float) -> float:
    """[tce] → [kgce] through the unit table."""
    return units.convert(energy_tce, _T.symbol, _KG)


@dataclass(frozen=True, slots=True)
class TceConversion:
    """``quantity`` [quantity_unit] of ``carrier`` = ``energy_tce`` [tce] by ``coefficient``."""

    carrier: str
    quantity: float
    quantity_unit: str
    energy_tce: float
    coefficient: SelectedFactor
    zero_carbon: bool
    formula: str


@dataclass(frozen=True, slots=True)
class EnergyBalance:
    """Comprehensive energy consumption [tce] and its zero-carbon part."""

    total_tce: float
    zero_carbon_tce: float
    zero_carbon_share: Ratio  # fraction, undefined when total_tce is 0
    conversions: tuple[TceConversion, ...]


def tce_coefficient(
    library: FactorLibrary, carrier: str, variant: str | None = None
) -> SelectedFactor:
    """The GB/T 2589 coefficient of ``carrier`` (its default, or the named ``variant``).

    Electricity: variants ``equivalent`` (default, 0.1229 kgce/kWh) and ``equal_value``;
    natural gas: ``gas_field`` (default, 1.2143 kgce/Nm3) and ``oil_field`` (1.3300).
    """
    spec = library.carrier(carrier)
    factor = library.get(spec.key_for(variant))
    if variant is None:
        return SelectedFactor(
            factor, Selection.DEFAULT, f"default tce coefficient for {carrier}: {factor.key}"
        )
    return SelectedFactor(
        factor, Selection.PIN, f"variant {variant!r} selected for {carrier}: {factor.key}"
    )


def to_tce(
    quantity: float,
    quantity_unit: str,
    coefficient: FactorValue | SelectedFactor,
    *,
    carrier: str = "",
    zero_carbon: bool = False,
) -> TceConversion:
    """Convert ``quantity`` [quantity_unit] to [tce] by a ``kgce/<unit>`` or ``tce/<unit>`` factor.

    The quantity is first expressed in the coefficient's denominator unit through the unit table
    (e.g. MWh → kWh for kgce/kWh; GJ → MJ for kgce/MJ).
    """
    used = use_factor(coefficient)
    per_unit = used.factor.denominator_unit
    numerator = used.factor.numerator_unit
    if per_unit is None or numerator not in ("kgce", "tce"):
        raise ValueError(f"{used.key} is not a kgce/<unit> or tce/<unit> coefficient: {used.unit}")
    quantity_in_unit = units.convert(quantity, quantity_unit, units.lookup(per_unit))
    product = quantity_in_unit * used.value
    energy_tce = kgce_to_tce(product) if numerator == "kgce" else product
    return TceConversion(
        carrier=carrier or str(used.factor.tag("carrier") or ""),
        quantity=quantity,
        quantity_unit=quantity_unit,
        energy_tce=energy_tce,
        coefficient=used,
        zero_carbon=zero_carbon,
        formula=(
            f"{quantity:g} {quantity_unit} = {quantity_in_unit:g} {per_unit} × {used.value:g} "
            f"{used.unit} = {energy_tce:g} tce"
        ),
    )


def energy_balance(conversions: Iterable[TceConversion]) -> EnergyBalance:
    """Total and zero-carbon energy [tce] and the zero-carbon energy share (ACCOUNTING §6)."""
    items = tuple(conversions)
    total = math.fsum(c.energy_tce for c in items)
    zero = math.fsum(c.energy_tce for c in items if c.zero_carbon)
    return EnergyBalance(
        total_tce=total,
        zero_carbon_tce=zero,
        zero_carbon_share=ratio(zero, total, "fraction", what="zero-carbon energy share"),
        conversions=items,
    )

"""Energy → tce (GB/T 2589-2020). Tolerance 1e-12 relative (two multiplications)."""

from __future__ import annotations

import pytest

from carbonflow.domain.factors import FactorNotFound, Selection, default_library
from carbonflow.domain.inventory.energy import (
    energy_balance,
    kgce_to_tce,
    tce_coefficient,
    tce_to_kgce,
    to_tce,
)
from carbonflow.domain.units import UnitError

LIB = default_library()
REL = 1e-12


def test_electricity_at_the_equivalent_value_by_default() -> None:
    coefficient = tce_coefficient(LIB, "electricity")
    assert coefficient.key == "tce.electricity.equivalent"
    assert coefficient.selection is Selection.DEFAULT
    # 12.5 MWh = 12 500 kWh × 0.1229 kgce/kWh = 1 536.25 kgce = 1.53625 tce
    c = to_tce(12.5, "MWh", coefficient)
    assert c.energy_tce == pytest.approx(1.53625, rel=REL)
    assert c.carrier == "electricity"
    assert c.coefficient.version == "gbt-2589-2020"
    assert "12500 kWh × 0.1229 kgce/kWh" in c.formula


def test_electricity_at_the_equal_value_on_request() -> None:
    coefficient = tce_coefficient(LIB, "electricity", "equal_value")
    assert coefficient.selection is Selection.PIN
    # 1 000 kWh × 0.3007 kgce/kWh = 300.7 kgce = 0.3007 tce
    assert to_tce(1000, "kWh", coefficient).energy_tce == pytest.approx(0.3007, rel=REL)


def test_natural_gas_both_values() -> None:
    # 10 000 Nm3 × 1.2143 kgce/Nm3 = 12 143 kgce = 12.143 tce (gas field, the default)
    gas_field = to_tce(10_000, "Nm3", tce_coefficient(LIB, "natural_gas"))
    assert gas_field.energy_tce == pytest.approx(12.143, rel=REL)
    # 1 × 10^4 Nm3 × 1.3300 kgce/Nm3 = 13 300 kgce = 13.3 tce (oil field)
    oil_field = to_tce(1, "10^4 Nm3", tce_coefficient(LIB, "natural_gas", "oil_field"))
    assert oil_field.energy_tce == pytest.approx(13.3, rel=REL)
    with pytest.raises(FactorNotFound, match="variants: gas_field, oil_field"):
        tce_coefficient(LIB, "natural_gas", "shale")


@pytest.mark.parametrize(
    ("carrier", "quantity", "unit", "tce"),
    [
        ("raw_coal", 100, "t", 71.43),  # 100 000 kg × 0.7143 kgce/kg = 71 430 kgce
        ("coke", 2_000, "kg", 1.9428),  # 2 000 kg × 0.9714 = 1 942.8 kgce
        ("diesel", 3, "t", 4.3713),  # 3 000 kg × 1.4571 = 4 371.3 kgce
        ("heat", 100, "GJ", 3.412),  # 100 000 MJ × 0.03412 kgce/MJ = 3 412 kgce
    ],
)
def test_fuel_and_heat_coefficients(carrier: str, quantity: float, unit: str, tce: float) -> None:
    assert to_tce(quantity, unit, tce_coefficient(LIB, carrier)).energy_tce == pytest.approx(
        tce, rel=REL
    )


def test_zero_quantity_is_zero_tce() -> None:
    assert to_tce(0.0, "kWh", tce_coefficient(LIB, "electricity")).energy_tce == 0.0


def test_zero_carbon_share() -> None:
    # PV 500 MWh (self-generated) and grid 1 500 MWh, both at 0.1229 kgce/kWh:
    # 61.45 tce + 184.35 tce = 245.8 tce; share 61.45 / 245.8 = 0.25
    elec = tce_coefficient(LIB, "electricity")
    balance = energy_balance(
        [to_tce(500, "MWh", elec, zero_carbon=True), to_tce(1500, "MWh", elec)]
    )
    assert balance.total_tce == pytest.approx(245.8, rel=REL)
    assert balance.zero_carbon_tce == pytest.approx(61.45, rel=REL)
    assert balance.zero_carbon_share.value == pytest.approx(0.25, rel=REL)


def test_no_energy_gives_an_undefined_share_not_an_error() -> None:
    balance = energy_balance([])
    assert balance.total_tce == 0.0
    assert balance.zero_carbon_share.value is None
    assert "denominator is 0" in (balance.zero_carbon_share.undefined_reason or "")


def test_unit_errors_and_unknown_carrier() -> None:
    with pytest.raises(UnitError):
        to_tce(5, "kg", tce_coefficient(LIB, "electricity"))
    with pytest.raises(ValueError, match="not a kgce"):
        to_tce(5, "GJ", LIB.get("heat.purchased.default"))
    with pytest.raises(FactorNotFound, match="no tce coefficient for carrier 'hydrogen'"):
        tce_coefficient(LIB, "hydrogen")


def test_kgce_tce_through_the_unit_table() -> None:
    assert kgce_to_tce(1234.5) == pytest.approx(1.2345, rel=REL)
    assert tce_to_kgce(1.2345) == pytest.approx(1234.5, rel=REL)

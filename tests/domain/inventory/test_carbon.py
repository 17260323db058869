"""Energy → CO2: combustion, electricity location- and market-based, heat, scopes.

Tolerance 1e-12 relative unless stated (a handful of multiplications).
"""

from __future__ import annotations

from datetime import date

import pytest

from carbonflow.domain.factors import (
    Confidence,
    FactorNotFound,
    PinnedFactor,
    Selection,
    SiteOverride,
    default_library,
    select_electricity_factor,
)
from carbonflow.domain.inventory.carbon import (
    DoubleCountingError,
    GreenInstrument,
    InstrumentKind,
    Scope2Method,
    certificates,
    dual_scope_totals,
    electricity_location_based,
    electricity_market_based,
    fuel_combustion_co2,
    fuel_parameters,
    net_electricity_import,
    purchased_heat_co2,
    self_generated_electricity,
)
from carbonflow.domain.inventory.lines import Category, Scope

LIB = default_library()
REL = 1e-12
P0, P1 = date(2026, 3, 1), date(2026, 3, 31)  # the accounting month
ZERO = LIB.get("green.evidenced_purchase.zero")
GEC = LIB.get("green.gec.mwh_per_certificate")
RESIDUAL_2023 = select_electricity_factor(None, None, "residual", 2026, geography="national")


def gec(count: int, ident: str = "GEC-2026-001", **kw: date) -> GreenInstrument:
    validity = {"valid_from": date(2026, 1, 1), "valid_to": date(2027, 12, 31)} | kw
    return certificates(
        count, instrument_id=ident, evidence="serials 1–N", mwh_per_certificate=GEC, **validity
    )


# --- electricity, location-based --------------------------------------------------------------


def test_location_based_with_the_pinned_ets_factor() -> None:
    factor = select_electricity_factor(
        "shanxi",
        None,
        "average",
        2025,
        pin=PinnedFactor("electricity.ets_reporting.national.2022", "ETS report"),
    )
    e = electricity_location_based(12.5, factor)
    # 12.5 MWh × 0.5703 tCO2/MWh = 7.12875 t
    assert e.emissions_tco2e == pytest.approx(7.12875, rel=REL)
    assert (e.scope, e.scope2_method) == (Scope.SCOPE_2, Scope2Method.LOCATION_BASED)
    assert e.factors[0].selection is Selection.PIN
    assert e.formula == "12.5 MWh × 0.5703 tCO2/MWh = 7.12875 tCO2"


def test_location_based_shanxi_2023_with_exports_netted() -> None:
    # import 1 200 MWh − export 200 MWh = 1 000 MWh × 0.6634 tCO2/MWh = 663.4 t
    net = net_electricity_import(1200.0, 200.0)
    factor = select_electricity_factor("山西", None, "average", 2026)
    e = electricity_location_based(net.net_import_mwh, factor)
    assert e.emissions_tco2e == pytest.approx(663.4, rel=REL)
    assert e.factors[0].key == "electricity.mee_nbs.province.shanxi.average.2023"
    assert "newest data year ≤ 2026: 2023" in e.factors[0].reason


def test_net_exporter_has_zero_scope_2_and_a_surplus() -> None:
    # A PV park exports 300 MWh and imports 100 MWh: net import 0, surplus export 200 MWh.
    net = net_electricity_import(100.0, 300.0)
    assert (net.net_import_mwh, net.surplus_export_mwh) == (0.0, 200.0)
    factor = select_electricity_factor("shanxi", None, "average", 2026)
    assert electricity_location_based(net.net_import_mwh, factor).emissions_tco2e == 0.0
    with pytest.raises(ValueError, match="net import is negative"):
        electricity_location_based(-1.0, factor)


def test_wrong_factor_unit_is_refused() -> None:
    with pytest.raises(ValueError, match="needs a factor in tCO2/MWh"):
        electricity_location_based(10.0, LIB.get("heat.purchased.default"))


# --- electricity, market-based ------------------------------------------------------------------


def test_month_without_green_certificates_uses_the_residual_factor() -> None:
    # 1 000 MWh × 0.6096 tCO2/MWh (residual mix 2023) = 609.6 t
    m = electricity_market_based(
        1000.0, [], RESIDUAL_2023, zero_factor=ZERO, period_start=P0, period_end=P1
    )
    assert (m.green_mwh, m.remainder_mwh) == (0.0, 1000.0)
    assert m.emissions_tco2e == pytest.approx(609.6, rel=REL)
    assert m.remainder.factors[0].key == "electricity.mee_nbs.national.residual.2023"
    assert m.remainder.scope2_method is Scope2Method.MARKET_BASED


def test_month_fully_covered_by_certificates_is_zero() -> None:
    # 1 000 GEC × 1 MWh = 1 000 MWh covers the 1 000 MWh consumed: 0 t
    m = electricity_market_based(
        1000.0, [gec(1000)], RESIDUAL_2023, zero_factor=ZERO, period_start=P0, period_end=P1
    )
    assert (m.green_mwh, m.remainder_mwh, m.emissions_tco2e) == (1000.0, 0.0, 0.0)
    assert m.green.category is Category.GREEN_ELECTRICITY
    assert m.green.factors[0].key == "green.evidenced_purchase.zero"
    assert m.claims[0].accepted


def test_partial_cover_mixes_contract_direct_supply_and_certificates() -> None:
    # 1 000 MWh − (300 contract + 150 direct supply + 200 GEC) = 350 MWh × 0.6096 = 213.36 t
    contract = GreenInstrument(
        InstrumentKind.GREEN_POWER_CONTRACT,
        "GPT-2026-03",
        300.0,
        date(2026, 3, 1),
        date(2026, 3, 31),
        "settlement voucher 2026-03-117",
    )
    direct = GreenInstrument(
        InstrumentKind.DIRECT_SUPPLY,
        "DL-PV-7",
        150.0,
        date(2026, 3, 1),
        date(2026, 3, 31),
        "meter pv7-export",
    )
    m = electricity_market_based(
        1000.0,
        [contract, direct, gec(200)],
        RESIDUAL_2023,
        zero_factor=ZERO,
        period_start=P0,
        period_end=P1,
    )
    assert (m.green_mwh, m.remainder_mwh) == (650.0, 350.0)
    assert m.emissions_tco2e == pytest.approx(213.36, rel=REL)


def test_over_claim_is_capped_and_recorded_unused() -> None:
    # 1 200 certificates for 1 000 MWh: 1 000 applied, 200 unused, 0 t
    m = electricity_market_based(
        1000.0, [gec(1200)], RESIDUAL_2023, zero_factor=ZERO, period_start=P0, period_end=P1
    )
    (claim,) = m.claims
    assert (claim.applied_mwh, claim.unused_mwh) == (1000.0, 200.0)
    assert m.emissions_tco2e == 0.0


def test_invalid_instruments_are_rejected_with_a_reason() -> None:
    expired = gec(100, "GEC-OLD", valid_from=date(2024, 1, 1), valid_to=date(2025, 12, 31))
    no_evidence = GreenInstrument(
        InstrumentKind.GREEN_POWER_CONTRACT, "GPT-X", 50.0, date(2026, 1, 1), date(2026, 12, 31), ""
    )
    twice = [gec(100, "GEC-A"), gec(100, "GEC-A")]
    m = electricity_market_based(
        1000.0,
        [expired, no_evidence, *twice],
        RESIDUAL_2023,
        zero_factor=ZERO,
        period_start=P0,
        period_end=P1,
    )
    reasons = [c.reason for c in m.claims if not c.accepted]
    assert len(reasons) == 3
    assert "outside the period" in reasons[0]
    assert reasons[1] == "no evidence given"
    assert "double claim" in reasons[2]
    # only one GEC-A counts: (1 000 − 100) MWh × 0.6096 = 548.64 t
    assert m.emissions_tco2e == pytest.approx(548.64, rel=REL)


def test_grid_average_on_the_remainder_is_refused() -> None:
    average = select_electricity_factor("shanxi", None, "average", 2026)
    with pytest.raises(DoubleCountingError, match="would count claimed green power twice"):
        electricity_market_based(
            1000.0, [gec(10)], average, zero_factor=ZERO, period_start=P0, period_end=P1
        )
    ets = LIB.get("electricity.ets_reporting.national.2022")
    with pytest.raises(DoubleCountingError):
        electricity_market_based(1000.0, [], ets, zero_factor=ZERO, period_start=P0, period_end=P1)


def test_supplier_specific_override_is_accepted_for_the_remainder() -> None:
    supplier = select_electricity_factor(
        "shanxi",
        None,
        "average",
        2026,
        pin=SiteOverride(
            "site.x.supplier", 0.45, "tCO2/MWh", "supplier 2026", Confidence.B, "site-x-1"
        ),
    )
    # 100 MWh × 0.45 = 45 t
    m = electricity_market_based(
        100.0, [], supplier, zero_factor=ZERO, period_start=P0, period_end=P1
    )
    assert m.emissions_tco2e == pytest.approx(45.0, rel=REL)


def test_self_generated_pv_is_zero_and_traceable() -> None:
    e = self_generated_electricity(250.0, LIB.get("green.self_generated_non_fossil.zero"))
    assert (e.emissions_tco2e, e.activity, e.category) == (0.0, 250.0, Category.SELF_GENERATION)
    assert e.factors[0].version == "green-electricity-2023-08"


# --- fuel combustion ---------------------------------------------------------------------------


def test_natural_gas_combustion() -> None:
    params = fuel_parameters(LIB, "天然气")
    # 10 000 Nm3 = 1 × 10^4 Nm3 × 389.31 GJ/10^4 Nm3 × 0.0153 tC/GJ × 0.99 × 44/12
    #   = 389.31 × 0.0153 = 5.956443; × 0.99 = 5.89687857; × 44/12 = 21.62188809 t
    e = fuel_combustion_co2(10_000, "Nm3", params)
    assert e.emissions_tco2e == pytest.approx(21.62188809, rel=1e-9)
    assert (e.activity, e.activity_unit) == (1.0, "10^4 Nm3")
    assert [f.key for f in e.factors] == [
        "fuel.natural_gas.ncv",
        "fuel.natural_gas.cc",
        "fuel.natural_gas.of",
    ]
    assert e.scope is Scope.SCOPE_1


def test_diesel_combustion_in_kg() -> None:
    # 10 000 kg = 10 t × 42.652 GJ/t × 0.0202 × 0.98 × 44/12
    #   = 426.52 × 0.0202 = 8.615704; × 0.98 = 8.44338992; × 44/12 = 30.95909637 t
    e = fuel_combustion_co2(10_000, "kg", fuel_parameters(LIB, "diesel"))
    assert e.emissions_tco2e == pytest.approx(30.95909637, rel=1e-9)


def test_raw_coal_with_a_measured_ncv_override() -> None:
    ncv = SiteOverride(
        "site.mine-a.raw_coal.ncv",
        20.5,
        "GJ/t",
        "lab report 2026-02 (GB/T 213)",
        Confidence.A,
        "mine-a-2026-02",
    )
    params = fuel_parameters(LIB, "bituminous_coal", ncv=ncv)
    # 1 000 t × 20.5 GJ/t × 0.0261 × 0.93 × 44/12 = 535.05 × 0.93 = 497.5965 × 44/12 = 1 824.5205 t
    e = fuel_combustion_co2(1000, "t", params)
    assert e.emissions_tco2e == pytest.approx(1824.5205, rel=1e-9)
    assert e.factors[0].selection is Selection.OVERRIDE
    assert e.factors[1].selection is Selection.DEFAULT
    with pytest.raises(ValueError, match="is in GJ/10"):
        fuel_parameters(
            LIB,
            "bituminous_coal",
            ncv=SiteOverride("x", 1.0, "GJ/10^4 Nm3", "s", Confidence.U, "v"),
        )


def test_site_carrier_raw_coal_is_accounted_as_bituminous_coal() -> None:
    assert fuel_parameters(LIB, "raw_coal").fuel == "bituminous_coal"
    assert fuel_parameters(LIB, "washed_coal").fuel == "cleaned_coal"


def test_unknown_fuel_lists_the_fuels() -> None:
    with pytest.raises(FactorNotFound, match=r"fuel 'hydrogen'; fuels: 无烟煤 \(anthracite\)"):
        fuel_parameters(LIB, "hydrogen")


def test_zero_fuel_is_zero_co2() -> None:
    assert fuel_combustion_co2(0, "t", fuel_parameters(LIB, "coke")).emissions_tco2e == 0.0


# --- heat and totals ----------------------------------------------------------------------------


def test_purchased_heat_default_and_supplier_factor() -> None:
    # 100 GJ × 0.11 tCO2/GJ = 11 t
    e = purchased_heat_co2(100.0, LIB.get("heat.purchased.default"))
    assert e.emissions_tco2e == pytest.approx(11.0, rel=REL)
    assert e.scope2_method is None  # counts in both scope-2 totals


def test_dual_scope_totals() -> None:
    gas = fuel_combustion_co2(10_000, "Nm3", fuel_parameters(LIB, "natural_gas"))  # 21.62188809
    location = electricity_location_based(
        1000.0, select_electricity_factor("shanxi", None, "average", 2026)
    )  # 663.4
    market = electricity_market_based(
        1000.0, [gec(400)], RESIDUAL_2023, zero_factor=ZERO, period_start=P0, period_end=P1
    )  # 600 MWh × 0.6096 = 365.76
    heat = purchased_heat_co2(100.0, LIB.get("heat.purchased.default"))  # 11
    loc, mkt = dual_scope_totals([gas, location, *market.emissions, heat])
    # location: 21.62188809 + 663.4 + 11 = 696.02188809; market: 21.62188809 + 365.76 + 11
    assert loc.scope1_tco2e == pytest.approx(21.62188809, rel=1e-9)
    assert loc.scope2_tco2e == pytest.approx(674.4, rel=REL)
    assert loc.total_tco2e == pytest.approx(696.02188809, rel=1e-9)
    assert mkt.scope2_tco2e == pytest.approx(376.76, rel=REL)
    assert mkt.total_tco2e == pytest.approx(398.38188809, rel=1e-9)
    assert loc.co2_t == loc.total_tco2e

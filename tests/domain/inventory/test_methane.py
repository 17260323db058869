"""Coal-mine methane (ACCOUNTING §4). Tolerance 1e-12 relative unless stated."""

from __future__ import annotations

import pytest

from carbonflow.domain.factors import Confidence, SiteOverride, default_library
from carbonflow.domain.inventory.lines import Category, Gas, Scope
from carbonflow.domain.inventory.methane import (
    GwpSet,
    MethaneFlows,
    methane_parameters,
    mine_methane,
    production_methane,
    pure_ch4_nm3,
)

LIB = default_library()
REL = 1e-12

# Pure CH4 volumes of one month [Nm3]: ventilation 100 × 10^4, drained 50 × 10^4, flared
# 10 × 10^4, utilised on site 20 × 10^4, sold 5 × 10^4.
FLOWS = MethaneFlows(
    ventilation_ch4_nm3=1_000_000,
    drained_ch4_nm3=500_000,
    flared_ch4_nm3=100_000,
    utilised_onsite_ch4_nm3=200_000,
    sold_offsite_ch4_nm3=50_000,
)


def test_escape_with_the_chinese_method_gwp_21() -> None:
    m = mine_methane(FLOWS, methane_parameters(LIB))
    # (100 + 50 − 10 − 20 − 5) × 10^4 Nm3 = 115 × 10^4 Nm3 × 7.17 t/10^4 Nm3 = 824.55 t CH4
    # × 21 = 17 315.55 tCO2e
    assert m.escape_ch4_nm3 == 1_150_000
    assert m.escape.gas_t == pytest.approx(824.55, rel=REL)
    assert m.escape.emissions_tco2e == pytest.approx(17_315.55, rel=REL)
    assert (m.escape.gas, m.escape.scope, m.escape.category) == (
        Gas.CH4,
        Scope.SCOPE_1,
        Category.FUGITIVE,
    )
    assert m.gwp.key == "gwp.ch4.sar"
    assert [f.key for f in m.escape.factors] == ["methane.ch4_density.standard", "gwp.ch4.sar"]


def test_flared_and_utilised_methane_become_co2() -> None:
    m = mine_methane(FLOWS, methane_parameters(LIB))
    # flared: 10 × 7.17 = 71.7 t CH4 × 44/16 = 197.175 × 0.98 = 193.2315 tCO2
    assert m.flaring.emissions_tco2e == pytest.approx(193.2315, rel=REL)
    assert m.flaring.category is Category.FLARING
    # utilised on site: 20 × 7.17 = 143.4 × 44/16 = 394.35 × 0.99 = 390.4065 tCO2
    assert m.utilisation.emissions_tco2e == pytest.approx(390.4065, rel=REL)
    assert m.utilisation.category is Category.FUEL_COMBUSTION
    # sold: 5 × 7.17 = 35.85 t CH4, recorded separately, no CO2 for the mine
    assert m.sold_offsite_ch4_t == pytest.approx(35.85, rel=REL)
    # total: 17 315.55 + 193.2315 + 390.4065 = 17 899.188
    assert m.emissions_tco2e == pytest.approx(17_899.188, rel=REL)


def test_rates() -> None:
    m = mine_methane(FLOWS, methane_parameters(LIB))
    # drainage 50 / (50 + 100) = 1/3; utilisation (20 + 5) / 50 = 0.5
    assert m.drainage_rate.value == pytest.approx(1 / 3, rel=REL)
    assert m.utilisation_rate.value == pytest.approx(0.5, rel=REL)


@pytest.mark.parametrize(
    ("gwp_set", "gwp", "tco2e"),
    [
        (GwpSet.SAR, 21, 17_315.55),  # 824.55 × 21
        (GwpSet.AR4, 25, 20_613.75),  # 824.55 × 25
        (GwpSet.AR5, 28, 23_087.4),  # 824.55 × 28
        (GwpSet.AR6_FOSSIL, 29.8, 24_571.59),  # 824.55 × 29.8
    ],
)
def test_gwp_set_is_selectable_and_recorded(gwp_set: GwpSet, gwp: float, tco2e: float) -> None:
    m = mine_methane(FLOWS, methane_parameters(LIB, gwp_set))
    assert m.gwp.value == gwp
    assert m.escape.emissions_tco2e == pytest.approx(tco2e, rel=REL)
    assert f"GWP {gwp:g}" in m.escape.formula


def test_no_drainage_gives_undefined_utilisation_not_an_error() -> None:
    m = mine_methane(
        MethaneFlows(ventilation_ch4_nm3=20_000, drained_ch4_nm3=0), methane_parameters(LIB)
    )
    # 2 × 10^4 Nm3 × 7.17 = 14.34 t CH4
    assert m.escape.gas_t == pytest.approx(14.34, rel=REL)
    assert m.utilisation_rate.value is None
    assert m.drainage_rate.value == 0.0
    assert (m.flaring.emissions_tco2e, m.utilisation.emissions_tco2e) == (0.0, 0.0)


def test_a_quiet_mine_is_all_zero() -> None:
    m = mine_methane(MethaneFlows(0, 0), methane_parameters(LIB))
    assert m.emissions_tco2e == 0.0
    assert m.drainage_rate.value is None


def test_more_destroyed_than_captured_is_refused() -> None:
    with pytest.raises(ValueError, match="exceed ventilation"):
        mine_methane(
            MethaneFlows(ventilation_ch4_nm3=0, drained_ch4_nm3=10, flared_ch4_nm3=20),
            methane_parameters(LIB),
        )
    with pytest.raises(ValueError, match="drained_ch4_nm3 must be"):
        MethaneFlows(ventilation_ch4_nm3=0, drained_ch4_nm3=-1)


def test_pure_ch4_from_mixed_gas() -> None:
    # 10 000 Nm3 of drained gas at 30 % CH4 = 3 000 Nm3 pure CH4
    assert pure_ch4_nm3(10_000, 30.0) == pytest.approx(3000.0, rel=REL)
    assert pure_ch4_nm3(10_000, 0.0) == 0.0
    with pytest.raises(ValueError):
        pure_ch4_nm3(10_000, 130.0)


def test_open_pit_production_methane() -> None:
    # 1 000 000 t × 1.34 kg CH4/t = 1 340 000 kg = 1 340 t CH4 × 21 = 28 140 tCO2e
    e = production_methane(1_000_000, LIB.get("methane.ef.open_pit"), LIB.get("gwp.ch4.sar"))
    assert e.gas_t == pytest.approx(1340.0, rel=REL)
    assert e.emissions_tco2e == pytest.approx(28_140.0, rel=REL)
    assert e.factors[0].confidence is Confidence.U
    assert production_methane(0, LIB.get("methane.ef.open_pit"), LIB.get("gwp.ch4.sar")).gas_t == 0


def test_site_measured_density_override_is_recorded() -> None:
    density = LIB.resolve_pin(
        SiteOverride(
            "site.mine-a.ch4_density", 7.16, "t/10^4 Nm3", "gas lab 2026", Confidence.B, "v1"
        )
    )
    m = mine_methane(
        MethaneFlows(ventilation_ch4_nm3=10_000, drained_ch4_nm3=0),
        methane_parameters(LIB, density=density),
    )
    # 1 × 10^4 Nm3 × 7.16 = 7.16 t CH4
    assert m.escape.gas_t == pytest.approx(7.16, rel=REL)
    assert m.escape.factors[0].key == "site.mine-a.ch4_density"

"""Inventory lines: a line counts in a view if its basis is that view or both; view totals."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from carbonflow.domain.inventory.carbon import Emission, Scope2Method
from carbonflow.domain.inventory.lines import (
    Basis,
    Category,
    Gas,
    Scope,
    View,
    in_view,
    period_totals,
    view_totals,
)


@dataclass(frozen=True)
class Row:
    basis: str
    scope: str
    tco2e: float
    gas: str
    gas_t: float


def row(
    basis: str, scope: str, tco2e: float, *, gas: str = "CO2", gas_t: float | None = None
) -> Row:
    """A row of CO2 (its mass is its CO2e) unless told otherwise."""
    return Row(basis, scope, tco2e, gas, tco2e if gas_t is None else gas_t)


def test_values_are_the_stored_strings() -> None:
    assert [b.value for b in Basis] == ["location", "market", "both"]
    assert [v.value for v in View] == ["location", "market"]
    assert [s.value for s in Scope] == ["scope_1", "scope_2"]
    assert [g.value for g in Gas] == ["CO2", "CH4", "N2O"]
    assert Category.PURCHASED_ELECTRICITY.value == "purchased_electricity"
    assert [m.value for m in Scope2Method] == ["location_based", "market_based"]


def test_a_line_counts_in_its_own_view_or_in_both() -> None:
    table = {
        (Basis.LOCATION, View.LOCATION): True,
        (Basis.LOCATION, View.MARKET): False,
        (Basis.MARKET, View.LOCATION): False,
        (Basis.MARKET, View.MARKET): True,
        (Basis.BOTH, View.LOCATION): True,
        (Basis.BOTH, View.MARKET): True,
    }
    for (basis, view), counts in table.items():
        assert basis.in_view(view) is counts, (basis, view)


def test_in_view_keeps_stored_rows_in_order() -> None:
    rows = [row("both", "scope_1", 1.0), row("market", "scope_2", 2.0)]
    rows += [row("location", "scope_2", 3.0), row("both", "scope_2", 4.0)]
    assert [r.tco2e for r in in_view(rows, View.LOCATION)] == [1.0, 3.0, 4.0]
    assert [r.tco2e for r in in_view(rows, View.MARKET)] == [1.0, 2.0, 4.0]
    assert in_view([], View.MARKET) == []
    with pytest.raises(ValueError, match="'neither'"):
        in_view([row("neither", "scope_1", 1.0)], View.LOCATION)


def test_view_totals_by_hand() -> None:
    rows = [
        row("location", "scope_2", 5.703),  # 10 MWh × 0.5703 tCO2/MWh at the grid average
        row("market", "scope_2", 3.0),  # the residual mix on what certificates did not cover
        row("both", "scope_1", 2.0),  # diesel
        row("both", "scope_1", 0.25, gas="CH4", gas_t=0.01),  # 0.01 t CH4 × GWP 25
        row("both", "scope_2", 1.5),  # purchased heat
    ]
    loc = view_totals(rows, View.LOCATION)
    # scope 1: 2.0 + 0.25; scope 2: 5.703 + 1.5; CO2: 5.703 + 2.0 + 1.5.
    assert loc.view is View.LOCATION
    assert (loc.scope1_tco2e, loc.scope2_tco2e) == (2.25, 7.203)
    assert loc.total_tco2e == pytest.approx(9.453, abs=1e-15)
    assert (loc.co2_t, loc.ch4_t, loc.n2o_t) == (9.203, 0.01, 0.0)
    mkt = view_totals(rows, View.MARKET)
    assert (mkt.scope1_tco2e, mkt.scope2_tco2e, mkt.total_tco2e) == (2.25, 4.5, 6.75)
    assert (mkt.gas_t("CO2"), mkt.gas_t(Gas.CH4), mkt.gas_t("N2O")) == (6.5, 0.01, 0.0)
    empty = view_totals([], View.MARKET)
    assert (empty.total_tco2e, empty.co2_t, empty.scope1_tco2e) == (0.0, 0.0, 0.0)


def _emission(method: Scope2Method | None) -> Emission:
    return Emission(
        Category.PURCHASED_ELECTRICITY, Scope.SCOPE_2, Gas.CO2, 1.0, 1.0, 1.0, "MWh", (), "",
        scope2_method=method,
    )  # fmt: skip


def test_an_emission_s_basis_is_its_scope2_method_s_view_or_both() -> None:
    assert Scope2Method.LOCATION_BASED.view is View.LOCATION
    assert Scope2Method.MARKET_BASED.view is View.MARKET
    assert _emission(None).basis is Basis.BOTH
    assert _emission(Scope2Method.LOCATION_BASED).basis is Basis.LOCATION
    assert _emission(Scope2Method.MARKET_BASED).basis is Basis.MARKET


@dataclass(frozen=True)
class Total(Row):
    energy_tce: float = 0.0
    zero_carbon_tce: float = 0.0
    quality: str = "measured"
    completeness: float = 1.0


def total(basis: str, scope: str, tco2e: float, **kw: Any) -> Total:
    gas = kw.pop("gas", "CO2")
    return Total(basis, scope, tco2e, gas, kw.pop("gas_t", tco2e), **kw)


def test_period_totals_by_hand() -> None:
    rows = [
        total("location", "scope_2", 5.703, energy_tce=1.229),  # 10 MWh at 0.5703 tCO2/MWh
        total("market", "scope_2", 3.0),  # residual mix on what certificates did not cover
        # Certificates: zero-carbon energy on a market row, outside the location view.
        total("market", "scope_2", 0.0, zero_carbon_tce=0.6),
        total("both", "scope_1", 2.0, energy_tce=0.5, quality="estimated", completeness=0.5),
        total("both", "scope_1", 0.25, gas="CH4", gas_t=0.01),
        total("both", "scope_2", 0.0, energy_tce=0.4, zero_carbon_tce=0.4),  # own PV
    ]
    t = period_totals(rows)
    # energy and zero-carbon energy of location and both rows: 1.229 + 0.5 + 0.4; 0.4
    assert (t.energy_tce, t.zero_carbon_tce) == (2.129, 0.4)
    # location: 5.703 + 2.0 + 0.25 = 7.953; market: 3.0 + 2.0 + 0.25 = 5.25
    assert (t.location_tco2e, t.market_tco2e) == (7.953, 5.25)
    # CO2 only: location 5.703 + 2.0, market 3.0 + 2.0
    assert (t.co2_location_t, t.co2_market_t) == (7.703, 5.0)
    assert (t.scope1_tco2e, t.scope2_location_tco2e, t.scope2_market_tco2e) == (2.25, 5.703, 3.0)
    # one estimated row makes the sum estimated; mean completeness (5 × 1 + 0.5) / 6
    assert t.quality == "estimated" and type(t.quality) is str
    assert t.completeness == 5.5 / 6
    assert period_totals([total("both", "scope_1", 1.0, quality="missing")]).quality == "missing"


def test_period_totals_of_nothing() -> None:
    t = period_totals([])
    assert t.quality is None and t.completeness == 0.0
    assert (t.energy_tce, t.location_tco2e, t.market_tco2e, t.scope1_tco2e) == (0, 0, 0, 0)

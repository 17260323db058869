"""Allocation of node emissions to products. Allocated totals must equal the node total exactly
under math.fsum; individual shares are checked to 1e-12 relative."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carbonflow.domain.exact import allocate_exact
from carbonflow.domain.flows.allocation import (
    AllocationBasis,
    AllocationKey,
    allocate_node,
    product_intensity,
    product_totals,
)

REL = 1e-12


def mass(product: str, t: float) -> AllocationKey:
    return AllocationKey(product, t, "t", "mass_t")


def revenue(product: str, cny: float) -> AllocationKey:
    return AllocationKey(product, cny, "CNY", "revenue_cny")


def test_physical_keys() -> None:
    # 100 tCO2e by mass 600 t : 400 t → 60 : 40
    a = allocate_node(
        "washery", 100.0, "tCO2e", physical=[mass("clean", 600), mass("middlings", 400)]
    )
    assert [s.allocated for s in a.shares] == [pytest.approx(60.0), pytest.approx(40.0)]
    assert a.remainder_basis is AllocationBasis.PHYSICAL
    assert a.shares[0].key_fraction == pytest.approx(0.6, rel=REL)
    assert math.fsum(s.allocated for s in a.shares) == 100.0


def test_submetered_first_then_physical() -> None:
    # 100 t, of which 30 t sub-metered to "clean"; the other 70 t by mass 600 : 400 → 42 : 28
    a = allocate_node(
        "washery",
        100.0,
        "tCO2e",
        submetered={"clean": 30.0},
        physical=[mass("clean", 600), mass("middlings", 400)],
        economic=[revenue("clean", 9e6), revenue("middlings", 1e6)],
    )
    clean, middlings = a.shares
    assert clean.allocated == pytest.approx(72.0, rel=REL)  # 30 + 42
    assert clean.basis == (AllocationBasis.SUBMETERED, AllocationBasis.PHYSICAL)
    assert middlings.allocated == pytest.approx(28.0, rel=REL)
    assert (a.submetered_total, a.remainder) == (30.0, 70.0)
    assert a.allocated_total == 100.0


def test_economic_keys_when_no_physical_keys() -> None:
    # 50 t by revenue 9 M : 1 M CNY → 45 : 5
    a = allocate_node("plant", 50.0, "tCO2e", economic=[revenue("a", 9e6), revenue("b", 1e6)])
    assert [round(s.allocated, 12) for s in a.shares] == [45.0, 5.0]
    assert a.remainder_basis is AllocationBasis.ECONOMIC


def test_fully_submetered_node_needs_no_keys() -> None:
    a = allocate_node("kiln", 10.0, "tCO2e", submetered={"clinker": 7.3, "lime": 2.7})
    assert a.remainder_basis is None
    assert math.fsum(s.allocated for s in a.shares) == 10.0
    assert {s.basis for s in a.shares} == {(AllocationBasis.SUBMETERED,)}


def test_thirds_add_up_exactly() -> None:
    # 100 / 3 is not a float: the last part takes the exact remainder
    parts = allocate_exact(100.0, [1.0, 1.0, 1.0])
    assert math.fsum(parts) == 100.0
    assert parts[0] == pytest.approx(100 / 3, rel=REL)


def test_zero_total_and_zero_production() -> None:
    a = allocate_node("idle", 0.0, "tCO2e", physical=[mass("a", 0.0), mass("b", 5.0)])
    assert [s.allocated for s in a.shares] == [0.0, 0.0]
    # intensity: 72 tCO2e / 1 200 t = 0.06 tCO2e/t; no output → undefined, not an error
    assert product_intensity(72.0, 1200.0, "t").value == pytest.approx(0.06, rel=REL)
    undefined = product_intensity(72.0, 0.0, "t")
    assert undefined.value is None
    assert undefined.unit == "tCO2e/t"


def test_errors() -> None:
    with pytest.raises(ValueError, match="exceed the node total"):
        allocate_node("n", 10.0, "tCO2e", submetered={"a": 11.0}, physical=[mass("a", 1)])
    with pytest.raises(ValueError, match="no physical or economic allocation keys"):
        allocate_node("n", 10.0, "tCO2e", submetered={"a": 4.0})
    with pytest.raises(ValueError, match="all weights are zero"):
        allocate_node("n", 10.0, "tCO2e", physical=[mass("a", 0), mass("b", 0)])
    with pytest.raises(ValueError, match="different units"):
        allocate_node("n", 10.0, "tCO2e", physical=[mass("a", 1), AllocationKey("b", 1, "GJ", "e")])


def test_product_totals_over_nodes() -> None:
    # shaft 30 t to raw coal; washery 100 t → 60 / 40: raw coal 30 + 60 = 90, middlings 40
    nodes = [
        allocate_node("shaft", 30.0, "tCO2e", physical=[mass("coal", 1000)]),
        allocate_node("washery", 100.0, "tCO2e", physical=[mass("coal", 600), mass("mid", 400)]),
    ]
    totals = product_totals(nodes)
    assert totals == {"coal": pytest.approx(90.0), "mid": pytest.approx(40.0)}
    assert math.fsum(totals.values()) == 130.0


@settings(max_examples=300, deadline=None)
@given(
    st.floats(min_value=0, max_value=1e9, allow_subnormal=False),
    st.lists(
        st.floats(min_value=0, max_value=1e6, allow_subnormal=False), min_size=1, max_size=12
    ).filter(lambda ws: sum(ws) > 0),
)
def test_allocated_parts_always_add_up_to_the_total(total: float, weights: list[float]) -> None:
    parts = allocate_exact(total, weights)
    assert math.fsum(parts) == total
    assert all(p >= -1e-9 * max(1.0, total) for p in parts)

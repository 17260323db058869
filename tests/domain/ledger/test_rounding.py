"""GB/T 8170 round half to even on hand-worked figures, and what the exports print."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest

from carbonflow.domain.ledger.rounding import (
    DECIMALS,
    NOTE,
    column_decimals,
    presented,
    round_half_even,
)


@pytest.mark.parametrize(
    ("value", "decimals", "printed"),
    [
        # A half: the kept digit goes to the even one (GB/T 8170-2008 §3.3, 五成双).
        (2.345, 2, "2.34"),  # 4 is even: the 5 is dropped
        (2.355, 2, "2.36"),  # 5 is odd: up to 6
        (0.125, 2, "0.12"),
        (0.135, 2, "0.14"),
        (2.5, 0, "2"),
        (3.5, 0, "4"),
        (1234.5675, 3, "1234.568"),
        # Not a half: nearest, as everywhere.
        (2.3451, 2, "2.35"),  # more than half: up
        (2.3449, 2, "2.34"),
        (0.1251, 2, "0.13"),
        # Negative figures: rounded by their absolute value, sign kept (§3.4).
        (-2.345, 2, "-2.34"),
        (-0.125, 2, "-0.12"),
        (-0.135, 2, "-0.14"),
        (-2.3451, 2, "-2.35"),
        # Zero never prints as -0.
        (-0.004, 2, "0.00"),
        (-0.0, 3, "0.000"),
        (1e-10, 3, "0.000"),
        # More decimals than the figure has: padded, the precision of the column is shown.
        (2.3, 3, "2.300"),
        (12.0, 3, "12.000"),
    ],
)
def test_round_half_even_on_hand_worked_cases(value: float, decimals: int, printed: str) -> None:
    assert format(round_half_even(value, decimals), "f") == printed


def test_the_rule_reads_the_decimal_digits_not_the_binary_float() -> None:
    # 2.675 is stored as 2.67499999999999982236431605997495353221893310546875: the binary
    # float would round down whatever the rule; the ledger states 2.675, a half, and 7 is odd.
    assert Decimal(2.675) < Decimal("2.675")  # noqa: RUF032 — the float's exact value
    assert round_half_even(2.675, 2) == Decimal("2.68")
    assert round_half_even(2.665, 2) == Decimal("2.66")


def test_not_finite_or_negative_decimals_are_refused() -> None:
    with pytest.raises(ValueError, match="not finite"):
        round_half_even(math.nan, 2)
    with pytest.raises(ValueError, match="decimals"):
        round_half_even(1.0, -1)


def test_totals_from_exact_values_may_differ_from_re_added_lines() -> None:
    """Three lines of 0.3334 tCO2e: each prints 0.333, the total (1.0002 exact) prints 1.000,
    not 0.999 — the last digit differs, as the note on the document says."""
    lines = [0.3334, 0.3334, 0.3334]
    printed = [presented("emissions", "tco2e", v) for v in lines]
    assert printed == [Decimal("0.333")] * 3
    total = presented("totals", "total_tco2e", math.fsum(lines))
    assert total == Decimal("1.000") != sum(printed)
    assert "last digit" in NOTE["en"] and "末位" in NOTE["zh"] and "GB/T 8170" in NOTE["zh"]


def test_columns_and_what_stays_as_stated() -> None:
    assert DECIMALS["tco2e"] == 3 and DECIMALS["gas_t"] == 4 and DECIMALS["measured_share"] == 4
    assert presented("activity", "quantity", 1234.56785) == Decimal("1234.568")
    assert presented("devices", "opening_reading", 100.0) == Decimal("100.000")
    # Cited values (factors, GWP, tce coefficients, multipliers) print as their source states.
    for section, key in (
        ("factors", "value"), ("activity", "factor_value"), ("activity", "tce_factor"),
        ("emissions", "gwp"), ("devices", "multiplier"),
    ):  # fmt: skip
        assert column_decimals(section, key) is None
        assert presented(section, key, 0.5703) == 0.5703
    # An indicator value is a figure; counts, text, booleans and nulls are untouched.
    assert presented("indicators", "value", 0.123456) == Decimal("0.1235")
    assert presented("devices", "readings", 2976) == 2976
    assert presented("activity", "unit", "kWh") == "kWh"
    assert presented("green_power", "accepted", True) is True
    assert presented("totals", "total_tco2e", None) is None

"""Sums as ``sum(x::numeric)::float8``: each part at 15 significant digits, added exactly, rounded
once. Hand-worked sums, the fast path against the definition, and the scale numeric keeps.
(Against PostgreSQL itself: tests/storage/test_interval_rollup.py.)"""

from __future__ import annotations

import math
import random
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest

from carbonflow.domain.decimal_sums import decimal15, group_sums, scale_of


def _sums(*groups: list[float], with_scale: bool = False) -> tuple[list[float], list[str]]:
    values = np.array([v for g in groups for v in g], dtype=np.float64)
    starts = np.cumsum([0, *(len(g) for g in groups[:-1])]).astype(np.int64)
    sums = group_sums(values, starts, with_scale=with_scale)
    texts = [sums.text(i) for i in range(len(groups))] if with_scale else []
    return [float(f) for f in sums.floats()], texts


def test_parts_are_taken_at_fifteen_digits() -> None:
    # 0.1 + 0.2: '0.1' + '0.2' = 0.3 exactly → 0.3 (in floats 0.30000000000000004)
    # 3 × (1/3): 3 × '0.333333333333333' = 0.999999999999999 → 0.999999999999999
    # 3 × (2/3): 3 × '0.666666666666667' = 2.000000000000001 → 2.000000000000001
    floats, _ = _sums([0.1, 0.2], [1 / 3] * 3, [2 / 3] * 3)
    assert floats == [0.3, 0.999999999999999, 2.000000000000001]
    assert 0.1 + 0.2 != 0.3
    with pytest.raises(ValueError, match="scale"):
        group_sums(np.array([0.1]), np.array([0])).text(0)


def test_a_tie_at_the_sixteenth_digit_rounds_to_even() -> None:
    # 123456789012344.5 and 123456789012345.5 are doubles exactly; at 15 digits the .5 is a tie:
    # 123456789012344 (even, down) and 123456789012346 (up to even).
    floats, _ = _sums([123456789012344.5], [123456789012345.5])
    assert floats == [123456789012344.0, 123456789012346.0]
    assert f"{123456789012345.5:.15g}" == "123456789012346"  # as printf
    # 1 000 000 000 000 005 (1e15 + 5) is past the fast path's decades: the same rule, slowly.
    floats, _ = _sums([1e15 + 5], [1e15 + 15])
    assert floats == [1e15, 1.00000000000002e15]


def test_a_part_just_below_a_power_of_ten_keeps_its_decade() -> None:
    # log10(999999.9999999994) rounds to 6.0, but at 15 digits the part is 999999.999999999:
    # two of them 1999999.999999998 (not 2e6).
    floats, _ = _sums([999999.9999999994, 999999.9999999994], [9.999999999999994e-05])
    assert floats == [1999999.999999998, 9.99999999999999e-05]


def test_parts_far_apart_and_tiny_remainders() -> None:
    # '1' + '2.22044604925031e-16' = 1.000000000000000222044604925031, nearest double 1 + 2**-52
    # (3.1e-29 away; 1.0 is 2.2e-16 away). 7e6 + 1e-9: '7000000' + '1e-09' → 7000000.000000001
    floats, _ = _sums([1.0, 2.220446049250313e-16], [7e6, 1e-9], [-3.0, 3.0])
    assert floats == [1.0000000000000002, 7000000.000000001, 0.0]
    assert math.copysign(1.0, floats[2]) == 1.0  # numeric has no negative zero


def test_not_finite_parts_add_as_numerics_do() -> None:
    floats, texts = _sums(
        [math.inf, 1.0], [math.inf, -math.inf], [math.nan, 1.0], [-math.inf], with_scale=True
    )
    assert floats[0] == math.inf and floats[3] == -math.inf
    assert math.isnan(floats[1]) and math.isnan(floats[2])
    assert texts == ["Infinity", "NaN", "NaN", "-Infinity"]


def test_a_sum_keeps_the_most_decimals_of_its_parts() -> None:
    # '0.5' + '0.25' = 0.75 (scale 2); '1' + '1' = 2 (scale 0); '1.5e-05' has scale 6;
    # '0.5' + '0.5' = 1.0 (scale 1: numeric keeps the parts' scale, not the sum's)
    _, texts = _sums([0.5, 0.25], [1.0, 1.0], [1.5e-05], [0.5, 0.5], [0.0], with_scale=True)
    assert texts == ["0.75", "2", "0.000015", "1.0", "0"]


def test_fifteen_digits_equal_printf() -> None:
    rng = np.random.default_rng(7)
    values = np.concatenate(
        [
            rng.random(20_000) * 10.0 ** rng.integers(-12, 18, 20_000),
            -rng.random(2_000),
            np.arange(1, 2_000) / 7.0,
            np.arange(1, 2_000) * 0.1,
            [1e14, 9.999999999999999e14, 99999999999999.95, 1e-8, 9.9999999999999999e-9, 0.0],
        ]
    )
    # Next to every power of ten, where log10 may round into the next decade: the doubles
    # up to 64 steps below and above it (the first version misrounded 96 of these 3 328).
    edges = []
    for decade in range(-9, 17):
        below = above = 10.0**decade
        for _ in range(64):
            below, above = np.nextafter(below, 0.0), np.nextafter(above, np.inf)
            edges += [below, above]
    values = np.concatenate([values, edges])
    mantissa, exponent, fast = decimal15(values)
    assert fast.mean() > 0.7
    for v, m, e in zip(values[fast], mantissa[fast], exponent[fast], strict=True):
        assert Decimal(int(m)).scaleb(int(e)) == Decimal(f"{v:.15g}"), v
    scales = scale_of(mantissa[fast], exponent[fast])
    for v, s in zip(values[fast], scales, strict=True):
        shown = int(Decimal(f"{v:.15g}").normalize().as_tuple().exponent) if v else 0
        assert int(s) == max(0, -shown), v


@pytest.mark.parametrize("seed", range(3))
def test_fast_sums_equal_the_definition(seed: int) -> None:
    rng = random.Random(seed)
    pool = [0.0, 1e-9, 0.1, 1 / 3, 2 / 3, 123.456789, 7e6, 1.0, 0.5, 2.5e-7, 99999.99999999]
    groups = [
        [rng.choice(pool) * rng.random() * rng.choice([1, -1, 10, 1e3]) for _ in range(n)]
        for n in (rng.randint(1, 6) for _ in range(3_000))
    ]
    floats, texts = _sums(*groups, with_scale=True)
    for group, got, text in zip(groups, floats, texts, strict=True):
        exact = sum((Fraction(Decimal(f"{v:.15g}")) for v in group), Fraction(0))
        assert got == exact.numerator / exact.denominator, group
        assert Fraction(Decimal(text)) == exact


def test_keys_and_selection_of_sums() -> None:
    # Groups: '0.5' + '0.5' = 1.0 (scale 1), '1' = 1 (scale 0), '0.25' + '0.75' = 1.00 (scale
    # 2), 1e16 (slow), '0.5' + '0.5' again, 1e16 again (slow: keyed apart from the other).
    values = np.array([0.5, 0.5, 1.0, 0.25, 0.75, 1e16, 0.5, 0.5, 1e16])
    sums = group_sums(values, np.array([0, 2, 3, 5, 6, 8]), with_scale=True)
    keys = list(zip(*(c.tolist() for c in sums.key_columns()), strict=True))
    assert keys[0] == keys[4]  # the same sum and scale
    assert len({keys[0], keys[1], keys[2], keys[3], keys[5]}) == 5
    kept = sums.select(np.array([False, True, False, True, True, False]))
    assert [kept.text(i) for i in range(3)] == ["1", "10000000000000000", "1.0"]
    with pytest.raises(ValueError, match="scale"):
        group_sums(values, np.array([0, 2]), with_scale=False).key_columns()

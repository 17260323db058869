"""Sums of floats as the rollups' SQL computes them, ``sum(x::numeric)::float8``, on arrays. Pure.

A rollup row's quantity is the exact decimal sum of its parts, each part taken at 15 significant
digits, rounded once to the nearest double: PostgreSQL converts a ``float8`` to ``numeric`` by
printing it with ``%.15g`` (``float8_numeric``), adds numerics exactly, and reads the sum's text
back with a correctly rounded ``strtod``. So ``0.1 + 0.2`` is 0.3 here (0.30000000000000004 in
floats), and the parts' order does not matter.

The calc service computes the hour rows of a recompute's chunk before the chunk is written
(``storage.intervals.hour_rows``); they must be the rows the SQL rollup would have stored, to
the last bit. The fast path here is exact:

- a part ``v`` with ``1e-8 <= |v| < 1e15`` is ``round(|v| × 10**k)`` for ``k = 14 −
  floor(log10 |v|)``; ``10**k`` is a double exactly (``k <= 22``) and the product's rounding
  error is recovered exactly (Dekker's two-product), so the rounding to an integer, half to
  even as ``printf`` does, is decided on the exact product — and so is the decade: ``log10``
  of a double a few ulps below a power of ten rounds up to it, and such a part (whose exact
  product falls below 1e14) takes the slow path;
- a group's parts are brought to its smallest exponent as int64 (at most three decades apart,
  at most :data:`MAX_GROUP` parts) and added exactly;
- a sum ``S × 10**e`` with ``|S| <= 2**53`` and ``|e| <= 22`` is one correctly rounded double
  operation (both operands exact).

Everything else — zero-crossing tiny remainders, huge values, parts far apart in magnitude,
NaN and infinities — takes the slow path: Python's ``%.15g`` (correctly rounded, as glibc's),
:class:`~fractions.Fraction` sums and a correctly rounded conversion. ``tests/domain/
test_decimal_sums.py`` checks both against hand-worked sums and against each other, and
``tests/storage/test_interval_rollup.py`` against PostgreSQL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]

DIGITS = 15  # significant digits of a float8 converted to numeric (DBL_DIG)
#: Most parts of one group on the fast path: MAX_GROUP × 10**18 fits in an int64.
MAX_GROUP = 9
_MAX_SHIFT = 3  # decades between a group's parts on the fast path
_POW10 = np.array([10.0**k for k in range(23)])
_SPLIT = 134_217_729.0  # 2**27 + 1: Dekker's split of a double into two halves
_EXACT_INT = 2.0**53


@dataclass(frozen=True)
class DecimalSums:
    """Per group, the exact sum of its parts at 15 significant digits: ``mantissa × 10**exponent``
    written with ``scale`` digits after the point (as a numeric keeps the most of its parts'),
    where ``fast``; the other groups' sums are in ``slow`` (a Fraction, or a float when not
    finite) with their scale."""

    mantissa: I64
    exponent: I64
    scale: I64
    fast: Mask
    slow: dict[int, tuple[Fraction | float, int]]

    def __len__(self) -> int:
        return len(self.mantissa)

    def floats(self) -> F64:
        """Each sum rounded to the nearest double (``numeric::float8``)."""
        m, e = self.mantissa, self.exponent
        quick = self.fast & (np.abs(m) <= _EXACT_INT) & (np.abs(e) <= 22)
        whole = m.astype(np.float64)
        power = _POW10[np.minimum(np.abs(e), 22)]
        out: F64 = np.where(e >= 0, whole * power, whole / power)
        for big in np.flatnonzero(self.fast & ~quick):
            out[big] = _scaled_float(int(m[big]), int(e[big]))
        for i, (value, _scale) in self.slow.items():
            out[i] = value if isinstance(value, float) else _to_float(value)
        out += 0.0  # a numeric has no negative zero
        return out

    def select(self, keep: Mask) -> DecimalSums:
        """The sums of the groups where ``keep``, in order."""
        if keep.all():
            return self
        index = np.flatnonzero(keep)
        moved = np.cumsum(keep) - 1
        slow = {int(moved[old]): value for old, value in self.slow.items() if keep[old]}
        return DecimalSums(
            self.mantissa[index], self.exponent[index], self.scale[index], self.fast[index], slow
        )

    def key_columns(self) -> tuple[I64, I64, I64]:
        """Three columns equal for two groups exactly when their sums and scales are (the slow
        ones each keyed apart): what to group by to ask once per distinct sum."""
        if len(self) and (self.scale[self.fast] < 0).any():
            raise ValueError("the sums' scale was not computed (group_sums with_scale)")
        rows = np.arange(len(self), dtype=np.int64)
        return (
            np.where(self.fast, self.mantissa, 0),
            np.where(self.fast, self.exponent, rows),
            np.where(self.fast, self.scale, -1),
        )

    def text(self, i: int) -> str:
        """Group ``i``'s sum as a numeric's text: ``scale`` digits after the point."""
        if i in self.slow:
            value, scale = self.slow[i]
            if isinstance(value, float):
                return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
            return _fixed(value, scale)
        scale = int(self.scale[i])
        if scale < 0:
            raise ValueError("the sums' scale was not computed (group_sums with_scale)")
        shift = int(self.exponent[i]) + scale  # >= −(decimals of the sum): a whole division
        units = int(self.mantissa[i]) * 10**shift if shift >= 0 else None
        if units is None:
            units, rest = divmod(int(self.mantissa[i]), 10**-shift)
            if rest:
                raise ValueError(f"sum {i} has more than {scale} decimals")
        return _digits(units, scale)


def decimal15(values: F64) -> tuple[I64, I64, Mask]:
    """Each value at 15 significant digits as ``mantissa × 10**exponent`` (``|mantissa|`` in
    [1e14, 1e15), 0 for zero), and where that was computed on the fast path (elsewhere
    mantissa and exponent are meaningless)."""
    size = np.abs(values)
    with np.errstate(divide="ignore", invalid="ignore"):
        decade = np.floor(np.log10(size))
    fast = np.isfinite(decade) & (decade >= -8) & (decade <= DIGITS - 1)
    k = DIGITS - 1 - np.where(fast, decade, 0).astype(np.int64)
    product, error = _two_product(np.where(fast, size, 1.0), _POW10[np.clip(k, 0, 22)])
    # log10 is not exact next to a power of ten: the decade holds only if the exact product
    # (product + error) lies in [1e14, 1e15); else the slow path.
    low, high = 10.0 ** (DIGITS - 1), 10.0**DIGITS
    fast &= (product > low) | ((product == low) & (error >= 0))
    fast &= (product < high) | ((product == high) & (error < 0))
    floor = np.floor(product)
    frac = product - floor  # exact: the product is below 2**50, its ulp at most 1/8
    tie = (frac == 0.5) & (error == 0)
    up = (frac > 0.5) | ((frac == 0.5) & (error > 0)) | (tie & (np.fmod(floor, 2) == 1))
    rounded = floor + up
    mantissa = np.where(fast, rounded, 0).astype(np.int64)
    exponent = -k
    carry = mantissa == 10**DIGITS  # 9.99…95 rounds up to the next decade
    mantissa = np.where(carry, 10 ** (DIGITS - 1), mantissa)
    exponent = np.where(carry, exponent + 1, exponent)
    mantissa = np.where(values < 0, -mantissa, mantissa)
    zero = values == 0
    mantissa[zero], exponent[zero] = 0, 0
    return mantissa, exponent, fast | zero


def scale_of(mantissa: I64, exponent: I64) -> I64:
    """Digits after the point of each ``mantissa × 10**exponent`` as ``%.15g`` writes it (no
    trailing zeros), which is the scale numeric keeps."""
    m, e = np.abs(mantissa), exponent.copy()
    for step in (8, 4, 2, 1):  # a mantissa below 1e15 has at most 14 trailing zeros
        strip = (m != 0) & (m % 10**step == 0)
        m = np.where(strip, m // 10**step, m)
        e = np.where(strip, e + step, e)
    return np.where(mantissa == 0, 0, np.maximum(0, -e))


def group_sums(values: F64, starts: I64, *, with_scale: bool = False) -> DecimalSums:
    """The exact sums at 15 significant digits of the groups of ``values`` beginning at the
    sorted indices ``starts`` (the first 0; each group runs to the next start). ``with_scale``:
    also the numeric scale of each sum (the most of its parts'), which :meth:`DecimalSums.text`
    needs; else −1."""
    n = len(values)
    if n == 0 or len(starts) == 0:
        empty = np.zeros(len(starts), dtype=np.int64)
        return DecimalSums(empty, empty, empty, np.ones(len(starts), dtype=np.bool_), {})
    sizes = np.diff(np.append(starts, n))
    group = np.repeat(np.arange(len(starts)), sizes)
    mantissa, exponent, fast = decimal15(values)
    nonzero = mantissa != 0
    # A zero part has no decade of its own: it must not pull the group's exponent down.
    low = np.minimum.reduceat(np.where(nonzero, exponent, np.iinfo(np.int64).max), starts)
    low = np.where(low == np.iinfo(np.int64).max, 0, low)
    shift = np.where(nonzero, exponent - low[group], 0)
    row_fast = fast & (shift >= 0) & (shift <= _MAX_SHIFT)
    group_fast = np.logical_and.reduceat(row_fast, starts) & (sizes <= MAX_GROUP)
    scaled = np.where(row_fast, mantissa * (10 ** np.clip(shift, 0, _MAX_SHIFT)), 0)
    total = np.add.reduceat(scaled, starts)
    scale = np.full(len(starts), -1, dtype=np.int64)
    if with_scale:
        scale = np.maximum.reduceat(scale_of(mantissa, exponent), starts)
    slow = {
        int(g): _slow_sum(values[starts[g] : starts[g] + sizes[g]])
        for g in np.flatnonzero(~group_fast)
    }
    return DecimalSums(total, low, scale, group_fast, slow)


def _slow_sum(parts: F64) -> tuple[Fraction | float, int]:
    """One group's sum and scale by the definition: each part's ``%.15g`` text, added exactly;
    not finite as numeric adds NaN and infinities (a NaN, or both infinities, give NaN)."""
    values = [float(v) for v in parts]
    if not all(math.isfinite(v) for v in values):
        signs = {math.copysign(1.0, v) for v in values if math.isinf(v)}
        if any(math.isnan(v) for v in values) or len(signs) == 2:
            return math.nan, 0
        return math.inf * signs.pop(), 0
    decimals = [Decimal(f"{v:.{DIGITS}g}") for v in values]
    exponents = [int(d.normalize().as_tuple().exponent) for d in decimals if d != 0]
    return sum((Fraction(d) for d in decimals), Fraction(0)), max([0, *(-x for x in exponents)])


def _two_product(a: F64, b: F64) -> tuple[F64, F64]:
    """``a × b`` as a double and its exact rounding error (Dekker, no FMA)."""
    product = a * b
    c = _SPLIT * a
    a_hi = c - (c - a)
    a_lo = a - a_hi
    c = _SPLIT * b
    b_hi = c - (c - b)
    b_lo = b - b_hi
    error = ((a_hi * b_hi - product) + a_hi * b_lo + a_lo * b_hi) + a_lo * b_lo
    return product, error


def _to_float(value: Fraction) -> float:
    """The nearest double (Python's int division is correctly rounded)."""
    return value.numerator / value.denominator


def _scaled_float(mantissa: int, exponent: int) -> float:
    """The nearest double to ``mantissa × 10**exponent`` (Python ints: exact, then one
    correctly rounded conversion or division)."""
    return float(mantissa * 10**exponent) if exponent >= 0 else mantissa / 10**-exponent


def _fixed(value: Fraction, scale: int) -> str:
    """An exact decimal with ``scale`` digits after the point (its denominator divides
    10**scale)."""
    units = value * 10**scale
    if units.denominator != 1:
        raise ValueError(f"{value} has more than {scale} decimals")
    return _digits(units.numerator, scale)


def _digits(units: int, scale: int) -> str:
    """``units × 10**−scale`` as numeric's text: ``scale`` digits after the point."""
    digits = str(abs(units)).rjust(scale + 1, "0")
    sign = "-" if units < 0 else ""
    return f"{sign}{digits[:-scale]}.{digits[-scale:]}" if scale else f"{sign}{digits}"

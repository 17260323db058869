"""Splits whose parts add up exactly: a total shared in proportion to weights, or float parts
nudged so that ``math.fsum`` of them equals their total to the last bit. Pure.

Every allocation in the inventory (a site's grid import over its meters' nodes, a node's
emissions over its products and organisations) goes through here, so that the parts of a
figure always sum to the whole that was signed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction


def allocate_exact(total: float, weights: Sequence[float]) -> tuple[float, ...]:
    """``total`` split in proportion to ``weights``; ``math.fsum`` of the parts == ``total``.

    Shares are computed from exact fractions; see :func:`close_exactly` for the last part.
    """
    if not weights:
        raise ValueError("no weights to allocate by")
    if any(w < 0 or not math.isfinite(w) for w in weights):
        raise ValueError(f"weights must be finite and >= 0: {list(weights)}")
    exact_weights = [Fraction(w) for w in weights]
    weight_sum = sum(exact_weights, Fraction(0))
    if weight_sum == 0:
        raise ValueError("all weights are zero")
    exact_total = Fraction(total)
    return tuple(close_exactly([float(exact_total * w / weight_sum) for w in exact_weights], total))


def close_exactly(parts: Sequence[float], total: float) -> list[float]:
    """``parts`` adjusted so that their exact sum is ``total`` (hence ``math.fsum`` == total).

    All parts but the last are rounded to the grid of ``total``'s last bit (a change of at most
    half an ulp of ``total``); the last part is then ``total`` minus the others, which on that
    grid is exact. Used only to absorb float rounding: a gap larger than 1e-9 relative between
    ``fsum(parts)`` and ``total`` raises ``ValueError``.
    """
    out = list(parts)
    if not out:
        return out
    if abs(math.fsum(out) - total) > 1e-9 * max(1.0, abs(total)):
        raise ValueError(f"parts add up to {math.fsum(out)!r}, not {total!r}")
    grid = None if total == 0 else Fraction(math.ulp(total))
    others = [Fraction(p) if grid is None else round(Fraction(p) / grid) * grid for p in out[:-1]]
    out[:-1] = [float(p) for p in others]
    out[-1] = float(Fraction(total) - sum(others, Fraction(0)))
    return out

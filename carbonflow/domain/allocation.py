"""Allocation of a node's emissions (or energy) to its products (ACCOUNTING.md §5). Pure.

Order of ISO 14067 / GB/T 24067-2024 (as recommended in REFERENCE.md §7):

1. **sub-metered** process data: quantity measured for a product is assigned to it directly;
2. the remainder by **physical** keys (mass, energy content …) when any are given;
3. otherwise by **economic** keys (value of output).

The basis of every share is recorded. Allocated totals equal the unallocated total exactly under
``math.fsum``: shares are computed in exact rational arithmetic, rounded to floats, and the last
product takes the exact remainder (:func:`allocate_exact`, :func:`close_exactly`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction

from carbonflow.domain.indicators import Ratio, ratio

# A remainder within this fraction of the node total is float rounding of sub-metered sums.
_NEGLIGIBLE = 1e-12


class AllocationBasis(StrEnum):
    SUBMETERED = "submetered"
    PHYSICAL = "physical"
    ECONOMIC = "economic"


@dataclass(frozen=True, slots=True)
class AllocationKey:
    """A product's allocation key, e.g. ``AllocationKey("coal", 1200.0, "t", "mass_t")``."""

    product_id: str
    value: float
    unit: str
    quantity: str  # what the key measures: mass_t, energy_content_gj, revenue_cny …


@dataclass(frozen=True, slots=True)
class ProductShare:
    product_id: str
    submetered: float  # assigned from sub-metering [node unit]
    keyed: float  # share of the remainder by key [node unit]
    allocated: float  # submetered + keyed (the last product absorbs float rounding residue)
    basis: tuple[AllocationBasis, ...]  # bases that contributed
    key: AllocationKey | None
    key_fraction: float  # fraction of the remainder (0 when no key)


@dataclass(frozen=True, slots=True)
class NodeAllocation:
    node_id: str
    total: float
    unit: str  # tCO2e, tce, kWh …
    submetered_total: float
    remainder: float  # total − submetered, allocated by keys
    remainder_basis: AllocationBasis | None  # None when nothing remained
    shares: tuple[ProductShare, ...]

    @property
    def allocated_total(self) -> float:
        return math.fsum(s.allocated for s in self.shares)


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


def allocate_node(
    node_id: str,
    total: float,
    unit: str,
    *,
    submetered: Mapping[str, float] | None = None,
    physical: Sequence[AllocationKey] = (),
    economic: Sequence[AllocationKey] = (),
) -> NodeAllocation:
    """Allocate a node's ``total`` [unit] to its products (module doc).

    ``submetered`` maps product → quantity measured for it (must not exceed ``total``). The
    remainder goes by ``physical`` keys if given, else by ``economic`` keys; a remainder with no
    keys raises ``ValueError``. Products appear in the order: keyed products, then sub-metered
    ones without a key.
    """
    metered = dict(submetered or {})
    if any(v < 0 or not math.isfinite(v) for v in metered.values()):
        raise ValueError(f"sub-metered quantities must be finite and >= 0: {metered}")
    metered_total = math.fsum(metered.values())
    tolerance = _NEGLIGIBLE * max(1.0, abs(total))
    if metered_total > total + tolerance:
        raise ValueError(
            f"node {node_id}: sub-metered {metered_total:g} {unit} exceed the node total "
            f"{total:g} {unit}"
        )
    remainder = total - metered_total
    if abs(remainder) <= tolerance and metered and not (physical or economic):
        remainder = 0.0  # sub-metering covers the node; the rounding residue is re-balanced below
    keys: Sequence[AllocationKey] = physical or economic
    basis = AllocationBasis.PHYSICAL if physical else AllocationBasis.ECONOMIC
    if remainder != 0 and not keys:
        raise ValueError(
            f"node {node_id}: {remainder:g} {unit} not sub-metered and no physical or "
            "economic allocation keys given"
        )
    if len({k.product_id for k in keys}) != len(keys):
        raise ValueError(f"node {node_id}: a product has two {basis.value} keys")
    if len({k.unit for k in keys}) > 1:
        raise ValueError(f"node {node_id}: {basis.value} keys in different units")
    if remainder != 0:
        keyed = allocate_exact(remainder, [k.value for k in keys])
    else:
        keyed = tuple(0.0 for _ in keys)
    key_sum = math.fsum(k.value for k in keys)
    shares: list[ProductShare] = []
    for key, part in zip(keys, keyed, strict=True):
        own = metered.pop(key.product_id, 0.0)
        bases = tuple(
            b
            for b, contributed in (
                (AllocationBasis.SUBMETERED, own != 0),
                (basis, remainder != 0 or own == 0),
            )
            if contributed
        )
        fraction = key.value / key_sum if key_sum else 0.0
        shares.append(ProductShare(key.product_id, own, part, own + part, bases, key, fraction))
    for product_id, own in metered.items():
        shares.append(
            ProductShare(product_id, own, 0.0, own, (AllocationBasis.SUBMETERED,), None, 0.0)
        )
    # Adding sub-metered and keyed parts rounds; re-balance so the allocated floats add up to total.
    allocated = close_exactly([s.allocated for s in shares], total)
    shares = [
        ProductShare(s.product_id, s.submetered, s.keyed, a, s.basis, s.key, s.key_fraction)
        for s, a in zip(shares, allocated, strict=True)
    ]
    return NodeAllocation(
        node_id=node_id,
        total=total,
        unit=unit,
        submetered_total=metered_total,
        remainder=remainder,
        remainder_basis=basis if remainder != 0 else None,
        shares=tuple(shares),
    )


def product_totals(allocations: Iterable[NodeAllocation]) -> dict[str, float]:
    """Allocated quantity per product summed over nodes (math.fsum)."""
    parts: dict[str, list[float]] = {}
    for allocation in allocations:
        for share in allocation.shares:
            parts.setdefault(share.product_id, []).append(share.allocated)
    return {product: math.fsum(values) for product, values in parts.items()}


def product_intensity(allocated_tco2e: float, product_quantity: float, product_unit: str) -> Ratio:
    """Allocated emissions [tCO2e] ÷ product output [product_unit] → [tCO2e/<product_unit>].

    Undefined (not an error) when nothing was produced.
    """
    return ratio(
        allocated_tco2e, product_quantity, f"tCO2e/{product_unit}", what="product intensity"
    )

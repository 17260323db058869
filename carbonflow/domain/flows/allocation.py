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

from carbonflow.domain.exact import allocate_exact, close_exactly
from carbonflow.domain.units import Ratio, ratio

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


# --- product footprints along product links (cradle-to-gate within the site) ---------------------


@dataclass(frozen=True, slots=True)
class ProductTransfer:
    """Product ``upstream`` flowing into the node that makes ``downstream`` (e.g. raw coal into
    the preparation plant making washed coal).

    ``quantity`` is how much of the upstream product flowed on in the period [upstream unit]
    (None: unmetered, taken as all of its output); ``weights`` share what flows on among the
    downstream products (their output; all zero → equal shares).
    """

    upstream: str
    downstream: tuple[str, ...]
    quantity: float | None
    weights: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class ProductFootprint:
    """One product's footprint, component by component (tCO2e, tce …, in the caller's order).

    ``footprint = own + embodied`` is cradle-to-gate within the site; ``passed_on`` went into
    downstream products; ``final = footprint − passed_on`` is what leaves the site with this
    product. Over all products ``Σ final = Σ own`` (nothing counted twice, nothing lost).
    """

    product_id: str
    own: tuple[float, ...]  # allocated at the product's own node (gate-to-gate)
    embodied: tuple[float, ...]  # received from upstream products
    footprint: tuple[float, ...]
    passed_on: tuple[float, ...]
    final: tuple[float, ...]
    passed_fraction: float  # of the footprint passed on (0–1)


@dataclass(frozen=True, slots=True)
class TransferShare:
    """What one transfer carried to one downstream product."""

    upstream: str
    downstream: str
    carried: tuple[float, ...]


def _vadd(a: Sequence[float], b: Sequence[float]) -> tuple[float, ...]:
    return tuple(math.fsum((x, y)) for x, y in zip(a, b, strict=True))


def pass_along(  # noqa: C901, PLR0912, PLR0915 — one pass over the product links in order; split after a property test
    own: Mapping[str, Sequence[float]],
    output: Mapping[str, float],
    transfers: Sequence[ProductTransfer],
) -> tuple[dict[str, ProductFootprint], tuple[TransferShare, ...], tuple[str, ...]]:
    """Carry each product's footprint into the products made from it (ISO 14067 cradle-to-gate
    within the site boundary). Pure.

    ``own`` maps every product to what its node allocated to it (a vector of components),
    ``output`` to its output in the period [its unit]. Products are processed upstream first:
    a product's footprint is its own share plus what it received; the fraction
    ``quantity ÷ output`` of it flows over each transfer (fractions above 1 in total — more fed
    on than produced, from stock — are scaled to 1; with no output, whatever was fed on takes
    all of it) and is split among the downstream products by their weights; the rest is the
    product's final total. Splits are exact (:func:`allocate_exact`). A transfer closing a
    cycle of products carries nothing (noted).
    """
    notes: list[str] = []
    width = len(next(iter(own.values()))) if own else 0
    zero = (0.0,) * width
    for t in transfers:
        if len(t.weights) != len(t.downstream) or not t.downstream:
            raise ValueError(f"transfer from {t.upstream!r}: one weight per downstream product")
        for pid in (t.upstream, *t.downstream):
            if pid not in own:
                raise ValueError(f"transfer names product {pid!r} without an own footprint")
    out_of: dict[str, list[ProductTransfer]] = {}
    indegree = {pid: 0 for pid in own}
    for t in transfers:
        out_of.setdefault(t.upstream, []).append(t)
        for d in t.downstream:
            indegree[d] += 1
    order: list[str] = []
    ready = [pid for pid in own if indegree[pid] == 0]
    while ready:
        pid = ready.pop(0)
        order.append(pid)
        for t in out_of.get(pid, []):
            for d in t.downstream:
                indegree[d] -= 1
                if indegree[d] == 0:
                    ready.append(d)
    cyclic = [pid for pid in own if pid not in order]
    if cyclic:
        notes.append(
            f"products {', '.join(sorted(cyclic))} are made from each other: their links carry "
            "no footprint"
        )
        order.extend(cyclic)
    embodied: dict[str, tuple[float, ...]] = {pid: zero for pid in own}
    result: dict[str, ProductFootprint] = {}
    shares: list[TransferShare] = []
    for pid in order:
        footprint = _vadd(own[pid], embodied[pid])
        outs = [] if pid in cyclic else out_of.get(pid, [])
        produced = output.get(pid, 0.0)
        fed = [produced if t.quantity is None else max(0.0, t.quantity) for t in outs]
        if produced > 0:
            fractions = [q / produced for q in fed]
        elif any(q > 0 for q in fed):
            total_fed = math.fsum(fed)
            fractions = [q / total_fed for q in fed]
            notes.append(f"{pid}: nothing produced, but fed on: its whole footprint flows on")
        else:
            fractions = [0.0 for _ in fed]
        passed = math.fsum(fractions)
        if passed > 1.0:
            notes.append(
                f"{pid}: {passed:.4g} × its output was fed on (stock drawn): scaled to all of it"
            )
            fractions = [f / passed for f in fractions]
            passed = 1.0
        keep = max(0.0, 1.0 - math.fsum(fractions))
        if not fractions or not any(f > 0 for f in fractions):
            result[pid] = ProductFootprint(
                pid, tuple(own[pid]), embodied[pid], footprint, zero, footprint, 0.0
            )
            continue
        weights = [*fractions, keep]
        parts = [allocate_exact(footprint[c], weights) for c in range(width)]
        passed_vectors: list[tuple[float, ...]] = []
        for k, t in enumerate(outs):
            carried = tuple(parts[c][k] for c in range(width))
            passed_vectors.append(carried)
            split_weights = (
                list(t.weights) if any(w > 0 for w in t.weights) else [1.0] * len(t.weights)
            )
            split = [allocate_exact(carried[c], split_weights) for c in range(width)]
            for j, d in enumerate(t.downstream):
                piece = tuple(split[c][j] for c in range(width))
                embodied[d] = _vadd(embodied[d], piece)
                shares.append(TransferShare(pid, d, piece))
        final = tuple(parts[c][len(outs)] for c in range(width))
        passed_on = tuple(math.fsum(v[c] for v in passed_vectors) for c in range(width))
        result[pid] = ProductFootprint(
            pid, tuple(own[pid]), embodied[pid], footprint, passed_on, final, min(1.0, passed)
        )
    return result, tuple(shares), tuple(notes)

"""The energy flow – carbon flow – product flow graph of one site and period. Pure.

Computed on demand (by the API and for enterprise budgets) from what is stored per period: the
site's carbon rows summed over the period (inventory by source) and its devices' quantities
summed over the period. It is not stored: it is a view of stored totals, cheap to build (one
pass over the graph), and storing it per 15 min would multiply rows by the number of edges
without adding information.

**Columns of the Sankey.** Sources → nodes → products:

- *sources* are the site document's ``supply`` nodes plus one virtual source per emission
  category that happens inside the site without a supply link (``emission:fugitive`` → the
  drainage station, ``emission:fuel_combustion`` → the gas engines burning drained methane,
  ``emission:flaring`` → the flare …);
- *links* are the document's edges: quantity from their meters in the edge's direction
  (``quantity``, ``unit``, metered ``energy_tce``) and the attributed energy and carbon;
- *products* are virtual ``product:<id>`` nodes, plus ``unallocated:<org>`` for what an
  organisation without products retains.

**Attribution.** Each inventory row is *injected* at its node; a supply link carries the rows
of the sources metered on it (grid meters: purchased electricity; green line: direct supply;
fuel meters: the fuel's combustion). A node passes everything it receives on over its outgoing
energy links in proportion to their metered tce (exactly: :func:`allocate_exact`), except over
links into ``sink`` nodes (exports carry no carbon: they were netted), methane links (their
emissions enter where they happen, through the virtual sources) and back edges of cycles (storage
returning energy to a substation). A node without such outgoing links retains what it received:
its products take it (physical keys: output quantity), else the organisation's primary products
(those made from no other product of the site), else ``unallocated``.

**Product links.** A document edge carrying a product (``raw_coal``, ``washed_coal``, ``coke``,
``product``) from a node making a product to a node making products passes the upstream
product's footprint on (:func:`carbonflow.domain.flows.allocation.pass_along`): the fraction fed on
(the edge's meter ÷ the upstream output; unmetered = all of it) goes to the products of the
receiving node by their output, so product intensities are cradle-to-gate within the site.
Each product reports ``allocated`` (its node's share, = its allocation links), ``embodied``,
``footprint``, ``passed_on`` and ``final``; the finals (plus ``unallocated``) add up to the
period totals, the footprints do not (what flows on is in two of them). The transfers are
``embodied_links`` (``product:<upstream>`` → ``product:<downstream>``), outside ``links`` so
that sums over ``links`` stay as they were.

Six quantities are attributed the same way: energy and zero-carbon energy [tce], CO2e location-
and market-based [tCO2e], CO2 location- and market-based [t]. Sums are exact: the links out of
the source column and the links into the product column each add up (``math.fsum``) to the
period's inventory totals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from carbonflow.domain import units
from carbonflow.domain.exact import close_exactly
from carbonflow.domain.factors import FactorNotFound
from carbonflow.domain.flows.allocation import ProductTransfer, TransferShare, pass_along
from carbonflow.domain.inventory.energy import to_tce
from carbonflow.domain.inventory.lines import FIGURES, Figures, InventoryLine
from carbonflow.domain.inventory.site_factors import SiteFactors
from carbonflow.domain.site.model import NodeKind, Role
from carbonflow.domain.site.plan import (
    DevicePlan,
    SitePlan,
    edge_metric,
    flow_metric,
)
from carbonflow.domain.units import Ratio, ratio

COMPONENTS = FIGURES  # the six attributed quantities, in the order of Figures
_PRODUCT_CARRIERS = frozenset({"product", "raw_coal", "washed_coal", "coke"})
_METHANE = "coal_mine_methane"
# Which inventory categories a supply link carries, by the role of its meters.
_SUPPLY_CATEGORIES: dict[str, set[tuple[str, str | None]]] = {
    Role.GRID_IMPORT.value: {("purchased_electricity", None), ("green_electricity", "market")},
    Role.GRID_EXPORT.value: {("purchased_electricity", None), ("green_electricity", "market")},
    Role.GREEN_IMPORT.value: {("green_electricity", "both")},
    Role.FUEL_SUPPLY.value: {("fuel_combustion", None)},
    Role.HEAT_IMPORT.value: {("purchased_heat", None)},
}
SITE_NODE = "site"
# An edge of the document with what its meters measured: source, target, carrier, quantity,
# unit, energy [tce], meters.
_Metered = tuple[str, str, str, float | None, str | None, float, list[DevicePlan]]


ZERO = Figures()


@dataclass(frozen=True, slots=True)
class FlowLink:
    source: str
    target: str
    carrier: str
    quantity: float | None  # metered, in ``unit``; None when the edge has no meter
    unit: str | None
    energy_tce: float  # metered energy of the link [tce] (0 for products and unmetered)
    attributed: Figures  # COMPONENTS carried by the link
    kind: str  # supply | energy | methane | sink | product | emission | allocation | back_edge

    def component(self, name: str) -> float:
        return self.attributed.component(name)


@dataclass(frozen=True, slots=True)
class FlowNode:
    node_id: str
    kind: str
    org_id: str | None
    injected: Figures  # emissions happening at the node (through virtual sources)
    received: Figures  # over incoming links
    retained: Figures  # kept (end use): allocated to products or unallocated


@dataclass(frozen=True, slots=True)
class ProductFlow:
    product_id: str
    node_id: str
    org_id: str | None
    output: float
    unit: str
    allocated: Figures  # allocated at the product's own node (gate-to-gate), = allocation links
    basis: str  # how the carbon was allocated: product node / org primary (physical key …)
    # tCO2e per unit, cradle-to-gate within the site: footprint ÷ output (= allocated ÷ output
    # for a product made from no other product of the site)
    intensity_location: Ratio
    intensity_market: Ratio
    # Along product links (allocation.pass_along): what came in with the products it is made
    # from, the cradle-to-gate footprint (allocated + embodied), what went on into products
    # made from it, and what leaves the site with it (final = footprint − passed_on; the finals
    # of all products and the unallocated links add up to the period totals).
    embodied: Figures = ZERO
    footprint: Figures = ZERO
    passed_on: Figures = ZERO
    final: Figures = ZERO
    made_from: tuple[str, ...] = ()  # upstream product ids
    gate_intensity_location: Ratio | None = None  # allocated ÷ output (the node's own share)
    gate_intensity_market: Ratio | None = None


@dataclass(frozen=True)
class FlowGraph:
    site_id: str
    nodes: tuple[FlowNode, ...]
    links: tuple[FlowLink, ...]
    products: tuple[ProductFlow, ...]
    totals: Figures  # inventory totals of the period
    orgs: Mapping[str, Figures]  # attributed to each organisation ("" = none)
    notes: tuple[str, ...] = field(default=())
    # Product links carrying embodied footprints, ``product:<upstream>`` → ``product:<made from
    # it>`` (kind ``embodied``). Kept apart from ``links``: they move carbon inside the product
    # column and would count it twice in a sum over ``links``.
    embodied_links: tuple[FlowLink, ...] = field(default=())

    def source_links(self) -> tuple[FlowLink, ...]:
        return tuple(link for link in self.links if link.kind in ("supply", "emission"))

    def final_links(self) -> tuple[FlowLink, ...]:
        return tuple(link for link in self.links if link.kind == "allocation")


def _link_tce(
    carrier: str, quantity: float, unit: str, factors: SiteFactors, notes: list[str]
) -> float:
    if carrier in _PRODUCT_CARRIERS or quantity == 0:
        return 0.0
    try:
        dim = units.lookup(unit).dimension
        if carrier == _METHANE:
            coefficient = factors.tce(carrier, pure_ch4=True)
        elif carrier in ("heat", "steam", "cooling"):
            coefficient = factors.tce("heat")
        else:
            coefficient = factors.tce(carrier)
        if dim is units.Dimension.LIQUID_VOLUME:
            kg = units.convert(quantity, unit, units.lookup("L")) * factors.density(carrier).value
            return to_tce(kg, "kg", coefficient).energy_tce
        return to_tce(quantity, unit, coefficient).energy_tce
    except (FactorNotFound, units.UnitError, ValueError) as exc:
        notes.append(f"{carrier} link energy not converted to tce: {exc}")
        return 0.0


def build_flows(
    plan: SitePlan,
    inventory: Sequence[InventoryLine],
    device_quantities: Mapping[tuple[int, int], float],
    factors: SiteFactors,
) -> FlowGraph:
    """The flow graph of one period (module doc)."""
    notes: list[str] = []
    totals = Figures.sum(r.figures() for r in inventory)
    nodes = _nodes(plan)
    injections = _injections(inventory, nodes)
    metered = _metered_edges(plan, nodes, device_quantities, factors, notes)
    supply_vectors, claimed = _supply(metered, nodes, injections)
    node_injected, emission_links = _emissions(injections, claimed)
    spread = _propagate(metered, nodes, supply_vectors, node_injected)

    links = [*_edge_links(metered, nodes, spread), *emission_links]
    products, allocation_links, org_totals = _allocate(
        plan, spread.retained, nodes.kind, nodes.org, device_quantities, notes
    )
    products, embodied_links = _pass_along(plan, products, metered, notes)
    links.extend(_closed_on(allocation_links, totals))
    flow_nodes = tuple(
        FlowNode(
            node_id=n,
            kind=nodes.kind.get(n, "site"),
            org_id=nodes.org.get(n),
            injected=node_injected.get(n, ZERO),
            received=Figures.sum(spread.received.get(n, [])),
            retained=spread.retained.get(n, ZERO),
        )
        for n in [*nodes.kind, SITE_NODE]
        if n in nodes.kind or n in node_injected or n in spread.retained
    )
    return FlowGraph(
        site_id=plan.site_id,
        nodes=flow_nodes,
        links=tuple(links),
        products=products,
        totals=totals,
        orgs=org_totals,
        notes=tuple(notes),
        embodied_links=embodied_links,
    )


@dataclass(frozen=True, slots=True)
class _Nodes:
    """The document's nodes: kind and organisation by id, in document order."""

    kind: Mapping[str, str]
    org: Mapping[str, str | None]

    def is_kind(self, node: str, kind: NodeKind) -> bool:
        return self.kind.get(node) == kind.value


def _nodes(plan: SitePlan) -> _Nodes:
    doc = plan.document
    nodes = list(doc.nodes) if doc is not None else []
    return _Nodes({n.id: n.kind.value for n in nodes}, {n.id: n.org for n in nodes})


_Injections = dict[str, list[tuple[InventoryLine, Figures]]]


def _injections(inventory: Sequence[InventoryLine], nodes: _Nodes) -> _Injections:
    """The lines by the node they are booked at (``site`` for a node not in the document)."""
    injections: _Injections = {}
    for row in inventory:
        node = row.node_id if row.node_id in nodes.kind else SITE_NODE
        injections.setdefault(node, []).append((row, row.figures()))
    return injections


def _metered_edges(
    plan: SitePlan,
    nodes: _Nodes,
    device_quantities: Mapping[tuple[int, int], float],
    factors: SiteFactors,
    notes: list[str],
) -> list[_Metered]:
    """The document's edges with what their meters measured and its energy [tce]."""
    doc = plan.document
    devices = {d.device_id: d for d in plan.devices}
    metered: list[_Metered] = []
    for e in list(doc.edges) if doc is not None else []:
        sink = nodes.is_kind(e.target, NodeKind.SINK)
        meters = [devices[m] for m in e.meters if m in devices]
        try:
            quantity, unit = _edge_quantity(e.source, e.target, sink, meters, device_quantities)
        except units.UnitError as exc:
            # A bad edge never stalls a site: this one counts as unmetered, the rest computes.
            notes.append(f"{QUARANTINED} {e.source} → {e.target} ({e.carrier.value}): {exc}")
            quantity, unit = None, None
        tce = 0.0 if quantity is None or unit is None else _link_tce(
            e.carrier.value, quantity, unit, factors, notes
        )  # fmt: skip
        metered.append((e.source, e.target, e.carrier.value, quantity, unit, tce, meters))
    return metered


# How a note about an edge whose meters disagree in units begins (the calc records it as a
# data event; a site file with such an edge is refused at load, so only stored data gets here).
QUARANTINED = "edge quarantined:"


def _edge_quantity(
    source: str,
    target: str,
    sink: bool,
    meters: Sequence[DevicePlan],
    device_quantities: Mapping[tuple[int, int], float],
) -> tuple[float | None, str | None]:
    """What an edge's meters measured, in the unit of the first (None without a metric);
    :class:`~carbonflow.domain.units.UnitError` when they measure different dimensions."""
    quantity: float | None = None
    unit: str | None = None
    for d in meters:
        metric = edge_metric(d, target, sink)
        if metric is None:
            continue
        value = device_quantities.get((d.device_pk, metric.metric_id), 0.0)
        if unit is None:
            quantity, unit = value, metric.unit
        else:
            quantity = (quantity or 0.0) + units.convert(value, metric.unit, units.lookup(unit))
    return quantity, unit


def _supply(
    metered: Sequence[_Metered], nodes: _Nodes, injections: _Injections
) -> tuple[dict[int, Figures], set[int]]:
    """Supply links: the lines of their meters' sources at the target node, split over the
    links by their metered tce (or quantity); and the ids of the lines they claimed."""
    supply_vectors: dict[int, Figures] = {}
    claimed: set[int] = set()
    by_target: dict[tuple[str, str, str], list[int]] = {}
    for i, (source, target, carrier, _q, _u, _t, meters) in enumerate(metered):
        if nodes.is_kind(source, NodeKind.SUPPLY):
            wanted = {c for d in meters for c in _SUPPLY_CATEGORIES.get(d.role, set())}
            for category, basis in wanted:
                by_target.setdefault((target, carrier, category + "|" + str(basis)), []).append(i)
    for (target, carrier, cat_basis), link_ids in by_target.items():
        category, basis = cat_basis.split("|")
        rows = [
            (k, vec)
            for k, (row, vec) in enumerate(injections.get(target, []))
            if row.carrier == carrier and row.category == category and basis in ("None", row.basis)
        ]
        if not rows:
            continue
        vector = Figures.sum(v for _, v in rows)
        claimed.update(id(injections[target][k][0]) for k, _ in rows)
        weights = [metered[i][5] or (metered[i][3] or 0.0) for i in link_ids]
        if not any(w > 0 for w in weights):
            weights = [1.0] * len(link_ids)
        for i, part in zip(link_ids, vector.split(weights), strict=True):
            supply_vectors[i] = supply_vectors.get(i, ZERO) + part
    return supply_vectors, claimed


def _emissions(
    injections: _Injections, claimed: set[int]
) -> tuple[dict[str, Figures], list[FlowLink]]:
    """Emission links (virtual sources) for the lines no supply link claimed, and what each
    node has injected through them."""
    node_injected: dict[str, Figures] = {}
    emission_links: list[FlowLink] = []
    for node, items in injections.items():
        free = [(row, vec) for row, vec in items if id(row) not in claimed]
        if not free:
            continue
        by_cat: dict[tuple[str, str], list[Figures]] = {}
        for row, vec in free:
            by_cat.setdefault((row.category, row.carrier), []).append(vec)
        for (category, carrier), vecs in sorted(by_cat.items()):
            v = Figures.sum(vecs)
            emission_links.append(
                FlowLink(f"emission:{category}", node, carrier, None, None, 0.0, v, "emission")
            )
        node_injected[node] = Figures.sum(vec for _, vec in free)
    return node_injected, emission_links


@dataclass(frozen=True, slots=True)
class _Spread:
    """What the energy links carried, what each node received and what it retained."""

    back: set[int]
    carried: dict[int, Figures]
    received: dict[str, list[Figures]]
    retained: dict[str, Figures]


def _propagates(link: _Metered, nodes: _Nodes) -> bool:
    """Energy links not into sinks, not methane, not products, not from supply, with energy."""
    source, target, carrier, _quantity, _u, tce, _m = link
    return (
        not nodes.is_kind(target, NodeKind.SINK)
        and carrier != _METHANE
        and carrier not in _PRODUCT_CARRIERS
        and not nodes.is_kind(source, NodeKind.SUPPLY)
        and tce > 0
    )


def _propagate(
    metered: Sequence[_Metered],
    nodes: _Nodes,
    supply_vectors: Mapping[int, Figures],
    node_injected: Mapping[str, Figures],
) -> _Spread:
    """Each node passes what it receives and injects on over its outgoing energy links (not
    back edges) in proportion to their tce, in topological order; a node without such links
    retains it."""
    out_edges: dict[str, list[int]] = {}
    for i, link in enumerate(metered):
        if _propagates(link, nodes):
            out_edges.setdefault(link[0], []).append(i)
    back = _back_edges(list(nodes.kind), out_edges, metered)
    for source, edges in list(out_edges.items()):
        out_edges[source] = [i for i in edges if i not in back]
    order = _topological(list(nodes.kind), out_edges, metered)

    received: dict[str, list[Figures]] = {}
    carried: dict[int, Figures] = dict(supply_vectors)
    for i, vec in supply_vectors.items():
        received.setdefault(metered[i][1], []).append(vec)
    retained: dict[str, Figures] = {}
    for node in [*order, SITE_NODE]:
        burden = Figures.sum([*received.get(node, []), node_injected.get(node, ZERO)])
        outs = out_edges.get(node, [])
        if outs and not burden.is_zero():
            weights = [metered[i][5] for i in outs]
            for i, part in zip(outs, burden.split(weights), strict=True):
                carried[i] = part
                received.setdefault(metered[i][1], []).append(part)
        elif outs:
            for i in outs:
                carried[i] = ZERO
        else:
            retained[node] = burden
    return _Spread(back, carried, received, retained)


def _edge_kind(i: int, link: _Metered, nodes: _Nodes, back: set[int]) -> str:
    source, target, carrier, *_rest = link
    if nodes.is_kind(source, NodeKind.SUPPLY):
        return "supply"
    if nodes.is_kind(target, NodeKind.SINK):
        return "sink"
    if carrier == _METHANE:
        return "methane"
    if carrier in _PRODUCT_CARRIERS:
        return "product"
    return "back_edge" if i in back else "energy"


def _edge_links(metered: Sequence[_Metered], nodes: _Nodes, spread: _Spread) -> list[FlowLink]:
    """The document's edges as links, with what they carried."""
    links = []
    for i, link in enumerate(metered):
        source, target, carrier, quantity, unit, tce, _m = link
        kind = _edge_kind(i, link, nodes, spread.back)
        carried = spread.carried.get(i, ZERO)
        links.append(FlowLink(source, target, carrier, quantity, unit, tce, carried, kind))
    return links


def _closed_on(allocation_links: Sequence[FlowLink], totals: Figures) -> list[FlowLink]:
    """The product column closed exactly on the inventory totals (absorbs float rounding
    only)."""
    if not allocation_links:
        return []
    columns = [
        close_exactly([link.attributed.as_tuple()[c] for link in allocation_links], total)
        for c, total in enumerate(totals.as_tuple())
    ]
    return [
        FlowLink(
            link.source, link.target, link.carrier, None, None, 0.0,
            Figures(*(columns[c][k] for c in range(6))),
            "allocation",
        )
        for k, link in enumerate(allocation_links)
    ]  # fmt: skip


def _back_edges(
    nodes: Sequence[str],
    out_edges: Mapping[str, Sequence[int]],
    metered: Sequence[_Metered],
) -> set[int]:
    """Edges closing a cycle in a depth-first walk from the nodes in document order."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    back: set[int] = set()
    for root in nodes:
        if state.get(root):
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        state[root] = 1
        while stack:
            node, k = stack[-1]
            edges = out_edges.get(node, [])
            if k >= len(edges):
                state[node] = 2
                stack.pop()
                continue
            stack[-1] = (node, k + 1)
            i = edges[k]
            target = metered[i][1]
            if state.get(target) == 1:
                back.add(i)
            elif not state.get(target):
                state[target] = 1
                stack.append((target, 0))
    return back


def _topological(
    nodes: Sequence[str],
    out_edges: Mapping[str, Sequence[int]],
    metered: Sequence[_Metered],
) -> list[str]:
    indegree = {n: 0 for n in nodes}
    for edges in out_edges.values():
        for i in edges:
            indegree[metered[i][1]] = indegree.get(metered[i][1], 0) + 1
    ready = [n for n in nodes if indegree.get(n, 0) == 0]
    order: list[str] = []
    while ready:
        node = ready.pop(0)
        order.append(node)
        for i in out_edges.get(node, []):
            target = metered[i][1]
            indegree[target] -= 1
            if indegree[target] == 0:
                ready.append(target)
    return order


def _product_output(
    plan: SitePlan, device_quantities: Mapping[tuple[int, int], float], notes: list[str]
) -> dict[str, float]:
    """Each product's output in the period [its unit], from its production meters."""
    doc = plan.document
    products = list(doc.products) if doc is not None else []
    output: dict[str, float] = {p.id: 0.0 for p in products}
    for d in plan.devices:
        if d.role != Role.PRODUCTION or d.product_id not in output:
            continue
        metric = flow_metric(d)
        if metric is None:
            continue
        value = device_quantities.get((d.device_pk, metric.metric_id), 0.0)
        unit = next(p.unit for p in products if p.id == d.product_id)
        try:
            output[d.product_id] += units.convert(value, metric.unit, units.lookup(unit))
        except units.UnitError as exc:
            notes.append(f"{d.device_id}: {exc}")
    return output


def _allocate(
    plan: SitePlan,
    retained: Mapping[str, Figures],
    nodes_kind: Mapping[str, str],
    nodes_org: Mapping[str, str | None],
    device_quantities: Mapping[tuple[int, int], float],
    notes: list[str],
) -> tuple[tuple[ProductFlow, ...], list[FlowLink], dict[str, Figures]]:
    doc = plan.document
    products = list(doc.products) if doc is not None else []
    output = _product_output(plan, device_quantities, notes)
    fed_by_product = {
        e.target for e in (doc.edges if doc is not None else []) if e.carrier.value in
        _PRODUCT_CARRIERS and any(p.node == e.source for p in products)
    }  # fmt: skip
    primary: dict[str | None, list[str]] = {}
    for p in products:
        if p.node not in fed_by_product:
            primary.setdefault(p.org or nodes_org.get(p.node), []).append(p.id)
    at_node: dict[str, list[str]] = {}
    for p in products:
        at_node.setdefault(p.node, []).append(p.id)

    allocated: dict[str, list[Figures]] = {p.id: [] for p in products}
    basis: dict[str, set[str]] = {p.id: set() for p in products}
    links: list[FlowLink] = []
    orgs: dict[str, list[Figures]] = {}
    unallocated: dict[str, list[Figures]] = {}
    for node, vec in retained.items():
        org = nodes_org.get(node) or ""
        orgs.setdefault(org, []).append(vec)
        if vec.is_zero():
            continue
        targets = at_node.get(node) or primary.get(nodes_org.get(node) or None) or []
        how = "node's own products" if at_node.get(node) else "organisation's primary products"
        if not targets:
            unallocated.setdefault(org, []).append(vec)
            links.append(
                FlowLink(node, f"unallocated:{org or 'site'}", "", None, None, 0.0, vec,
                         "allocation")
            )  # fmt: skip
            continue
        weights = [output[p] for p in targets]
        if not any(w > 0 for w in weights):
            weights = [1.0] * len(targets)
            how += ", equal shares (no output in the period)"
        else:
            how += ", physical key: output"
        for pid, part in zip(targets, vec.split(weights), strict=True):
            allocated[pid].append(part)
            basis[pid].add(how)
            links.append(FlowLink(node, f"product:{pid}", "", None, None, 0.0, part, "allocation"))
    flows: list[ProductFlow] = []
    for p in products:
        vec = Figures.sum(allocated[p.id])
        flows.append(
            ProductFlow(
                product_id=p.id,
                node_id=p.node,
                org_id=p.org or nodes_org.get(p.node),
                output=output[p.id],
                unit=p.unit,
                allocated=vec,
                basis="; ".join(sorted(basis[p.id])) or "nothing allocated",
                intensity_location=ratio(
                    vec.tco2e_location, output[p.id], f"tCO2e/{p.unit}", what=f"intensity of {p.id}"
                ),
                intensity_market=ratio(
                    vec.tco2e_market, output[p.id], f"tCO2e/{p.unit}", what=f"intensity of {p.id}"
                ),
            )
        )
    return tuple(flows), links, {org: Figures.sum(v) for org, v in orgs.items()}


def _upstream_product(
    edge_product: str | None,
    source: str,
    meters: Sequence[DevicePlan],
    at_node: Mapping[str, Sequence[str]],
) -> str | None:
    """The product an edge carries: named on the edge, else named by a production meter on it,
    else the only product of the source node."""
    made_here = at_node.get(source, ())
    if edge_product is not None:
        return edge_product
    named = {
        d.product_id for d in meters if d.role == Role.PRODUCTION and d.product_id in made_here
    }
    if len(named) == 1:
        return named.pop()
    return made_here[0] if len(made_here) == 1 else None


def _fed_amount(
    quantity: float | None, unit: str | None, wanted: str, where: str, notes: list[str]
) -> float | None:
    """A product link's metered quantity in the upstream product's unit; None (all of it)
    when unmetered or not convertible (noted)."""
    if quantity is None or unit is None:
        return None
    try:
        return units.convert(quantity, unit, units.lookup(wanted))
    except units.UnitError as exc:
        notes.append(f"{where}: {exc}; taken as all of it")
        return None


def _embodied_links(
    shares: Sequence[TransferShare],
    link_of: Mapping[tuple[str, str], tuple[str, float | None, str]],
) -> tuple[FlowLink, ...]:
    """``product:<upstream>`` → ``product:<downstream>`` links with the footprints carried."""
    carried: dict[tuple[str, str], list[Figures]] = {}
    for share in shares:
        carried.setdefault((share.upstream, share.downstream), []).append(Figures(*share.carried))
    return tuple(
        FlowLink(
            f"product:{up}", f"product:{down}", link_of[(up, down)][0], link_of[(up, down)][1],
            link_of[(up, down)][2] if link_of[(up, down)][1] is not None else None, 0.0,
            Figures.sum(vectors), "embodied",
        )
        for (up, down), vectors in carried.items()
    )  # fmt: skip


def _pass_along(
    plan: SitePlan,
    products: tuple[ProductFlow, ...],
    metered: Sequence[_Metered],
    notes: list[str],
) -> tuple[tuple[ProductFlow, ...], tuple[FlowLink, ...]]:
    """Product footprints carried along product links (``allocation.pass_along``): the links of
    the document whose carrier is a product, from a node making a product to a node making
    products (a link into a sink or a node without products leaves the site, or ends there)."""
    doc = plan.document
    by_id = {p.product_id: p for p in products}
    at_node: dict[str, list[str]] = {}
    for p in products:
        at_node.setdefault(p.node_id, []).append(p.product_id)
    transfers: list[ProductTransfer] = []
    link_of: dict[tuple[str, str], tuple[str, float | None, str]] = {}
    edges = list(doc.edges) if doc is not None else []
    for e, (source, target, carrier, quantity, unit, _tce, meters) in zip(
        edges, metered, strict=True
    ):
        if carrier not in _PRODUCT_CARRIERS or not at_node.get(source):
            continue
        downstream = at_node.get(target)
        if not downstream:
            continue
        upstream = _upstream_product(e.product, source, meters, at_node)
        if upstream is None:
            notes.append(
                f"product link {source} → {target}: {source} makes several products and the "
                "edge names none (edge field 'product'): no footprint carried"
            )
            continue
        where = f"product link {source} → {target}"
        amount = _fed_amount(quantity, unit, by_id[upstream].unit, where, notes)
        transfers.append(
            ProductTransfer(
                upstream, tuple(downstream), amount, tuple(by_id[d].output for d in downstream)
            )
        )
        for d in downstream:
            link_of[(upstream, d)] = (carrier, amount if len(downstream) == 1 else None,
                                      by_id[upstream].unit)  # fmt: skip
    own = {p.product_id: p.allocated.as_tuple() for p in products}
    output = {p.product_id: p.output for p in products}
    footprints, shares, pass_notes = pass_along(own, output, transfers)
    notes.extend(pass_notes)
    made_from: dict[str, list[str]] = {}
    for t in transfers:
        for d in t.downstream:
            made_from.setdefault(d, []).append(t.upstream)
    links = _embodied_links(shares, link_of)
    out: list[ProductFlow] = []
    for p in products:
        f = footprints[p.product_id]
        footprint = Figures(*f.footprint)
        what = f"intensity of {p.product_id}"
        out.append(
            replace(
                p,
                embodied=Figures(*f.embodied),
                footprint=footprint,
                passed_on=Figures(*f.passed_on),
                final=Figures(*f.final),
                made_from=tuple(made_from.get(p.product_id, ())),
                intensity_location=ratio(
                    footprint.tco2e_location, p.output, f"tCO2e/{p.unit}", what=what
                ),
                intensity_market=ratio(
                    footprint.tco2e_market, p.output, f"tCO2e/{p.unit}", what=what
                ),
                gate_intensity_location=p.intensity_location,
                gate_intensity_market=p.intensity_market,
            )
        )
    return tuple(out), links

"""``/api/v1/sites/{site_id}/flows``: the energy → carbon → product graph of a site and period,
as Sankey nodes and links with values and units, and the factor versions behind them.

The graph is computed on demand by the calc service's read side
(:func:`services.api.reads.flows`); this module only picks the period, converts the graph to
the response and, for an enterprise key, cuts out its organisation's part
(:func:`organisation_part`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal, cast
from zoneinfo import ZoneInfo

import psycopg
from fastapi import APIRouter, Query

from carbonflow.domain import calendar
from carbonflow.domain.flows.graph import COMPONENTS, FlowGraph, FlowLink
from carbonflow.domain.inventory.lines import Figures, InventoryLine
from carbonflow.storage import carbon as carbon_db
from carbonflow.storage import registry
from carbonflow.storage.reference import ReferenceDataError
from services.api import reads as queries
from services.api.deps import ConnDep, ContextDep, LiveSite
from services.api.problems import ApiProblemError, not_found, responses
from services.api.schemas_flows import (
    FactorUsedOut,
    FlowLinkOut,
    FlowNodeOut,
    FlowProductOut,
    FlowQuantities,
    FlowsOut,
)

router = APIRouter(
    prefix="/api/v1/sites/{site_id}/flows",
    tags=["flows"],
    responses=responses(401, 403, 404, 422, 429, 500),
)

# The calc service stores 15-min slots; a period must be made of whole ones.
SLOT = timedelta(minutes=15)
# Longest period one request may ask for: a year (leap) and a day of slack for zone shifts.
MAX_PERIOD = timedelta(days=367)
# Times a request may name: far from datetime's limits, so zone and calendar arithmetic is safe.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
# The rest of the site, seen from an organisation: where its energy comes from, and goes to
# (two nodes, so that a Sankey stays acyclic).
OUTSIDE_IN = "outside:in"
OUTSIDE_OUT = "outside:out"
# Links that carry attributed energy and carbon: the Sankey's links.
SANKEY_KINDS = frozenset({"supply", "emission", "energy", "allocation"})
_ZERO = Figures()
_NODE_LIMIT = 10_000
NOTHING_CALCULATED = "nothing calculated yet: the calc service has not stored its reference data"
# ``period=24h``: a control room's rolling window, never nearly empty just after local midnight.
ROLLING = timedelta(hours=24)
PERIOD_PATTERN = r"^(today|24h|month|\d{4}-(0[1-9]|1[0-2]))$"


# --------------------------------------------------------------------------------------------
# Pure: the period and the organisation's part
# --------------------------------------------------------------------------------------------


def _invalid(location: str, detail: str) -> ApiProblemError:
    return ApiProblemError(422, f"{location}: {detail}")


def slot_floor(moment: datetime) -> datetime:
    """The start of the 15-min slot holding ``moment``, in UTC (slots are whole quarter hours
    of UTC, and so of every zone with a whole-quarter-hour offset)."""
    utc = moment.astimezone(UTC)
    return utc - timedelta(
        minutes=utc.minute % 15, seconds=utc.second, microseconds=utc.microsecond
    )


def resolve_period(  # noqa: C901, PLR0912 — the period grammar: today, 24h, month, YYYY-MM or start/end
    period: str | None,
    start: datetime | None,
    end: datetime | None,
    *,
    timezone: str,
    now: datetime,
) -> tuple[datetime, datetime]:
    """[start, end) in UTC: ``today`` and ``month`` are the site's local day and month holding
    ``now``, ``24h`` the 24 hours before ``now`` floored to its 15-min slot (the slot still
    running is left out: it is not calculated yet), ``YYYY-MM`` a local month; ``start``/``end``
    must carry an offset and be whole 15-min slots. Nothing given means today. Raises a 422
    problem otherwise."""
    zone = ZoneInfo(timezone)
    if period is not None and (start is not None or end is not None):
        raise _invalid("period", "give either period or start and end, not both")
    if period is None and start is None and end is None:
        period = "today"
    if period == "24h":
        hi = slot_floor(now)
        return hi - ROLLING, hi
    if period is not None:
        local = now.astimezone(zone).date()
        if period == "today":
            return calendar.day_bounds(local, zone)
        if period != "month":
            year, month = int(period[:4]), int(period[5:7])
            if not EARLIEST.year <= year < LATEST.year:
                raise _invalid("period", f"a month from {EARLIEST.year} to {LATEST.year - 1}")
            local = date(year, month, 1)
        return calendar.month_bounds(local, zone)
    if start is None or end is None:
        raise _invalid("start, end", "give both start and end (or a period)")
    for name, value in (("start", start), ("end", end)):
        if value.tzinfo is None or value.utcoffset() is None:
            raise _invalid(name, "a time must carry its offset (…Z or …+08:00)")
        if not EARLIEST <= value <= LATEST:
            raise _invalid(name, f"must lie between {EARLIEST.date()} and {LATEST.date()}")
        if value.astimezone(UTC).timestamp() % SLOT.total_seconds() != 0:
            raise _invalid(name, "must be a whole 15-min slot (minute 0, 15, 30 or 45, second 0)")
    if end <= start:
        raise _invalid("end", "must be after start")
    if end - start > MAX_PERIOD:
        raise _invalid("end", f"a period is at most {MAX_PERIOD.days} days")
    return start.astimezone(UTC), end.astimezone(UTC)


def node_column(node_id: str, kind: str) -> Literal["source", "node", "product"]:
    if node_id.startswith(("product:", "unallocated:")) or node_id == OUTSIDE_OUT:
        return "product"
    if node_id.startswith("emission:") or node_id == OUTSIDE_IN or kind == "supply":
        return "source"
    return "node"


@dataclass(frozen=True, slots=True)
class GraphPart:
    """What one key may see of a flow graph."""

    node_ids: tuple[str, ...]
    links: tuple[FlowLink, ...]
    product_ids: frozenset[str]
    totals: Figures


def _merge(links: Sequence[FlowLink]) -> FlowLink:
    first = links[0]
    units = {link.unit for link in links}
    quantities = [link.quantity for link in links]
    same_unit = len(units) == 1 and all(q is not None for q in quantities)
    return FlowLink(
        first.source,
        first.target,
        first.carrier,
        math.fsum(q or 0.0 for q in quantities) if same_unit else None,
        first.unit if same_unit else None,
        math.fsum(link.energy_tce for link in links),
        Figures.sum(link.attributed for link in links),
        first.kind,
    )


def organisation_part(graph: FlowGraph, org_id: str) -> GraphPart:
    """An enterprise's part of the site graph: its nodes, every link touching them, its
    products. The rest of the site (park substations, supply points, other organisations) is
    one node, ``outside:in`` where links come from and ``outside:out`` where they go, so that
    the part shows what reaches the organisation by carrier, not from whom: links from or to
    the rest of the site are merged per carrier and kind.

    The links into its product column add up to what the site graph attributes to the
    organisation (``graph.orgs[org_id]``), which are the part's totals."""
    own = {n.node_id for n in graph.nodes if n.org_id == org_id}
    own_products = {p.product_id for p in graph.products if p.org_id == org_id}
    own_virtual = {f"product:{p}" for p in own_products} | {f"unallocated:{org_id}"}

    def place(node: str, other: str, outside: str) -> str:
        if node in own or node in own_virtual:
            return node
        if node.startswith("emission:") and other in own:
            return node  # emissions happening at its own nodes
        return outside

    grouped: dict[tuple[str, str, str, str], list[FlowLink]] = {}
    for link in graph.links:
        if link.source not in own and link.target not in own:
            continue
        source = place(link.source, link.target, OUTSIDE_IN)
        target = place(link.target, link.source, OUTSIDE_OUT)
        if source == target:
            continue
        moved = FlowLink(
            source, target, link.carrier, link.quantity, link.unit, link.energy_tce,
            link.attributed, link.kind,
        )  # fmt: skip
        grouped.setdefault((source, target, link.kind, link.carrier), []).append(moved)
    links = tuple(_merge(group) for group in grouped.values())
    node_ids = tuple(dict.fromkeys(n for link in links for n in (link.source, link.target)))
    return GraphPart(
        node_ids=node_ids,
        links=links,
        product_ids=frozenset(own_products),
        totals=graph.orgs.get(org_id, _ZERO),
    )


def whole_site(graph: FlowGraph) -> GraphPart:
    linked = (n for link in graph.links for n in (link.source, link.target))
    node_ids = tuple(dict.fromkeys([*(n.node_id for n in graph.nodes), *linked]))
    return GraphPart(
        node_ids=node_ids,
        links=graph.links,
        product_ids=frozenset(p.product_id for p in graph.products),
        totals=graph.totals,
    )


def quantities(vector: Figures) -> FlowQuantities:
    return FlowQuantities(**dict(zip(COMPONENTS, vector, strict=True)))


def factors_used(
    rows: Iterable[InventoryLine], org_id: str | None, carriers: Iterable[str]
) -> list[FactorUsedOut]:
    """The distinct factors of the period's inventory rows — for an organisation, those of its
    own rows and of the carriers that reach it."""
    wanted = set(carriers)
    seen: dict[tuple[Any, ...], FactorUsedOut] = {}
    for row in rows:
        f = row.factors
        if f.key is None:
            continue
        if org_id is not None and row.org_id != org_id and row.carrier not in wanted:
            continue
        key = (row.carrier, row.category, row.basis, f.key, f.version, f.value, f.unit)
        seen.setdefault(
            key,
            FactorUsedOut(
                carrier=row.carrier,
                category=row.category.value,
                basis=row.basis.value,
                factor_key=f.key,
                factor_version=f.version,
                factor_value=f.value,
                factor_unit=f.unit,
            ),
        )
    return [seen[k] for k in sorted(seen, key=lambda k: tuple(str(x) for x in k))]


def flows_out(
    graph: FlowGraph,
    part: GraphPart,
    *,
    org_id: str | None,
    period: str | None,
    start: datetime,
    end: datetime,
    timezone: str,
    names: Mapping[str, tuple[str, str | None]],
    factors: list[FactorUsedOut],
    computed_at: datetime,
) -> FlowsOut:
    kinds = {n.node_id: (n.kind, n.org_id) for n in graph.nodes}
    nodes = []
    for node_id in part.node_ids:
        kind, org = kinds.get(node_id, (node_id.split(":", 1)[0], None))
        if node_id in (OUTSIDE_IN, OUTSIDE_OUT):
            kind = "outside"
        name, name_zh = names.get(node_id, (None, None))
        nodes.append(
            FlowNodeOut(
                node_id=node_id,
                column=node_column(node_id, kind),
                kind=kind,
                org_id=org,
                name=name,
                name_zh=name_zh,
            )
        )
    links = [
        FlowLinkOut(
            source=link.source,
            target=link.target,
            kind=link.kind,
            carrier=link.carrier,
            quantity=link.quantity,
            quantity_unit=link.unit,
            metered_energy_tce=link.energy_tce,
            attributed=quantities(link.attributed),
        )
        for link in part.links
    ]
    products = [
        FlowProductOut(
            product_id=p.product_id,
            node_id=p.node_id,
            org_id=p.org_id,
            output=p.output,
            output_unit=p.unit,
            allocated=quantities(p.allocated),
            intensity_location_tco2e_per_unit=p.intensity_location.value,
            intensity_market_tco2e_per_unit=p.intensity_market.value,
            allocation_basis=p.basis,
        )
        for p in graph.products
        if p.product_id in part.product_ids
    ]
    return FlowsOut(
        site_id=graph.site_id,
        scope="site" if org_id is None else "organisation",
        org_id=org_id,
        period=period,
        start=start,
        end=end,
        timezone=timezone,
        totals=quantities(part.totals),
        nodes=nodes,
        links=links,
        products=products,
        factors=factors,
        notes=[n for n in graph.notes if org_id is None or n == NOTHING_CALCULATED],
        computed_at=computed_at,
    )


# --------------------------------------------------------------------------------------------
# The route
# --------------------------------------------------------------------------------------------


@router.get(
    "",
    response_model=FlowsOut,
    summary="Energy → carbon → product flows of a period, ready for a Sankey diagram",
)
def get_flows(
    *,
    site: LiveSite,
    conn: ConnDep,
    ctx: ContextDep,
    period: Annotated[
        str | None,
        Query(
            pattern=PERIOD_PATTERN,
            description="today | 24h (the last 24 hours up to now, floored to 15 min) | "
            "month (the current local month) | YYYY-MM; "
            "default today when start and end are not given",
            examples=["2026-11"],
        ),
    ] = None,
    start: Annotated[
        datetime | None,
        Query(description="period start, with offset, on a 15-min boundary"),
    ] = None,
    end: Annotated[
        datetime | None,
        Query(description="period end (exclusive), with offset, on a 15-min boundary"),
    ] = None,
) -> FlowsOut:
    row = registry.get_site(conn, site.site_id, org_id=site.org_id)
    if row is None:  # deleted since the access check
        raise not_found(f"site {site.site_id!r} not found")
    now = ctx.wall_clock()
    lo, hi = resolve_period(period, start, end, timezone=row.timezone, now=now)
    # The calc read side speaks psycopg; the pooled connection is one underneath.
    raw = cast(psycopg.Connection[Any], conn.connection.driver_connection)
    inventory = carbon_db.carbon_totals(raw, site.site_id, lo, hi, row.timezone)
    try:
        graph = queries.flows(raw, site.site_id, lo, hi, totals=inventory)
    except queries.NotFound as exc:
        raise not_found(f"site {site.site_id!r} not found") from exc
    except ReferenceDataError:
        if inventory:  # results without the factors they were computed with: a real fault
            raise
        # The calc service has never run (no factors stored): nothing is calculated yet.
        graph = FlowGraph(site.site_id, (), (), (), _ZERO, {}, (NOTHING_CALCULATED,))
    part = whole_site(graph) if site.org_id is None else organisation_part(graph, site.org_id)
    names = {
        n.node_id: (n.name, n.name_zh)
        for n in registry.list_nodes(
            conn, site.site_id, org_id=site.org_id, limit=_NODE_LIMIT, offset=0
        )
    }
    # Products are nodes of the graph too ("product:{id}"): their names from the registry.
    for product_id, pair in registry.product_names(conn, site.site_id, org_id=site.org_id).items():
        names[f"product:{product_id}"] = pair
    return flows_out(
        graph,
        part,
        org_id=site.org_id,
        period=period if period is not None or start is not None else "today",
        start=lo,
        end=hi,
        timezone=row.timezone,
        names=names,
        factors=factors_used(inventory, site.org_id, {link.carrier for link in part.links}),
        computed_at=now,
    )

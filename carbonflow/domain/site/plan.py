"""What each device of a site measures, for the calc service: its role, carrier, node and
organisation, and which of its metrics carries the flow of its role. Pure, no I/O.

Built from the registry rows (``device``, ``device_metric``, ``metric``: the multiplier and
modulus in force) and the site document (``site.document``: the graph, products, baseline,
targets and budgets). The registry is the truth for device configuration; the document for the
rest. A site whose document does not validate (seeded test sites) still gets device intervals
and carbon, without graph, targets and budgets.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from carbonflow.domain.site.model import (
    SHARED_CARRIERS,
    MetricKind,
    NodeKind,
    Role,
    SiteDocument,
    UnmeteredRule,
    carrier_group,
    multiplier_applies,
)
from carbonflow.domain.units import Dimension, metric_unit

# Without a declared reporting period a device is assumed to report at least every 15 min: a
# pair of readings further apart than GAP_FACTOR × this is a gap (settings may change it).
DEFAULT_REPORT_PERIOD = timedelta(minutes=15)

# Node kinds whose inflow is not an end use (energy passes through them or leaves the site).
PASS_THROUGH_KINDS = frozenset(
    {NodeKind.SUPPLY, NodeKind.DISTRIBUTION, NodeKind.SINK, NodeKind.GENERATION, NodeKind.STORAGE}
)

_GAS_CARRIERS = frozenset({"natural_gas", "lpg", "hydrogen", "lng"})


@dataclass(frozen=True, slots=True)
class MetricPlan:
    metric_id: int
    name: str
    kind: str  # counter | interval | gauge
    unit: str

    @property
    def is_quantity(self) -> bool:
        return self.kind in (MetricKind.COUNTER.value, MetricKind.INTERVAL.value)


@dataclass(frozen=True, slots=True)
class DevicePlan:
    device_pk: int
    device_id: str
    role: str
    carrier: str
    node_id: str | None
    org_id: str | None
    multiplier: float
    modulus: float | None
    active: bool
    metrics: tuple[MetricPlan, ...]
    product_id: str | None = None
    report_period: timedelta = DEFAULT_REPORT_PERIOD

    def metric(self, name: str) -> MetricPlan | None:
        for m in self.metrics:
            if m.name == name:
                return m
        return None

    def quantity_metrics(self) -> tuple[MetricPlan, ...]:
        return tuple(m for m in self.metrics if m.is_quantity)

    def multiplier_for(self, metric: MetricPlan) -> float:
        return self.multiplier if multiplier_applies(metric.name) else 1.0

    def config_hash(self) -> str:
        """Hash of everything interval results depend on: a change recomputes the device."""
        data = {
            "multiplier": self.multiplier,
            "modulus": self.modulus,
            "metrics": sorted((m.metric_id, m.name, m.kind) for m in self.metrics),
            "report_period_s": self.report_period.total_seconds(),
        }
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()

    def booking_hash(self) -> str:
        """Hash of what carbon results depend on besides the intervals (role, carrier, place)."""
        data = [self.role, self.carrier, self.node_id, self.org_id, self.product_id, self.active]
        return hashlib.sha256(json.dumps(data).encode()).hexdigest()


def _first(device: DevicePlan, names: Sequence[str]) -> MetricPlan | None:
    for name in names:
        found = device.metric(name)
        if found is not None and found.is_quantity:
            return found
    return None


def _any_quantity(device: DevicePlan, dimensions: Iterable[Dimension]) -> MetricPlan | None:
    wanted = set(dimensions)
    for m in sorted(device.quantity_metrics(), key=lambda m: m.name):
        if metric_unit(m.name).dimension in wanted:
            return m
    return None


def flow_metric(device: DevicePlan) -> MetricPlan | None:  # noqa: PLR0911 — one answer per device role
    """The quantity metric that measures the flow of the device's role, in its direction.

    Electricity: the import register for grid/green imports and consumption, the export
    register for generation and export-only meters (falling back to the import register of a
    plain meter); heat: ``heat_gj``; methane lines: pure CH4 ``ch4_nm3``; fuels: volume or mass;
    production: the counter or interval metric in the product's dimension. ``None`` when the
    device has no quantity metric for it (a gauge-only device).
    """
    role, carrier = device.role, device.carrier
    if carrier == "electricity":
        if role in (
            Role.GRID_EXPORT,
            Role.GENERATION_PV,
            Role.GENERATION_WIND,
            Role.GENERATION_GAS,
        ):
            return _first(device, ("energy_export_kwh", "energy_import_kwh"))
        if role == Role.STORAGE:
            return _first(device, ("energy_discharge_kwh",))
        return _first(device, ("energy_import_kwh",))
    if role.startswith("methane_") or carrier == "coal_mine_methane":
        return _first(device, ("ch4_nm3",))
    if carrier in ("heat", "steam", "cooling"):
        return _first(device, ("heat_gj",))
    if role == Role.PRODUCTION:
        return _any_quantity(device, (Dimension.MASS, Dimension.ENERGY, Dimension.GAS_VOLUME))
    if carrier in _GAS_CARRIERS:
        found = _first(device, ("volume_nm3", "lng_t", "volume_l"))
        if found is not None:
            return found
    return _any_quantity(
        device, (Dimension.LIQUID_VOLUME, Dimension.MASS, Dimension.GAS_VOLUME, Dimension.ENERGY)
    )


def reverse_metric(device: DevicePlan) -> MetricPlan | None:
    """The register against the role's direction: grid export of a bidirectional grid meter,
    storage charging. ``None`` for other devices."""
    if device.carrier != "electricity":
        return None
    if device.role == Role.GRID_IMPORT:
        return _first(device, ("energy_export_kwh",))
    if device.role == Role.STORAGE:
        return _first(device, ("energy_charge_kwh",))
    return None


def edge_metric(device: DevicePlan, target: str, sink: bool) -> MetricPlan | None:
    """The register of ``device`` that measures an edge into ``target`` in the edge's
    direction: a storage's charge register on the edge into it, its discharge register out of
    it; a grid meter's export register on the edge into a sink; else the role's flow metric."""
    if device.role == Role.STORAGE:
        return reverse_metric(device) if device.node_id == target else flow_metric(device)
    if sink and device.role == Role.GRID_IMPORT:
        return reverse_metric(device)
    return flow_metric(device)


Register = tuple["DevicePlan", MetricPlan]


@dataclass(frozen=True, slots=True)
class ShareEdge:
    """A metered edge leaving an attributed node: who takes it, and its meters."""

    org_id: str
    target: str
    registers: tuple[Register, ...]


@dataclass(frozen=True, slots=True)
class ShareRule:
    """The attribution of one distribution node's purchased electricity or heat (site file
    ``attribution``, ACCOUNTING §6a), for one carrier group (``electricity``, or ``heat`` for
    heat, steam and cooling: :func:`carrier_group`): what it received (metered edges in, minus
    edges out into sinks) and the metered edges it passes on, each owned by its target node's
    organisation."""

    node_id: str
    common_org: str
    pro_rata: bool
    inflows: tuple[Register, ...]
    sink_outflows: tuple[Register, ...]
    outflows: tuple[ShareEdge, ...]
    group: str = "electricity"

    def registers(self) -> tuple[Register, ...]:
        out = [r for e in self.outflows for r in e.registers]
        return (*self.inflows, *self.sink_outflows, *out)


def share_rules(
    document: SiteDocument | None, devices: Sequence[DevicePlan]
) -> tuple[ShareRule, ...]:
    """The document's attribution rules with the registers they read (devices of the plan): one
    per attributed node and carrier group with edges at the node."""
    if document is None:
        return ()
    by_id = {d.device_id: d for d in devices}
    kinds = {n.id: n.kind for n in document.nodes}
    owners = {n.id: n.org for n in document.nodes}

    def registers(meters: Iterable[str], target: str, sink: bool) -> tuple[Register, ...]:
        found = []
        for meter in meters:
            device = by_id.get(meter)
            metric = None if device is None else edge_metric(device, target, sink)
            if device is not None and metric is not None:
                found.append((device, metric))
        return tuple(found)

    rules = []
    for rule in document.attribution:
        touching = [
            e
            for e in document.edges
            if e.carrier in SHARED_CARRIERS and rule.node in (e.source, e.target)
        ]
        groups = sorted({carrier_group(e.carrier.value) for e in touching})
        for group in groups or ["electricity"]:
            shared = [e for e in touching if carrier_group(e.carrier.value) == group]
            into = [e for e in shared if e.target == rule.node]
            out = [e for e in shared if e.source == rule.node]
            sinks = [e for e in out if kinds.get(e.target) is NodeKind.SINK]
            rules.append(
                ShareRule(
                    node_id=rule.node,
                    common_org=rule.common,
                    pro_rata=rule.unmetered is UnmeteredRule.PRO_RATA,
                    inflows=tuple(r for e in into for r in registers(e.meters, e.target, False)),
                    sink_outflows=tuple(
                        r for e in sinks for r in registers(e.meters, e.target, True)
                    ),
                    outflows=tuple(
                        ShareEdge(
                            owners.get(e.target) or rule.common,
                            e.target,
                            registers(e.meters, e.target, False),
                        )
                        for e in out
                        if e not in sinks
                    ),
                    group=group,
                )
            )
    return tuple(rules)


@dataclass(frozen=True, slots=True)
class NodeInfo:
    node_id: str
    kind: str
    org_id: str | None
    production_system: bool

    @property
    def end_use(self) -> bool:
        return self.kind not in PASS_THROUGH_KINDS


@dataclass(frozen=True)
class SitePlan:
    site_id: str
    kind: str  # park | mine | enterprise
    province: str
    grid_region: str
    timezone: str
    devices: tuple[DevicePlan, ...]
    document: SiteDocument | None = None
    document_error: str | None = None
    nodes: Mapping[str, NodeInfo] = field(default_factory=dict)
    by_pk: Mapping[int, DevicePlan] = field(default_factory=dict)
    shares: tuple[ShareRule, ...] = ()  # attribution of purchased electricity and heat (site file)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_pk", {d.device_pk: d for d in self.devices})
        if self.document is not None and not self.shares:
            object.__setattr__(self, "shares", share_rules(self.document, self.devices))
        if self.document is not None and not self.nodes:
            nodes = {
                n.id: NodeInfo(n.id, n.kind.value, n.org, n.production_system)
                for n in self.document.nodes
            }
            object.__setattr__(self, "nodes", nodes)

    def node(self, node_id: str | None) -> NodeInfo | None:
        return None if node_id is None else self.nodes.get(node_id)

    def active_devices(self) -> tuple[DevicePlan, ...]:
        return tuple(d for d in self.devices if d.active)

    def active_with_roles(self, roles: frozenset[str]) -> tuple[DevicePlan, ...]:
        """The active devices of ``roles``, in plan order; computed once per set of roles (a
        plan is immutable), for code that asks every interval."""
        cache: dict[frozenset[str], tuple[DevicePlan, ...]] = self.__dict__.setdefault(
            "_active_with_roles", {}
        )
        found = cache.get(roles)
        if found is None:
            found = cache[roles] = tuple(d for d in self.devices if d.active and d.role in roles)
        return found

    def device_config(self) -> dict[str, str]:
        """device_pk (as text) → interval config hash, for change detection."""
        return {str(d.device_pk): d.config_hash() for d in self.devices}

    def booking_hash(self) -> str:
        """Hash of everything above intervals except factors: devices' bookings and the document."""
        parts: dict[str, Any] = {str(d.device_pk): d.booking_hash() for d in self.devices}
        parts["site"] = [self.kind, self.province, self.grid_region, self.timezone]
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def report_period_of(attributes: Mapping[str, Any], default: timedelta) -> timedelta:
    """The device's reporting period: ``attributes.sim.publish_interval_s`` if declared."""
    sim = attributes.get("sim")
    if isinstance(sim, Mapping):
        seconds = sim.get("publish_interval_s")
        if isinstance(seconds, int | float) and seconds > 0:
            return timedelta(seconds=float(seconds))
    return default


def parse_document(raw: Mapping[str, Any] | None) -> tuple[SiteDocument | None, str | None]:
    """The validated site document, or (None, the reason) when it does not validate."""
    if not raw:
        return None, "no site document stored"
    try:
        return SiteDocument.model_validate(raw), None
    except ValueError as exc:
        return None, f"site document does not validate: {str(exc)[:300]}"


def plan_from_document(
    doc: SiteDocument,
    *,
    device_pks: Mapping[str, int] | None = None,
    metric_ids: Mapping[str, int] | None = None,
    report_period: timedelta = DEFAULT_REPORT_PERIOD,
) -> SitePlan:
    """A plan straight from a site document (ids numbered in document order unless given).

    The engine builds plans from the registry tables; this is for pure tests and generators.
    """
    names = sorted({name for d in doc.devices for name in d.metrics})
    ids = dict(metric_ids) if metric_ids is not None else {n: i + 1 for i, n in enumerate(names)}
    devices = []
    for i, d in enumerate(doc.devices):
        sim = d.sim.model_dump(exclude_none=True) if d.sim is not None else {}
        devices.append(
            DevicePlan(
                device_pk=(device_pks or {}).get(d.id, i + 1),
                device_id=d.id,
                role=d.role.value,
                carrier=d.carrier.value,
                node_id=d.node,
                org_id=d.org,
                multiplier=d.multiplier,
                modulus=d.counter_modulus,
                active=True,
                metrics=tuple(
                    MetricPlan(ids[name], name, spec.kind.value, metric_unit(name).symbol)
                    for name, spec in sorted(d.metrics.items())
                ),
                product_id=d.product,
                report_period=report_period_of({"sim": sim}, report_period),
            )
        )
    info = doc.site
    return SitePlan(
        site_id=info.id,
        kind=info.kind.value,
        province=info.province.value,
        grid_region=info.grid_region.value,
        timezone=info.timezone,
        devices=tuple(devices),
        document=doc,
    )

"""Reads of the registry: sites, organisations, nodes, devices and their metrics (tables ``site``,
``organisation``, ``node``, ``device``, ``device_metric``, ``metric``), for the API, the calc
service's site plans and ingest's registry snapshot. Writes are ``registry_load``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

import psycopg
import sqlalchemy as sa

from carbonflow.domain.site.plan import (
    DevicePlan,
    MetricPlan,
    SitePlan,
    parse_document,
    report_period_of,
)
from carbonflow.storage.db import Conn, make_row
from carbonflow.storage.schema import (
    calc_site_state,
    device,
    device_metric,
    metric,
    node,
    organisation,
    product,
    site,
)


def site_timezone(conn: sa.Connection, site_id: str) -> str | None:
    tz: str | None = conn.execute(
        sa.text("SELECT timezone FROM site WHERE site_id = :s"), {"s": site_id}
    ).scalar_one_or_none()
    return tz


@dataclass(frozen=True, slots=True)
class SiteInfo:
    site_id: str
    name: str
    kind: str
    timezone: str


def sites_info(conn: sa.Connection, site_ids: frozenset[str] | None) -> list[SiteInfo]:
    """The registered sites among ``site_ids`` (``None``: all), by id."""
    rows = conn.execute(
        sa.text(
            "SELECT site_id, name, kind, timezone FROM site "
            "WHERE CAST(:all AS boolean) OR site_id = ANY(:ids) ORDER BY site_id"
        ),
        {"all": site_ids is None, "ids": sorted(site_ids or ())},
    )
    return [SiteInfo(*r) for r in rows]


def organisation_names(conn: sa.Connection, site_ids: Sequence[str]) -> dict[tuple[str, str], str]:
    rows = conn.execute(
        sa.text("SELECT site_id, org_id, name FROM organisation WHERE site_id = ANY(:ids)"),
        {"ids": list(site_ids)},
    )
    return {(str(s), str(o)): str(n) for s, o, n in rows}


def device_pk(
    conn: sa.Connection, site_id: str, device_id: str, *, org_id: str | None
) -> int | None:
    """The device's key when the caller may see it (its organisation's, for an enterprise)."""
    pk: int | None = conn.execute(
        sa.text(
            "SELECT device_pk FROM device WHERE site_id = :s AND device_id = :d "
            "AND (CAST(:o AS text) IS NULL OR org_id = :o)"
        ),
        {"s": site_id, "d": device_id, "o": org_id},
    ).scalar_one_or_none()
    return pk


@dataclass(frozen=True, slots=True)
class SiteRow:
    site_id: str
    name: str
    name_zh: str | None
    kind: str
    timezone: str
    province: str
    grid_region: str
    latitude_deg: float | None
    longitude_deg: float | None
    baseline_year: int
    loaded_at: datetime
    organisations: int  # visible to the caller
    nodes: int
    devices: int  # active


@dataclass(frozen=True, slots=True)
class OrganisationRow:
    site_id: str
    org_id: str
    name: str
    name_zh: str | None
    industry: str | None


@dataclass(frozen=True, slots=True)
class NodeRow:
    site_id: str
    node_id: str
    name: str
    name_zh: str | None
    kind: str
    org_id: str | None
    production_system: bool


@dataclass(frozen=True, slots=True)
class MetricRow:
    name: str
    unit: str
    kind: str  # counter | interval | gauge
    rated_max: float | None  # in ``unit``, after the multiplier


@dataclass(frozen=True, slots=True)
class DeviceRow:
    site_id: str
    device_id: str
    name: str
    kind: str
    carrier: str
    role: str
    node_id: str | None
    org_id: str | None
    multiplier: float
    counter_modulus: float | None
    active: bool
    metrics: tuple[MetricRow, ...]


def org_filter(column: sa.ColumnElement[Any], org_id: str | None) -> sa.ColumnElement[bool]:
    return sa.true() if org_id is None else column == org_id


def list_sites(
    conn: sa.Connection,
    *,
    site_ids: frozenset[str] | None,
    org_id: str | None,
    limit: int,
    offset: int,
) -> list[SiteRow]:
    """Sites by id; ``site_ids`` None means all. Counts are of what ``org_id`` may see."""
    query = _site_query(org_id).order_by(site.c.site_id).limit(limit).offset(offset)
    if site_ids is not None:
        query = query.where(site.c.site_id.in_(sorted(site_ids)))
    return [make_row(SiteRow, r) for r in conn.execute(query)]


def get_site(conn: sa.Connection, site_id: str, *, org_id: str | None) -> SiteRow | None:
    row = conn.execute(_site_query(org_id).where(site.c.site_id == site_id)).first()
    return None if row is None else make_row(SiteRow, row)


def site_kind(conn: sa.Connection, site_id: str) -> str | None:
    """The site's kind, or ``None`` when it is not registered."""
    kind: str | None = conn.execute(
        sa.select(site.c.kind).where(site.c.site_id == site_id)
    ).scalar_one_or_none()
    return kind


def _site_query(org_id: str | None) -> sa.Select[Any]:
    def count(table: sa.Table, *extra: sa.ColumnElement[bool]) -> sa.ScalarSelect[Any]:
        return (
            sa.select(sa.func.count())
            .select_from(table)
            .where(table.c.site_id == site.c.site_id, org_filter(table.c.org_id, org_id), *extra)
            .scalar_subquery()
        )

    return sa.select(
        site.c.site_id,
        site.c.name,
        site.c.name_zh,
        site.c.kind,
        site.c.timezone,
        site.c.province,
        site.c.grid_region,
        site.c.latitude_deg,
        site.c.longitude_deg,
        site.c.baseline_year,
        site.c.loaded_at,
        count(organisation),
        count(node),
        count(device, device.c.active),
    )


def list_organisations(
    conn: sa.Connection, site_id: str, *, org_id: str | None, limit: int, offset: int
) -> list[OrganisationRow]:
    query = (
        _organisation_query(site_id, org_id)
        .order_by(organisation.c.org_id)
        .limit(limit)
        .offset(offset)
    )
    return [make_row(OrganisationRow, r) for r in conn.execute(query)]


def get_organisation(
    conn: sa.Connection, site_id: str, wanted: str, *, org_id: str | None
) -> OrganisationRow | None:
    query = _organisation_query(site_id, org_id).where(organisation.c.org_id == wanted)
    row = conn.execute(query).first()
    return None if row is None else make_row(OrganisationRow, row)


def _organisation_query(site_id: str, org_id: str | None) -> sa.Select[Any]:
    return sa.select(
        organisation.c.site_id,
        organisation.c.org_id,
        organisation.c.name,
        organisation.c.name_zh,
        organisation.c.industry,
    ).where(organisation.c.site_id == site_id, org_filter(organisation.c.org_id, org_id))


def list_nodes(
    conn: sa.Connection,
    site_id: str,
    *,
    org_id: str | None,
    limit: int,
    offset: int,
    of_org: str | None = None,
    kind: str | None = None,
) -> list[NodeRow]:
    query = _node_query(site_id, org_id)
    if of_org is not None:
        query = query.where(node.c.org_id == of_org)
    if kind is not None:
        query = query.where(node.c.kind == kind)
    query = query.order_by(node.c.node_id).limit(limit).offset(offset)
    return [make_row(NodeRow, r) for r in conn.execute(query)]


def product_names(
    conn: sa.Connection, site_id: str, *, org_id: str | None
) -> dict[str, tuple[str, str | None]]:
    """Each product's (name, name_zh) of the site (of ``org_id``'s products when given)."""
    query = sa.select(product.c.product_id, product.c.name, product.c.name_zh).where(
        product.c.site_id == site_id
    )
    if org_id is not None:
        query = query.where(product.c.org_id == org_id)
    return {str(p): (str(n), z) for p, n, z in conn.execute(query)}


def get_node(
    conn: sa.Connection, site_id: str, node_id: str, *, org_id: str | None
) -> NodeRow | None:
    row = conn.execute(_node_query(site_id, org_id).where(node.c.node_id == node_id)).first()
    return None if row is None else make_row(NodeRow, row)


def _node_query(site_id: str, org_id: str | None) -> sa.Select[Any]:
    return sa.select(
        node.c.site_id,
        node.c.node_id,
        node.c.name,
        node.c.name_zh,
        node.c.kind,
        node.c.org_id,
        node.c.production_system,
    ).where(node.c.site_id == site_id, org_filter(node.c.org_id, org_id))


@dataclass(frozen=True, slots=True)
class DeviceFilter:
    of_org: str | None = None
    node_id: str | None = None
    kind: str | None = None
    carrier: str | None = None
    role: str | None = None
    active: bool | None = True  # None: active and inactive


def list_devices(
    conn: sa.Connection,
    site_id: str,
    *,
    org_id: str | None,
    limit: int,
    offset: int,
    where: DeviceFilter = DeviceFilter(),
) -> list[DeviceRow]:
    query = _device_query(site_id, org_id)
    for column, value in (
        (device.c.org_id, where.of_org),
        (device.c.node_id, where.node_id),
        (device.c.kind, where.kind),
        (device.c.carrier, where.carrier),
        (device.c.role, where.role),
        (device.c.active, where.active),
    ):
        if value is not None:
            query = query.where(column == value)
    rows = list(conn.execute(query.order_by(device.c.device_id).limit(limit).offset(offset)))
    return _with_metrics(conn, rows)


def get_device(
    conn: sa.Connection, site_id: str, device_id: str, *, org_id: str | None
) -> DeviceRow | None:
    rows = list(conn.execute(_device_query(site_id, org_id).where(device.c.device_id == device_id)))
    found = _with_metrics(conn, rows)
    return found[0] if found else None


def _device_query(site_id: str, org_id: str | None) -> sa.Select[Any]:
    return sa.select(
        device.c.device_pk,
        device.c.site_id,
        device.c.device_id,
        device.c.name,
        device.c.kind,
        device.c.carrier,
        device.c.role,
        device.c.node_id,
        device.c.org_id,
        device.c.multiplier,
        device.c.counter_modulus,
        device.c.active,
    ).where(device.c.site_id == site_id, org_filter(device.c.org_id, org_id))


def _with_metrics(conn: sa.Connection, rows: Sequence[Any]) -> list[DeviceRow]:
    pks = [r.device_pk for r in rows]
    metrics: dict[int, list[MetricRow]] = {pk: [] for pk in pks}
    if pks:
        query = (
            sa.select(
                device_metric.c.device_pk,
                metric.c.name,
                metric.c.unit,
                device_metric.c.kind,
                device_metric.c.rated_max,
            )
            .join(metric, metric.c.metric_id == device_metric.c.metric_id)
            .where(device_metric.c.device_pk.in_(pks))
            .order_by(device_metric.c.device_pk, metric.c.name)
        )
        for pk, name, unit, kind, rated_max in conn.execute(query):
            metrics[pk].append(MetricRow(name, unit, kind, rated_max))
    return [make_row(DeviceRow, (*r[1:], tuple(metrics[r.device_pk]))) for r in rows]


def organisation_exists(conn: sa.Connection, site_id: str, org_id: str) -> bool:
    query = sa.select(organisation.c.org_id).where(
        organisation.c.site_id == site_id, organisation.c.org_id == org_id
    )
    return conn.execute(query).first() is not None


@dataclass(frozen=True, slots=True)
class SitePlanRow:
    site_id: str
    kind: str
    province: str
    grid_region: str
    timezone: str
    document: Mapping[str, Any]
    document_sha256: str


@dataclass(frozen=True, slots=True)
class DevicePlanRow:
    device_pk: int
    site_id: str
    device_id: str
    carrier: str
    role: str
    node_id: str | None
    org_id: str | None
    multiplier: float
    modulus: float | None
    active: bool
    attributes: Mapping[str, Any]
    metrics: tuple[tuple[int, str, str, str], ...]  # (metric_id, name, kind, unit)


def plan_sites(conn: Conn, site_id: str | None = None) -> list[SitePlanRow]:
    """Every site, or the one asked for (an empty list when it does not exist)."""
    rows = conn.execute(
        "SELECT site_id, kind, province, grid_region, timezone, document, document_sha256 "
        "FROM site WHERE %(site)s::text IS NULL OR site_id = %(site)s ORDER BY site_id",
        {"site": site_id},
    ).fetchall()
    return [SitePlanRow(*r) for r in rows]


def site_version(conn: Conn, site_id: str) -> tuple[str, datetime] | None:
    """(document SHA-256, loaded_at) of a site: the registry loader rewrites the site's devices
    in the same transaction as these two, so together they identify its plan's inputs."""
    row = conn.execute(
        "SELECT document_sha256, loaded_at FROM site WHERE site_id = %s", (site_id,)
    ).fetchone()
    return None if row is None else (str(row[0]), row[1])


def plan_devices(conn: Conn, site_id: str | None = None) -> list[DevicePlanRow]:
    """Every device with its metrics, or those of one site."""
    rows = conn.execute(
        "SELECT d.device_pk, d.site_id, d.device_id, d.carrier, d.role, d.node_id, d.org_id, "
        "d.multiplier, d.counter_modulus, d.active, d.attributes, "
        "m.metric_id, m.name, dm.kind, m.unit "
        "FROM device d LEFT JOIN device_metric dm ON dm.device_pk = d.device_pk "
        "LEFT JOIN metric m ON m.metric_id = dm.metric_id "
        "WHERE %(site)s::text IS NULL OR d.site_id = %(site)s ORDER BY d.device_pk, m.name",
        {"site": site_id},
    ).fetchall()
    heads: dict[int, tuple[Any, ...]] = {}
    metrics: dict[int, list[tuple[int, str, str, str]]] = {}
    for r in rows:
        heads[r[0]] = r[:11]
        if r[11] is not None:
            metrics.setdefault(r[0], []).append((int(r[11]), str(r[12]), str(r[13]), str(r[14])))
    return [
        DevicePlanRow(*head, metrics=tuple(metrics.get(pk, ())))  # type: ignore[misc]
        for pk, head in heads.items()
    ]


def build_plan(
    site: SitePlanRow, devices: Sequence[DevicePlanRow], default_period: timedelta
) -> SitePlan:
    doc, problem = parse_document(site.document)
    plans: list[DevicePlan] = []
    for d in devices:
        product = d.attributes.get("product")
        plans.append(
            DevicePlan(
                device_pk=d.device_pk,
                device_id=d.device_id,
                role=d.role,
                carrier=d.carrier,
                node_id=d.node_id,
                org_id=d.org_id,
                multiplier=d.multiplier,
                modulus=d.modulus,
                active=d.active,
                metrics=tuple(
                    MetricPlan(mid, name, kind, unit) for mid, name, kind, unit in d.metrics
                ),
                product_id=str(product) if product else None,
                report_period=report_period_of(d.attributes, default_period),
            )
        )
    return SitePlan(
        site_id=site.site_id,
        kind=site.kind,
        province=site.province,
        grid_region=site.grid_region,
        timezone=site.timezone,
        devices=tuple(plans),
        document=doc,
        document_error=problem,
    )


def build_plans(
    sites: Sequence[SitePlanRow], devices: Sequence[DevicePlanRow], default_period: timedelta
) -> dict[str, SitePlan]:
    """The plan of every site, by site id, from the rows of :func:`plan_sites` and
    :func:`plan_devices`."""
    by_site: dict[str, list[DevicePlanRow]] = {}
    for d in devices:
        by_site.setdefault(d.site_id, []).append(d)
    return {s.site_id: build_plan(s, by_site.get(s.site_id, []), default_period) for s in sites}


@dataclass(frozen=True, slots=True)
class MetricInfo:
    metric_id: int
    name: str
    unit: str
    kind: str  # counter | interval | gauge


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    device_pk: int
    site_id: str
    device_id: str
    active: bool
    counter_modulus: float | None
    metrics: MappingProxyType[str, MetricInfo]


@dataclass(frozen=True, slots=True)
class RegistrySnapshot:
    sites: frozenset[str]
    devices: MappingProxyType[tuple[str, str], DeviceInfo]
    # device id -> the sites that have a device of that id (for wrong_site)
    device_sites: MappingProxyType[str, tuple[str, ...]]
    by_pk: MappingProxyType[int, DeviceInfo]

    @staticmethod
    def empty() -> RegistrySnapshot:
        return RegistrySnapshot(
            frozenset(), MappingProxyType({}), MappingProxyType({}), MappingProxyType({})
        )


def load_registry(conn: psycopg.Connection[Any]) -> RegistrySnapshot:
    sites = frozenset(r[0] for r in conn.execute("SELECT site_id FROM site"))
    rows = conn.execute(
        """
        SELECT d.device_pk, d.site_id, d.device_id, d.active, d.counter_modulus,
               m.metric_id, m.name, m.unit, dm.kind
        FROM device d
        LEFT JOIN device_metric dm ON dm.device_pk = d.device_pk
        LEFT JOIN metric m ON m.metric_id = dm.metric_id
        ORDER BY d.device_pk
        """
    ).fetchall()
    metrics: dict[int, dict[str, MetricInfo]] = {}
    heads: dict[int, tuple[str, str, bool, float | None]] = {}
    for pk, site_id, device_id, active, modulus, metric_id, name, unit, kind in rows:
        heads[pk] = (site_id, device_id, active, modulus)
        bucket = metrics.setdefault(pk, {})
        if metric_id is not None:
            bucket[name] = MetricInfo(metric_id, name, unit, kind)
    devices: dict[tuple[str, str], DeviceInfo] = {}
    device_sites: dict[str, list[str]] = {}
    for pk, (site_id, device_id, active, modulus) in heads.items():
        info = DeviceInfo(pk, site_id, device_id, active, modulus, MappingProxyType(metrics[pk]))
        devices[(site_id, device_id)] = info
        device_sites.setdefault(device_id, []).append(site_id)
    return RegistrySnapshot(
        sites=sites,
        devices=MappingProxyType(devices),
        device_sites=MappingProxyType({k: tuple(v) for k, v in device_sites.items()}),
        by_pk=MappingProxyType({d.device_pk: d for d in devices.values()}),
    )


@dataclass(frozen=True, slots=True)
class LedgerSite:
    site_id: str
    name: str
    timezone: str
    results_through: datetime | None
    last_received_at: datetime | None


def ledger_site(conn: sa.Connection, site_id: str) -> LedgerSite | None:
    s, st = site, calc_site_state
    row = conn.execute(
        sa.select(s.c.site_id, s.c.name, s.c.timezone, st.c.results_through, st.c.last_received_at)
        .select_from(s.outerjoin(st, st.c.site_id == s.c.site_id))
        .where(s.c.site_id == site_id)
    ).first()
    return None if row is None else LedgerSite(*row)


@dataclass(frozen=True, slots=True)
class LedgerParty:
    """Who a ledger reports for, from the site document: registered name (营业执照; else the
    Chinese, else the English name), unified social credit code and industry."""

    legal_name: str | None = None
    credit_code: str | None = None
    industry: str | None = None
    site_name_zh: str | None = None  # the site's Chinese name, for documents in Chinese


def ledger_party(conn: sa.Connection, site_id: str, org_id: str | None) -> LedgerParty:
    """The organisation ``org_id`` of the site; for the site's own ledger (``None``) the site's
    one organisation (a mine is one), else nobody."""
    # Only the two parts of the document it needs, taken out by the server: the whole document
    # of a 1 000-device site is ≈ 600 kB of JSON to send and parse for a few names.
    row = conn.execute(
        sa.select(site.c.document["site"], site.c.document["organisations"]).where(
            site.c.site_id == site_id
        )
    ).first()
    site_doc, listed = (None, None) if row is None else row
    site_name_zh = site_doc.get("name_zh") if isinstance(site_doc, dict) else None
    orgs = [o for o in (listed or []) if isinstance(o, dict)]
    if org_id is not None:
        orgs = [o for o in orgs if o.get("id") == org_id]
    if len(orgs) != 1:
        return LedgerParty(site_name_zh=site_name_zh)
    org = orgs[0]
    return LedgerParty(
        legal_name=org.get("legal_name") or org.get("name_zh") or org.get("name"),
        credit_code=org.get("credit_code"),
        industry=org.get("industry"),
        site_name_zh=site_name_zh,
    )


def organisation_ids(conn: sa.Connection, site_id: str) -> list[str]:
    query = (
        sa.select(organisation.c.org_id)
        .where(organisation.c.site_id == site_id)
        .order_by(organisation.c.org_id)
    )
    return [str(r[0]) for r in conn.execute(query)]

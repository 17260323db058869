"""The site registry: validated site documents written into the registry tables.

``load_sites`` writes one or more :class:`~carbonflow.domain.site.model.SiteDocument` s in one
transaction, so a failure leaves the registry as it was. Loading is idempotent: a document whose
normalised SHA-256 equals the stored one is not written at all (status ``unchanged``). A changed
document updates its rows; organisations, nodes, edges and products it no longer lists are
deleted; devices it no longer lists are set ``active = false`` and kept, because readings refer
to them. The metrics of every listed device are replaced by the document's. Every write that
changes a site appends a revision of its document (``carbonflow.storage.site_revisions``) with
who, why and the diff, in the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from carbonflow.domain.site.model import Device, SiteDocument, document_json, document_sha256
from carbonflow.domain.units import metric_unit
from carbonflow.storage.db import make_engine
from carbonflow.storage.schema import (
    device,
    device_metric,
    flow_edge,
    metric,
    node,
    organisation,
    product,
    site,
)
from carbonflow.storage.site_revisions import Authorship, append_revision

LoadStatus = Literal["created", "updated", "unchanged"]
Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class LoadReport:
    site_id: str
    status: LoadStatus
    document_sha256: str
    organisations: int
    nodes: int
    edges: int
    products: int
    devices: int  # active devices: those the document lists
    deactivated: tuple[str, ...]  # device ids this load set inactive
    revision: int | None = None  # the revision this load stored (None: unchanged)

    def summary(self) -> str:
        text = (
            f"{self.site_id}: {self.status} ({self.organisations} organisations, {self.nodes} "
            f"nodes, {self.edges} edges, {self.products} products, {self.devices} devices)"
        )
        if self.deactivated:
            text += f"; deactivated: {', '.join(self.deactivated)}"
        return text


@dataclass(frozen=True, slots=True)
class SiteSummary:
    site_id: str
    name: str
    name_zh: str | None
    kind: str
    province: str
    grid_region: str
    document_sha256: str
    loaded_at: datetime
    active_devices: int
    inactive_devices: int


FILE_LOAD = Authorship("carbonflow sites load", "loaded from a site file", "file")


def load_site(
    engine_or_url: sa.Engine | str, doc: SiteDocument, by: Authorship = FILE_LOAD
) -> LoadReport:
    """Write one site document into the registry (one transaction)."""
    return load_sites(engine_or_url, [doc], by)[0]


def load_sites(
    engine_or_url: sa.Engine | str, docs: Sequence[SiteDocument], by: Authorship = FILE_LOAD
) -> list[LoadReport]:
    """Write several site documents in one transaction: all of them, or none on any error."""
    ids = [d.site.id for d in docs]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise ValueError(f"site given more than once: {', '.join(repeated)}")
    with _engine(engine_or_url) as engine, engine.begin() as conn:
        return [write_site(conn, doc, by) for doc in docs]


def list_sites(engine_or_url: sa.Engine | str) -> list[SiteSummary]:
    """Every registered site with its device counts, by site id."""
    active = sa.func.count(device.c.device_pk).filter(device.c.active)
    inactive = sa.func.count(device.c.device_pk).filter(sa.not_(device.c.active))
    query = (
        sa.select(
            site.c.site_id,
            site.c.name,
            site.c.name_zh,
            site.c.kind,
            site.c.province,
            site.c.grid_region,
            site.c.document_sha256,
            site.c.loaded_at,
            active,
            inactive,
        )
        .select_from(site.outerjoin(device, device.c.site_id == site.c.site_id))
        .group_by(site.c.site_id)
        .order_by(site.c.site_id)
    )
    with _engine(engine_or_url) as engine, engine.connect() as conn:
        return [SiteSummary(*row) for row in conn.execute(query)]


@contextmanager
def _engine(engine_or_url: sa.Engine | str) -> Iterator[sa.Engine]:
    if isinstance(engine_or_url, sa.Engine):
        yield engine_or_url
        return
    engine = make_engine(engine_or_url)
    try:
        yield engine
    finally:
        engine.dispose()


def write_site(conn: sa.Connection, doc: SiteDocument, by: Authorship = FILE_LOAD) -> LoadReport:
    """Write one site document in the caller's transaction (the caller commits); a changed
    document is stored as the site's next revision."""
    site_id, sha = doc.site.id, document_sha256(doc)
    stored = conn.execute(
        sa.select(site.c.document_sha256).where(site.c.site_id == site_id).with_for_update()
    ).scalar_one_or_none()

    def report(
        status: LoadStatus, deactivated: tuple[str, ...] = (), number: int | None = None
    ) -> LoadReport:
        return LoadReport(
            site_id=site_id,
            status=status,
            document_sha256=sha,
            organisations=len(doc.organisations),
            nodes=len(doc.nodes),
            edges=len(doc.edges),
            products=len(doc.products),
            devices=len(doc.devices),
            deactivated=deactivated,
            revision=number,
        )

    if stored == sha:
        return report("unchanged")

    info = doc.site
    site_row: Row = {
        "site_id": site_id,
        "name": info.name,
        "name_zh": info.name_zh,
        "kind": info.kind.value,
        "timezone": info.timezone,
        "province": info.province.value,
        "grid_region": info.grid_region.value,
        "latitude_deg": info.latitude_deg,
        "longitude_deg": info.longitude_deg,
        "baseline_year": doc.baseline.year,
        "document": document_json(doc),
        "document_sha256": sha,
    }
    _upsert(conn, site, ("site_id",), [site_row], {"loaded_at": sa.func.now()})

    orgs = [
        {
            "site_id": site_id,
            "org_id": o.id,
            "name": o.name,
            "name_zh": o.name_zh,
            "industry": o.industry,
        }
        for o in doc.organisations
    ]
    nodes = [
        {
            "site_id": site_id,
            "node_id": n.id,
            "name": n.name,
            "name_zh": n.name_zh,
            "kind": n.kind.value,
            "org_id": n.org,
            "production_system": n.production_system,
        }
        for n in doc.nodes
    ]
    edges = [
        {
            "site_id": site_id,
            "source_node": e.source,
            "target_node": e.target,
            "carrier": e.carrier.value,
        }
        for e in doc.edges
    ]
    products = [
        {
            "site_id": site_id,
            "product_id": p.id,
            "name": p.name,
            "name_zh": p.name_zh,
            "unit": p.unit,
            "node_id": p.node,
            "org_id": p.org,
        }
        for p in doc.products
    ]
    # Parents before children on the way in, children before parents on the way out, so that
    # no ON DELETE CASCADE removes a row the document still lists.
    graph = (
        (organisation, ("site_id", "org_id"), orgs),
        (node, ("site_id", "node_id"), nodes),
        (flow_edge, ("site_id", "source_node", "target_node", "carrier"), edges),
        (product, ("site_id", "product_id"), products),
    )
    for table, keys, rows in graph:
        _upsert(conn, table, keys, rows)
    for table, keys, rows in reversed(graph):
        _delete_missing(conn, table, site_id, keys, rows)

    device_pks = _write_devices(conn, site_id, doc.devices)
    deactivated = conn.execute(
        sa.update(device)
        .where(
            device.c.site_id == site_id,
            device.c.active,
            device.c.device_id.not_in([d.id for d in doc.devices]),
        )
        .values(active=False)
        .returning(device.c.device_id)
    ).scalars()
    _write_device_metrics(conn, doc.devices, device_pks)
    number = append_revision(conn, site_id, site_row["document"], sha, by)
    return report("created" if stored is None else "updated", tuple(sorted(deactivated)), number)


def _upsert(
    conn: sa.Connection,
    table: sa.Table,
    keys: Sequence[str],
    rows: Sequence[Row],
    also_set: Mapping[str, Any] | None = None,
) -> None:
    if not rows:
        return
    statement = pg.insert(table).values(list(rows))
    updates = {c: statement.excluded[c] for c in rows[0] if c not in keys} | dict(also_set or {})
    if updates:
        conn.execute(statement.on_conflict_do_update(index_elements=list(keys), set_=updates))
    else:
        conn.execute(statement.on_conflict_do_nothing(index_elements=list(keys)))


def _delete_missing(
    conn: sa.Connection, table: sa.Table, site_id: str, keys: Sequence[str], rows: Sequence[Row]
) -> None:
    """Delete the site's rows of ``table`` whose key is not among ``rows``."""
    key_columns = [table.c[k] for k in keys if k != "site_id"]
    wanted = [tuple(r[k] for k in keys if k != "site_id") for r in rows]
    conn.execute(
        sa.delete(table).where(table.c.site_id == site_id, sa.tuple_(*key_columns).not_in(wanted))
    )


def _write_devices(conn: sa.Connection, site_id: str, devices: Sequence[Device]) -> dict[str, int]:
    """Upsert the devices (active again if they were not); device id → device_pk."""
    if not devices:
        return {}
    rows = [
        {
            "site_id": site_id,
            "device_id": d.id,
            "name": d.name,
            "kind": d.kind.value,
            "carrier": d.carrier.value,
            "role": d.role.value,
            "node_id": d.node,
            "org_id": d.org,
            "multiplier": d.multiplier,
            "counter_modulus": d.counter_modulus,
            "active": True,
            "attributes": _attributes(d),
        }
        for d in devices
    ]
    statement = pg.insert(device).values(rows)
    upsert = statement.on_conflict_do_update(
        constraint="device_site_device_key",
        set_={c: statement.excluded[c] for c in rows[0] if c not in ("site_id", "device_id")},
    ).returning(device.c.device_id, device.c.device_pk)
    return {device_id: pk for device_id, pk in conn.execute(upsert)}


def _attributes(d: Device) -> Row:
    """What the device table has no column for (the full device is in ``site.document``)."""
    extra: Row = {"name_zh": d.name_zh, "product": d.product, "serial": d.serial}
    if d.sim is not None:
        extra["sim"] = d.sim.model_dump(mode="json", exclude_none=True)
    return {k: v for k, v in extra.items() if v is not None}


def _write_device_metrics(
    conn: sa.Connection, devices: Sequence[Device], device_pks: Mapping[str, int]
) -> None:
    """Register new metric names, then replace each listed device's metric rows."""
    names = sorted({name for d in devices for name in d.metrics})
    metric_ids = _metric_ids(conn, names)
    missing = [n for n in names if n not in metric_ids]
    if missing:
        # Only names not yet known are inserted: every INSERT attempt, even one that conflicts,
        # would consume a value of the small metric_id sequence.
        conn.execute(
            pg.insert(metric)
            .values([{"name": n, "unit": metric_unit(n).symbol} for n in missing])
            .on_conflict_do_nothing(index_elements=["name"])
        )
        metric_ids = _metric_ids(conn, names)
    pks = list(device_pks.values())
    if pks:
        conn.execute(sa.delete(device_metric).where(device_metric.c.device_pk.in_(pks)))
    rows = [
        {
            "device_pk": device_pks[d.id],
            "metric_id": metric_ids[name],
            "kind": spec.kind.value,
            "rated_max": spec.rated_max,
        }
        for d in devices
        for name, spec in d.metrics.items()
    ]
    if rows:
        conn.execute(sa.insert(device_metric), rows)


def _metric_ids(conn: sa.Connection, names: Sequence[str]) -> dict[str, int]:
    query = sa.select(metric.c.name, metric.c.metric_id).where(metric.c.name.in_(names))
    return {name: metric_id for name, metric_id in conn.execute(query)}


def stored_documents(engine_or_url: sa.Engine | str) -> dict[str, dict[str, Any]]:
    """The site document stored for each registered site (normalised JSON), by site id."""
    with _engine(engine_or_url) as engine, engine.connect() as conn:
        return {
            site_id: dict(document)
            for site_id, document in conn.execute(sa.select(site.c.site_id, site.c.document))
        }

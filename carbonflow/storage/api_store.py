"""SQL for the API service: registry reads, latest readings, rejected readings, green register.

Every function takes an open connection and returns plain frozen rows; the API turns them into
its response schemas. Scoping is explicit: ``org_id`` not ``None`` restricts a query to one
organisation's rows (an enterprise key), and rows without an organisation are then excluded.
Lists are ordered by their natural key and paged with ``limit`` / ``offset``; callers ask for
one row more than they show to learn whether a next page exists.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from carbonflow.storage.schema import (
    device,
    device_metric,
    green_instrument,
    metric,
    node,
    organisation,
    reading,
    rejected_reading,
    site,
)

_T = TypeVar("_T")


def _make(cls: Callable[..., _T], row: Any) -> _T:
    """A frozen row object from a result row, column by column in declaration order."""
    return cls(*row)


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------


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


def _org_filter(column: sa.ColumnElement[Any], org_id: str | None) -> sa.ColumnElement[bool]:
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
    return [_make(SiteRow, r) for r in conn.execute(query)]


def get_site(conn: sa.Connection, site_id: str, *, org_id: str | None) -> SiteRow | None:
    row = conn.execute(_site_query(org_id).where(site.c.site_id == site_id)).first()
    return None if row is None else _make(SiteRow, row)


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
            .where(table.c.site_id == site.c.site_id, _org_filter(table.c.org_id, org_id), *extra)
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
    return [_make(OrganisationRow, r) for r in conn.execute(query)]


def get_organisation(
    conn: sa.Connection, site_id: str, wanted: str, *, org_id: str | None
) -> OrganisationRow | None:
    query = _organisation_query(site_id, org_id).where(organisation.c.org_id == wanted)
    row = conn.execute(query).first()
    return None if row is None else _make(OrganisationRow, row)


def _organisation_query(site_id: str, org_id: str | None) -> sa.Select[Any]:
    return sa.select(
        organisation.c.site_id,
        organisation.c.org_id,
        organisation.c.name,
        organisation.c.name_zh,
        organisation.c.industry,
    ).where(organisation.c.site_id == site_id, _org_filter(organisation.c.org_id, org_id))


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
    return [_make(NodeRow, r) for r in conn.execute(query)]


def get_node(
    conn: sa.Connection, site_id: str, node_id: str, *, org_id: str | None
) -> NodeRow | None:
    row = conn.execute(_node_query(site_id, org_id).where(node.c.node_id == node_id)).first()
    return None if row is None else _make(NodeRow, row)


def _node_query(site_id: str, org_id: str | None) -> sa.Select[Any]:
    return sa.select(
        node.c.site_id,
        node.c.node_id,
        node.c.name,
        node.c.name_zh,
        node.c.kind,
        node.c.org_id,
        node.c.production_system,
    ).where(node.c.site_id == site_id, _org_filter(node.c.org_id, org_id))


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
    ).where(device.c.site_id == site_id, _org_filter(device.c.org_id, org_id))


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
    return [_make(DeviceRow, (*r[1:], tuple(metrics[r.device_pk]))) for r in rows]


# --------------------------------------------------------------------------------------------
# Live: the latest reading of each device metric
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LatestReadingRow:
    device_id: str
    device_kind: str
    carrier: str
    role: str
    org_id: str | None
    multiplier: float
    metric: str
    unit: str
    metric_kind: str
    ts: datetime | None  # None: the metric never reported
    value: float | None  # as stored: canonical unit, before the multiplier
    received_at: datetime | None


def latest_readings(
    conn: sa.Connection,
    site_id: str,
    *,
    org_id: str | None,
    limit: int,
    offset: int,
    device_id: str | None = None,
    metrics: Sequence[str] | None = None,
    metric_kind: str | None = None,
) -> list[LatestReadingRow]:
    """The newest reading of each (active device, metric) of a site, by device and metric.

    The page of device metrics is chosen first, then one backward index scan of the
    ``reading`` primary key (device_pk, metric_id, ts) per device metric finds its newest row:
    the cost grows with the page, not with the history.
    """
    page = (
        sa.select(
            device.c.device_pk,
            device_metric.c.metric_id,
            device.c.device_id,
            device.c.kind.label("device_kind"),
            device.c.carrier,
            device.c.role,
            device.c.org_id,
            device.c.multiplier,
            metric.c.name.label("metric"),
            metric.c.unit,
            device_metric.c.kind.label("metric_kind"),
        )
        .join(device_metric, device_metric.c.device_pk == device.c.device_pk)
        .join(metric, metric.c.metric_id == device_metric.c.metric_id)
        .where(device.c.site_id == site_id, device.c.active, _org_filter(device.c.org_id, org_id))
    )
    if device_id is not None:
        page = page.where(device.c.device_id == device_id)
    if metrics is not None:
        page = page.where(metric.c.name.in_(list(metrics)))
    if metric_kind is not None:
        page = page.where(device_metric.c.kind == metric_kind)
    chosen = (
        page.order_by(device.c.device_id, metric.c.name).limit(limit).offset(offset).subquery("p")
    )
    newest = (
        sa.select(reading.c.ts, reading.c.value, reading.c.received_at)
        .where(reading.c.device_pk == chosen.c.device_pk, reading.c.metric_id == chosen.c.metric_id)
        .order_by(reading.c.ts.desc())
        .limit(1)
        .lateral("newest")
    )
    query = (
        sa.select(
            chosen.c.device_id,
            chosen.c.device_kind,
            chosen.c.carrier,
            chosen.c.role,
            chosen.c.org_id,
            chosen.c.multiplier,
            chosen.c.metric,
            chosen.c.unit,
            chosen.c.metric_kind,
            newest.c.ts,
            newest.c.value,
            newest.c.received_at,
        )
        .select_from(chosen.outerjoin(newest, sa.true()))
        .order_by(chosen.c.device_id, chosen.c.metric)
    )
    return [_make(LatestReadingRow, r) for r in conn.execute(query)]


# --------------------------------------------------------------------------------------------
# Rejected readings
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RejectionRow:
    rejection_id: int
    received_at: datetime
    last_seen_at: datetime
    reason: str
    detail: str
    topic: str
    site_id: str | None
    device_id: str | None
    metric: str | None
    reading_ts: datetime | None
    value: float | None
    payload_excerpt: str
    payload_bytes: int


@dataclass(frozen=True, slots=True)
class RejectionFilter:
    reason: str | None = None
    device_id: str | None = None
    metric: str | None = None
    since: datetime | None = None  # received_at >= since
    until: datetime | None = None  # received_at < until


def list_rejections(
    conn: sa.Connection,
    site_id: str,
    *,
    limit: int,
    offset: int,
    where: RejectionFilter = RejectionFilter(),
) -> list[RejectionRow]:
    """A site's rejected readings, newest first."""
    r = rejected_reading
    query = sa.select(
        r.c.rejection_id,
        r.c.received_at,
        r.c.last_seen_at,
        r.c.reason,
        r.c.detail,
        r.c.topic,
        r.c.site_id,
        r.c.device_id,
        r.c.metric,
        r.c.reading_ts,
        r.c.value,
        r.c.payload_excerpt,
        r.c.payload_bytes,
    ).where(r.c.site_id == site_id)
    if where.reason is not None:
        query = query.where(r.c.reason == where.reason)
    if where.device_id is not None:
        query = query.where(r.c.device_id == where.device_id)
    if where.metric is not None:
        query = query.where(r.c.metric == where.metric)
    if where.since is not None:
        query = query.where(r.c.received_at >= where.since)
    if where.until is not None:
        query = query.where(r.c.received_at < where.until)
    query = (
        query.order_by(r.c.received_at.desc(), r.c.rejection_id.desc()).limit(limit).offset(offset)
    )
    return [_make(RejectionRow, row) for row in conn.execute(query)]


# --------------------------------------------------------------------------------------------
# Green-power register (table of revision 0002, shared with the calc service)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GreenInstrumentRow:
    site_id: str
    instrument_id: str
    org_id: str | None
    kind: str
    evidence: str
    certificates: int | None
    volume_mwh: float
    valid_from: date
    valid_to: date
    claimed_mwh: float
    claim_start: date
    claim_end: date
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class GreenInstrumentValues:
    """What a client writes; the key (site, instrument id) comes from the path."""

    org_id: str | None
    kind: str
    evidence: str
    certificates: int | None
    volume_mwh: float
    valid_from: date
    valid_to: date
    claimed_mwh: float
    claim_start: date
    claim_end: date


class InstrumentOwnedElsewhere(Exception):  # noqa: N818 - a condition, not a failure
    """The instrument id is registered at the site for another organisation (or the site)."""


_GREEN_COLUMNS = (
    green_instrument.c.site_id,
    green_instrument.c.instrument_id,
    green_instrument.c.org_id,
    green_instrument.c.kind,
    green_instrument.c.evidence,
    green_instrument.c.certificates,
    green_instrument.c.volume_mwh,
    green_instrument.c.valid_from,
    green_instrument.c.valid_to,
    green_instrument.c.claimed_mwh,
    green_instrument.c.claim_start,
    green_instrument.c.claim_end,
    green_instrument.c.created_at,
    green_instrument.c.updated_at,
)


def list_green_instruments(
    conn: sa.Connection,
    site_id: str,
    *,
    org_id: str | None,
    limit: int,
    offset: int,
    kind: str | None = None,
    valid_on: date | None = None,
) -> list[GreenInstrumentRow]:
    g = green_instrument
    query = sa.select(*_GREEN_COLUMNS).where(
        g.c.site_id == site_id, _org_filter(g.c.org_id, org_id)
    )
    if kind is not None:
        query = query.where(g.c.kind == kind)
    if valid_on is not None:
        query = query.where(g.c.valid_from <= valid_on, g.c.valid_to >= valid_on)
    query = query.order_by(g.c.instrument_id).limit(limit).offset(offset)
    return [_make(GreenInstrumentRow, r) for r in conn.execute(query)]


def get_green_instrument(
    conn: sa.Connection, site_id: str, instrument_id: str, *, org_id: str | None
) -> GreenInstrumentRow | None:
    g = green_instrument
    row = conn.execute(
        sa.select(*_GREEN_COLUMNS).where(
            g.c.site_id == site_id,
            g.c.instrument_id == instrument_id,
            _org_filter(g.c.org_id, org_id),
        )
    ).first()
    return None if row is None else _make(GreenInstrumentRow, row)


def organisation_exists(conn: sa.Connection, site_id: str, org_id: str) -> bool:
    query = sa.select(organisation.c.org_id).where(
        organisation.c.site_id == site_id, organisation.c.org_id == org_id
    )
    return conn.execute(query).first() is not None


def put_green_instrument(
    conn: sa.Connection,
    site_id: str,
    instrument_id: str,
    values: GreenInstrumentValues,
    *,
    org_id: str | None,
) -> tuple[GreenInstrumentRow, bool]:
    """Create or replace one register entry; ``(row, created)``. The caller commits.

    With ``org_id`` (an enterprise), an existing entry of another owner is not touched:
    :class:`InstrumentOwnedElsewhere` is raised, so one piece of evidence is claimed once.
    """
    g = green_instrument
    existing = conn.execute(
        sa.select(g.c.org_id)
        .where(g.c.site_id == site_id, g.c.instrument_id == instrument_id)
        .with_for_update()
    ).first()
    if existing is not None and org_id is not None and existing.org_id != org_id:
        raise InstrumentOwnedElsewhere(instrument_id)
    fields = {
        "org_id": values.org_id,
        "kind": values.kind,
        "evidence": values.evidence,
        "certificates": values.certificates,
        "volume_mwh": values.volume_mwh,
        "valid_from": values.valid_from,
        "valid_to": values.valid_to,
        "claimed_mwh": values.claimed_mwh,
        "claim_start": values.claim_start,
        "claim_end": values.claim_end,
    }
    insert = pg.insert(g).values(site_id=site_id, instrument_id=instrument_id, **fields)
    upsert = insert.on_conflict_do_update(
        index_elements=[g.c.site_id, g.c.instrument_id],
        set_={**{k: insert.excluded[k] for k in fields}, "updated_at": sa.func.now()},
    ).returning(*_GREEN_COLUMNS)
    row = conn.execute(upsert).one()
    return _make(GreenInstrumentRow, row), existing is None


def delete_green_instrument(
    conn: sa.Connection, site_id: str, instrument_id: str, *, org_id: str | None
) -> bool:
    """Delete one entry the caller may see; ``False`` when there is none. The caller commits."""
    g = green_instrument
    result = conn.execute(
        sa.delete(g)
        .where(
            g.c.site_id == site_id,
            g.c.instrument_id == instrument_id,
            _org_filter(g.c.org_id, org_id),
        )
        .returning(g.c.instrument_id)
    )
    return result.first() is not None

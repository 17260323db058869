"""Reference data in the database: factor files (versioned), site pins and overrides, and the
green-power register. SQL only; the rules that use these live in ``carbonflow.domain``
(``factors``, ``inventory.site_factors``, ``inventory.green``).

**Versioned factor tables.** Each data file (``carbonflow/domain/factors/*.yaml``, including
``calc_supplement.yaml``, moved there with its name and version unchanged) is stored as one
``factor_file`` row per (file name, version) and its values as ``factor_value`` rows keyed
(file, version, key). :func:`sync_reference_files` is idempotent: a
file whose version is already stored with the same SHA-256 is skipped; a new version is inserted
and the previous one marked ``superseded_at`` (kept: results refer to it by version); the same
version with different content is refused — a changed value needs a new version string.
:func:`library_from_db` rebuilds the :class:`FactorLibrary` of the current versions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from psycopg.types.json import Jsonb
from sqlalchemy.dialects import postgresql as pg

from carbonflow.domain.factors.geography import parse_geography
from carbonflow.domain.factors.library import (
    FACTORS_SCHEMA,
    GEOGRAPHY_SCHEMA,
    TARGETS_SCHEMA,
    CarrierCoefficients,
    Confidence,
    FactorError,
    FactorFile,
    FactorLibrary,
    FactorValue,
    PinnedFactor,
    SiteOverride,
    Source,
    load_library,
    read_yaml,
    unique_paths,
)
from carbonflow.domain.factors.targets import TargetSet, parse_targets
from carbonflow.domain.inventory.green import RegisterEntry
from carbonflow.storage.db import Conn, make_row
from carbonflow.storage.registry import org_filter
from carbonflow.storage.schema import (
    green_claim,
    green_instrument,
)


class ReferenceDataError(ValueError):
    """A data file changed without a new version, or the stored reference data is incomplete."""


@dataclass(frozen=True, slots=True)
class FileSync:
    file_name: str
    version: str
    status: str  # inserted | unchanged
    factors: int


def _jsonable(value: Any) -> Any:
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def sync_reference_files(conn: Conn, paths: Sequence[Path]) -> list[FileSync]:
    """Store every file of ``paths`` not yet stored at its version (one transaction, caller's).

    The files are validated first by loading them as a library (duplicate keys across files,
    unknown sources and bad fields raise :class:`FactorError` before anything is written).
    """
    paths = unique_paths(paths)
    library = load_library(paths)
    by_name = {f.name: f for f in library.files}
    out: list[FileSync] = []
    for path in paths:
        schema, doc = read_yaml(path)
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        version = str(doc.get("version", ""))
        if not version:
            raise ReferenceDataError(f"{path.name}: no version")
        stored = conn.execute(
            "SELECT sha256 FROM factor_file WHERE file_name = %s AND version = %s",
            (path.name, version),
        ).fetchone()
        if stored is not None:
            if stored[0] != sha:
                raise ReferenceDataError(
                    f"{path.name} version {version!r} is stored with other content "
                    f"(sha256 {stored[0][:12]}…, file {sha[:12]}…): give the changed file a "
                    "new version string"
                )
            out.append(FileSync(path.name, version, "unchanged", 0))
            continue
        conn.execute(
            "UPDATE factor_file SET superseded_at = now() "
            "WHERE file_name = %s AND superseded_at IS NULL",
            (path.name,),
        )
        conn.execute(
            "INSERT INTO factor_file (file_name, version, schema, title, sha256, document) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            (path.name, version, schema, str(doc.get("title", "")), sha, Jsonb(_jsonable(doc))),
        )
        count = 0
        if schema == FACTORS_SCHEMA:
            factor_file = by_name[path.name]
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO factor_value (file_name, version, factor_key, value, unit, "
                    "confidence, data_year, valid_from, valid_to, source_id, source, note, tags) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    [
                        (
                            path.name,
                            version,
                            f.key,
                            f.value,
                            f.unit,
                            str(f.confidence),
                            f.data_year,
                            f.valid_from,
                            f.valid_to,
                            f.source_id,
                            f.source,
                            f.note,
                            Jsonb(dict(f.tags)),
                        )
                        for f in factor_file.factors
                    ],
                )
            count = len(factor_file.factors)
        out.append(FileSync(path.name, version, "inserted", count))
    return out


def current_versions(conn: Conn) -> dict[str, str]:
    """file name → version in use."""
    rows = conn.execute(
        "SELECT file_name, version FROM factor_file WHERE superseded_at IS NULL"
    ).fetchall()
    return {str(name): str(version) for name, version in rows}


def library_from_db(conn: Conn) -> FactorLibrary:
    """The factor library of the current version of every stored factor file."""
    files = conn.execute(
        "SELECT file_name, version, schema, title, document FROM factor_file "
        "WHERE superseded_at IS NULL ORDER BY file_name"
    ).fetchall()
    if not files:
        raise ReferenceDataError("no reference data stored: run the calc service's sync first")
    rows = conn.execute(
        "SELECT v.file_name, v.factor_key, v.value, v.unit, v.confidence, v.data_year, "
        "v.valid_from, v.valid_to, v.source_id, v.source, v.note, v.tags, v.version "
        "FROM factor_value v JOIN factor_file f USING (file_name, version) "
        "WHERE f.superseded_at IS NULL ORDER BY v.file_name, v.factor_key"
    ).fetchall()
    values: dict[str, list[FactorValue]] = {}
    for name, key, value, unit, conf, year, vf, vt, sid, source, note, tags, version in rows:
        values.setdefault(str(name), []).append(
            FactorValue(
                key=str(key),
                value=float(value),
                unit=str(unit),
                source=str(source),
                confidence=Confidence(str(conf)),
                version=str(version),
                file=str(name),
                valid_from=vf,
                valid_to=vt,
                data_year=year,
                note=str(note),
                source_id=str(sid),
                tags=tuple((str(k), str(v)) for k, v in dict(tags).items()),
            )
        )
    factor_files: list[FactorFile] = []
    carriers: dict[str, CarrierCoefficients] = {}
    geography = None
    for name, version, schema, title, doc in files:
        if schema == FACTORS_SCHEMA:
            sources = tuple(
                Source(str(sid), str(s["document"]), str(s["read_in"]))
                for sid, s in dict(doc.get("sources") or {}).items()
            )
            factor_files.append(
                FactorFile(
                    str(name), str(version), str(title), sources, tuple(values.get(name, ()))
                )
            )
            for carrier, spec in dict(doc.get("carriers") or {}).items():
                carriers[str(carrier)] = CarrierCoefficients(
                    str(carrier),
                    str(spec["default"]),
                    tuple((str(k), str(v)) for k, v in dict(spec.get("variants") or {}).items()),
                )
        elif schema == GEOGRAPHY_SCHEMA:
            geography = parse_geography(str(name), doc)
    if geography is None:
        raise ReferenceDataError("no geography file stored (schema carbonflow-geography/1)")
    return FactorLibrary(files=tuple(factor_files), geography=geography, carriers=carriers)


def targets_from_db(conn: Conn) -> TargetSet:
    row = conn.execute(
        "SELECT file_name, document FROM factor_file "
        "WHERE schema = %s AND superseded_at IS NULL ORDER BY file_name LIMIT 1",
        (TARGETS_SCHEMA,),
    ).fetchone()
    if row is None:
        raise ReferenceDataError("no targets file stored (schema carbonflow-targets/1)")
    return parse_targets(str(row[0]), row[1])


# --- pins and overrides ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredPin:
    site_id: str
    purpose: str
    pin: PinnedFactor | SiteOverride


def set_pin(conn: Conn, site_id: str, purpose: str, pin: PinnedFactor | SiteOverride) -> None:
    """Pin a library key or override a factor for one purpose of a site (replaces any other)."""
    if isinstance(pin, PinnedFactor):
        params: tuple[Any, ...] = (
            site_id, purpose, "pin", pin.key, None, None, None, None, None, pin.reason, None, None,
        )  # fmt: skip
    else:
        params = (
            site_id, purpose, "override", pin.key, pin.value, pin.unit, pin.source,
            str(pin.confidence), pin.version, pin.reason or "site override", pin.valid_from,
            pin.valid_to,
        )  # fmt: skip
    conn.execute(
        "INSERT INTO factor_pin (site_id, purpose, kind, factor_key, value, unit, source, "
        "confidence, version, reason, valid_from, valid_to) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (site_id, purpose) DO UPDATE SET kind = excluded.kind, "
        "factor_key = excluded.factor_key, value = excluded.value, unit = excluded.unit, "
        "source = excluded.source, confidence = excluded.confidence, "
        "version = excluded.version, reason = excluded.reason, "
        "valid_from = excluded.valid_from, valid_to = excluded.valid_to, created_at = now()",
        params,
    )


def delete_pin(conn: Conn, site_id: str, purpose: str) -> bool:
    cur = conn.execute(
        "DELETE FROM factor_pin WHERE site_id = %s AND purpose = %s", (site_id, purpose)
    )
    return cur.rowcount > 0


def site_pins(conn: Conn, site_id: str) -> dict[str, PinnedFactor | SiteOverride]:
    """purpose → pin or override of one site."""
    rows = conn.execute(
        "SELECT purpose, kind, factor_key, value, unit, source, confidence, version, reason, "
        "valid_from, valid_to FROM factor_pin WHERE site_id = %s ORDER BY purpose",
        (site_id,),
    ).fetchall()
    out: dict[str, PinnedFactor | SiteOverride] = {}
    for purpose, kind, key, value, unit, source, conf, version, reason, vf, vt in rows:
        if kind == "pin":
            out[str(purpose)] = PinnedFactor(str(key), str(reason))
        else:
            out[str(purpose)] = SiteOverride(
                key=str(key),
                value=float(value),
                unit=str(unit),
                source=str(source),
                confidence=Confidence(str(conf)),
                version=str(version),
                reason=str(reason),
                valid_from=vf,
                valid_to=vt,
            )
    return out


# --- green-power register --------------------------------------------------------------------


def upsert_green_instrument(
    conn: Conn, site_id: str, entry: RegisterEntry, org_id: str | None = None
) -> None:
    """Register or replace one instrument of the site (``org_id``: its holder, if not the site)."""
    conn.execute(
        "INSERT INTO green_instrument (site_id, instrument_id, org_id, kind, evidence, "
        "certificates, volume_mwh, valid_from, valid_to, claimed_mwh, claim_start, claim_end) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (site_id, instrument_id) DO UPDATE SET org_id = excluded.org_id, "
        "kind = excluded.kind, evidence = excluded.evidence, "
        "certificates = excluded.certificates, volume_mwh = excluded.volume_mwh, "
        "valid_from = excluded.valid_from, valid_to = excluded.valid_to, "
        "claimed_mwh = excluded.claimed_mwh, claim_start = excluded.claim_start, "
        "claim_end = excluded.claim_end, updated_at = now()",
        (
            site_id, entry.instrument_id, org_id, entry.kind, entry.evidence, entry.certificates,
            entry.volume_mwh, entry.valid_from, entry.valid_to, entry.claimed_mwh,
            entry.claim_start, entry.claim_end,
        ),
    )  # fmt: skip


def green_instruments(conn: Conn, site_id: str) -> list[RegisterEntry]:
    """The site's green-power register as the calc applies it, in claim order (the order the
    pool offers them): every legacy period entry (no production month, not cancelled), and each
    active claim of a register batch as one entry of its own, for its month and holder only
    (``<instrument id>/claim-<claim id>``)."""
    rows = conn.execute(
        "SELECT instrument_id, kind, evidence, volume_mwh, valid_from, valid_to, "
        "claimed_mwh, claim_start, claim_end, certificates, org_id FROM green_instrument "
        "WHERE site_id = %s AND production_month IS NULL AND cancelled_at IS NULL "
        "UNION ALL "
        "SELECT g.instrument_id || '/claim-' || c.claim_id, g.kind, "
        "g.evidence || coalesce(' sha256:' || g.evidence_sha256, ''), c.mwh, c.month, "
        "(c.month + interval '1 month' - interval '1 day')::date, c.mwh, c.month, "
        "(c.month + interval '1 month' - interval '1 day')::date, "
        "CASE WHEN g.kind = 'certificate' THEN round(c.mwh)::int END, c.org_id "
        "FROM green_claim c JOIN green_instrument g "
        "ON g.site_id = c.site_id AND g.instrument_id = c.instrument_id "
        "WHERE c.site_id = %s AND c.withdrawn_at IS NULL "
        "ORDER BY 8, 1",
        (site_id, site_id),
    ).fetchall()
    return [RegisterEntry(*row) for row in rows]


__all__ = [
    "FactorError",
    "FileSync",
    "ReferenceDataError",
    "StoredPin",
    "current_versions",
    "delete_pin",
    "green_instruments",
    "library_from_db",
    "set_pin",
    "site_pins",
    "sync_reference_files",
    "targets_from_db",
    "upsert_green_instrument",
]


@dataclass(frozen=True, slots=True)
class FactorValueRow:
    file_name: str
    version: str
    factor_key: str
    value: float
    unit: str
    confidence: str
    data_year: int | None
    valid_from: date | None
    valid_to: date | None
    source_id: str
    source: str
    note: str
    superseded_at: datetime | None


@dataclass(frozen=True, slots=True)
class FactorFilter:
    key_prefix: str | None = None
    file_name: str | None = None
    version: str | None = None
    confidence: str | None = None
    current_only: bool = True


def list_factor_values(
    conn: sa.Connection, *, where: FactorFilter, limit: int, offset: int
) -> list[FactorValueRow]:
    """The factor library (every stored file version), by key, file and version."""
    rows = conn.execute(
        sa.text(
            "SELECT v.file_name, v.version, v.factor_key, v.value, v.unit, v.confidence, "
            "v.data_year, v.valid_from, v.valid_to, v.source_id, v.source, v.note, "
            "f.superseded_at FROM factor_value v JOIN factor_file f "
            "ON f.file_name = v.file_name AND f.version = v.version "
            "WHERE (CAST(:k AS text) IS NULL OR starts_with(v.factor_key, :k)) "
            "AND (CAST(:fn AS text) IS NULL OR v.file_name = :fn) "
            "AND (CAST(:ver AS text) IS NULL OR v.version = :ver) "
            "AND (CAST(:c AS text) IS NULL OR v.confidence = :c) "
            "AND (NOT CAST(:cur AS boolean) OR f.superseded_at IS NULL) "
            "ORDER BY v.factor_key, v.file_name, v.version LIMIT :n OFFSET :off"
        ),
        {
            "k": where.key_prefix,
            "fn": where.file_name,
            "ver": where.version,
            "c": where.confidence,
            "cur": where.current_only,
            "n": limit,
            "off": offset,
        },
    )
    return [FactorValueRow(*r) for r in rows]


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
    serial_first: int | None = None
    serial_last: int | None = None
    production_month: date | None = None
    source_project: str | None = None
    tradable: bool | None = None
    evidence_sha256: str | None = None
    cancelled_at: datetime | None = None


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
    serial_first: int | None = None  # certificate serial range, inclusive
    serial_last: int | None = None
    production_month: date | None = None  # a register batch (first day of the month)
    source_project: str | None = None
    tradable: bool | None = None
    evidence_sha256: str | None = None


class InstrumentOwnedElsewhere(Exception):  # noqa: N818 - a condition, not a failure
    """The instrument id is registered at the site for another organisation (or the site)."""


class BatchLocked(Exception):  # noqa: N818 - a condition, not a failure
    """The batch is cancelled (final) or has active claims: it cannot be replaced or removed."""


class SerialRangeTaken(Exception):  # noqa: N818 - a condition, not a failure
    """Serials of the batch overlap a batch registered elsewhere on the platform."""

    def __init__(self, site_id: str, instrument_id: str, serial_first: int, serial_last: int):
        super().__init__(site_id, instrument_id, serial_first, serial_last)
        self.site_id = site_id
        self.instrument_id = instrument_id
        self.serial_first = serial_first
        self.serial_last = serial_last

    def __str__(self) -> str:
        return (
            f"serials {self.serial_first}–{self.serial_last} are registered as instrument "
            f"{self.instrument_id!r} at site {self.site_id!r}"
        )


# One lock for the whole register: serial ranges are unique across sites and organisations.
_SERIAL_LOCK = "carbonflow.green_instrument.serials"


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
    green_instrument.c.serial_first,
    green_instrument.c.serial_last,
    green_instrument.c.production_month,
    green_instrument.c.source_project,
    green_instrument.c.tradable,
    green_instrument.c.evidence_sha256,
    green_instrument.c.cancelled_at,
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
    query = sa.select(*_GREEN_COLUMNS).where(g.c.site_id == site_id, org_filter(g.c.org_id, org_id))
    if kind is not None:
        query = query.where(g.c.kind == kind)
    if valid_on is not None:
        query = query.where(g.c.valid_from <= valid_on, g.c.valid_to >= valid_on)
    query = query.order_by(g.c.instrument_id).limit(limit).offset(offset)
    return [make_row(GreenInstrumentRow, r) for r in conn.execute(query)]


def get_green_instrument(
    conn: sa.Connection, site_id: str, instrument_id: str, *, org_id: str | None
) -> GreenInstrumentRow | None:
    g = green_instrument
    row = conn.execute(
        sa.select(*_GREEN_COLUMNS).where(
            g.c.site_id == site_id,
            g.c.instrument_id == instrument_id,
            org_filter(g.c.org_id, org_id),
        )
    ).first()
    return None if row is None else make_row(GreenInstrumentRow, row)


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
    if existing is not None and _locked(conn, site_id, instrument_id):
        raise BatchLocked(instrument_id)
    if values.serial_first is not None and values.serial_last is not None:
        _check_serials(conn, site_id, instrument_id, values.serial_first, values.serial_last)
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
        "serial_first": values.serial_first,
        "serial_last": values.serial_last,
        "production_month": values.production_month,
        "source_project": values.source_project,
        "tradable": values.tradable,
        "evidence_sha256": values.evidence_sha256,
    }
    insert = pg.insert(g).values(site_id=site_id, instrument_id=instrument_id, **fields)
    upsert = insert.on_conflict_do_update(
        index_elements=[g.c.site_id, g.c.instrument_id],
        set_={**{k: insert.excluded[k] for k in fields}, "updated_at": sa.func.now()},
    ).returning(*_GREEN_COLUMNS)
    row = conn.execute(upsert).one()
    return make_row(GreenInstrumentRow, row), existing is None


def _check_serials(
    conn: sa.Connection, site_id: str, instrument_id: str, first: int, last: int
) -> None:
    """Raise :class:`SerialRangeTaken` when [first, last] overlaps a batch of any other entry
    (any site, any organisation). Serialised by a transaction-level advisory lock, so two
    concurrent registrations of overlapping batches cannot both pass; it is held to commit."""
    g = green_instrument
    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext(_SERIAL_LOCK))))
    clash = conn.execute(
        sa.select(g.c.site_id, g.c.instrument_id, g.c.serial_first, g.c.serial_last)
        .where(
            g.c.serial_first <= last,
            g.c.serial_last >= first,
            sa.not_(sa.and_(g.c.site_id == site_id, g.c.instrument_id == instrument_id)),
        )
        .order_by(g.c.serial_first, g.c.site_id, g.c.instrument_id)
        .limit(1)
    ).first()
    if clash is not None:
        raise SerialRangeTaken(*clash)


def _locked(conn: sa.Connection, site_id: str, instrument_id: str) -> bool:
    """Cancelled (final), or with an active claim."""
    g, c = green_instrument, green_claim
    cancelled = sa.select(g.c.instrument_id).where(
        g.c.site_id == site_id, g.c.instrument_id == instrument_id, g.c.cancelled_at.is_not(None)
    )
    claimed = sa.select(c.c.claim_id).where(
        c.c.site_id == site_id, c.c.instrument_id == instrument_id, c.c.withdrawn_at.is_(None)
    )
    return bool(conn.execute(sa.select(sa.or_(sa.exists(cancelled), sa.exists(claimed)))).scalar())


def delete_green_instrument(
    conn: sa.Connection, site_id: str, instrument_id: str, *, org_id: str | None
) -> bool:
    """Delete one entry the caller may see; ``False`` when there is none. The caller commits.
    A cancelled batch or one with active claims raises :class:`BatchLocked`."""
    g = green_instrument
    visible = conn.execute(
        sa.select(g.c.instrument_id).where(
            g.c.site_id == site_id,
            g.c.instrument_id == instrument_id,
            org_filter(g.c.org_id, org_id),
        )
    ).first()
    if visible is None:
        return False
    if _locked(conn, site_id, instrument_id):
        raise BatchLocked(instrument_id)
    result = conn.execute(
        sa.delete(g)
        .where(
            g.c.site_id == site_id,
            g.c.instrument_id == instrument_id,
            org_filter(g.c.org_id, org_id),
        )
        .returning(g.c.instrument_id)
    )
    return result.first() is not None

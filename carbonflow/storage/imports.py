"""History and manual import of readings (数据补录): a CSV or XLSX file → checked rows → readings.

One import is one ``reading_import`` row (who, why, the file's SHA-256) and, for every reading it
stored, one ``reading_origin`` row naming it (a reading without one came over MQTT). Rows are
checked as MQTT readings are (:mod:`carbonflow.domain.readings.import_rows`, same reasons) and
stored through ingest's :class:`~carbonflow.storage.readings.BatchStore`, in chunks: a reading
already stored with the same value is unchanged, one stored with another value is quarantined
as ``duplicate_conflict`` naming both values (the stored one is kept), and every stored reading
marks its hour dirty, so the calc service recomputes. Uploading the same file again is the same
import: nothing changes. A dry run stores nothing and reports what an import would do.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from itertools import islice
from typing import Any, Literal
from zoneinfo import ZoneInfo

import psycopg

from carbonflow.domain.readings.contract import Reason
from carbonflow.domain.readings.import_rows import (
    Checks,
    HeaderError,
    KnownDevice,
    KnownMetric,
    Reading,
    RowProblem,
    check_rows,
    column_positions,
)
from carbonflow.storage.db import connect
from carbonflow.storage.readings import BatchStore, ReadingRow, RejectionRow
from carbonflow.storage.registry import load_registry

CHUNK_ROWS = 5000
PROBLEMS_LISTED = 100  # rows with a problem named in the report; all are counted
Key = tuple[int, int, datetime]
Source = Literal["import", "manual"]


@dataclass(frozen=True, slots=True)
class ImportRequest:
    site_id: str
    filename: str
    data: bytes
    author: str
    reason: str
    source: Source = "import"
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class Policy:
    now: datetime
    future_skew: timedelta
    retention: timedelta


@dataclass(frozen=True, slots=True)
class ClosedLedger:
    org_id: str  # '' for the site's own ledger
    month: date
    revision: int


@dataclass
class ImportReport:
    site_id: str
    filename: str
    file_sha256: str
    dry_run: bool
    import_id: int | None = None
    already_imported: bool = False  # the same file was imported before: nothing was done
    rows_read: int = 0
    stored: int = 0  # (dry run: would be stored)
    unchanged: int = 0  # stored before with the same value
    conflicts: int = 0  # stored before with another value: quarantined, the stored one kept
    rejected: Counter[str] = field(default_factory=Counter)  # reason → rows
    problems: list[RowProblem] = field(default_factory=list)  # the first PROBLEMS_LISTED
    hours_to_recompute: int = 0
    closed_ledgers: list[ClosedLedger] = field(default_factory=list)

    @property
    def rows_rejected(self) -> int:
        return sum(self.rejected.values()) + self.conflicts


class ImportFileError(ValueError):
    """The file cannot be read as a table of readings (format, encoding, header)."""


def table_rows(filename: str, data: bytes) -> Iterator[Sequence[object]]:
    """The rows of a CSV (UTF-8, with or without BOM) or XLSX file (first sheet), header first."""
    if filename.lower().endswith(".xlsx"):
        return _xlsx_rows(data)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportFileError(
            f"the CSV is not UTF-8 ({exc.reason}) / CSV 须为 UTF-8 编码"
        ) from None
    return iter(csv.reader(io.StringIO(text, newline="")))


def _xlsx_rows(data: bytes) -> Iterator[Sequence[object]]:
    import zipfile

    from openpyxl import load_workbook  # type: ignore[import-untyped]

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise ImportFileError(f"not an XLSX workbook: {exc} / 不是有效的 XLSX 文件") from None
    sheet = book.worksheets[0]
    return (row for row in sheet.iter_rows(values_only=True) if any(c is not None for c in row))


def run_import(
    url: str, request: ImportRequest, policy: Policy, progress: Callable[[int], None] | None = None
) -> ImportReport:
    """Check and (unless a dry run) store the file's readings; ``progress(rows read so far)``."""
    report = ImportReport(
        request.site_id, request.filename, hashlib.sha256(request.data).hexdigest(), request.dry_run
    )
    rows = table_rows(request.filename, request.data)
    try:
        columns = column_positions(next(rows))
    except StopIteration:
        raise ImportFileError("the file is empty / 文件为空") from None
    except HeaderError as exc:
        raise ImportFileError(str(exc)) from None
    with connect(url) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        checks = Checks(
            _site_devices(conn, request.site_id), policy.now, policy.future_skew, policy.retention
        )
        timezone = _site_timezone(conn, request.site_id)
        if not request.dry_run:
            found = _begin(conn, request, report.file_sha256)
            report.import_id, report.already_imported = found
            if report.already_imported:
                return _finished(conn, report)
        store = None if request.dry_run else BatchStore(url)
        try:
            months = _run_chunks(conn, store, rows, columns, checks, report, progress)
        finally:
            if store is not None:
                store.close()
        report.closed_ledgers = _closed_ledgers(conn, request.site_id, months, timezone)
        if report.import_id is not None:
            _finish(conn, report)
    return report


def _run_chunks(
    conn: psycopg.Connection[Any],
    store: BatchStore | None,
    rows: Iterator[Sequence[object]],
    columns: dict[str, int],
    checks: Checks,
    report: ImportReport,
    progress: Callable[[int], None] | None,
) -> set[datetime]:
    """Every chunk checked and stored; the UTC times of the readings stored (or to be)."""
    seen: dict[Key, float] = {}
    changed: set[datetime] = set()
    hours: set[tuple[int, datetime]] = set()
    line = 2
    while chunk := list(islice(rows, CHUNK_ROWS)):
        results = list(check_rows(chunk, columns, checks, first_line=line))
        line += len(chunk)
        report.rows_read += len(chunk)
        readings = _problems_out(results, report)
        fresh = _first_of_each_key(readings, seen, report)
        stored_before = existing_values(conn, [(r.device_pk, r.metric_id, r.ts) for r in fresh])
        conn.rollback()
        new = [r for r in fresh if (r.device_pk, r.metric_id, r.ts) not in stored_before]
        same = sum(1 for r in fresh if stored_before.get(_key(r)) == r.value)
        if store is None:
            report.stored += len(new)
            report.unchanged += same
            report.conflicts += len(fresh) - len(new) - same
        else:
            _store(store, fresh, stored_before, report)
        changed.update(r.ts for r in new)
        hours.update((r.device_pk, r.ts.replace(minute=0, second=0, microsecond=0)) for r in new)
        if progress is not None:
            progress(report.rows_read)
    report.hours_to_recompute = len(hours)
    return changed


def _key(r: Reading) -> Key:
    return (r.device_pk, r.metric_id, r.ts)


def _problems_out(results: Iterable[Reading | RowProblem], report: ImportReport) -> list[Reading]:
    readings: list[Reading] = []
    for result in results:
        if isinstance(result, Reading):
            readings.append(result)
            continue
        report.rejected[result.reason.value] += 1
        if len(report.problems) < PROBLEMS_LISTED:
            report.problems.append(result)
    return readings


def _first_of_each_key(
    readings: list[Reading], seen: dict[Key, float], report: ImportReport
) -> list[Reading]:
    """The first row of each (device, metric, time) in the file; a repeat with the same value
    is unchanged, one with another value a duplicate conflict within the file."""
    out: list[Reading] = []
    for r in readings:
        first = seen.get(_key(r))
        if first is None:
            seen[_key(r)] = r.value
            out.append(r)
        elif first == r.value:
            report.unchanged += 1
        else:
            report.rejected[Reason.DUPLICATE_CONFLICT.value] += 1
            if len(report.problems) < PROBLEMS_LISTED:
                report.problems.append(
                    RowProblem(
                        r.line,
                        Reason.DUPLICATE_CONFLICT,
                        f"the file gives {first!r} for this reading on an earlier line and "
                        f"{r.value!r} here; the first is kept",
                        ts=r.ts,
                        value=r.value,
                    )
                )
    return out


def _store(
    store: BatchStore, fresh: list[Reading], stored_before: dict[Key, float], report: ImportReport
) -> None:
    assert report.import_id is not None
    received_at = datetime.now().astimezone()
    rows: list[ReadingRow] = [
        (r.device_pk, r.metric_id, r.ts, r.value, None, received_at) for r in fresh
    ]
    topic = f"import/{report.import_id}"

    def conflicts(found: list[ReadingRow]) -> list[RejectionRow]:
        report.conflicts += len(found)
        out = []
        for device_pk, metric_id, ts, value, _seq, at in found:
            before = stored_before.get((device_pk, metric_id, ts))
            shown = "another value" if before is None else repr(before)
            excerpt = f"{report.filename}: device_pk={device_pk} metric_id={metric_id} {value!r}"
            out.append(
                RejectionRow(
                    received_at=at,
                    reason=Reason.DUPLICATE_CONFLICT.value,
                    detail=f"reading at {ts.isoformat()} is stored as {shown}; import "
                    f"{report.import_id} gives {value!r}; the stored value is kept",
                    topic=topic,
                    site_id=report.site_id,
                    device_id=None,
                    metric=None,
                    reading_ts=ts,
                    value=value,
                    payload_excerpt=excerpt,
                    payload_bytes=len(excerpt.encode()),
                    payload_sha256=hashlib.sha256(excerpt.encode()).hexdigest(),
                )
            )
        return out

    result = store.store(rows, [], [], conflict_rejections=conflicts, import_id=report.import_id)
    report.stored += result.inserted
    report.unchanged += result.staged - result.inserted - len(result.conflicts)


def existing_values(conn: psycopg.Connection[Any], keys: Sequence[Key]) -> dict[Key, float]:
    """The stored value of each (device_pk, metric_id, ts) that has one."""
    if not keys:
        return {}
    rows = conn.execute(
        """
        SELECT r.device_pk, r.metric_id, r.ts, r.value
        FROM unnest(%s::int[], %s::int2[], %s::timestamptz[]) AS k(device_pk, metric_id, ts)
        JOIN reading r USING (device_pk, metric_id, ts)
        """,
        ([k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys]),
    ).fetchall()
    return {(pk, mid, ts): value for pk, mid, ts, value in rows}


def _site_devices(conn: psycopg.Connection[Any], site_id: str) -> dict[str, KnownDevice]:
    snapshot = load_registry(conn)
    conn.rollback()
    if site_id not in snapshot.sites:
        raise ImportFileError(f"site {site_id!r} is not registered")
    return {
        device_id: KnownDevice(
            info.device_pk,
            info.active,
            {n: KnownMetric(m.metric_id, m.unit, m.kind) for n, m in info.metrics.items()},
        )
        for (site, device_id), info in snapshot.devices.items()
        if site == site_id
    }


def _site_timezone(conn: psycopg.Connection[Any], site_id: str) -> ZoneInfo:
    row = conn.execute("SELECT timezone FROM site WHERE site_id = %s", (site_id,)).fetchone()
    conn.rollback()
    return ZoneInfo(row[0] if row else "UTC")


def _begin(conn: psycopg.Connection[Any], request: ImportRequest, sha: str) -> tuple[int, bool]:
    """The import's id, and whether the same file was imported to the end before."""
    row = conn.execute(
        """
        INSERT INTO reading_import (site_id, source, filename, file_sha256, author, reason)
        VALUES (%s, %s, %s, %s, %s, %s)
        ON CONFLICT (site_id, file_sha256) DO UPDATE SET file_sha256 = excluded.file_sha256
        RETURNING import_id, finished_at IS NOT NULL
        """,
        (request.site_id, request.source, request.filename, sha, request.author, request.reason),
    ).fetchone()
    conn.commit()
    assert row is not None
    return int(row[0]), bool(row[1])


def _finish(conn: psycopg.Connection[Any], report: ImportReport) -> None:
    conn.execute(
        """
        UPDATE reading_import SET rows_read = %s, rows_stored = rows_stored + %s,
            rows_unchanged = %s, rows_rejected = %s, finished_at = now()
        WHERE import_id = %s
        """,
        (report.rows_read, report.stored, report.unchanged, report.rows_rejected, report.import_id),
    )
    conn.commit()


def _finished(conn: psycopg.Connection[Any], report: ImportReport) -> ImportReport:
    row = conn.execute(
        "SELECT rows_read, rows_stored, rows_unchanged, rows_rejected FROM reading_import "
        "WHERE import_id = %s",
        (report.import_id,),
    ).fetchone()
    conn.rollback()
    if row is not None:
        report.rows_read = int(row[0])
        report.unchanged = int(row[1]) + int(row[2])  # everything it holds is stored already
    return report


def _closed_ledgers(
    conn: psycopg.Connection[Any], site_id: str, times: set[datetime], timezone: ZoneInfo
) -> list[ClosedLedger]:
    """The closed ledgers (newest revision) of the site-local months these readings fall in:
    they will differ once recomputed, and are flagged for a revision, never altered."""
    months = sorted({t.astimezone(timezone).date().replace(day=1) for t in times})
    if not months:
        return []
    rows = conn.execute(
        """
        SELECT org_id, month, max(revision) FROM ledger_revision
        WHERE site_id = %s AND month = ANY(%s::date[])
        GROUP BY org_id, month ORDER BY month, org_id
        """,
        (site_id, months),
    ).fetchall()
    conn.rollback()
    return [ClosedLedger(str(o), m, int(n)) for o, m, n in rows]

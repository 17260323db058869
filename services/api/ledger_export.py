"""A ledger document (``carbonflow/domain/ledger/document.py``) as JSON, CSV or XLSX bytes, and a
ZIP of many.

- JSON: the canonical bytes (what a closed revision stores and serves, byte for byte).
- CSV: one file, one table: a ``section`` column, then the union of every section's columns,
  units in the header cells (``tco2e [tCO2e]``); the header and quality sections are
  ``field``/``value`` rows. Empty cell = no value (null).
- XLSX (openpyxl): one sheet per section, units in the header cells, numbers as numbers.

Every output is a function of the document only (the workbook's dates are the document's
``generated_at``, ZIP entries carry a fixed time), so a closed revision has one byte sequence per
format and a strong ETag.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from openpyxl import Workbook  # type: ignore[import-untyped]
from openpyxl.writer.excel import ExcelWriter  # type: ignore[import-untyped]

from carbonflow.domain.ledger.document import COLUMNS, Column, canonical_json

JSON_MEDIA_TYPE = "application/json"
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ZIP_MEDIA_TYPE = "application/zip"
MEDIA_TYPES = {"json": JSON_MEDIA_TYPE, "csv": CSV_MEDIA_TYPE, "xlsx": XLSX_MEDIA_TYPE}
# Sections as they are laid out: field/value sections, then tables (and the changes).
FIELD_SECTIONS = ("header", "quality")
CHANGE_COLUMNS = (
    Column("line"), Column("before"), Column("after"), Column("delta"), Column("unit"),
)  # fmt: skip
TABLES: Mapping[str, tuple[Column, ...]] = {**COLUMNS, "changes": CHANGE_COLUMNS}
SHEET_ORDER = ("header", *COLUMNS, "quality", "changes")
# ZIP entries get this time (the format's earliest): the bytes depend on the content only.
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def _csv_columns() -> list[str]:
    headers = ["section", "field", "value"]
    for columns in TABLES.values():
        for column in columns:
            if column.header not in headers:
                headers.append(column.header)
    return headers


def _cell(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _section_rows(document: Mapping[str, Any], section: str) -> Iterable[dict[str, Any]]:
    """The section as rows keyed by header cell."""
    if section in FIELD_SECTIONS:
        # Sorted, as in the canonical JSON: a stored revision and a fresh draft lay out alike.
        for field, value in sorted(document[section].items()):
            yield {"field": field, "value": value}
        return
    columns = TABLES[section]
    for row in document[section]:
        yield {c.header: row.get(c.key) for c in columns}


def to_json(document: Mapping[str, Any]) -> bytes:
    return canonical_json(document)


def to_csv(document: Mapping[str, Any]) -> bytes:
    out = io.StringIO()
    headers = _csv_columns()
    writer = csv.DictWriter(out, fieldnames=headers, lineterminator="\r\n")
    writer.writeheader()
    for section in SHEET_ORDER:
        for row in _section_rows(document, section):
            writer.writerow(
                {h: "" if v is None else _cell(v) for h, v in {"section": section, **row}.items()}
            )
    return out.getvalue().encode("utf-8")


def _fixed_zip(data: bytes) -> bytes:
    """``data`` (a ZIP) rewritten with every entry at :data:`ZIP_TIME`, in the same order."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            target.writestr(_entry(info.filename), source.read(info.filename))
    return out.getvalue()


def _entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


def to_xlsx(document: Mapping[str, Any]) -> bytes:
    workbook = Workbook()
    generated = document["header"].get("generated_at")
    if generated:
        # openpyxl stamps "now" otherwise; the document's time keeps the bytes reproducible.
        at = datetime.fromisoformat(generated).replace(tzinfo=None, microsecond=0)
        workbook.properties.created = at
        workbook.properties.modified = at
    workbook.remove(workbook.active)
    for section in SHEET_ORDER:
        sheet = workbook.create_sheet(section)
        headers = ["field", "value"] if section in FIELD_SECTIONS else [
            c.header for c in TABLES[section]
        ]  # fmt: skip
        sheet.append(headers)
        for row in _section_rows(document, section):
            sheet.append([_xlsx_cell(row.get(h)) for h in headers])
    raw = io.BytesIO()
    # Workbook.save() stamps docProps/core.xml "modified" with the wall clock, so two downloads a
    # second apart differed under one strong ETag; the writer it wraps leaves our time alone.
    with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as archive:
        ExcelWriter(workbook, archive).save()
    return _fixed_zip(raw.getvalue())


def _xlsx_cell(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def render(document: Mapping[str, Any], fmt: str) -> bytes:
    if fmt == "csv":
        return to_csv(document)
    if fmt == "xlsx":
        return to_xlsx(document)
    return to_json(document)


def zip_files(files: Sequence[tuple[str, bytes]]) -> bytes:
    """A ZIP of (name, bytes), in the given order, entries at a fixed time."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files:
            archive.writestr(_entry(name), data)
    return out.getvalue()

"""A ledger document (``carbonflow/domain/ledger/document.py``) as JSON, CSV, XLSX or PDF bytes,
and a ZIP of many.

- JSON: the canonical bytes (what a closed revision stores and serves, byte for byte).
- CSV: one file, one table, UTF-8 with a byte order mark (Excel then reads Chinese): a section
  column, then the union of every section's columns, labels in the chosen language with units in
  the header cells (``排放量 (CO2当量) [tCO2e]``); the header and quality sections are
  field/value rows. Empty cell = no value (null).
- XLSX (openpyxl): one sheet per section (sheet names and headers in the chosen language), units
  in the header cells, a bold frozen header row, numbers as numbers, fitted column widths.
- PDF (``ledger_pdf.py``): for printing and stamping.

Figures are printed rounded per column (``carbonflow/domain/ledger/rounding.py``: GB/T 8170
round half to even, totals from exact values); the header block carries the rounding note in the
chosen language. CSV cells show the column's decimals (``2.340``); XLSX cells hold the rounded
number with a number format of those decimals; the PDF prints it and repeats the note at the foot
of every page.

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
from decimal import Decimal
from typing import Any

from openpyxl import Workbook  # type: ignore[import-untyped]
from openpyxl.styles import Font  # type: ignore[import-untyped]
from openpyxl.writer.excel import ExcelWriter  # type: ignore[import-untyped]

from carbonflow.domain.ledger.document import COLUMNS, Column, canonical_json
from carbonflow.domain.ledger.labels import Lang, field_label, section_label
from carbonflow.domain.ledger.rounding import note, presented
from services.api.ledger_pdf import PDF_MEDIA_TYPE, to_pdf

__all__ = ["PDF_MEDIA_TYPE"]

JSON_MEDIA_TYPE = "application/json"
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ZIP_MEDIA_TYPE = "application/zip"
MEDIA_TYPES = {
    "json": JSON_MEDIA_TYPE,
    "csv": CSV_MEDIA_TYPE,
    "xlsx": XLSX_MEDIA_TYPE,
    "pdf": PDF_MEDIA_TYPE,
}
# Sections as they are laid out: field/value sections, then tables (and the changes).
FIELD_SECTIONS = ("header", "quality")
CHANGE_COLUMNS = (
    Column("line"), Column("before"), Column("after"), Column("delta"), Column("unit"),
)  # fmt: skip
TABLES: Mapping[str, tuple[Column, ...]] = {**COLUMNS, "changes": CHANGE_COLUMNS}
SHEET_ORDER = ("header", *COLUMNS, "quality", "changes")
# ZIP entries get this time (the format's earliest): the bytes depend on the content only.
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


ColumnId = tuple[str, str | None]  # (key, unit): one CSV column, shared by sections


def _csv_columns() -> list[ColumnId]:
    ids: list[ColumnId] = [("section", None), ("field", None), ("value", None)]
    for columns in TABLES.values():
        for column in columns:
            if (column.key, column.unit) not in ids:
                ids.append((column.key, column.unit))
    return ids


def _cell(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")  # never 1E-7: the column's decimals, as printed
    return value


def _section_rows(
    document: Mapping[str, Any], section: str, lang: Lang
) -> Iterable[dict[ColumnId, Any]]:
    """The section as rows keyed by column, figures rounded as printed (rounding.py)."""
    if section in FIELD_SECTIONS:
        # Sorted, as in the canonical JSON: a stored revision and a fresh draft lay out alike.
        fields = dict(document[section])
        if section == "header":
            # The content hash and the rounding rule stand in the header block of every export
            # (a revision stored before the header carried the rule is printed by it too).
            fields["content_sha256"] = document.get("content_sha256")
            fields["rounding"] = note(lang)
        for field, value in sorted(fields.items()):
            yield {("field", None): field, ("value", None): presented(section, field, value)}
        return
    columns = TABLES[section]
    for row in document[section]:
        yield {(c.key, c.unit): presented(section, c.key, row.get(c.key)) for c in columns}


def _columns_of(section: str) -> list[ColumnId]:
    if section in FIELD_SECTIONS:
        return [("field", None), ("value", None)]
    return [(c.key, c.unit) for c in TABLES[section]]


def _field_cell(section: str, column: ColumnId, value: Any, lang: Lang) -> Any:
    """A field/value section names its fields in the reader's language."""
    if section in FIELD_SECTIONS and column == ("field", None):
        return field_label(str(value), lang)
    return value


def to_json(document: Mapping[str, Any]) -> bytes:
    return canonical_json(document)


def to_csv(document: Mapping[str, Any], lang: Lang = "en") -> bytes:
    """One table, UTF-8 with a byte order mark: without it Excel reads Chinese as mojibake."""
    out = io.StringIO()
    ids = _csv_columns()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([field_label(key, lang, unit) for key, unit in ids])
    for section in SHEET_ORDER:
        for row in _section_rows(document, section, lang):
            cells = {("section", None): section_label(section, lang), **row}
            writer.writerow(
                [
                    "" if cells.get(i) is None else _cell(_field_cell(section, i, cells[i], lang))
                    for i in ids
                ]
            )
    return b"\xef\xbb\xbf" + out.getvalue().encode("utf-8")


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


def to_xlsx(document: Mapping[str, Any], lang: Lang = "en") -> bytes:
    """One sheet per section (the header block first), labels and units in a bold, frozen header
    row, numbers as numbers, columns as wide as their text."""
    workbook = Workbook()
    generated = document["header"].get("generated_at")
    if generated:
        # openpyxl stamps "now" otherwise; the document's time keeps the bytes reproducible.
        at = datetime.fromisoformat(generated).replace(tzinfo=None, microsecond=0)
        workbook.properties.created = at
        workbook.properties.modified = at
    workbook.remove(workbook.active)
    for section in SHEET_ORDER:
        sheet = workbook.create_sheet(section_label(section, lang))
        ids = _columns_of(section)
        sheet.append([field_label(key, lang, unit) for key, unit in ids])
        for row in _section_rows(document, section, lang):
            sheet.append([_xlsx_cell(_field_cell(section, i, row.get(i), lang)) for i in ids])
            _number_formats(sheet, [row.get(i) for i in ids])
        _lay_out(sheet)
    raw = io.BytesIO()
    # Workbook.save() stamps docProps/core.xml "modified" with the wall clock, so two downloads a
    # second apart differed under one strong ETag; the writer it wraps leaves our time alone.
    with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as archive:
        ExcelWriter(workbook, archive).save()
    return _fixed_zip(raw.getvalue())


def _lay_out(sheet: Any) -> None:
    sheet.freeze_panes = "A2"
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for column in sheet.columns:
        width = max(_display_width(c.value) for c in column)
        sheet.column_dimensions[column[0].column_letter].width = min(max(width + 2, 8), 60)


def _display_width(value: Any) -> int:
    """Columns a cell's text takes: a CJK character is two wide."""
    text = "" if value is None else str(value)
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)


def _xlsx_cell(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Decimal):  # a rounded figure: a number, shown with its decimals
        return float(value)
    return str(value)


def _number_formats(sheet: Any, values: Sequence[Any]) -> None:
    """The last row's rounded figures shown with their column's decimals (``0.000``)."""
    for cell, value in zip(sheet[sheet.max_row], values, strict=False):
        if isinstance(value, Decimal):
            places = -int(value.as_tuple().exponent)
            cell.number_format = "0." + "0" * places if places > 0 else "0"


def render(document: Mapping[str, Any], fmt: str, lang: Lang = "en") -> bytes:
    if fmt == "csv":
        return to_csv(document, lang)
    if fmt == "xlsx":
        return to_xlsx(document, lang)
    if fmt == "pdf":
        return to_pdf(document, TABLES, lang)
    return to_json(document)


def zip_files(files: Sequence[tuple[str, bytes]]) -> bytes:
    """A ZIP of (name, bytes), in the given order, entries at a fixed time."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files:
            archive.writestr(_entry(name), data)
    return out.getvalue()

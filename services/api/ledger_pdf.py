"""A ledger document as a PDF for printing, signing and stamping (ReportLab).

A4 landscape. Page 1: the title, the header fields (who reports, which period, status,
revision, content hash, the rounding rule) and the month's totals (emissions, energy).
From page 2, one table per section, its heading and header row repeated on every page it
runs on (a row of the table itself, so never alone at the foot of a page). A table holds
the columns that matter on paper (:data:`PRIMARY`: for an activity line its category,
carrier, scope, devices, quantity and unit, emission factor with unit and data year, tCO2e
location- and market-based, tce, measured share); a section's other columns follow it as
one detail block per row (``序号`` ties the two). Any other section (one added to the
document later) gets all its columns, as many as fit the page (``pdf_tables.fit``: widths
from the content, figures never wrapped, a smaller font where needed), the rest in detail
blocks. The last page ends with a block to sign and stamp (编制人 / 审核人 / 单位盖章 / 日期). The
foot of every page carries the rounding note (figures rounded per column by GB/T 8170
round half to even, ``carbonflow/domain/ledger/rounding.py``; totals from exact values),
the content hash and "第 x 页 / 共 y 页", so that a printed page can be matched to its
revision. Accounting terms print in words (范围二, 外购电力: ``labels.VALUES``).

Chinese text is set in WenQuanYi Micro Hei, the font the project's setup installs
(``scripts/ensure-chromium.sh``), embedded as a subset; without it, ReportLab's built-in
STSong-Light CID font (not embedded: the reader supplies it).

The bytes are a function of the document and the language only: ReportLab's invariant mode fixes
the creation date and the document id, so a closed revision has one PDF and a strong ETag.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    KeepTogether,
    PageBreak,
    Paragraph,
    SimpleDocTemplate,
    Table,
    TableStyle,
)
from reportlab.platypus.flowables import Flowable

from carbonflow.domain.ledger.document import Column
from carbonflow.domain.ledger.labels import Lang, field_label, section_label, value_label
from carbonflow.domain.ledger.rounding import note, presented
from services.api.pdf_tables import detail_table, escape, fit, grid_table, text

PDF_MEDIA_TYPE = "application/pdf"
CJK_FONT_FILES = (
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
    Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),
)
_FONT = "carbonflow-cjk"
_PAGE = landscape(A4)
_MARGIN = 15 * mm
# The header as a reader scans it: whose ledger, which period, its status, then the bookkeeping.
_HEADER_ORDER = (
    "legal_name", "credit_code", "industry", "org_id", "site_name", "site_name_zh", "site_id",
    "month", "period_local_start", "period_local_end", "timezone", "period_start", "period_end",
    "status", "revision", "preparer", "generated_at", "closed_by", "reason",
    "calc_results_through", "calc_last_received_at", "content_sha256", "rounding",
)  # fmt: skip
_TITLE = {"zh": "碳排放台账", "en": "Carbon emission ledger"}
_FOOTER = {
    "zh": "内容哈希 {sha} · 第 {page} 页 / 共 {pages} 页",
    "en": "Content hash {sha} · page {page} of {pages}",
}
_DETAILS = {"zh": "{section} · 逐行明细", "en": "{section} · details per line"}
_LINE = {"zh": "第 {n} 行", "en": "Line {n}"}
_SIGN_TITLE = {"zh": "编制与审核", "en": "Preparation and review"}
_SIGN = {
    "zh": ("编制人", "审核人", "单位盖章", "日期"),
    "en": ("Prepared by", "Reviewed by", "Company seal", "Date"),
}
_AVAILABLE = _PAGE[0] - 2 * _MARGIN
# The columns a section's table prints, in order; its other columns go to the detail blocks.
# ``no`` is the line number; ``tco2e_location``/``tco2e_market`` a line's CO2e in its own scope.
PRIMARY: Mapping[str, tuple[str, ...]] = {
    "activity": (
        "no", "category", "carrier", "scope", "devices", "quantity", "unit", "factor_value",
        "factor_unit", "factor_data_year", "tco2e_location", "tco2e_market", "energy_tce",
        "measured_share",
    ),
    "devices": (
        "no", "category", "carrier", "device_id", "role", "metric", "meter_kind",
        "opening_reading", "closing_reading", "register_unit", "multiplier", "device_quantity",
        "readings", "measured_share",
    ),
    "factors": (
        "no", "factor_key", "value", "unit", "version", "data_year", "requested_year",
        "confidence", "selection",
    ),
}  # fmt: skip
_DERIVED = {"no": None, "tco2e_location": "tCO2e", "tco2e_market": "tCO2e"}
# The sections printed on page 1, under the header (those the document has).
_COVER = ("totals", "energy_totals")
_SHORT_DEVICES = 2  # devices named in the activity table; the devices section lists them all
# Keys a row's own label already says in words (an energy total's ``total``): not printed.
_NAMED = frozenset({"total"})


def _font() -> str:
    """Register the CJK font once; its name."""
    if _FONT in pdfmetrics.getRegisteredFontNames():
        return _FONT
    for path in CJK_FONT_FILES:
        if path.is_file():
            pdfmetrics.registerFont(TTFont(_FONT, str(path), subfontIndex=0))
            return _FONT
    fallback = "STSong-Light"
    if fallback not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(fallback))
    return fallback


def to_pdf(
    document: Mapping[str, Any], tables: Mapping[str, Sequence[Column]], lang: Lang = "zh"
) -> bytes:
    """``tables``: the columns of each table section, in document order."""
    font = _font()
    title = ParagraphStyle("title", fontName=font, fontSize=14, leading=18)
    # The header block carries the content hash too (a stamped page names what it stamps), and
    # the rounding rule in the reader's language.
    header = {
        **document["header"],
        "content_sha256": document.get("content_sha256"),
        "rounding": note(lang),
    }
    zh_name = header.pop("site_name_zh", None)
    if zh_name and lang == "zh":
        header["site_name"] = zh_name  # a Chinese document names the site in Chinese
    elif zh_name:
        header["site_name_zh"] = zh_name
    who = header.get("legal_name") or header.get("org_id") or header.get("site_id")
    pairs = [(k, value_label(k, header[k], lang)) for k in _header_keys(header)]
    story: list[Flowable] = [
        _fields(
            Paragraph(f"{_TITLE[lang]} · {escape(who)} · {escape(header.get('month'))}", title),
            pairs,
            font,
            lang,
        ),
    ]
    # What the ledger comes to, on the page that names whose it is: the month's totals.
    for section in _COVER:
        if section in tables:
            story += _section(document, section, tables, font, lang)
    story.append(PageBreak())
    for section in (*tables, "quality"):
        if section not in _COVER:
            story += _section(document, section, tables, font, lang)
    story.append(_signatures(font, lang))
    footer = _footer(font, lang, str(document.get("content_sha256", "")))
    out = io.BytesIO()
    pdf = SimpleDocTemplate(
        out,
        pagesize=_PAGE,
        leftMargin=_MARGIN,
        rightMargin=_MARGIN,
        topMargin=12 * mm,
        bottomMargin=18 * mm,
        title=f"{_TITLE[lang]} {who} {header.get('month')}",
        author="carbonflow",
        invariant=1,
    )
    pdf.build(story, canvasmaker=_numbered(footer))
    return out.getvalue()


Footer = Callable[[Canvas, int, int], None]


def _numbered(footer: Footer) -> Callable[..., Canvas]:
    """A canvas that holds its pages until the end, so each foot can say how many there are."""

    class _Canvas(Canvas):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._pages: list[dict[str, Any]] = []

        def showPage(self) -> None:  # noqa: N802 (ReportLab's name)
            self._pages.append(dict(self.__dict__))
            self._startPage()  # type: ignore[attr-defined]  # a new page, not yet drawn

        def save(self) -> None:
            for number, state in enumerate(self._pages, start=1):
                self.__dict__.update(state)
                footer(self, number, len(self._pages))
                super().showPage()
            super().save()

    return _Canvas


def _footer(font: str, lang: Lang, sha: str) -> Footer:
    footnote = _footnote_lines(note(lang), font, 6)

    def draw(canvas: Canvas, page: int, pages: int) -> None:
        canvas.setFont(font, 7)
        line = _FOOTER[lang].format(sha=sha, page=page, pages=pages)
        canvas.drawString(_MARGIN, 4 * mm, line)
        canvas.setFont(font, 6)
        for i, text_line in enumerate(footnote):  # the rounding note, above the page line
            canvas.drawString(_MARGIN, (8 + 3 * (len(footnote) - 1 - i)) * mm, text_line)

    return draw


def _heading(text_: str, font: str) -> Paragraph:
    style = ParagraphStyle("heading", fontName=font, fontSize=10, leading=13)
    return Paragraph(escape(text_), style)


def _fields(heading: Flowable, pairs: Sequence[tuple[str, Any]], font: str, lang: Lang) -> Table:
    """A field/value table (the header block, data quality)."""
    labels = [field_label("field", lang), field_label("value", lang)]
    rows = [[field_label(k, lang), v] for k, v in pairs]
    widths = (55 * mm, _AVAILABLE - 55 * mm)
    return grid_table(heading, labels, [[k, text(v)] for k, v in rows], widths, font, 7.0)


def _section(
    document: Mapping[str, Any], section: str, tables: Mapping[str, Sequence[Column]], font: str,
    lang: Lang,
) -> list[Flowable]:  # fmt: skip
    """A section's heading and table, then its detail blocks; nothing for an empty section."""
    rows = document.get(section) or []
    if isinstance(rows, Mapping):  # a field/value section (data quality)
        pairs = [(k, presented(section, k, v)) for k, v in sorted(rows.items())]
        return [_fields(_heading(section_label(section, lang), font), pairs, font, lang)]
    if not rows:
        return []
    columns = _in_language(tables[section], lang)
    primary = _primary(section, columns)
    labels = [field_label(c.key, lang, c.unit) for c in primary]
    grid = [
        [_value(section, c.key, row, n, lang) for c in primary] for n, row in enumerate(rows, 1)
    ]
    shape = fit(labels, grid, _AVAILABLE, font)
    kept = [primary[i] for i in shape.kept]
    table = grid_table(
        _heading(section_label(section, lang), font),
        [labels[i] for i in shape.kept],
        [[r[i] for i in shape.kept] for r in grid],
        shape.widths,
        font,
        shape.size,
    )
    story: list[Flowable] = [table]
    rest = [c for c in columns if c.key not in {k.key for k in kept}]
    if not rest:
        return story
    if kept[0].key != "no":  # the blocks need the line number to name their row
        return story + _details(section, rows, [Column("no"), *rest], kept, font, lang)
    return story + _details(section, rows, rest, kept, font, lang)


def _in_language(columns: Sequence[Column], lang: Lang) -> list[Column]:
    """A text given in both languages (``label_zh``, ``label_en``) in the reader's only; a key
    that the label names (``_NAMED``) not at all."""
    keys = {c.key for c in columns}
    other = "en" if lang == "zh" else "zh"
    return [
        c
        for c in columns
        if not (c.key.endswith(f"_{other}") and c.key.removesuffix(other) + lang in keys)
        and not (c.key in _NAMED and {"label_zh", "label_en"} <= keys)
    ]


def _primary(section: str, columns: Sequence[Column]) -> list[Column]:
    """The columns of a section's table: :data:`PRIMARY`'s (units from the section's columns),
    or all of them; ``no`` first when some of them are left to the detail blocks."""
    if section not in PRIMARY:
        return list(columns)
    units = {c.key: c.unit for c in columns} | _DERIVED
    return [Column(k, units.get(k)) for k in PRIMARY[section] if k in units]


def _details(
    section: str, rows: Sequence[Mapping[str, Any]], rest: Sequence[Column],
    kept: Sequence[Column], font: str, lang: Lang,
) -> list[Flowable]:  # fmt: skip
    """One block per row with the columns the table left out, titled by the row's number and
    its first words (category, carrier …)."""
    names = [c.key for c in kept if c.key != "no" and not _numeric(section, c.key, rows)][:3]
    blocks = []
    for n, row in enumerate(rows, start=1):
        words = [text(_value(section, k, row, n, lang)) for k in names]
        title = " · ".join([_LINE[lang].format(n=n), *[w for w in words if w]])
        fields = [
            (field_label(c.key, lang, c.unit), _value(section, c.key, row, n, lang))
            for c in rest
            if c.key != "no"
        ]
        blocks.append((title, fields))
    heading = _DETAILS[lang].format(section=section_label(section, lang))
    return [detail_table(_heading(heading, font), blocks, _AVAILABLE, font)]


def _numeric(section: str, key: str, rows: Sequence[Mapping[str, Any]]) -> bool:
    values = [presented(section, key, r.get(key)) for r in rows]
    return any(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _value(section: str, key: str, row: Mapping[str, Any], n: int, lang: Lang) -> Any:
    """What a cell prints: the figure rounded as its column is (``rounding.py``), a term in
    words; the derived cells of the tables."""
    if key == "no":
        return n
    if key in ("tco2e_location", "tco2e_market"):
        view = key.removeprefix("tco2e_")
        return presented(section, "tco2e", row.get(f"{row.get('scope')}_tco2e_{view}"))
    value = row.get(key)
    if key == "devices" and isinstance(value, str):
        return _short_devices(value, lang)
    if key == "indicators" and isinstance(value, str):  # ids, comma-separated
        names = (str(value_label("indicator", i.strip(), lang)) for i in value.split(","))
        return ("、" if lang == "zh" else ", ").join(names)
    return value_label(key, presented(section, key, value), lang)


def _short_devices(devices: str, lang: Lang) -> str:
    names = [d.strip() for d in devices.split(",") if d.strip()]
    if len(names) <= _SHORT_DEVICES + 1:
        return ", ".join(names)
    more = len(names) - _SHORT_DEVICES
    tail = f"等 {len(names)} 台" if lang == "zh" else f"+{more} more"
    return ", ".join(names[:_SHORT_DEVICES]) + " " + tail


def _signatures(font: str, lang: Lang) -> Flowable:
    """编制人 / 审核人 / 单位盖章 / 日期 over empty boxes (the seal's box is the tallest)."""
    style = ParagraphStyle("sign", fontName=font, fontSize=9, leading=12, alignment=1)
    width = _AVAILABLE / 4
    table = Table(
        [[Paragraph(label, style) for label in _SIGN[lang]], ["", "", "", ""]],
        colWidths=[width] * 4,
        rowHeights=[7 * mm, 45 * mm],
        hAlign="LEFT",
    )
    table.setStyle(
        TableStyle(
            [
                ("GRID", (0, 0), (-1, -1), 0.6, colors.black),
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef5")),
                ("VALIGN", (0, 0), (-1, 0), "MIDDLE"),
            ]
        )
    )
    return KeepTogether([_heading(_SIGN_TITLE[lang], font), table])


def _footnote_lines(text_: str, font: str, size: float) -> list[str]:
    """``text_`` broken into lines that fit the page's width (CJK has no spaces: by character)."""
    lines, current = [], ""
    for ch in text_:
        if pdfmetrics.stringWidth(current + ch, font, size) > _AVAILABLE:
            lines.append(current)
            current = ""
        current += ch
    return [*lines, current] if current else lines


def _header_keys(header: Mapping[str, Any]) -> list[str]:
    known = [k for k in _HEADER_ORDER if k in header]
    return known + sorted(set(header) - set(known))

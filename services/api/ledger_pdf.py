"""A ledger document as a PDF for printing and stamping (ReportLab).

A4 landscape: a title block with the ledger's identity and status, the header fields, then one
table per section with the labels of the chosen language and units in the header cells, and a
footer on every page with the content hash and the page number, so that a printed page can be
matched to its revision, and the rounding note (figures rounded per column by GB/T 8170 round half
to even, ``carbonflow/domain/ledger/rounding.py``; totals from exact values). Chinese text is set
in WenQuanYi Micro Hei, the font the project's setup installs (``scripts/ensure-chromium.sh``),
embedded as a subset; without it, ReportLab's built-in STSong-Light CID font (not embedded: the
reader supplies it).

The bytes are a function of the document and the language only: ReportLab's invariant mode fixes
the creation date and the document id, so a closed revision has one PDF and a strong ETag.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from decimal import Decimal
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
from reportlab.platypus import Paragraph, SimpleDocTemplate, Table, TableStyle
from reportlab.platypus.flowables import Flowable

from carbonflow.domain.ledger.document import Column
from carbonflow.domain.ledger.labels import Lang, field_label, section_label
from carbonflow.domain.ledger.rounding import note, presented

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
    "legal_name", "credit_code", "industry", "org_id", "site_name", "site_id", "month",
    "period_local_start", "period_local_end", "timezone", "period_start", "period_end",
    "status", "revision", "preparer", "generated_at", "closed_by", "reason",
    "calc_results_through", "calc_last_received_at", "content_sha256", "rounding",
)  # fmt: skip
_TITLE = {"zh": "碳排放台账", "en": "Carbon emission ledger"}
_FOOTER = {"zh": "内容哈希 {sha} · 第 {page} 页", "en": "Content hash {sha} · page {page}"}


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
    body = ParagraphStyle("body", fontName=font, fontSize=7, leading=9)
    title = ParagraphStyle("title", fontName=font, fontSize=14, leading=18, spaceAfter=4 * mm)
    # A section's heading stays with its table (never alone at the foot of a page).
    heading = ParagraphStyle(
        "heading", fontName=font, fontSize=10, leading=13, spaceBefore=3 * mm, keepWithNext=1
    )
    # The header block carries the content hash too (a stamped page names what it stamps), and
    # the rounding rule in the reader's language.
    header = {
        **document["header"],
        "content_sha256": document.get("content_sha256"),
        "rounding": note(lang),
    }
    who = header.get("legal_name") or header.get("org_id") or header.get("site_id")
    story: list[Flowable] = [
        Paragraph(f"{_TITLE[lang]} · {_escape(who)} · {_escape(header.get('month'))}", title),
        _table(
            [[field_label("field", lang), field_label("value", lang)]]
            + [[field_label(k, lang), _text(header[k])] for k in _header_keys(header)],
            body,
            font,
        ),
    ]
    for section in (*tables, "quality"):
        rows = _rows(document, section, tables, lang)
        if len(rows) <= 1:
            continue
        story += [Paragraph(section_label(section, lang), heading), _table(rows, body, font)]
    sha = str(document.get("content_sha256", ""))
    footnote = _footnote_lines(note(lang), font, 6)

    def footer(canvas: Canvas, doc: SimpleDocTemplate) -> None:
        canvas.setFont(font, 7)
        canvas.drawString(_MARGIN, 4 * mm, _FOOTER[lang].format(sha=sha, page=doc.page))
        canvas.setFont(font, 6)
        for i, line in enumerate(footnote):  # the rounding note, above the page line
            canvas.drawString(_MARGIN, (8 + 3 * (len(footnote) - 1 - i)) * mm, line)

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
    pdf.build(story, onFirstPage=footer, onLaterPages=footer)
    return out.getvalue()


def _footnote_lines(text: str, font: str, size: float) -> list[str]:
    """``text`` broken into lines that fit the page's width (CJK has no spaces: by character)."""
    width = _PAGE[0] - 2 * _MARGIN
    lines, current = [], ""
    for ch in text:
        if pdfmetrics.stringWidth(current + ch, font, size) > width:
            lines.append(current)
            current = ""
        current += ch
    return [*lines, current] if current else lines


def _header_keys(header: Mapping[str, Any]) -> list[str]:
    known = [k for k in _HEADER_ORDER if k in header]
    return known + sorted(set(header) - set(known))


def _rows(
    document: Mapping[str, Any], section: str, tables: Mapping[str, Sequence[Column]], lang: Lang
) -> list[list[str]]:
    if section == "quality":
        pairs = sorted(document["quality"].items())
        return [[field_label("field", lang), field_label("value", lang)]] + [
            [field_label(k, lang), _text(presented(section, k, v))] for k, v in pairs
        ]
    columns = tables[section]
    rows = [[field_label(c.key, lang, c.unit) for c in columns]]
    rows += [
        [_text(presented(section, c.key, row.get(c.key))) for c in columns]
        for row in document.get(section, [])
    ]
    return rows


def _table(rows: Sequence[Sequence[str]], style: ParagraphStyle, font: str) -> Table:
    cells = [[Paragraph(_escape(cell), style) for cell in row] for row in rows]
    table = Table(cells, colWidths=_widths(rows), repeatRows=1, hAlign="LEFT")
    table.setStyle(
        TableStyle(
            [
                ("FONTNAME", (0, 0), (-1, -1), font),
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef5")),
                ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ]
        )
    )
    return table


def _widths(rows: Sequence[Sequence[str]]) -> list[float]:
    """Column widths sharing the page by each column's longest text (capped, with a floor), so
    a long source citation wraps instead of squeezing the numbers."""
    columns = len(rows[0])
    weights = [min(max(10, *(_display_width(row[i]) for row in rows)), 48) for i in range(columns)]
    available = _PAGE[0] - 2 * _MARGIN
    return [available * w / sum(weights) for w in weights]


def _display_width(text: str) -> int:
    """A CJK character is two columns wide."""
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "✓" if value else "✗"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, float):
        return f"{value:.10g}"
    return str(value)


def _escape(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

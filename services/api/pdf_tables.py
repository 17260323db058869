"""Tables that fit a printed page (ReportLab), for the ledger PDF (``ledger_pdf.py``).

A table is given as header labels and rows of values. Each column gets a width from what it
holds: a numeric column is as wide as its widest figure (figures are set as single-line strings,
right-aligned: a number never wraps), a text column at least as wide as its longest word (up to a
cap; a date or an identifier made of digits is never cut) and, where the page has room, as wide as
its text. When the columns do not fit, the font gets smaller (down to :data:`MIN_SIZE`), then the
last columns leave the table: :func:`fit` says which, and the caller prints them in a detail
block per row (:func:`detail_table`), where every field has a wide cell.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from reportlab.lib import colors
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.platypus import Paragraph, Table, TableStyle
from reportlab.platypus.flowables import Flowable

SIZES = (7.0, 6.5, 6.0)
MIN_SIZE = SIZES[-1]
PAD = 2.5  # points left and right of a cell's text
_FLOOR = 7 * mm  # the narrowest column
_WORD_CAP = 24 * mm  # a longer word (an identifier) may wrap in its cell
_TEXT_CAP = 60 * mm  # a text column wider than this wraps instead
_BLOCK_ROWS = 24  # a detail block of up to this many lines is never split across pages
_HEAD = colors.HexColor("#e8eef5")
_BLOCK = colors.HexColor("#f4f6f9")
# A word of digits and their separators: a figure, a date, a time, a year range; never cut.
_FIGURE = re.compile(r"^[\d.,:+\-−/%()T]*\d[\d.,:+\-−/%()TZ]*$")


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)


def _cjk(ch: str) -> bool:
    return ord(ch) > 0x2E80


@dataclass(frozen=True, slots=True)
class Fit:
    """The columns kept (indices into the given header), their widths and the font size."""

    kept: tuple[int, ...]
    widths: tuple[float, ...]
    size: float


def _width(text: str, font: str, size: float) -> float:
    return float(pdfmetrics.stringWidth(text, font, size))


def _words(text: str) -> list[str]:
    """Where a line may break: at spaces, and between two CJK characters."""
    words: list[str] = []
    for token in text.split():
        run = ""
        for ch in token:
            if _cjk(ch):
                words += [run, ch] if run else [ch]
                run = ""
            else:
                run += ch
        if run:
            words.append(run)
    return words


def _min_word(text: str, font: str, size: float) -> float:
    """The narrowest a cell of ``text`` may be: its widest word (figures in full, other words
    up to :data:`_WORD_CAP`)."""
    widest = 0.0
    for word in _words(text):
        width = _width(word, font, size)
        widest = max(widest, width if _FIGURE.match(word) else min(width, _WORD_CAP))
    return widest


@dataclass(frozen=True, slots=True)
class _Need:
    """How wide a column must be (``least``), would be with its cells on one line (``want``,
    text up to :data:`_TEXT_CAP`) and with its header on one line too (``nice``)."""

    least: float
    want: float
    nice: float


def _need(label: str, cells: Sequence[Any], font: str, size: float) -> _Need:
    texts = [text(c) for c in cells]
    head_least = max((_width(w, font, size) for w in _words(label)), default=0.0)
    head_nice = min(_width(label, font, size), 30 * mm)
    if cells and all(is_number(c) or c is None for c in cells):
        least = max([_width(t, font, size) for t in texts] + [head_least, _FLOOR - 2 * PAD])
        want = least
    else:
        least = max([_min_word(t, font, size) for t in texts] + [head_least, _FLOOR - 2 * PAD])
        want = max(min(max([_width(t, font, size) for t in texts]), _TEXT_CAP), least)
    return _Need(least + 2 * PAD, want + 2 * PAD, max(want, head_nice) + 2 * PAD)


def _grow(widths: list[float], targets: Sequence[float], room: float) -> list[float]:
    """``widths`` grown towards ``targets`` by ``room`` at most, in proportion to the gap."""
    gaps = [max(t - w, 0.0) for w, t in zip(widths, targets, strict=True)]
    wish = sum(gaps)
    if wish <= 0 or room <= 0:
        return widths
    give = min(room, wish)
    return [w + give * g / wish for w, g in zip(widths, gaps, strict=True)]


def _share(needs: Sequence[_Need], available: float) -> tuple[float, ...]:
    """Every column its least; the room left first to the cells that would wrap, then to the
    headers that would, and what is still left by width (the table spans the page)."""
    widths = [n.least for n in needs]
    widths = _grow(widths, [n.want for n in needs], available - sum(widths))
    widths = _grow(widths, [n.nice for n in needs], available - sum(widths))
    room = available - sum(widths)
    total = sum(widths)
    return tuple(w + room * w / total for w in widths)


def fit(labels: Sequence[str], rows: Sequence[Sequence[Any]], available: float, font: str) -> Fit:
    """The widths of a table of ``labels`` over ``rows`` on ``available`` points: the first
    font size of :data:`SIZES` at which all columns fit; else, at the smallest, the most leading
    columns that fit (at least one)."""
    kept = list(range(len(labels)))
    for size in SIZES:
        needs = [_need(labels[i], [r[i] for r in rows], font, size) for i in kept]
        if sum(n.least for n in needs) <= available:
            return Fit(tuple(kept), _share(needs, available), size)
    while len(kept) > 1 and sum(n.least for n in needs) > available:
        kept.pop()
        needs = needs[: len(kept)]
    return Fit(tuple(kept), _share(needs, available), MIN_SIZE)


def text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "✓" if value else "✗"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, float):
        return f"{value:.10g}"
    return str(value)


def escape(value: Any) -> str:
    out = text(value)
    return out.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _style(font: str, size: float, align: Literal[0, 1] = 0) -> ParagraphStyle:
    return ParagraphStyle(
        f"cell-{size}-{align}", fontName=font, fontSize=size, leading=size * 1.25, alignment=align
    )


def _cell(value: Any, style: ParagraphStyle) -> Any:
    """A figure as a plain string (one line, never wrapped); text as a wrapping paragraph."""
    return text(value) if is_number(value) else Paragraph(escape(value), style)


def _base(font: str, size: float) -> list[Any]:
    """The style of every table; row 0 is the heading (no grid), spanning the table."""
    return [
        ("FONTNAME", (0, 0), (-1, -1), font),
        ("FONTSIZE", (0, 1), (-1, -1), size),
        ("LEADING", (0, 1), (-1, -1), size * 1.25),
        ("GRID", (0, 1), (-1, -1), 0.25, colors.grey),
        ("SPAN", (0, 0), (-1, 0)),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LEFTPADDING", (0, 0), (-1, -1), PAD),
        ("RIGHTPADDING", (0, 0), (-1, -1), PAD),
        ("TOPPADDING", (0, 1), (-1, -1), 1.5),
        ("BOTTOMPADDING", (0, 1), (-1, -1), 2),
        ("LEFTPADDING", (0, 0), (0, 0), 0),
        ("TOPPADDING", (0, 0), (-1, 0), 4 * mm),
        ("BOTTOMPADDING", (0, 0), (-1, 0), 1.5 * mm),
    ]


def grid_table(
    heading: Flowable, labels: Sequence[str], rows: Sequence[Sequence[Any]],
    widths: Sequence[float], font: str, size: float,
) -> Table:  # fmt: skip
    """A section's table: its heading, a shaded header row (both repeated on every page the
    table runs on, and never left without a row under them), figures right-aligned."""
    body, head = _style(font, size), _style(font, size, align=1)
    cells: list[list[Any]] = [[heading] + [""] * (len(labels) - 1)]
    cells.append([Paragraph(escape(label), head) for label in labels])
    cells += [[_cell(value, body) for value in row] for row in rows]
    table = Table(cells, colWidths=list(widths), repeatRows=2, hAlign="LEFT")
    commands = [
        *_base(font, size),
        ("BACKGROUND", (0, 1), (-1, 1), _HEAD),
        ("VALIGN", (0, 1), (-1, 1), "MIDDLE"),
        ("NOSPLIT", (0, 0), (-1, min(2, len(cells) - 1))),
    ]
    for i in range(len(labels)):
        if rows and all(is_number(r[i]) or r[i] is None for r in rows):
            commands.append(("ALIGN", (i, 2), (i, -1), "RIGHT"))
    table.setStyle(TableStyle(commands))
    return table


def detail_table(
    heading: Flowable, blocks: Sequence[tuple[str, Sequence[tuple[str, Any]]]],
    available: float, font: str, size: float = 7.0,
) -> Table:  # fmt: skip
    """One block per row of a table: a shaded title line, then its fields two to a line
    (label, value, label, value), each value in a cell wide enough for any figure. The heading
    repeats on every page the blocks run on."""
    body = _style(font, size)
    label_width = 40 * mm
    value_width = (available - 2 * label_width) / 2
    cells: list[list[Any]] = [[heading, "", "", ""]]
    commands = _base(font, size)
    for title, fields in blocks:
        start = len(cells)
        cells.append([Paragraph(escape(title), body), "", "", ""])
        commands += [
            ("SPAN", (0, start), (-1, start)),
            ("BACKGROUND", (0, start), (-1, start), _HEAD),
        ]
        for i in range(0, len(fields), 2):
            pair = list(fields[i : i + 2])
            row: list[Any] = []
            for label, value in pair + [("", None)] * (2 - len(pair)):
                row += [Paragraph(escape(label), body), Paragraph(escape(value), body)]
            cells.append(row)
            commands.append(("BACKGROUND", (0, len(cells) - 1), (0, len(cells) - 1), _BLOCK))
            commands.append(("BACKGROUND", (2, len(cells) - 1), (2, len(cells) - 1), _BLOCK))
        # A block stays on one page (its title never alone at the foot of a page) if it can;
        # the first stays with the heading.
        end = len(cells) - 1 if len(cells) - start <= _BLOCK_ROWS else start + 1
        commands.append(("NOSPLIT", (0, 0 if start == 1 else start), (-1, end)))
    widths = [label_width, value_width, label_width, value_width]
    table = Table(cells, colWidths=widths, repeatRows=1, hAlign="LEFT")
    table.setStyle(TableStyle(commands))
    return table

"""The ledger PDF (services/api/ledger_pdf.py, pdf_tables.py) as a reader sees it: the text a PDF
reader extracts has every figure whole, tables fit the page, a section the layout does not know
gets a table and detail blocks, pages say "第 x 页 / 共 y 页", the last page has the signature
block. Pure (no database)."""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from typing import Any

from pypdf import PdfReader
from reportlab.pdfbase import pdfmetrics

from carbonflow.domain.ledger.document import Column, build_ledger, closed
from carbonflow.domain.ledger.labels import Lang
from carbonflow.domain.ledger.rounding import presented
from services.api.ledger_export import TABLES
from services.api.ledger_pdf import _AVAILABLE, _font, to_pdf
from services.api.pdf_tables import PAD, fit, text
from tests.domain.ledger.test_document import CLAIMS, END, HEADER, INPUTS


def _document() -> dict[str, Any]:
    doc = build_ledger(INPUTS, HEADER, CLAIMS)
    return closed(doc, revision=1, closed_at=END, closed_by="k1", reason=None, changes=[])


def _pages(pdf: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages]


def _whole(figure: str, text_: str) -> bool:
    """``figure`` on one line of ``text_``, not part of a longer figure."""
    return re.search(rf"(?<![\d.]){re.escape(figure)}(?![\d])", text_) is not None


def _printed(section: str, row: Mapping[str, Any], columns: Any) -> list[str]:
    out = []
    for column in columns:
        value = row.get(column.key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out.append(text(presented(section, column.key, value)))
    return out


def test_every_total_and_line_figure_is_printed_whole() -> None:
    """The emission and the energy totals on page 1, each figure whole; the lines' figures."""
    doc = _document()
    for lang in ("zh", "en"):
        pages = _pages(to_pdf(doc, TABLES, lang))
        # the energy totals' label in the reader's language only
        assert ("综合能源消费量" in pages[0], "Comprehensive energy" in pages[0]) == (
            lang == "zh", lang == "en",
        )  # fmt: skip
        everything = "\n".join(pages)
        figures = [
            f
            for section in ("totals", "energy_totals")
            for row in doc[section]
            for f in _printed(section, row, TABLES[section])
        ]
        assert "21.129" in figures and len(doc["energy_totals"]) == 2
        for figure in figures:
            assert _whole(figure, pages[0]), (lang, figure)  # the totals are on page 1
        for row in doc["activity"]:
            for key in ("quantity", "energy_tce", "measured_share", "factor_value"):
                figure = text(presented("activity", key, row[key]))
                assert _whole(figure, everything), (lang, key, figure)


def test_pages_are_numbered_and_end_with_the_signature_block() -> None:
    doc = _document()
    pages = _pages(to_pdf(doc, TABLES, "zh"))
    n = len(pages)
    assert n >= 3
    for i, page in enumerate(pages, start=1):
        assert f"第 {i} 页 / 共 {n} 页" in page
        assert doc["content_sha256"] in page.replace("\n", "")
    assert "活动数据" in pages[1] and "范围二" in pages[1]  # the activity table opens page 2
    assert all(word in pages[-1] for word in ("编制人", "审核人", "单位盖章", "日期"))
    english = _pages(to_pdf(doc, TABLES, "en"))
    assert f"page 1 of {len(english)}" in english[0]
    assert all(w in english[-1] for w in ("Prepared by", "Reviewed by", "Company seal", "Date"))


def test_a_section_the_layout_does_not_know_gets_a_table_and_detail_blocks() -> None:
    """A wide section added to the document later: as many columns as fit,
    the others per line below (a block longer than a page splits); every figure whole."""
    columns = tuple(Column(f"col_{i:03d}", "tce") for i in range(120))
    rows = [{c.key: 1_234_567.891 + i * 1000 + j for j, c in enumerate(columns)} for i in range(3)]
    doc = {**_document(), "wide_section": rows}
    tables = {**TABLES, "wide_section": columns}
    lang: Lang = "zh"
    everything = "\n".join(_pages(to_pdf(doc, tables, lang)))
    assert "wide_section · 逐行明细" in everything
    for row in rows:
        for value in row.values():
            assert _whole(text(value), everything), value


def test_fitted_columns_fit_the_page_and_hold_their_widest_figure() -> None:
    font = _font()
    labels = [f"Column {i} [tCO2e]" for i in range(40)]
    rows: list[list[Any]] = [[123_456_789.123 * (i + 1) for i in range(40)], ["an id " * 3] * 40]
    shape = fit(labels, rows, _AVAILABLE, font)
    assert 1 <= len(shape.kept) < 40 and shape.kept == tuple(range(len(shape.kept)))
    assert abs(sum(shape.widths) - _AVAILABLE) < 1e-6
    for i, width in zip(shape.kept, shape.widths, strict=True):
        figure = text(rows[0][i])
        assert width >= pdfmetrics.stringWidth(figure, font, shape.size) + 2 * PAD
    narrow = fit(labels[:5], [r[:5] for r in rows], _AVAILABLE, font)
    assert narrow.kept == tuple(range(5)) and narrow.size == 7.0


def test_an_activity_line_names_its_first_devices_and_how_many() -> None:
    doc = _document()
    doc["activity"][0]["devices"] = "meter-a, meter-b, meter-c, meter-d"
    cases: tuple[tuple[Lang, str], ...] = (
        ("zh", "meter-a, meter-b 等 4 台"), ("en", "meter-a, meter-b +2 more"),
    )  # fmt: skip
    for lang, expected in cases:
        words = " ".join(" ".join(_pages(to_pdf(doc, TABLES, lang))).split())  # text may wrap
        assert expected in words, lang


def test_a_field_value_section_gets_a_field_value_table() -> None:
    doc = {**_document(), "energy_summary": {"energy_tce": 12.3456, "lines": 3}}
    tables = {**TABLES, "energy_summary": ()}
    text_ = "\n".join(_pages(to_pdf(doc, tables, "zh")))
    assert "energy_summary" in text_ and "12.346" in text_  # rounded as energy_tce is


def test_energy_totals_and_indicators_print_in_words_not_as_ids() -> None:
    """A person reads 吨原煤综合能耗 and 达标, not ``energy_per_raw_coal`` and ``on_track``; the
    energy totals by their label only (their key is what the JSON keeps)."""
    doc = _document()
    doc["energy_totals"][0]["indicators"] = "energy_per_raw_coal, co2_per_energy"
    doc["indicators"] = [
        {"org_id": "", "indicator": "methane_utilisation_rate", "value": 0.5, "unit": "1",
         "basis": "location", "status": "on_track", "target_threshold": 0.4,
         "target_comparator": ">=", "target_unit": "1", "completeness_share": 1.0},
    ]  # fmt: skip
    cases: tuple[tuple[Lang, tuple[str, ...]], ...] = (
        ("zh", ("吨原煤综合能耗、单位能耗碳排放", "瓦斯利用率", "达标")),
        ("en", ("energy per tonne of raw coal, CO2 per unit of energy", "methane utilisation rate",
                "on track")),
    )  # fmt: skip
    for lang, words in cases:
        printed = " ".join(" ".join(_pages(to_pdf(doc, TABLES, lang))).split())
        for word in words:
            assert word in printed, (lang, word)
        for key in ("energy_per_raw_coal", "methane_utilisation_rate", "on_track"):
            assert key not in printed, (lang, key)
        for row in doc["energy_totals"]:
            assert row["total"] not in printed, (lang, row["total"])

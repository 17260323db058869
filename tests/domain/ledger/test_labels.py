"""Every section, column and field of the ledger has a Chinese and an English label."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from carbonflow.domain.ledger.document import COLUMNS, LedgerHeader, LedgerInputs, build_ledger
from carbonflow.domain.ledger.labels import (
    FIELDS,
    LANGS,
    SECTIONS,
    VALUES,
    field_label,
    section_label,
    value_label,
)


def _empty_document() -> dict[str, object]:
    start = datetime(2026, 10, 31, 16, tzinfo=UTC)
    inputs = LedgerInputs(
        site_id="s", org_id="o", period_start=start, period_end=start, lines=(),
        attributed={}, products=(), indicators=(), completeness=1.0, surplus_export_mwh=0.0,
    )  # fmt: skip
    header = LedgerHeader("s", "o", "2026-11", "Asia/Shanghai", start, None, None)
    return build_ledger(inputs, header)


def test_every_section_column_and_field_is_labelled_in_both_languages() -> None:
    document = _empty_document()
    sections = [k for k in document if k not in ("schema", "content_sha256")]
    assert set(sections) <= set(SECTIONS)
    keys = {c.key for columns in COLUMNS.values() for c in columns}
    keys |= set(document["header"]) | set(document["quality"])  # type: ignore[call-overload]
    missing = sorted(keys - set(FIELDS))
    assert not missing, f"no label for {missing}"
    assert all(zh and en for zh, en in [*SECTIONS.values(), *FIELDS.values()])
    # Chinese labels are Chinese: each holds a CJK character.
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in zh) for zh, _ in FIELDS.values())


@pytest.mark.parametrize("lang", LANGS)
def test_labels_carry_units_and_unknown_keys_stay_themselves(lang: str) -> None:
    assert field_label("tco2e", "zh", "tCO2e") == "排放量 (CO2当量) [tCO2e]"
    assert field_label("tco2e", "en", "tCO2e") == "Emissions (CO2e) [tCO2e]"
    assert field_label("not_a_key", lang) == "not_a_key"  # type: ignore[arg-type]
    assert section_label("activity", "zh") == "活动数据"


def test_terms_print_in_words_and_other_values_as_they_are() -> None:
    """The PDF reads 范围二 / 外购电力 / 已关账 where the JSON keeps ``scope_2`` …"""
    assert value_label("scope", "scope_2", "zh") == "范围二"
    assert value_label("category", "purchased_electricity", "en") == "purchased electricity"
    assert value_label("status", "closed", "zh") == "已关账"
    assert value_label("accepted", True, "zh") == "是" and value_label("x", False, "en") == "no"
    assert value_label("device_id", "scope_2", "zh") == "scope_2"  # not a worded column
    assert value_label("carrier", "hydrogen", "zh") == "hydrogen"  # no words for it: as is
    assert value_label("quantity", 1.5, "zh") == 1.5
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in zh) and en for zh, en in VALUES.values())

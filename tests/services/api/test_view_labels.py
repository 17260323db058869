"""The live view's words for indicators and statuses (services/api/static/labels.js) are the
ledger PDF's (carbonflow/domain/indicators/names.py): one set of names, checked here. Pure."""

from __future__ import annotations

import re
from pathlib import Path

from carbonflow.domain.indicators.formulas import Indicator, Status
from carbonflow.domain.indicators.names import INDICATOR_NAMES, STATUS_NAMES

LABELS_JS = Path(__file__).parents[3] / "services" / "api" / "static" / "labels.js"
_ENTRY = re.compile(r'^\s*([a-z0-9_:]+): \{ en: "([^"]*)", zh: "([^"]*)" \},?$', re.M)


def _js_labels() -> dict[str, tuple[str, str]]:
    return {k: (zh, en) for k, en, zh in _ENTRY.findall(LABELS_JS.read_text(encoding="utf-8"))}


def test_every_indicator_and_status_has_one_name_in_both_places() -> None:
    js = _js_labels()
    assert set(INDICATOR_NAMES) == set(Indicator) and set(STATUS_NAMES) == set(Status)
    named: dict[str, tuple[str, str]] = {str(k): v for k, v in INDICATOR_NAMES.items()}
    named |= {str(k): v for k, v in STATUS_NAMES.items()}
    for key, names in named.items():
        assert js.get(key) == names, key

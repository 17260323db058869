"""Access-matrix rows for the ledger routes (see ``tests/api_support.py``)."""

from __future__ import annotations

from tests.api_support import Case

CASES: tuple[Case, ...] = ()

"""The generator's own checks (tests/support/calc_generator.py): the calc tests rest on it."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime, timedelta

import pytest

from tests.support.calc_generator import generate, month_start

pytestmark = pytest.mark.integration


def _counter_total(series: Sequence[tuple[datetime, float]], modulus: float | None) -> float:
    """Σ positive steps, wraps added back — the plain arithmetic a reader would do."""
    total = 0.0
    for (_t0, a), (_t1, b) in itertools.pairwise(series):
        if b >= a:
            total += b - a
        elif modulus is not None and a > 0.9 * modulus:
            total += modulus - a + b
    return total


def test_generated_counters_carry_the_truth() -> None:
    from carbonflow.sites.loader import load_site_file

    doc = load_site_file("carbonflow/sites/examples/shanxi-mine.yaml")
    start = month_start(2025, 3)
    data = generate(doc, start, start + timedelta(days=2), devices=["longwall-feeder", "flare"])
    # longwall: 9 000 kW × 50 % × shift shape; its raw register × 12 000 gives kWh.
    key = ("longwall-feeder", "energy_import_kwh")
    series = data.readings[key]
    raw = _counter_total(series, 1_000_000)
    first, last = series[0][0], series[-1][0]
    truth = data.true_total(key, start, start + timedelta(days=2))
    # Readings cover [first, last] only: the truth outside that span is one period at each end.
    assert raw * 12_000 == pytest_approx(truth, rel=0.01)
    assert first >= start and last < start + timedelta(days=2)
    assert data.kinds[("flare", "ch4_nm3")] == "counter"


def pytest_approx(value: float, rel: float) -> object:
    import pytest

    return pytest.approx(value, rel=rel)

"""Quality.combine: measured if every part is, missing if every part is, else estimated."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest

from carbonflow.domain.readings.quality import Quality

M, E, X = Quality.MEASURED, Quality.ESTIMATED, Quality.MISSING


def test_values_are_the_stored_strings() -> None:
    assert [q.value for q in Quality] == ["measured", "estimated", "missing"]


def test_all_alike() -> None:
    assert Quality.combine([M]) is M
    assert Quality.combine([M, M, M]) is M
    assert Quality.combine([X, X]) is X
    assert Quality.combine([E]) is E
    assert Quality.combine([E, E]) is E


def test_any_mixture_is_estimated() -> None:
    # Measured and missing together is estimated (not the worst of the two).
    assert Quality.combine([M, X]) is E
    assert Quality.combine([X, M, M]) is E
    assert Quality.combine([M, E]) is E
    assert Quality.combine([X, E]) is E
    for n in range(2, 5):
        for parts in itertools.product(Quality, repeat=n):
            expected = parts[0] if len(set(parts)) == 1 else E
            assert Quality.combine(parts) is expected


def test_stored_strings_and_iterators() -> None:
    assert Quality.combine(["measured", "measured"]) is M
    assert Quality.combine(["missing"]) is X
    assert Quality.combine(q for q in ("measured", "missing")) is E
    assert Quality.combine(iter([M, "measured"])) is M


def test_nothing_to_combine_is_the_callers_to_say() -> None:
    with pytest.raises(ValueError, match="no qualities"):
        Quality.combine([])
    with pytest.raises(ValueError, match="no qualities"):
        Quality.combine(iter(()))


def test_callers_keep_their_answer_for_no_parts() -> None:
    """The inventory books a row of no parts as missing; period totals have no quality."""
    from carbonflow.domain.inventory.balance import Quantity, combined_quality
    from carbonflow.domain.inventory.lines import period_totals

    assert combined_quality([]) == ("missing", 0.0)
    assert combined_quality([Quantity(1.0, "measured", 1.0), Quantity(0.0, "missing", 0.0)]) == (
        "estimated",
        0.5,
    )
    assert period_totals([]).quality is None
    # Rows carry plain strings, as before (the enum stays inside the rule).
    assert type(combined_quality([Quantity(1.0, "measured", 1.0)])[0]) is str


def test_data_completeness_counts_a_metric_without_data_as_0() -> None:
    from carbonflow.domain.readings.quality import data_completeness

    @dataclass(frozen=True)
    class Total:
        quality: str
        completeness: float
        quantity: float = 0.0

    c = data_completeness([Total("measured", 1.0), None, Total("estimated", 0.5), None])
    assert (c.device_metrics, c.without_data) == (4, 2)
    assert c.completeness == 1.5 / 4  # (1 + 0 + 0.5 + 0) / 4
    assert (c.measured, c.estimated, c.missing) == (1, 1, 0)
    only_gaps = data_completeness([None, Total("missing", 0.0)])
    assert (only_gaps.completeness, only_gaps.missing, only_gaps.without_data) == (0.0, 1, 1)

"""Quality.combine: measured if every part is, missing if every part is, else estimated."""

from __future__ import annotations

import itertools

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
    """The inventory books a row of no parts as missing; the aggregates report no quality."""
    from carbonflow.domain.inventory.balance import Quantity, combined_quality
    from services.api.routers.regulator import combined_quality as totals_quality

    assert combined_quality([]) == ("missing", 0.0)
    assert combined_quality([Quantity(1.0, "measured", 1.0), Quantity(0.0, "missing", 0.0)]) == (
        "estimated",
        0.5,
    )
    assert totals_quality([]) is None
    assert totals_quality(["missing", "missing"]) == "missing"
    # Rows carry plain strings, as before (the enum stays inside the rule).
    assert type(combined_quality([Quantity(1.0, "measured", 1.0)])[0]) is str
    assert type(totals_quality(["measured"])) is str

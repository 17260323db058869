"""The recompute benches' cycle figures: the mean seconds a cycle at both ends of the run."""

from __future__ import annotations

from bench.common import quarter_means
from bench.year import cycle_quarters


def test_quarters_are_the_means_of_the_first_and_last_quarter_of_the_cycles() -> None:
    # 9 cycles: a quarter is 2 (the middle cycle belongs to neither end)
    seconds = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
    assert cycle_quarters(seconds) == {"cycle_s_first_quarter": 1.5, "cycle_s_last_quarter": 8.5}


def test_fewer_than_four_cycles_have_no_quarters() -> None:
    assert cycle_quarters([3.0, 4.0, 5.0]) == {}


def test_quarter_means_of_per_cycle_values() -> None:
    assert quarter_means([2.0, 4.0, 1.0, 1.0, 1.0, 6.0, 8.0, 0.0]) == (3.0, 4.0)
    assert quarter_means([1.0, 2.0]) is None

"""Rules for cumulative counters (kWh, Nm³, GJ, t registers) — pure, no I/O.

ACCOUNTING §1: a drop to below a documented fraction of the previous value, or a wrap at the
meter's declared modulus, starts a new series; any other drop is noise and is not energy.
"""

from __future__ import annotations

from enum import StrEnum

# A drop to below this fraction of the previous register value is a reset (meter cleared,
# replaced, or its register restarted), not noise. 10 % keeps a reset of a large register
# distinct from a read-out glitch of a few digits.
RESET_FRACTION = 0.10

# With a declared modulus M, a drop from above ROLLOVER_HIGH_FRACTION × M to below
# ROLLOVER_LOW_FRACTION × M is a wrap of the register at M.
ROLLOVER_HIGH_FRACTION = 0.90
ROLLOVER_LOW_FRACTION = 0.10


# A backwards step to at least (1 − NOISE_DIP_FRACTION) of the previous value is a read-out dip:
# the ingest service rejects it (``counter_backwards``). A larger drop that is neither a reset nor
# a rollover is ambiguous — an unrecognised reset, a replaced meter, or a corrupted read-out — and
# only the readings after it can tell which, so it is stored and left to the calc service, which
# sees the whole series. Rejecting it at ingest would lose every reading until the register
# climbed back above the old value.
NOISE_DIP_FRACTION = 0.10

# A register that restarted counted from 0 up to its first reading after the restart if that
# reading is at most FRESH_FACTOR × what the meter counts over the step at the rates of the pairs
# around it; a higher first reading means it restarted from an unknown base (a refurbished or
# pre-set meter), and the step gets the expected quantity, flagged estimated.
FRESH_FACTOR = 2.0

# A wrap at the modulus (``ROLLOVER``) adds ``modulus − previous + new``. When that is more than
# ROLLOVER_PLAUSIBLE_FACTOR × the most the meter counted over the same time at the faster of the
# two neighbouring pairs' rates, and ``new`` is what a register restarted at 0 would read (see
# FRESH_FACTOR), the drop was a reset near the top of the register (the phantom
# ``modulus − previous`` is not energy). The factor is generous so that a load that starts inside
# the step (a hoist at shift start) stays a wrap; a register restarted from an unknown base
# below the low fraction of the modulus cannot be told from a fast wrap and stays one.
ROLLOVER_PLAUSIBLE_FACTOR = 10.0


class CounterStep(StrEnum):
    NORMAL = "normal"  # new >= previous
    ROLLOVER = "rollover"  # wrapped at the modulus: delta = modulus - previous + new
    RESET = "reset"  # restarted near zero: delta = new (energy since the restart)
    BACKWARDS = "backwards"  # small dip: not energy, the reading is rejected as noise


def classify_step(previous: float, new: float, modulus: float | None = None) -> CounterStep:
    """Classify the step from ``previous`` to ``new`` of one counter register (same unit)."""
    if new >= previous:
        return CounterStep.NORMAL
    if (
        modulus is not None
        and previous >= ROLLOVER_HIGH_FRACTION * modulus
        and new <= ROLLOVER_LOW_FRACTION * modulus
    ):
        return CounterStep.ROLLOVER
    if new <= RESET_FRACTION * previous:
        return CounterStep.RESET
    return CounterStep.BACKWARDS


def is_noise_dip(previous: float, new: float, modulus: float | None = None) -> bool:
    """A backwards step small enough to be read-out noise (see ``NOISE_DIP_FRACTION``)."""
    return (
        classify_step(previous, new, modulus) is CounterStep.BACKWARDS
        and new >= (1.0 - NOISE_DIP_FRACTION) * previous
    )


def step_delta(previous: float, new: float, modulus: float | None = None) -> float:
    """Quantity counted between two register readings [register unit], never negative.

    Raises ``ValueError`` for a backwards step: it carries no quantity and must not be used.
    """
    step = classify_step(previous, new, modulus)
    if step is CounterStep.NORMAL:
        return new - previous
    if step is CounterStep.ROLLOVER:
        assert modulus is not None
        return modulus - previous + new
    if step is CounterStep.RESET:
        return new
    raise ValueError(f"counter ran backwards from {previous} to {new}")


class DropVerdict(StrEnum):
    """What the readings after an ambiguous drop (see ``NOISE_DIP_FRACTION``) say it was."""

    NOISE = "noise"  # a low outlier: the next reading continues from the value before the drop
    REBASE = "rebase"  # a reset or meter swap: the next reading continues from the lower value
    UNDECIDED = "undecided"  # no usable next reading yet: skipped until one arrives


def resolve_drop(
    previous: float, low: float, following: float | None, modulus: float | None = None
) -> DropVerdict:
    """Look-ahead for a backwards step ``previous → low`` larger than a noise dip.

    ``following`` is the register's next reading after ``low`` (None when there is none yet).
    The series continuing from ``previous`` (``following ≥ previous``, or a wrap from it) makes
    ``low`` an outlier; continuing from ``low`` (``low ≤ following < previous``) makes it a new
    base; a further drop (``following < low``) leaves ``low`` unconfirmed, i.e. noise, and the
    following reading is judged against ``previous`` in its turn.
    """
    if following is None:
        return DropVerdict.UNDECIDED
    if classify_step(previous, following, modulus) in (CounterStep.NORMAL, CounterStep.ROLLOVER):
        return DropVerdict.NOISE
    if following >= low:
        return DropVerdict.REBASE
    return DropVerdict.NOISE


def restart_quantity(new: float, expected: float | None) -> tuple[float, bool]:
    """Quantity of a step in which the register restarted, and whether it is estimated.

    ``new`` is the first reading after the restart; ``expected`` what the meter counts over the
    step at the neighbouring pairs' rates (None if no rate is known). Within ``FRESH_FACTOR ×
    expected`` the register restarted from 0 and counted ``new`` (measured); above it, or with
    no rate, from an unknown base: ``expected`` (estimated; 0 without a rate).
    """
    if expected is not None and new <= FRESH_FACTOR * expected:
        return new, False
    return (expected if expected is not None else 0.0), True


def rollover_plausible(
    previous: float, new: float, modulus: float, max_expected: float | None
) -> bool:
    """Whether a wrap ``previous → new`` at ``modulus`` fits the meter's rates (see
    ``ROLLOVER_PLAUSIBLE_FACTOR``). ``max_expected``: the quantity over the step at the faster
    neighbouring rate; without a positive rate the wrap is kept (nothing to compare with)."""
    if max_expected is None or max_expected <= 0:
        return True
    return modulus - previous + new <= ROLLOVER_PLAUSIBLE_FACTOR * max_expected

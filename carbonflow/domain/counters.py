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

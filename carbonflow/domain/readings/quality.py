"""The quality of a quantity and the one rule that combines qualities. Pure.

A quantity is ``measured`` (fully covered by readings), ``estimated`` (partly covered, or
spread over a gap) or ``missing`` (no reading touches it); see
:mod:`carbonflow.domain.readings.intervals`. A sum of quantities — an hour of four intervals, a
row booked from several meters, a period's total — is measured if every part is, missing if
every part is, and estimated otherwise (:meth:`Quality.combine`). The values are the strings
stored in ``calc_interval.quality`` and ``calc_carbon.quality``.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Quality(StrEnum):
    MEASURED = "measured"
    ESTIMATED = "estimated"
    MISSING = "missing"

    @classmethod
    def combine(cls, qualities: Iterable[str]) -> Quality:
        """The quality of a sum of parts of ``qualities`` (strings or members): measured if all
        are, missing if all are, else estimated. No parts is an error: what a sum of nothing
        is (missing, or no quality at all) is the caller's to say."""
        seen = set(qualities)
        if not seen:
            raise ValueError("no qualities to combine")
        if seen == {cls.MEASURED}:
            return cls.MEASURED
        if seen == {cls.MISSING}:
            return cls.MISSING
        return cls.ESTIMATED

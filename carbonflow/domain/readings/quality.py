"""The quality of a quantity and the one rule that combines qualities. Pure.

A quantity is ``measured`` (fully covered by readings), ``estimated`` (partly covered, or
spread over a gap) or ``missing`` (no reading touches it); see
:mod:`carbonflow.domain.readings.intervals`. A sum of quantities — an hour of four intervals, a
row booked from several meters, a period's total — is measured if every part is, missing if
every part is, and estimated otherwise (:meth:`Quality.combine`). The values are the strings
stored in ``calc_interval.quality`` and ``calc_carbon.quality``.

:func:`data_completeness` says how completely a set of device metrics was measured over a
period; a metric without any stored interval counts as 0 % complete.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


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


class MeasuredTotal(Protocol):
    """A device metric's quantity summed over a period (``storage.intervals.DeviceTotal``)."""

    @property
    def quantity(self) -> float: ...
    @property
    def quality(self) -> str: ...
    @property
    def completeness(self) -> float: ...


@dataclass(frozen=True, slots=True)
class DataCompleteness:
    """How completely a set of device metrics was measured over a period."""

    device_metrics: int
    without_data: int  # metrics with no interval stored in the period
    completeness: float  # mean over the metrics: one without data is 0 % complete
    measured: int  # metrics by the quality of their period total
    estimated: int
    missing: int


def data_completeness(totals: Sequence[MeasuredTotal | None]) -> DataCompleteness:
    """:class:`DataCompleteness` of device metrics given their period totals (None: no data).
    At least one metric."""
    present = [t for t in totals if t is not None]
    return DataCompleteness(
        device_metrics=len(totals),
        without_data=len(totals) - len(present),
        completeness=math.fsum(t.completeness for t in present) / len(totals),
        measured=sum(1 for t in present if t.quality == Quality.MEASURED),
        estimated=sum(1 for t in present if t.quality == Quality.ESTIMATED),
        missing=sum(1 for t in present if t.quality == Quality.MISSING),
    )

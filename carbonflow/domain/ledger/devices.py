"""The devices behind a ledger's activity lines: meters, serials, registers, quality. Pure.

A ledger line (category × carrier × scope) is what the inventory made of some devices' interval
quantities (``carbonflow/domain/inventory/balance.py``). :data:`ROLE_CATEGORIES` states which
device roles feed which categories; a device feeds a line when its role feeds the line's
category and it meters the line's carrier. For each such device metric the ledger shows the meter
serials seen, the opening and closing register readings (a counter: the raw register, before the
multiplier) or, for an interval meter, the sum of its intervals, the multiplier (CT × PT ratio of
an electricity meter, as modelled in the site file), the quantity (intervals summed, multiplier
applied) and the quality shares of the period's 15-min intervals: measured, estimated (gap
filled from the readings around the gap) and missing (no data: counted as zero).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from carbonflow.domain.readings.quality import Quality

_ELECTRICITY_GRID = frozenset({"purchased_electricity", "green_electricity"})
_METHANE = frozenset({"fugitive", "flaring", "fuel_combustion"})
# Device role → the inventory categories its quantities feed (balance.py, one function each).
ROLE_CATEGORIES: Mapping[str, frozenset[str]] = {
    "grid_import": _ELECTRICITY_GRID,
    "grid_export": _ELECTRICITY_GRID,
    "green_import": frozenset({"green_electricity"}),
    "generation_pv": frozenset({"self_generation"}),
    "generation_wind": frozenset({"self_generation"}),
    "heat_import": frozenset({"purchased_heat"}),
    "heat_export": frozenset({"purchased_heat"}),
    "fuel_supply": frozenset({"fuel_combustion"}),
    "process_carbonate": frozenset({"process"}),
    "methane_drained": _METHANE,
    "methane_ventilation": _METHANE,
    "methane_utilised": _METHANE,
    "methane_flared": _METHANE,
    "methane_vented": _METHANE,
    "methane_sold": _METHANE,
}
# Grid and purchased-heat meters serve the whole site: an organisation's purchased electricity
# (heat) is its attributed share of what they measured (the site file's attribution rule).
SHARED_ROLES = frozenset({"grid_import", "grid_export", "heat_import", "heat_export"})


def feeds(role: str, device_carrier: str, category: str, carrier: str) -> bool:
    """Whether a device of ``role`` metering ``device_carrier`` feeds the lines of ``category``
    and ``carrier`` (:data:`ROLE_CATEGORIES`)."""
    return category in ROLE_CATEGORIES.get(role, frozenset()) and carrier == device_carrier


@dataclass(frozen=True, slots=True)
class DeviceMeter:
    """One device metric over the ledger's period."""

    device_id: str
    role: str
    carrier: str
    org_id: str | None
    metric: str
    kind: str  # counter | interval
    unit: str  # of the register / interval value
    multiplier: float  # applied to the register differences (CT × PT ratio)
    serials: tuple[str, ...] = ()
    opening: float | None = None  # register at the period's start (raw) [unit]
    opening_at: datetime | None = None
    closing: float | None = None  # register at the period's end (raw) [unit]
    closing_at: datetime | None = None
    readings: int = 0  # readings in the period
    first_reading_at: datetime | None = None
    last_reading_at: datetime | None = None
    # quality → (15-min intervals, their quantity [unit × multiplier])
    intervals: Mapping[str, tuple[int, float]] = field(default_factory=dict)
    expected_intervals: int = 0  # 15-min intervals in the period

    def feeds(self, category: str, carrier: str) -> bool:
        return feeds(self.role, self.carrier, category, carrier)

    @property
    def quantity(self) -> float:
        """The period's quantity: its intervals summed exactly [unit × multiplier]."""
        return math.fsum(q for _n, q in self.intervals.values())

    def count(self, quality: Quality) -> int:
        return self.intervals.get(quality.value, (0, 0.0))[0]

    def shares(self) -> tuple[float, float, float] | None:
        """Measured, estimated and missing shares of the expected intervals (intervals with no
        row are missing); None for a period without intervals."""
        if self.expected_intervals <= 0:
            return None
        n = self.expected_intervals
        measured = min(self.count(Quality.MEASURED), n) / n
        estimated = min(self.count(Quality.ESTIMATED), n) / n
        return measured, estimated, max(0.0, 1.0 - measured - estimated)


Rounder = Callable[[float | None], float | None]  # the ledger's rounding (document.rounded)


def meters_of(meters: Sequence[DeviceMeter], category: str, carrier: str) -> list[DeviceMeter]:
    """The meters behind one activity line, by device id and metric."""
    return sorted(
        (m for m in meters if m.feeds(category, carrier)), key=lambda m: (m.device_id, m.metric)
    )


def line_shares(meters: Sequence[DeviceMeter]) -> tuple[float, float, float] | None:
    """Quality shares of a line: its meters' expected intervals pooled (each interval of each
    meter counts once)."""
    counted = [(m, m.shares()) for m in meters]
    pooled = [(m.expected_intervals, s) for m, s in counted if s is not None]
    total = sum(n for n, _s in pooled)
    if not total:
        return None
    return (
        math.fsum(n * s[0] for n, s in pooled) / total,
        math.fsum(n * s[1] for n, s in pooled) / total,
        math.fsum(n * s[2] for n, s in pooled) / total,
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def device_row(
    meter: DeviceMeter, line: Mapping[str, Any], org_id: str | None, rounded: Rounder
) -> dict[str, Any]:
    """One row of the ledger's ``devices`` section: a device metric behind ``line``."""
    shares = meter.shares()
    counter = meter.kind == "counter"
    return {
        "category": line["category"],
        "carrier": line["carrier"],
        "scope": line["scope"],
        "device_id": meter.device_id,
        "role": meter.role,
        "booking": "attributed_share"
        if org_id is not None and meter.role in SHARED_ROLES and meter.org_id != org_id
        else "own",
        "serials": ", ".join(meter.serials) or None,
        "metric": meter.metric,
        "meter_kind": meter.kind,
        "register_unit": meter.unit,
        "opening_reading": rounded(meter.opening) if counter else None,
        "opening_at": _iso(meter.opening_at) if counter else None,
        "closing_reading": rounded(meter.closing) if counter else None,
        "closing_at": _iso(meter.closing_at) if counter else None,
        "multiplier": rounded(meter.multiplier),
        "device_quantity": rounded(meter.quantity),
        "readings": meter.readings,
        "measured_share": rounded(shares[0]) if shares else None,
        "estimated_share": rounded(shares[1]) if shares else None,
        "missing_share": rounded(shares[2]) if shares else None,
    }

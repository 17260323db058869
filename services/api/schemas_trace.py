"""Response schemas of the trace routes (docs/api.md, Traceability).

Every number carries its unit: in its name (``energy_tce``, ``tco2e``), in a ``unit`` field next to
it, or in the description (a device's registers in its ``register_unit``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class ReadingsOut(_Out):
    count: int = Field(ge=0, description="readings stored in the period")
    unit: str = Field(description="what count counts: reading")
    first_at: datetime | None = Field(description="the first reading in the period")
    last_at: datetime | None = Field(description="the last reading in the period")


class IntervalsOut(_Out):
    unit: str = Field(description="what the counts count: 15-min interval")
    expected: int = Field(ge=0, description="15-min intervals in the period")
    measured: int = Field(ge=0, description="intervals computed from readings on both sides")
    estimated: int = Field(ge=0, description="gap-filled: estimated from the readings around a gap")
    missing: int = Field(ge=0, description="no data (counted as zero), stored or not computed")


class TraceDeviceOut(_Out):
    device_id: str
    name: str | None = Field(description="the device's name in the site file")
    role: str
    booking: str = Field(description="own, or attributed_share (a site grid meter's share)")
    category: str | None = Field(
        description="the ledger line it feeds (its first, for an indicator; null: none, an "
        "indicator reads it directly)"
    )
    carrier: str | None
    scope: str | None
    serials: str | None = Field(description="meter serials seen in the period, comma-separated")
    metric: str
    meter_kind: str = Field(description="counter or interval")
    register_unit: str = Field(description="unit of the readings, registers and quantity")
    opening_reading: float | None = Field(
        description="register at the period's start [register_unit]"
    )
    opening_at: datetime | None
    closing_reading: float | None = Field(
        description="register at the period's end [register_unit]"
    )
    closing_at: datetime | None
    multiplier: float | None = Field(
        description="CT × PT ratio applied to register differences [1]"
    )
    device_quantity: float | None = Field(
        description="the period's intervals summed, multiplier applied [register_unit]"
    )
    measured_share: float | None = Field(description="share of expected intervals [1]")
    estimated_share: float | None = Field(description="share of expected intervals [1]")
    missing_share: float | None = Field(description="share of expected intervals [1]")
    readings: ReadingsOut
    intervals: IntervalsOut


class GwpOut(_Out):
    gas: str
    gwp_key: str = Field(description="co2, or gwp.<gas>.<set> (unrecorded: none on the line)")
    gwp_set: str | None = Field(description="the GWP set, e.g. ar5 (null for CO2)")
    gwp: float | None
    unit: str = Field(description="tCO2e/t")


class LineCalcOut(_Out):
    carbon_rows: int = Field(ge=0, description="15-min carbon rows behind the line [row]")
    first_computed_at: datetime | None = Field(description="when the oldest of them was computed")
    last_computed_at: datetime | None = Field(description="when the newest of them was computed")
    factor_set_ids: list[int] = Field(description="calc_factor_set ids of those rows")
    site_document_sha256: str | None = Field(
        description="the site file the calc service computed with (calc_site_state)"
    )
    factor_fingerprint: str | None = Field(
        description="fingerprint of the site's factor set of the period's accounting year"
    )
    results_through: datetime | None = Field(description="the site's calc watermark")


class LedgerRefOut(_Out):
    status: str = Field(description="closed (a revision exists) or draft")
    latest_revision: int | None
    href: str = Field(description="the month's ledger")


class LineTraceOut(_Out):
    site_id: str
    org_id: str | None = Field(description="null: the site's own ledger")
    month: str = Field(description="site-local calendar month, YYYY-MM")
    timezone: str
    period_start: datetime
    period_end: datetime
    line_id: str = Field(description="<category>.<carrier>.<scope>")
    category: str
    carrier: str
    scope: str
    line: dict[str, Any] = Field(
        description="the line as the ledger's activity section shows it (quantity with its unit, "
        "energy_tce, emissions by scope, gas and view, factor)"
    )
    devices: list[TraceDeviceOut]
    readings: ReadingsOut = Field(description="the readings of all its devices together")
    factors: list[dict[str, Any]] = Field(
        description="every factor record of the line's factor sets: value with unit, version, "
        "data year, source (as the ledger's factors section)"
    )
    factor_set_ids: list[int]
    gwp: list[GwpOut]
    emissions: list[dict[str, Any]] = Field(
        description="scope × gas × basis rows: gas_t [t], tco2e [tCO2e], GWP"
    )
    calc: LineCalcOut
    ledger: LedgerRefOut


class IndicatorCalcOut(_Out):
    computed_at: datetime | None = Field(description="when the stored value was computed")
    factor_set_ids: list[int]
    site_document_sha256: str | None
    factor_fingerprint: str | None
    results_through: datetime | None


class IndicatorInputsOut(_Out):
    inventory: bool = Field(description="computed from the carbon inventory (every source)")
    roles: list[str] = Field(description="device roles whose quantities it reads directly")
    lines: list[str] = Field(description="ids of the inventory lines behind it")
    line_hrefs: list[str] = Field(description="their trace, for the period's month (grain month)")


class IndicatorTraceOut(_Out):
    site_id: str
    org_id: str | None = Field(description="null: the site's indicator")
    indicator: str
    grain: str
    timezone: str
    period_start: datetime
    period_end: datetime
    value: float | None = Field(description="in unit")
    unit: str
    numerator: float
    denominator: float
    basis: str
    status: str
    completeness: float = Field(description="share [1]")
    inputs: IndicatorInputsOut
    devices: list[TraceDeviceOut]
    readings: ReadingsOut
    factors: list[dict[str, Any]]
    gwp: list[GwpOut]
    energy_tce: float | None = Field(description="energy of the inventory lines behind it [tce]")
    calc: IndicatorCalcOut

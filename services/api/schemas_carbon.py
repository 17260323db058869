"""Response schemas of the calc-result routes: carbon time series, device energy, indicators,
budgets, events, factor provenance, the factor library and regulator aggregates.

Units as in :mod:`services.api.schemas`: a fixed quantity ends in its unit (``energy_tce``,
``tco2e``, ``co2_t``); where the unit varies from row to row (an indicator, a device metric, an
activity) a ``unit`` field stands next to the value. Fractions (0–1) are ``completeness``,
``…_fraction`` or ``…_share``. Every figure made of metered data carries its ``quality``
(``measured`` / ``estimated`` / ``missing``) and ``completeness`` (the share of its 15-min
intervals that were measured, 0–1).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from services.api.schemas import Page

Quality = Literal["measured", "estimated", "missing"]
Basis = Literal["location", "market"]


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


# --------------------------------------------------------------------------------------------
# Time series
# --------------------------------------------------------------------------------------------


class ActivityOut(_Out):
    carrier: str
    activity: float = Field(description="activity data of the carrier in `unit`")
    unit: str = Field(description="MWh, GJ, t, Nm3 …")


class CarbonPointOut(_Out):
    period_start: datetime
    period_end: datetime
    energy_tce: float = Field(description="energy consumed and supplied, counted once [tce]")
    zero_carbon_tce: float = Field(description="of it zero-carbon in this basis [tce]")
    tco2e: float = Field(description="emissions in this basis [tCO2e]")
    co2_t: float = Field(description="CO2 mass in this basis [t]")
    ch4_t: float = Field(description="CH4 mass in this basis [t]")
    scope1_tco2e: float = Field(description="[tCO2e]")
    scope2_tco2e: float = Field(description="in this basis [tCO2e]")
    activity: list[ActivityOut] = Field(
        description="physical energy by carrier in its own unit (basis-independent)"
    )
    quality: Quality
    completeness: float = Field(description="mean completeness of the period's source rows [0–1]")
    source_rows: int = Field(description="inventory rows summed (by source, basis and gas)")


class CarbonSeriesOut(_Out):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "site_id": "shanxi-jinzhong-mine",
                    "timezone": "Asia/Shanghai",
                    "grain": "day",
                    "basis": "location",
                    "start": "2025-02-28T16:00:00Z",
                    "end": "2025-03-01T16:00:00Z",
                    "org_id": None,
                    "node_id": None,
                    "carrier": None,
                    "scope": None,
                    "category": None,
                    "points": [
                        {
                            "period_start": "2025-02-28T16:00:00Z",
                            "period_end": "2025-03-01T16:00:00Z",
                            "energy_tce": 412.7,
                            "zero_carbon_tce": 18.2,
                            "tco2e": 2310.5,
                            "co2_t": 1804.1,
                            "ch4_t": 18.1,
                            "scope1_tco2e": 1320.4,
                            "scope2_tco2e": 990.1,
                            "activity": [
                                {"carrier": "electricity", "activity": 1736.2, "unit": "MWh"}
                            ],
                            "quality": "measured",
                            "completeness": 1.0,
                            "source_rows": 31,
                        }
                    ],
                    "totals": {"energy_tce": 412.7, "tco2e": 2310.5},
                }
            ]
        }
    )
    site_id: str
    timezone: str = Field(description="the site's zone: days and months are local")
    grain: Literal["15min", "hour", "day", "month"]
    basis: Basis
    start: datetime
    end: datetime
    org_id: str | None
    node_id: str | None
    carrier: str | None
    scope: str | None
    category: str | None
    points: list[CarbonPointOut]
    totals: dict[str, float] = Field(
        description="sums over the points: energy_tce, zero_carbon_tce, tco2e, co2_t, ch4_t, "
        "scope1_tco2e, scope2_tco2e (units as in the key)"
    )


class DevicePointOut(_Out):
    period_start: datetime
    period_end: datetime
    quantity: float = Field(description="in `unit`, after the device's multiplier")
    unit: str
    quality: Quality
    completeness: float
    late: bool = Field(description="a reading behind it arrived late")
    intervals: int = Field(description="15-min intervals stored in the period")


class DeviceMetricSeriesOut(_Out):
    metric: str
    unit: str
    points: list[DevicePointOut]


class DeviceEnergyOut(_Out):
    site_id: str
    device_id: str
    timezone: str
    grain: Literal["15min", "hour", "day", "month"]
    start: datetime
    end: datetime
    metrics: list[DeviceMetricSeriesOut]


# --------------------------------------------------------------------------------------------
# Indicators, budgets, events
# --------------------------------------------------------------------------------------------


class TargetOut(_Out):
    threshold: float = Field(description="in `unit`")
    comparator: str = Field(description="how the value must compare with the threshold")
    unit: str
    basis: str | None = Field(description="how the threshold was derived")
    source: str | None = Field(description="the targets file version or site file it is from")


class TrendPointOut(_Out):
    period_start: datetime
    value: float | None
    unit: str
    status: str


IndicatorStatus = Literal["on_track", "at_risk", "off_track", "insufficient_data", "no_target"]


class CoverageOut(_Out):
    """The data behind an indicator's period (docs/accounting.md, "Coverage")."""

    label: str = Field(description="the period, site-local: 2026, 2026-03 or 2026-03-05")
    local_start: datetime = Field(description="period start in the site's zone")
    local_end: datetime = Field(description="period end in the site's zone")
    in_progress: bool = Field(description="the data does not reach the period's end yet")
    share: float = Field(
        description="fraction (0–1) of the expected 15-min intervals of the accounting meters "
        "that have data; of the elapsed part for a period in progress"
    )
    days_with_data: int = Field(description="site-local days (d) with data")
    measured_share: float = Field(description="fraction (0–1) of stored intervals measured")
    estimated_share: float = Field(description="fraction (0–1) of stored intervals estimated")
    gap_filled_share: float = Field(description="fraction (0–1) of stored intervals gap-filled")
    unit: Literal["fraction"] = Field(default="fraction", description="of every share")


class ReasonOut(_Out):
    """Why a status is insufficient_data."""

    en: str
    zh: str


class EnergyTotalOut(_Out):
    """Which comprehensive energy consumption an indicator uses (docs/calc.md, energy totals)."""

    id: Literal["with_utilised_methane", "without_utilised_methane"]
    label_zh: str
    label_en: str
    unit: Literal["tce"] = "tce"


class IndicatorOut(_Out):
    site_id: str
    org_id: str | None = Field(description="null: the site as a whole")
    indicator: str
    grain: Literal["day", "month", "year", "range"]
    period_start: datetime
    period_end: datetime
    value: float | None = Field(description="in `unit`; null when undefined (see reason)")
    unit: str
    numerator: float
    denominator: float
    undefined_reason: str | None
    basis: str = Field(description="what the figure is built on: location, market, energy …")
    target: TargetOut | None
    status: IndicatorStatus = Field(
        description="insufficient_data: too little data or a missing input (see reason)"
    )
    explanation: str
    completeness: float = Field(description="fraction (0–1): the coverage's share")
    coverage: CoverageOut | None = Field(
        default=None, description="null for results stored before coverage was recorded"
    )
    reason: ReasonOut | None = Field(
        default=None, description="why the status is insufficient_data, in English and Chinese"
    )
    trend: list[TrendPointOut] = Field(
        description="the same indicator in the previous periods, oldest first (stored only)"
    )
    energy_total: EnergyTotalOut | None = Field(
        default=None,
        description="the energy total an energy-based indicator is built on: with or without "
        "the coal-mine methane utilised on site (null: the indicator uses no energy total)",
    )


class IndicatorsOut(_Out):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "site_id": "inner-mongolia-ordos-park",
                    "timezone": "Asia/Shanghai",
                    "grain": "month",
                    "period_start": "2025-04-30T16:00:00Z",
                    "period_end": "2025-05-31T16:00:00Z",
                    "items": [
                        {
                            "site_id": "inner-mongolia-ordos-park",
                            "org_id": None,
                            "indicator": "zero_carbon_energy_share",
                            "grain": "month",
                            "period_start": "2025-04-30T16:00:00Z",
                            "period_end": "2025-05-31T16:00:00Z",
                            "value": 0.42,
                            "unit": "1",
                            "numerator": 420.0,
                            "denominator": 1000.0,
                            "undefined_reason": None,
                            "basis": "energy",
                            "target": {
                                "threshold": 0.5,
                                "comparator": ">=",
                                "unit": "1",
                                "basis": "default",
                                "source": "targets 2025",
                            },
                            "status": "at_risk",
                            "explanation": "0.42 1 vs >= 0.5 1 (default): at_risk",
                            "completeness": 1.0,
                            "coverage": {
                                "label": "2025-05",
                                "local_start": "2025-05-01T00:00:00+08:00",
                                "local_end": "2025-06-01T00:00:00+08:00",
                                "in_progress": False,
                                "share": 1.0,
                                "days_with_data": 31,
                                "measured_share": 1.0,
                                "estimated_share": 0.0,
                                "gap_filled_share": 0.0,
                                "unit": "fraction",
                            },
                            "reason": None,
                            "trend": [
                                {
                                    "period_start": "2025-03-31T16:00:00Z",
                                    "value": 0.4,
                                    "unit": "1",
                                    "status": "at_risk",
                                }
                            ],
                        }
                    ],
                }
            ]
        }
    )
    site_id: str
    timezone: str
    grain: Literal["day", "month", "year", "range"]
    period_start: datetime | None = Field(description="null when nothing is stored yet")
    period_end: datetime | None
    items: list[IndicatorOut]


class BurnDownPointOut(_Out):
    period_end: datetime = Field(description="end of the local month")
    consumed: float = Field(description="cumulative since 1 January, in the budget's unit")


class BudgetOut(_Out):
    site_id: str
    org_id: str | None = Field(description="null: the site as a whole")
    year: int
    quantity: Literal["energy_tce", "co2_t"]
    unit: str = Field(description="of budget, consumed, remaining, projected_*: tce or tCO2")
    budget: float
    consumed: float
    remaining: float
    elapsed_fraction: float = Field(description="of the year elapsed at as_of [0–1]")
    used_fraction: float | None = Field(description="of the budget consumed [0–1+]")
    projected_total: float | None = Field(description="consumption at year end, linear")
    projected_overrun: float | None = Field(description="projected_total − budget, if positive")
    projected_exhaustion: datetime | None = Field(description="when the budget runs out, linear")
    status: str
    explanation: str
    as_of: datetime
    burn_down: list[BurnDownPointOut] | None = Field(
        description="cumulative consumption at the end of each month up to as_of "
        "(with burn_down=true), from the attributed totals as the calc service computes them"
    )


class BudgetsOut(_Out):
    site_id: str
    items: list[BudgetOut]


class EventOut(_Out):
    event_id: int
    site_id: str
    org_id: str | None = Field(description="null: the site as a whole")
    kind: Literal["indicator", "budget", "data"]
    subject: str = Field(description="the indicator, budget quantity or data problem")
    grain: str
    period_start: datetime
    status: str
    previous_status: str | None
    value: float | None = Field(description="in `unit`")
    threshold: float | None = Field(description="in `unit`")
    unit: str | None = Field(description="the indicator's or budget's unit; null: data events")
    message: str
    raised_at: datetime


class EventPage(Page[EventOut]):
    pass


# --------------------------------------------------------------------------------------------
# Factors
# --------------------------------------------------------------------------------------------


class FactorRecordOut(_Out):
    model_config = ConfigDict(frozen=True, extra="allow")
    factor_key: str
    factor_value: float = Field(description="in factor_unit")
    factor_unit: str
    factor_version: str | None = None
    factor_file: str | None = None
    factor_source: str | None = None
    factor_confidence: str | None = None
    factor_data_year: int | None = None
    requested_year: int | None = Field(
        default=None, description="the accounting year the factor was asked for (year-bound)"
    )
    factor_year_fallback: bool = Field(
        default=False,
        description="true when factor_data_year is not requested_year: no factor was published "
        "for the year, the newest earlier (or the earliest) data year is used",
    )
    selection: str | None = Field(default=None, description="rule, default, pin or override")
    selection_reason: str | None = None


class FactorSetOut(_Out):
    factor_set_id: int
    factors: list[FactorRecordOut]


class FactorValueOut(_Out):
    factor_key: str
    value: float = Field(description="in `unit`")
    unit: str
    confidence: Literal["A", "B+", "B", "U"]
    data_year: int | None
    valid_from: date | None
    valid_to: date | None
    source_id: str
    source: str
    note: str
    file_name: str
    version: str
    current: bool = Field(description="false: a superseded file version, kept for old results")


class FactorValuePage(Page[FactorValueOut]):
    pass


# --------------------------------------------------------------------------------------------
# Aggregates across sites
# --------------------------------------------------------------------------------------------


class TotalsOut(_Out):
    energy_tce: float = Field(description="[tce]")
    zero_carbon_tce: float = Field(description="location-based view [tce]")
    location_tco2e: float = Field(description="[tCO2e]")
    market_tco2e: float = Field(description="[tCO2e]")
    co2_location_t: float = Field(description="[t]")
    co2_market_t: float = Field(description="[t]")
    scope1_tco2e: float = Field(description="[tCO2e]")
    scope2_location_tco2e: float = Field(description="[tCO2e]")
    scope2_market_tco2e: float = Field(description="[tCO2e]")
    quality: Quality | None = Field(description="null when there are no rows")
    completeness: float = Field(description="mean over the source rows [0–1]; 0 without rows")


class OrgTotalsOut(_Out):
    org_id: str | None = Field(description="null: booked at the site, not at an organisation")
    name: str | None
    totals: TotalsOut


class SiteTotalsOut(_Out):
    site_id: str
    name: str
    kind: str
    timezone: str
    period_start: datetime
    period_end: datetime
    surplus_export_mwh: float = Field(description="net export beyond imports (scope 2 is 0)")
    totals: TotalsOut
    organisations: list[OrgTotalsOut]


class AggregateTotalsOut(_Out):
    start: date
    end: date = Field(description="exclusive; local days of each site")
    sites: list[SiteTotalsOut]
    totals: TotalsOut = Field(description="over every site listed")


class ComplianceItemOut(_Out):
    org_id: str | None
    indicator: str
    value: float | None = Field(description="in `unit`")
    unit: str
    status: str
    target_threshold: float | None = Field(description="in target_unit")
    target_unit: str | None
    explanation: str


class SiteComplianceOut(_Out):
    site_id: str
    period_start: datetime
    period_end: datetime
    status_counts: dict[str, int]
    items: list[ComplianceItemOut]


class AggregateComplianceOut(_Out):
    grain: Literal["day", "month", "year"]
    period: date
    status_counts: dict[str, int]
    sites: list[SiteComplianceOut]


class OrgCompletenessOut(_Out):
    site_id: str
    org_id: str | None = Field(description="null: devices of no organisation (site-level)")
    name: str | None
    device_metrics: int = Field(description="counter and interval metrics of active devices")
    without_data: int = Field(description="of them, with no interval stored in the period")
    completeness: float = Field(description="mean over the device metrics [0–1]")
    measured: int
    estimated: int
    missing: int


class AggregateCompletenessOut(_Out):
    start: date
    end: date
    items: list[OrgCompletenessOut]

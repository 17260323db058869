"""Request and response schemas of the API, separate from the storage rows they are built from.

Units: a field that carries a quantity ends in its unit (``power_kw``, ``volume_mwh``,
``ch4_flow_nm3_min``, ``age_s``), as everywhere in carbonflow (docs/nomenclature.md). Where the
unit varies from row to row (a reading of any metric), a ``unit`` field stands next to the value.
Fractions (0–1) are named ``…_rate`` or ``…_share``; counts and the dimensionless multiplier
carry no unit. Times are RFC 3339 with offset (UTC as stored).
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Generic, Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

T = TypeVar("T")


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


# --------------------------------------------------------------------------------------------
# Paging
# --------------------------------------------------------------------------------------------


class Links(_Out):
    self_: str = Field(alias="self", description="this page (path and query)")
    next: str | None = Field(description="the next page, or null on the last one")
    prev: str | None = Field(description="the previous page, or null on the first one")


class Page(_Out, Generic[T]):
    items: list[T]
    limit: int
    offset: int
    links: Links


# --------------------------------------------------------------------------------------------
# Service
# --------------------------------------------------------------------------------------------


class HealthOut(_Out):
    status: Literal["ok"] = Field(description="otherwise the answer is a 503 problem")
    database: bool = Field(description="the database answered")
    schema_revision: str | None = Field(description="migration revision of the database")
    expected_revision: str | None = Field(description="the newest revision this code knows")


class MeOut(_Out):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "key_id": "3f9c0a1b2c4d",
                    "role": "enterprise",
                    "label": "cathode plant energy manager",
                    "site_ids": ["inner-mongolia-ordos-park"],
                    "org_id": "cathode-plant",
                    "requests_per_minute": 600,
                    "permissions": ["read_green", "read_live", "read_registry", "write_green"],
                }
            ]
        }
    )

    key_id: str
    role: Literal["admin", "operator", "enterprise", "regulator"]
    label: str
    site_ids: list[str] | None = Field(description="null: every site (admin)")
    org_id: str | None = Field(description="the one organisation of an enterprise key")
    requests_per_minute: int = Field(description="sustained rate limit of this key [1/min]")
    permissions: list[str]


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------


class SiteOut(_Out):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "site_id": "shanxi-jinzhong-mine",
                    "name": "Jinzhong Demonstration Coal Mine (example)",
                    "name_zh": "晋中示范煤矿（示例）",
                    "kind": "mine",
                    "timezone": "Asia/Shanghai",
                    "province": "shanxi",
                    "grid_region": "north",
                    "latitude_deg": 37.7,
                    "longitude_deg": 112.7,
                    "baseline_year": 2020,
                    "loaded_at": "2026-11-21T08:00:00Z",
                    "organisation_count": 1,
                    "node_count": 28,
                    "device_count": 45,
                }
            ]
        }
    )

    site_id: str
    name: str
    name_zh: str | None
    kind: Literal["park", "mine", "enterprise"]
    timezone: str = Field(description="IANA zone of the site's local days and months")
    province: str
    grid_region: str
    latitude_deg: float | None
    longitude_deg: float | None
    baseline_year: int
    loaded_at: datetime = Field(description="when the site file was last loaded")
    organisation_count: int = Field(description="organisations this key may see")
    node_count: int = Field(description="nodes this key may see")
    device_count: int = Field(description="active devices this key may see")


class OrganisationOut(_Out):
    site_id: str
    org_id: str
    name: str
    name_zh: str | None
    industry: str | None


class NodeOut(_Out):
    site_id: str
    node_id: str
    name: str
    name_zh: str | None
    kind: str
    org_id: str | None
    production_system: bool = Field(description="inside the raw-coal production system (mines)")


class MetricOut(_Out):
    name: str = Field(description="metric name; its suffix names its unit")
    unit: str = Field(description="canonical unit of the metric's values")
    kind: Literal["counter", "interval", "gauge"]
    rated_max: float | None = Field(
        description="largest plausible true value, in ``unit`` (after the multiplier)"
    )


class DeviceOut(_Out):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "site_id": "shanxi-jinzhong-mine",
                    "device_id": "drainage-high",
                    "name": "High-concentration drainage main",
                    "kind": "methane_drainage",
                    "carrier": "coal_mine_methane",
                    "role": "methane_drained",
                    "node_id": "gas-drainage-station",
                    "org_id": "jinzhong-coal",
                    "multiplier": 1.0,
                    "counter_modulus": 100000000.0,
                    "active": True,
                    "metrics": [
                        {"name": "ch4_pct", "unit": "%", "kind": "gauge", "rated_max": 100.0},
                        {
                            "name": "mixture_flow_nm3_min",
                            "unit": "Nm3/min",
                            "kind": "gauge",
                            "rated_max": 300.0,
                        },
                    ],
                }
            ]
        }
    )

    site_id: str
    device_id: str
    name: str
    kind: str
    carrier: str
    role: str
    node_id: str | None
    org_id: str | None
    multiplier: float = Field(
        description="CT × PT ratio or pulse factor (dimensionless): true value = reading × "
        "multiplier, for energies, volumes, powers and flows"
    )
    counter_modulus: float | None = Field(
        description="counter registers wrap at this value, in the counter metric's unit "
        "(register reading, before the multiplier)"
    )
    active: bool
    metrics: list[MetricOut]


# --------------------------------------------------------------------------------------------
# Live
# --------------------------------------------------------------------------------------------


class LatestReadingOut(_Out):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "device_id": "grid-line-1",
                    "metric": "power_kw",
                    "unit": "kW",
                    "metric_kind": "gauge",
                    "ts": "2026-11-23T06:15:00Z",
                    "age_s": 4.2,
                    "value": 6600.0,
                    "raw_value": 0.05,
                    "multiplier": 132000.0,
                    "received_at": "2026-11-23T06:15:00.180Z",
                }
            ]
        }
    )

    device_id: str
    metric: str
    unit: str = Field(description="unit of value and raw_value")
    metric_kind: Literal["counter", "interval", "gauge"]
    ts: datetime | None = Field(description="time of the newest reading; null: never reported")
    age_s: float | None = Field(description="now − ts [s]")
    value: float | None = Field(description="true value: raw_value × multiplier, in unit")
    raw_value: float | None = Field(description="as stored, before the multiplier, in unit")
    multiplier: float = Field(description="factor applied to raw_value (1 where none applies)")
    received_at: datetime | None = Field(description="when ingest received the reading")


class PowerGroupOut(_Out):
    carrier: str
    role: str
    power_kw: float = Field(description="Σ fresh power gauges, multiplier applied [kW]")
    devices: int = Field(description="devices of this carrier and role with a power gauge")
    devices_reporting: int = Field(description="of which with a fresh reading")
    stale_device_ids: list[str] = Field(description="silent, or older than stale_after_s")
    newest_ts: datetime | None
    oldest_fresh_ts: datetime | None


class PowerNowOut(_Out):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "site_id": "shanxi-jinzhong-mine",
                    "as_of": "2026-11-23T06:15:05Z",
                    "stale_after_s": 900.0,
                    "groups": [
                        {
                            "carrier": "electricity",
                            "role": "grid_import",
                            "power_kw": 11880.0,
                            "devices": 2,
                            "devices_reporting": 2,
                            "stale_device_ids": [],
                            "newest_ts": "2026-11-23T06:15:00Z",
                            "oldest_fresh_ts": "2026-11-23T06:14:55Z",
                        }
                    ],
                }
            ]
        }
    )

    site_id: str
    as_of: datetime
    stale_after_s: float = Field(description="readings older than this are left out [s]")
    groups: list[PowerGroupOut] = Field(description="one per (carrier, role); roles overlap")


class MethaneFlowOut(_Out):
    role: str
    ch4_flow_nm3_min: float = Field(description="pure CH4 of the reporting devices [Nm³/min]")
    gas_flow_nm3_min: float = Field(
        description="gas mixture (return air for ventilation) of the same devices [Nm³/min]"
    )
    devices: int
    devices_reporting: int = Field(description="fresh flow and fresh CH4 concentration")
    unmeasured_device_ids: list[str] = Field(
        description="stale, silent, or without a valid CH4 concentration"
    )


class MethaneHourOut(_Out):
    drained_ch4_nm3_h: float = Field(description="pure CH4 drained [Nm³/h]")
    utilised_ch4_nm3_h: float = Field(description="pure CH4 utilised on site + sold [Nm³/h]")
    flared_ch4_nm3_h: float = Field(description="pure CH4 flared [Nm³/h]")
    vented_ch4_nm3_h: float = Field(description="drained CH4 released unburnt [Nm³/h]")
    drained_tco2e_h: float = Field(description="potential: drained CH4 × GWP [tCO2e/h]")
    utilised_tco2e_h: float = Field(description="CO2 of on-site combustion [tCO2e/h]")
    flared_tco2e_h: float = Field(description="CO2 of flaring [tCO2e/h]")
    vented_tco2e_h: float = Field(description="released CH4 × GWP [tCO2e/h]")
    drained_ch4_pct: float | None = Field(description="CH4 in the drained gas mixture [%]")
    utilisation_rate_pct: float | None = Field(description="utilised ÷ drained [%]")
    drainage_rate_pct: float | None = Field(description="drained ÷ (drained + ventilation) [%]")
    gwp_tco2e_per_tch4: float = Field(description="GWP of CH4 used [tCO2e/tCH4]")


class MethaneTargetOut(_Out):
    year: int | None = Field(description="milestone year")
    comparator: str = Field(description=">= or <=")
    threshold_pct: float = Field(description="target [%]")
    source: str


class MethaneNowOut(_Out):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "site_id": "shanxi-jinzhong-mine",
                    "as_of": "2026-11-23T06:15:05Z",
                    "stale_after_s": 900.0,
                    "drained_ch4_nm3_min": 68.0,
                    "utilised_ch4_nm3_min": 31.2,
                    "flared_ch4_nm3_min": 7.2,
                    "vented_ch4_nm3_min": 28.8,
                    "ventilation_ch4_nm3_min": 66.0,
                    "utilisation_rate": 0.459,
                    "drainage_rate": 0.507,
                    "flows": [
                        {
                            "role": "methane_drained",
                            "ch4_flow_nm3_min": 68.0,
                            "gas_flow_nm3_min": 300.0,
                            "devices": 2,
                            "devices_reporting": 2,
                            "unmeasured_device_ids": [],
                        }
                    ],
                }
            ]
        }
    )

    site_id: str
    as_of: datetime
    stale_after_s: float
    drained_ch4_nm3_min: float = Field(description="Q_drained now, pure CH4 [Nm³/min]")
    utilised_ch4_nm3_min: float = Field(description="Q_utilised now: on site + sold [Nm³/min]")
    flared_ch4_nm3_min: float = Field(description="Q_flared now [Nm³/min]")
    vented_ch4_nm3_min: float = Field(description="drained gas released unburnt [Nm³/min]")
    ventilation_ch4_nm3_min: float = Field(description="Q_ventilation, return air [Nm³/min]")
    utilisation_rate: float | None = Field(
        description="utilised ÷ drained [fraction]; null when nothing is drained"
    )
    drainage_rate: float | None = Field(description="drained ÷ (drained + ventilation) [fraction]")
    flows: list[MethaneFlowOut]
    data_as_of: datetime | None = Field(
        default=None, description="newest reading of the methane devices, UTC"
    )
    data_age_s: float | None = Field(default=None, description="as_of − data_as_of [s]")
    hour: MethaneHourOut | None = Field(
        default=None, description="hourly figures for a mine panel; null without a factor library"
    )
    utilisation_targets: list[MethaneTargetOut] = Field(
        default_factory=list, description="utilisation-rate milestones of the target library"
    )
    drainage_targets: list[MethaneTargetOut] = Field(
        default_factory=list, description="drainage-rate milestones (none in the library today)"
    )


class FreshnessOut(_Out):
    device_metrics: int = Field(description="metrics of the active devices this key may see")
    fresh: int
    stale: int
    never_reported: int
    newest_ts: datetime | None


class DeviceFreshnessOut(_Out):
    device_id: str
    newest_ts: datetime | None = Field(description="newest reading of any metric; null: never")
    age_s: float | None = Field(description="as_of − newest_ts [s]")
    stale_after_s: float = Field(
        description="3 × the device's reporting period, else the server default [s]"
    )
    stale: bool


class ElectricityNowOut(_Out):
    power_in_kw: float = Field(description="grid and green imports + own generation, ≥ 0 [kW]")
    renewable_kw: float = Field(description="green line + PV + wind, ≤ power_in_kw [kW]")
    grid_import_kw: float = Field(description="Σ grid import above 0 [kW]")
    grid_export_kw: float = Field(description="Σ grid export (and negative import) [kW]")
    net_export_kw: float = Field(description="max(0, export − import) [kW]")
    renewable_share_pct: float | None = Field(description="renewable ÷ power in [%]")


class LiveSnapshotOut(_Out):
    site_id: str
    as_of: datetime = Field(description="the server clock when the snapshot was taken, UTC")
    data_as_of: datetime | None = Field(
        description="the newest reading received from any device of the site: what the figures "
        "are as of; null: nothing ever reported"
    )
    data_age_s: float | None = Field(description="as_of − data_as_of [s]")
    state: str = Field(description="live | partial (some devices stale) | stale | no_data")
    stale_after_s: float = Field(description="default freshness limit [s]")
    power: list[PowerGroupOut]
    electricity: ElectricityNowOut
    methane: MethaneNowOut | None = Field(description="null: the site has no methane devices")
    freshness: FreshnessOut
    devices: list[DeviceFreshnessOut] = Field(description="each device's newest reading and age")


# --------------------------------------------------------------------------------------------
# Rejected readings
# --------------------------------------------------------------------------------------------


class RejectionOut(_Out):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "rejection_id": 4711,
                    "received_at": "2026-11-23T06:14:58Z",
                    "last_seen_at": "2026-11-23T06:14:58Z",
                    "reason": "counter_backwards",
                    "detail": "energy_import_kwh fell from 1204331.5 to 1204100.0",
                    "topic": "carbonflow/v1/shanxi-jinzhong-mine/grid-line-1/telemetry",
                    "device_id": "grid-line-1",
                    "metric": "energy_import_kwh",
                    "reading_ts": "2026-11-23T06:14:55Z",
                    "value": 1204100.0,
                    "unit": "kWh",
                    "payload_excerpt": '{"ts": "2026-11-23T06:14:55Z", "energy_import_kwh": …}',
                    "payload_bytes": 88,
                }
            ]
        }
    )

    rejection_id: int
    received_at: datetime = Field(description="first time this content was rejected")
    last_seen_at: datetime = Field(description="last time it was delivered again")
    reason: str = Field(description="closed list: docs/mqtt.md")
    detail: str
    topic: str
    device_id: str | None
    metric: str | None
    reading_ts: datetime | None
    value: float | None = Field(description="the rejected value as sent, in unit")
    unit: str | None = Field(description="the metric's unit, when the metric name has one")
    payload_excerpt: str
    payload_bytes: int = Field(description="size of the whole payload [bytes]")


# --------------------------------------------------------------------------------------------
# Green-power register
# --------------------------------------------------------------------------------------------

InstrumentKind = Literal["green_power_contract", "direct_supply", "certificate"]
BatchState = Literal["held", "claimed", "cancelled", "expired"]
# YYYY-MM, years 1900–2999 (as the ledger routes)
MONTH_PATTERN = r"^(19|2[0-9])[0-9]{2}-(0[1-9]|1[0-2])$"


MAX_SERIAL = 2**63 - 1  # serials are stored as bigint
MWH_PER_CERTIFICATE = 1.0  # one green certificate (绿证) = 1 MWh (发改能源〔2023〕1044号)


class GreenInstrumentIn(BaseModel):
    """A green-power contract (绿电交易), direct supply (绿电直连) or certificates (绿证)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "kind": "certificate",
                    "org_id": "cathode-plant",
                    "evidence": "GEC batch 2026-NM-000123 (China Green Certificate platform)",
                    "certificates": 5000,
                    "volume_mwh": 5000.0,
                    "valid_from": "2026-01-01",
                    "valid_to": "2026-12-31",
                    "claimed_mwh": 4000.0,
                    "claim_start": "2026-01-01",
                    "claim_end": "2026-06-30",
                }
            ]
        },
    )

    kind: InstrumentKind
    org_id: str | None = Field(
        default=None,
        max_length=64,
        description="the organisation claiming it; an enterprise key may omit it (its own)",
    )
    evidence: str = Field(
        min_length=1, max_length=2000, description="evidence reference: contract, certificate ids"
    )
    certificates: int | None = Field(
        default=None, ge=0, le=1_000_000_000, description="number of certificates (GEC)"
    )
    volume_mwh: float = Field(ge=0, le=1e9, description="volume of the instrument [MWh]")
    valid_from: date
    valid_to: date
    claimed_mwh: float = Field(ge=0, le=1e9, description="volume claimed for the period [MWh]")
    claim_start: date
    claim_end: date
    serial_first: int | None = Field(
        default=None,
        ge=0,
        le=MAX_SERIAL,
        description="first certificate serial number of the batch (inclusive); serial ranges "
        "are unique across the platform: an overlap with any batch at any site is refused (409)",
    )
    serial_last: int | None = Field(
        default=None, ge=0, le=MAX_SERIAL, description="last serial number (inclusive)"
    )
    production_month: str | None = Field(
        default=None,
        pattern=MONTH_PATTERN,
        description="YYYY-MM: makes the entry a register batch (docs/green.md): valid two years "
        "from this month, applied only by claims (claimed_mwh 0), held by one organisation",
        examples=["2026-03"],
    )
    source_project: str | None = Field(
        default=None, max_length=500, description="the renewable project that produced it"
    )
    tradable: bool | None = Field(default=None, description="may be traded on (绿证可交易)")
    evidence_sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 (hex) of the evidence document (certificate, settlement, contract)",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        problems = self._serial_problems()
        if self.production_month is not None and self.claimed_mwh != 0:
            problems.append(
                "a register batch (production_month) is applied by claims: claimed_mwh must be 0 "
                "/ 登记批次通过申领使用：claimed_mwh 须为 0"
            )
        if not (math.isfinite(self.volume_mwh) and math.isfinite(self.claimed_mwh)):
            problems.append("volumes must be finite")
        elif self.claimed_mwh > self.volume_mwh:
            problems.append(
                f"claimed_mwh {self.claimed_mwh:g} exceeds volume_mwh {self.volume_mwh:g}"
            )
        if self.valid_to < self.valid_from:
            problems.append("valid_to is before valid_from")
        if self.claim_end < self.claim_start:
            problems.append("claim_end is before claim_start")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _serial_problems(self) -> list[str]:
        """Serials come as a pair, in order; a certificate batch with serials counts
        last − first + 1 certificates of 1 MWh each (certificates and volume_mwh agree)."""
        first, last = self.serial_first, self.serial_last
        if first is None and last is None:
            return []
        if first is None or last is None:
            return ["give both serial_first and serial_last, or neither"]
        if last < first:
            return [f"serial_last {last} is before serial_first {first}"]
        count = last - first + 1
        problems = []
        if self.kind == "certificate":
            if self.certificates is not None and self.certificates != count:
                problems.append(
                    f"certificates {self.certificates} but serials {first}–{last} are {count}"
                )
            if self.volume_mwh != count * MWH_PER_CERTIFICATE:
                problems.append(
                    f"volume_mwh {self.volume_mwh:g} but {count} certificates are "
                    f"{count * MWH_PER_CERTIFICATE:g} MWh (1 certificate = 1 MWh)"
                )
        return problems


class GreenInstrumentOut(_Out):
    site_id: str
    instrument_id: str
    kind: InstrumentKind
    org_id: str | None
    evidence: str
    certificates: int | None
    volume_mwh: float = Field(description="[MWh]")
    valid_from: date
    valid_to: date
    claimed_mwh: float = Field(description="[MWh]")
    claim_start: date
    claim_end: date
    created_at: datetime
    updated_at: datetime
    serial_first: int | None = Field(default=None, description="first serial (inclusive)")
    serial_last: int | None = Field(default=None, description="last serial (inclusive)")
    production_month: str | None = Field(
        default=None, description="YYYY-MM of a register batch; null: a period instrument"
    )
    source_project: str | None = None
    tradable: bool | None = None
    evidence_sha256: str | None = None
    status: BatchState | None = Field(
        default=None,
        description="register batch: held / claimed / cancelled / expired (today, site-local)",
    )
    expires_on: date | None = Field(
        default=None, description="first day the batch is expired (production month + 24 months)"
    )
    register_claimed_mwh: float | None = Field(
        default=None, description="register batch: MWh applied by its active claims [MWh]"
    )
    held_mwh: float | None = Field(
        default=None, description="register batch: MWh neither claimed nor cancelled [MWh]"
    )
    cancelled_at: datetime | None = None


class SitePage(Page[SiteOut]):
    pass


class OrganisationPage(Page[OrganisationOut]):
    pass


class NodePage(Page[NodeOut]):
    pass


class DevicePage(Page[DeviceOut]):
    pass


class LatestReadingPage(Page[LatestReadingOut]):
    pass


class RejectionPage(Page[RejectionOut]):
    pass


class RejectionCountOut(_Out):
    site_id: str | None = Field(description="null: no site was recognised in the topic")
    reason: str
    device_id: str | None
    topic: str | None = Field(description="the topic, where no device was recognised")
    rejections: int = Field(description="rejected readings (a redelivered one counts once) [1]")
    first_received_at: datetime
    last_seen_at: datetime


class RejectionSummaryOut(_Out):
    """Rejected readings counted per site, reason and device (per topic where no device was
    recognised), most first."""

    since: datetime | None
    until: datetime | None
    total_rejections: int = Field(description="sum over the groups shown [1]")
    truncated: bool = Field(description="more groups exist than were returned")
    groups: list[RejectionCountOut]


class GreenInstrumentPage(Page[GreenInstrumentOut]):
    pass


class GreenClaimIn(BaseModel):
    """Apply (part of) a register batch to the holder's own purchased electricity of a month."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"month": "2026-04", "serial_first": 1001,
                                         "serial_last": 1120}]},
    )  # fmt: skip

    month: str = Field(pattern=MONTH_PATTERN, description="site-local consumption month, YYYY-MM")
    serial_first: int | None = Field(
        default=None, ge=0, le=MAX_SERIAL,
        description="sub-range of the batch's serials to claim (default: the whole batch)",
    )  # fmt: skip
    serial_last: int | None = Field(default=None, ge=0, le=MAX_SERIAL)
    mwh: float | None = Field(
        default=None, gt=0, le=1e9,
        description="volume to claim of a batch without serials [MWh]; with serials it must "
        "equal the serial count × 1 MWh",
    )  # fmt: skip


class GreenTransferIn(BaseModel):
    """Hand a whole tradable, held batch to another organisation of the site."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"to_org_id": "cathode-plant"}]}
    )

    to_org_id: str = Field(
        min_length=1, max_length=128, description="the organisation of the site that receives it"
    )


class GreenClaimOut(_Out):
    claim_id: int
    site_id: str
    instrument_id: str
    org_id: str = Field(description="the holder whose consumption the claim applies to")
    month: str = Field(description="consumption month, YYYY-MM")
    mwh: float = Field(description="[MWh]")
    serial_first: int | None
    serial_last: int | None
    state: Literal["active", "withdrawn"]
    claimed_at: datetime
    claimed_by: str
    withdrawn_at: datetime | None
    withdrawn_by: str | None


class GreenClaimPage(Page[GreenClaimOut]):
    pass

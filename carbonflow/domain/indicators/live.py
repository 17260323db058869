"""Live values from the latest reading of each device metric. Pure.

Stored readings are in the metric's canonical unit *before* the device multiplier (CT × PT ratio
or pulse factor); :func:`true_value` applies it where it applies
(:func:`carbonflow.domain.site.model.multiplier_applies`: energies, volumes, powers and flows,
not concentrations or temperatures).

"Now" totals use only *fresh* gauges: a meter that stopped reporting an hour ago must not hold
its last power in today's total. A reading is fresh while its age is at most the metric's limit,
:func:`stale_limit_s`: ``STALE_INTERVALS`` (3) × the device's declared reporting period, else the
service's default. Stale and silent devices are listed instead, so a total always says how many
devices it covers. "As of" is the newest reading actually received (:func:`device_freshness`,
:func:`site_state`), never the server clock: a feed that stopped shows its age, not "live".

- **Site power now** [kW]: Σ ``power_kw`` gauges by (carrier, role). Roles are kept apart
  because they overlap (a grid connection meter and the feeders behind it measure the same
  power); adding across roles is the calc service's energy balance, not a live sum.
- **Methane now** [Nm³/min of pure CH4]: per device, flow × CH4 concentration (ACCOUNTING §4,
  :func:`carbonflow.domain.inventory.methane.pure_ch4_nm3`), summed by role; drained =
  ``methane_drained``, utilised = ``methane_utilised`` + ``methane_sold`` (the guideline's
  Q_utilised), flared, vented (drained gas released), ventilation (return-air shafts); the
  utilisation and drainage rates of the moment by :mod:`carbonflow.domain.indicators.formulas`.
- **Electricity now** (:func:`electricity_now`): power in (imports and own generation, each
  never below 0), of which renewable (never above power in), and a net export as its own figure.
- **Carbon now** (:func:`carbon_now`): the newest calculated hour of *complete* 15-min slots as
  an hourly emission rate in each scope-2 view (never negative: a net-exporting window's
  purchased electricity is 0, as ``settle_period`` does for any period; the credit is shown
  apart), and the zero-carbon share of its energy.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from carbonflow.domain.inventory.methane import (
    MethaneFlows,
    MethaneParameters,
    methane_drainage_rate,
    methane_utilisation_rate,
    mine_methane,
    pure_ch4_nm3,
)
from carbonflow.domain.site.model import Role, multiplier_applies

POWER_METRIC = "power_kw"
CH4_PCT_METRIC = "ch4_pct"
# The flow gauge of a gas line, a ventilation shaft or a plain gas meter, in that order [Nm³/min].
FLOW_METRICS = ("mixture_flow_nm3_min", "air_flow_nm3_min", "flow_nm3_min")
LIVE_METRICS = (POWER_METRIC, CH4_PCT_METRIC, *FLOW_METRICS)

METHANE_ROLES: tuple[Role, ...] = (
    Role.METHANE_DRAINED,
    Role.METHANE_UTILISED,
    Role.METHANE_SOLD,
    Role.METHANE_FLARED,
    Role.METHANE_VENTED,
    Role.METHANE_VENTILATION,
)


@dataclass(frozen=True, slots=True)
class LatestValue:
    """The newest reading of one device metric (``ts`` None: never reported)."""

    device_id: str
    carrier: str
    role: str
    metric: str
    ts: datetime | None
    raw_value: float | None  # canonical unit, before the multiplier
    multiplier: float
    report_interval_s: float | None = None  # the device's declared reporting period [s]


# A metric is stale after this many of its device's reporting periods without a reading.
STALE_INTERVALS = 3


def stale_limit_s(value: LatestValue, default_s: float) -> float:
    """The age above which ``value`` is stale [s]: 3 × the device's reporting period (a device
    reporting every 60 s is stale after 180 s), else ``default_s``."""
    interval = value.report_interval_s
    if interval is not None and interval > 0:
        return STALE_INTERVALS * interval
    return default_s


def applied_multiplier(metric: str, multiplier: float) -> float:
    """The factor a reading of ``metric`` is multiplied by: the device's, or 1."""
    return multiplier if multiplier_applies(metric) else 1.0


def true_value(metric: str, raw_value: float, multiplier: float) -> float:
    """The measured quantity in the metric's unit: ``raw × multiplier`` where it applies."""
    return raw_value * applied_multiplier(metric, multiplier)


def age_s(ts: datetime, now: datetime) -> float:
    """Seconds from ``ts`` to ``now`` (negative for a reading stamped in the future) [s]."""
    return (now - ts).total_seconds()


def _fresh(value: LatestValue | None, now: datetime, stale_after_s: float) -> bool:
    """Reported, and no older than its limit (``stale_after_s`` is the default limit)."""
    return (
        value is not None
        and value.ts is not None
        and value.raw_value is not None
        and age_s(value.ts, now) <= stale_limit_s(value, stale_after_s)
    )


# --------------------------------------------------------------------------------------------
# Site power now
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PowerGroup:
    carrier: str
    role: str
    power_kw: float  # Σ fresh gauges, multiplier applied [kW]
    devices: int  # devices of this carrier and role with a power gauge
    devices_reporting: int  # of which fresh
    stale_device_ids: tuple[str, ...]  # silent or older than the freshness limit
    newest_ts: datetime | None
    oldest_fresh_ts: datetime | None


def power_now(
    values: Iterable[LatestValue], now: datetime, stale_after_s: float
) -> tuple[PowerGroup, ...]:
    """Σ of fresh ``power_kw`` gauges by (carrier, role), sorted by carrier and role."""
    groups: dict[tuple[str, str], list[LatestValue]] = {}
    for value in values:
        if value.metric == POWER_METRIC:
            groups.setdefault((value.carrier, value.role), []).append(value)
    out: list[PowerGroup] = []
    for (carrier, role), members in sorted(groups.items()):
        # One freshness test per member; the stale ones are the others (a membership test of
        # each member in the fresh list was quadratic: ≈ 10⁶ comparisons for 1 000 gauges).
        is_fresh = [_fresh(v, now, stale_after_s) for v in members]
        fresh = [v for v, ok in zip(members, is_fresh, strict=True) if ok]
        stale = [v for v, ok in zip(members, is_fresh, strict=True) if not ok]
        stamps = [v.ts for v in members if v.ts is not None]
        out.append(
            PowerGroup(
                carrier=carrier,
                role=role,
                power_kw=math.fsum(
                    true_value(v.metric, v.raw_value, v.multiplier)
                    for v in fresh
                    if v.raw_value is not None
                ),
                devices=len(members),
                devices_reporting=len(fresh),
                stale_device_ids=tuple(sorted(v.device_id for v in stale)),
                newest_ts=max(stamps) if stamps else None,
                oldest_fresh_ts=min((v.ts for v in fresh if v.ts is not None), default=None),
            )
        )
    return tuple(out)


# --------------------------------------------------------------------------------------------
# Methane now
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MethaneFlow:
    role: str
    ch4_flow_nm3_min: float  # pure CH4 of the fresh devices [Nm³/min]
    gas_flow_nm3_min: float  # gas mixture (or return air) of the same devices [Nm³/min]
    devices: int
    devices_reporting: int  # fresh flow and fresh concentration
    unmeasured_device_ids: tuple[str, ...]  # stale, silent, or without a valid concentration


@dataclass(frozen=True, slots=True)
class MethaneNow:
    flows: tuple[MethaneFlow, ...]  # one per methane role present at the site
    drained_ch4_nm3_min: float
    utilised_ch4_nm3_min: float  # on site + sold
    flared_ch4_nm3_min: float
    vented_ch4_nm3_min: float
    ventilation_ch4_nm3_min: float
    utilisation_rate: float | None  # utilised ÷ drained [fraction]; None when nothing drained
    drainage_rate: float | None  # drained ÷ (drained + ventilation) [fraction]

    @property
    def devices(self) -> int:
        return sum(f.devices for f in self.flows)


def methane_now(
    values: Iterable[LatestValue], now: datetime, stale_after_s: float
) -> MethaneNow | None:
    """Pure-CH4 flows by methane role; ``None`` when the site has no methane device."""
    methane_roles = {r.value for r in METHANE_ROLES}
    by_device: dict[str, dict[str, LatestValue]] = {}
    role_of: dict[str, str] = {}
    for value in values:
        if value.role in methane_roles and value.metric in (CH4_PCT_METRIC, *FLOW_METRICS):
            by_device.setdefault(value.device_id, {})[value.metric] = value
            role_of[value.device_id] = value.role
    if not by_device:
        return None
    flows: list[MethaneFlow] = []
    for role in METHANE_ROLES:
        devices = sorted(d for d, r in role_of.items() if r == role.value)
        if devices:
            flows.append(
                _role_flow(role.value, [by_device[d] for d in devices], now, stale_after_s)
            )
    total = {f.role: f.ch4_flow_nm3_min for f in flows}

    def of(*roles: Role) -> float:
        return math.fsum(total.get(r.value, 0.0) for r in roles)

    drained = of(Role.METHANE_DRAINED)
    utilised = of(Role.METHANE_UTILISED, Role.METHANE_SOLD)
    ventilation = of(Role.METHANE_VENTILATION)
    return MethaneNow(
        flows=tuple(flows),
        drained_ch4_nm3_min=drained,
        utilised_ch4_nm3_min=utilised,
        flared_ch4_nm3_min=of(Role.METHANE_FLARED),
        vented_ch4_nm3_min=of(Role.METHANE_VENTED),
        ventilation_ch4_nm3_min=ventilation,
        utilisation_rate=methane_utilisation_rate(utilised, drained).value,
        drainage_rate=methane_drainage_rate(drained, ventilation).value,
    )


MINUTES_PER_HOUR = 60.0


@dataclass(frozen=True, slots=True)
class MethaneHour:
    """Methane now as hourly figures for a mine panel: pure CH4 [Nm³/h] and what each stream
    emits [tCO2e/h] by the inventory's own formulas (:func:`mine_methane`): drained as the
    CH4 it would be if released (its potential), utilised on site and flared as the CO2 of
    their combustion, vented as CH4 × GWP."""

    drained_ch4_nm3_h: float
    utilised_ch4_nm3_h: float  # on site + sold
    flared_ch4_nm3_h: float
    vented_ch4_nm3_h: float
    drained_tco2e_h: float  # potential: drained CH4 × density × GWP
    utilised_tco2e_h: float  # CO2 of on-site combustion (sold gas is not the mine's)
    flared_tco2e_h: float  # CO2 of flaring
    vented_tco2e_h: float  # CH4 released × GWP
    drained_ch4_pct: float | None  # CH4 in the drained gas mixture [%]
    gwp: float  # tCO2e/tCH4 used


def methane_hour(now: MethaneNow, params: MethaneParameters) -> MethaneHour:
    """E.g. 10 Nm³/min vented = 600 Nm³/h = 0.06 × 10⁴ Nm³ × 7.17 t/10⁴ Nm³ = 0.4302 tCH4/h
    × GWP 21 = 9.0342 tCO2e/h; 5 Nm³/min flared = 300 Nm³/h → 0.2151 tCH4 × 44/16 × 0.98
    = 0.5797 tCO2/h."""
    per_h = {f.role: f.ch4_flow_nm3_min * MINUTES_PER_HOUR for f in now.flows}
    drained = now.drained_ch4_nm3_min * MINUTES_PER_HOUR
    vented = now.vented_ch4_nm3_min * MINUTES_PER_HOUR
    flared = now.flared_ch4_nm3_min * MINUTES_PER_HOUR
    onsite = per_h.get(Role.METHANE_UTILISED.value, 0.0)
    potential = mine_methane(MethaneFlows(0.0, drained), params).escape.emissions_tco2e
    released = mine_methane(MethaneFlows(0.0, vented), params).escape.emissions_tco2e
    burnt = mine_methane(
        MethaneFlows(0.0, flared + onsite, flared_ch4_nm3=flared, utilised_onsite_ch4_nm3=onsite),
        params,
    )
    gas = next((f.gas_flow_nm3_min for f in now.flows if f.role == Role.METHANE_DRAINED), 0.0)
    return MethaneHour(
        drained_ch4_nm3_h=drained,
        utilised_ch4_nm3_h=now.utilised_ch4_nm3_min * MINUTES_PER_HOUR,
        flared_ch4_nm3_h=flared,
        vented_ch4_nm3_h=vented,
        drained_tco2e_h=potential,
        utilised_tco2e_h=burnt.utilisation.emissions_tco2e,
        flared_tco2e_h=burnt.flaring.emissions_tco2e,
        vented_tco2e_h=released,
        drained_ch4_pct=100.0 * now.drained_ch4_nm3_min / gas if gas > 0 else None,
        gwp=params.gwp.value,
    )


def _role_flow(
    role: str, devices: Sequence[dict[str, LatestValue]], now: datetime, stale_after_s: float
) -> MethaneFlow:
    ch4: list[float] = []
    gas: list[float] = []
    unmeasured: list[str] = []
    for metrics in devices:
        flow = next((metrics[m] for m in FLOW_METRICS if m in metrics), None)
        pct = metrics.get(CH4_PCT_METRIC)
        device_id = next(iter(metrics.values())).device_id
        if (
            flow is None
            or pct is None
            or flow.raw_value is None
            or pct.raw_value is None
            or not (_fresh(flow, now, stale_after_s) and _fresh(pct, now, stale_after_s))
        ):
            unmeasured.append(device_id)
            continue
        gas_flow = true_value(flow.metric, flow.raw_value, flow.multiplier)
        concentration = true_value(pct.metric, pct.raw_value, pct.multiplier)
        try:
            # Linear in the gas quantity, so a flow [Nm³/min] gives a CH4 flow [Nm³/min].
            ch4.append(pure_ch4_nm3(gas_flow, concentration))
        except ValueError:  # negative flow or a concentration outside 0–100 %
            unmeasured.append(device_id)
            continue
        gas.append(gas_flow)
    return MethaneFlow(
        role=role,
        ch4_flow_nm3_min=math.fsum(ch4),
        gas_flow_nm3_min=math.fsum(gas),
        devices=len(devices),
        devices_reporting=len(ch4),
        unmeasured_device_ids=tuple(sorted(unmeasured)),
    )


# --------------------------------------------------------------------------------------------
# Freshness of a site's device metrics
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Freshness:
    device_metrics: int
    fresh: int  # newest reading younger than the limit
    stale: int  # older
    never_reported: int
    newest_ts: datetime | None


def freshness(values: Iterable[LatestValue], now: datetime, stale_after_s: float) -> Freshness:
    items = list(values)
    stamps = [v.ts for v in items if v.ts is not None]
    fresh = sum(1 for v in items if _fresh(v, now, stale_after_s))
    return Freshness(
        device_metrics=len(items),
        fresh=fresh,
        stale=len(stamps) - fresh,
        never_reported=len(items) - len(stamps),
        newest_ts=max(stamps) if stamps else None,
    )


@dataclass(frozen=True, slots=True)
class DeviceFreshness:
    """One device: its newest reading of any metric and whether that is too old."""

    device_id: str
    newest_ts: datetime | None  # None: never reported
    age_s: float | None  # now − newest_ts [s]
    stale_after_s: float  # the device's limit (:func:`stale_limit_s`) [s]
    stale: bool  # never reported, or older than the limit


def device_freshness(
    values: Iterable[LatestValue], now: datetime, stale_after_s: float
) -> tuple[DeviceFreshness, ...]:
    """Per device (sorted by id): newest reading, its age and the device's stale state."""
    by_device: dict[str, list[LatestValue]] = {}
    for value in values:
        by_device.setdefault(value.device_id, []).append(value)
    out: list[DeviceFreshness] = []
    for device_id, members in sorted(by_device.items()):
        stamps = [v.ts for v in members if v.ts is not None]
        newest = max(stamps) if stamps else None
        limit = max(stale_limit_s(v, stale_after_s) for v in members)
        age = None if newest is None else age_s(newest, now)
        out.append(
            DeviceFreshness(
                device_id=device_id,
                newest_ts=newest,
                age_s=age,
                stale_after_s=limit,
                stale=age is None or age > limit,
            )
        )
    return tuple(out)


class LiveState(StrEnum):
    """What the live view may claim about a site's data."""

    LIVE = "live"  # every device that ever reported is within its limit
    PARTIAL = "partial"  # some devices are stale, others fresh
    STALE = "stale"  # no device is fresh: the feed stopped
    NO_DATA = "no_data"  # nothing ever reported


def site_state(devices: Sequence[DeviceFreshness]) -> LiveState:
    """The site's state from its devices; devices that never reported do not make a site
    partial (a spare meter), but a site with no fresh device is stale."""
    reported = [d for d in devices if d.newest_ts is not None]
    if not reported:
        return LiveState.NO_DATA
    fresh = sum(1 for d in reported if not d.stale)
    if fresh == 0:
        return LiveState.STALE
    return LiveState.LIVE if fresh == len(reported) else LiveState.PARTIAL


# --------------------------------------------------------------------------------------------
# Electricity now: power in, renewable, net export
# --------------------------------------------------------------------------------------------

# Electricity entering the site's network: imports and own generation (not storage, not the
# feeders behind them, which measure the same power again).
IMPORT_ROLES = frozenset({Role.GRID_IMPORT.value, Role.GREEN_IMPORT.value})
GENERATION_ROLES = frozenset(
    {Role.GENERATION_PV.value, Role.GENERATION_WIND.value, Role.GENERATION_GAS.value}
)
RENEWABLE_ROLES = frozenset(
    {Role.GREEN_IMPORT.value, Role.GENERATION_PV.value, Role.GENERATION_WIND.value}
)


@dataclass(frozen=True, slots=True)
class ElectricityNow:
    power_in_kw: float  # grid and green imports + own generation, each ≥ 0 [kW]
    renewable_kw: float  # green line + PV + wind, each ≥ 0; ≤ power_in_kw [kW]
    grid_import_kw: float  # Σ grid_import gauges above 0 [kW]
    grid_export_kw: float  # Σ grid_export gauges + grid_import gauges below 0 [kW]
    net_export_kw: float  # max(0, export − import): what the site sends out net [kW]
    renewable_share: float | None  # renewable ÷ power in [fraction]; None without power


def electricity_now(groups: Iterable[PowerGroup]) -> ElectricityNow:
    """Power in, renewable and net export from the power groups: a bidirectional grid meter
    reading −2 000 kW is 2 000 kW of export, not −2 000 kW of supply; a PV inverter's −3 kW of
    night draw is 0 kW of generation. E.g. grid +1 000, PV 400, wind 100 → in 1 500, renewable
    500 (33.3 %); grid −300, PV 800 → in 800, renewable 800, net export 300."""
    imports = exports = generation = renewable = 0.0
    for g in groups:
        if g.carrier != "electricity":
            continue
        if g.role == Role.GRID_IMPORT.value:
            imports += max(0.0, g.power_kw)
            exports += max(0.0, -g.power_kw)
        elif g.role == Role.GRID_EXPORT.value:
            exports += abs(g.power_kw)
        elif g.role in IMPORT_ROLES or g.role in GENERATION_ROLES:
            generation += max(0.0, g.power_kw)
        if g.role in RENEWABLE_ROLES:
            renewable += max(0.0, g.power_kw)
    power_in = imports + generation
    return ElectricityNow(
        power_in_kw=power_in,
        renewable_kw=min(renewable, power_in),
        grid_import_kw=imports,
        grid_export_kw=exports,
        net_export_kw=max(0.0, exports - imports),
        renewable_share=min(renewable, power_in) / power_in if power_in > 0 else None,
    )


# --------------------------------------------------------------------------------------------
# Calculated carbon now: the newest calculated hour
# --------------------------------------------------------------------------------------------

SLOT_H = 0.25  # one calc slot [h]
RECENT_SLOTS = 4  # "now" for calculated carbon: the newest hour of complete slots


class SlotTotals(Protocol):
    """One 15-min slot of a site's calculated totals (``storage.carbon.SeriesPoint``)."""

    @property
    def period_start(self) -> datetime: ...
    @property
    def energy_tce(self) -> float: ...
    @property
    def zero_carbon_tce(self) -> float: ...
    @property
    def tco2e_location(self) -> float: ...
    @property
    def tco2e_market(self) -> float: ...
    @property
    def scope2_location_tco2e(self) -> float: ...
    @property
    def scope2_market_tco2e(self) -> float: ...
    @property
    def completeness(self) -> float: ...


@dataclass(frozen=True, slots=True)
class CarbonNow:
    """Calculated carbon of the newest hour of complete slots (the calc service lags readings)."""

    window_start: datetime | None
    window_end: datetime | None
    slots: int
    energy_tce: float
    zero_carbon_tce: float
    tco2e_location: float  # settled: scope 2 of the window never below 0 [tCO2e]
    tco2e_market: float
    emission_rate_location_tco2e_h: float | None  # ≥ 0
    emission_rate_market_tco2e_h: float | None  # ≥ 0
    net_export_tco2e_location: float  # purchased-electricity emissions a net export offset
    net_export_tco2e_market: float
    zero_carbon_share: float | None
    completeness: float | None


def settled_tco2e(total: float, scope2: float) -> tuple[float, float]:
    """(emissions, net-export offset) of a window [tCO2e]: a window whose scope 2 is negative
    (more exported than imported) books 0 purchased electricity and shows the rest apart, so
    ``total 1.0, scope 2 −0.4`` → (1.4, 0.4): scope 1 and 3 stay, scope 2 is 0. Never < 0."""
    offset = max(0.0, -scope2)
    return max(0.0, total + offset), offset


def complete_slots(points: Sequence[SlotTotals], complete_before: datetime) -> list[SlotTotals]:
    """The slots that ended at or before ``complete_before`` (the newest reading received, or
    the clock if older): the running quarter-hour holds a part of its readings and would read
    low (10 of 15 minutes ≈ 33 % low), so it is left out rather than extrapolated."""
    slot = timedelta(hours=SLOT_H)
    return [p for p in points if p.period_start + slot <= complete_before]


def carbon_now(points: Sequence[SlotTotals], complete_before: datetime | None = None) -> CarbonNow:
    """The newest ``RECENT_SLOTS`` complete 15-min points (ordered by time) as an hourly
    rate: e.g. 4 slots with 0.5 + 0.5 + 0.6 + 0.4 = 2.0 tCO2e → 2.0 / (4 × 0.25 h)
    = 2.0 tCO2e/h; the zero-carbon share of their energy (None without energy)."""
    usable = list(points) if complete_before is None else complete_slots(points, complete_before)
    chosen = usable[-RECENT_SLOTS:]
    if not chosen:
        return CarbonNow(
            window_start=None, window_end=None, slots=0, energy_tce=0.0, zero_carbon_tce=0.0,
            tco2e_location=0.0, tco2e_market=0.0, emission_rate_location_tco2e_h=None,
            emission_rate_market_tco2e_h=None, net_export_tco2e_location=0.0,
            net_export_tco2e_market=0.0, zero_carbon_share=None, completeness=None,
        )  # fmt: skip
    hours = len(chosen) * SLOT_H
    energy = math.fsum(p.energy_tce for p in chosen)
    zero = math.fsum(p.zero_carbon_tce for p in chosen)
    location, location_offset = settled_tco2e(
        math.fsum(p.tco2e_location for p in chosen),
        math.fsum(p.scope2_location_tco2e for p in chosen),
    )
    market, market_offset = settled_tco2e(
        math.fsum(p.tco2e_market for p in chosen),
        math.fsum(p.scope2_market_tco2e for p in chosen),
    )
    return CarbonNow(
        window_start=chosen[0].period_start,
        window_end=chosen[-1].period_start + timedelta(hours=SLOT_H),
        slots=len(chosen),
        energy_tce=energy,
        zero_carbon_tce=zero,
        tco2e_location=location,
        tco2e_market=market,
        emission_rate_location_tco2e_h=location / hours,
        emission_rate_market_tco2e_h=market / hours,
        net_export_tco2e_location=location_offset,
        net_export_tco2e_market=market_offset,
        zero_carbon_share=min(1.0, max(0.0, zero / energy)) if energy > 0 else None,
        completeness=math.fsum(p.completeness for p in chosen) / len(chosen),
    )

"""Live values from the latest reading of each device metric. Pure.

Stored readings are in the metric's canonical unit *before* the device multiplier (CT × PT ratio
or pulse factor); :func:`true_value` applies it where it applies
(:func:`carbonflow.domain.site.model.multiplier_applies`: energies, volumes, powers and flows,
not concentrations or temperatures).

"Now" totals use only *fresh* gauges, younger than ``stale_after_s``: a meter that stopped
reporting an hour ago must not hold its last power in today's total. Stale and silent devices
are listed instead, so a total always says how many devices it covers.

- **Site power now** [kW]: Σ ``power_kw`` gauges by (carrier, role). Roles are kept apart
  because they overlap (a grid connection meter and the feeders behind it measure the same
  power); adding across roles is the calc service's energy balance, not a live sum.
- **Methane now** [Nm³/min of pure CH4]: per device, flow × CH4 concentration (ACCOUNTING §4,
  :func:`carbonflow.domain.inventory.methane.pure_ch4_nm3`), summed by role; drained =
  ``methane_drained``, utilised = ``methane_utilised`` + ``methane_sold`` (the guideline's
  Q_utilised), flared, vented (drained gas released), ventilation (return-air shafts); the
  utilisation and drainage rates of the moment by :mod:`carbonflow.domain.indicators.formulas`.
- **Carbon now** (:func:`carbon_now`): the newest calculated hour of 15-min slots as an hourly
  emission rate in each scope-2 view, and the zero-carbon share of its energy.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from carbonflow.domain.inventory.methane import (
    methane_drainage_rate,
    methane_utilisation_rate,
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
    return (
        value is not None
        and value.ts is not None
        and value.raw_value is not None
        and age_s(value.ts, now) <= stale_after_s
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
        fresh = [v for v in members if _fresh(v, now, stale_after_s)]
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
                stale_device_ids=tuple(sorted(v.device_id for v in members if v not in fresh)),
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


# --------------------------------------------------------------------------------------------
# Calculated carbon now: the newest calculated hour
# --------------------------------------------------------------------------------------------

SLOT_H = 0.25  # one calc slot [h]
RECENT_SLOTS = 4  # "now" for calculated carbon: the newest hour of slots


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
    def completeness(self) -> float: ...


@dataclass(frozen=True, slots=True)
class CarbonNow:
    """Calculated carbon of the newest calculated hour (the calc service lags the readings)."""

    window_start: datetime | None
    window_end: datetime | None
    slots: int
    energy_tce: float
    zero_carbon_tce: float
    tco2e_location: float
    tco2e_market: float
    emission_rate_location_tco2e_h: float | None
    emission_rate_market_tco2e_h: float | None
    zero_carbon_share: float | None
    completeness: float | None


def carbon_now(points: Sequence[SlotTotals]) -> CarbonNow:
    """The newest ``RECENT_SLOTS`` consecutive-or-not 15-min points (ordered by time) as an
    hourly rate: e.g. 4 slots with 0.5 + 0.5 + 0.6 + 0.4 = 2.0 tCO2e → 2.0 / (4 × 0.25 h)
    = 2.0 tCO2e/h; the zero-carbon share of their energy (None without energy)."""
    chosen = list(points)[-RECENT_SLOTS:]
    if not chosen:
        return CarbonNow(
            window_start=None, window_end=None, slots=0, energy_tce=0.0, zero_carbon_tce=0.0,
            tco2e_location=0.0, tco2e_market=0.0, emission_rate_location_tco2e_h=None,
            emission_rate_market_tco2e_h=None, zero_carbon_share=None, completeness=None,
        )  # fmt: skip
    hours = len(chosen) * SLOT_H
    energy = math.fsum(p.energy_tce for p in chosen)
    zero = math.fsum(p.zero_carbon_tce for p in chosen)
    location = math.fsum(p.tco2e_location for p in chosen)
    market = math.fsum(p.tco2e_market for p in chosen)
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
        zero_carbon_share=zero / energy if energy > 0 else None,
        completeness=math.fsum(p.completeness for p in chosen) / len(chosen),
    )

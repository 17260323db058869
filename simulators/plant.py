"""The physics of a site: every device's TRUE quantities per time step — pure, seeded.

A :class:`SitePlant` is built from a validated site document. Each *replica* (the site itself,
and each clone of a scaled fleet, :mod:`simulators.scaling`) is an independent copy of the
site's installations under the same sky. Per chunk of steps it returns, per device, the true
physical quantity of each counter or interval metric over each step (kWh, Nm³, t, GJ, L — after
any CT/PT multiplier) and the value of each gauge (kW, %, W/m², …, the step's mean).

The devices are linked the way the installations are (see ``docs/simulators.md``):

- **weather** (one per site): temperature, clouds, irradiance, wind (:mod:`simulators.weather`);
- **production processes** (per production meter): shift pattern × production calendar ×
  stoppages × noise; raw coal on the belt scale; washed coal loaded onto trains in batches;
  packaged product in bags; trucks over a weighbridge; IT energy = the IT load;
- **electrical loads**: loads on a production node, and production-shift loads of a mine, follow
  the production rate (``idle + (mean − idle) × rate``: hoists draw power when coal is hoisted);
  the others follow their named profile; enterprise incomers carry their sub-meters plus losses;
- **heat**: consumers follow heating degrees in the heating season; heat pumps cover the base
  up to their capacity, boilers the rest; heat-pump electricity = heat ÷ COP; boiler fuel =
  heat ÷ efficiency ÷ heating value; steam producers cover the steam consumers plus losses;
- **coal-mine methane**: drainage mains vary slowly; gas engines burn what they need of the
  richest gas (their output follows the gas they use), the methane boiler next, the flare burns
  surplus up to its capacity, the rest is vented; return-air methane follows mining activity;
- **generation**: PV from the sun, wind from a power curve, a green line from an off-site farm;
- **storage** charges from the midday renewable surplus and discharges in the evening;
- **grid meters** carry the balance: first-level loads + losses − generation ∓ storage.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from zoneinfo import ZoneInfo

import numpy as np

from carbonflow.domain import units
from carbonflow.domain.factors.library import FactorLibrary, default_library
from carbonflow.domain.site.model import (
    Carrier,
    Device,
    DeviceKind,
    MetricKind,
    NodeKind,
    Role,
    SiteDocument,
    SiteKind,
)
from simulators.assumptions import Assumptions, default_assumptions
from simulators.clock import BoolArray, Calendar
from simulators.profiles import (
    CalendarKind,
    Named,
    Profile,
    production_days,
)
from simulators.randomness import AR1, FloatArray, stream
from simulators.weather import (
    Weather,
    WeatherChunk,
    expected_wind_fraction,
    pv_power_kw,
    wind_power_fraction,
)

_GJ = units.lookup("GJ")
_NM3_PER_10K = units.convert(1.0, "Nm3", units.lookup("10^4 Nm3"))  # 1 Nm3 in 10^4 Nm3
_DEFAULT_RATED_KW = 100.0
_DEFAULT_MEAN_FRACTION = 0.5
# Batch sizes of batch-wise products when a site file gives no `batch_t` hint [t].
_TRAIN_BATCH_T = 4000.0  # a unit train of ~60 wagons (washed coal, coke)
_BAG_BATCH_T = 1.0  # one-tonne bags of a packaging line
_TRUCK_T = (18.0, 42.0)  # load of a weighed truck [t], uniform
_TRUCK_RESOLUTION_T = 0.02  # weighbridge division [t]
_REFUEL_L = 120.0  # mean refuelling of a vehicle [L]
_REFUEL_LNG_T = 0.22  # mean LNG fill of a truck [t]
_FUEL_RESOLUTION = 0.01  # dispenser display division [L or t]
_STOPPAGE_THRESHOLD = 2.0  # an AR(1) above this stops production (≈ 2.3 % of the time)
_STOPPAGE_TAU_S = 3600.0
_INCOMER_UNMETERED_FRACTION = 0.005
# Drained methane: its flow couples weakly to mining (more coal cut → more gas released).
_DRAINAGE_PRODUCTION_COUPLING = 0.04
_MEAN_PRODUCTION_RATE = 0.75  # all-time mean of a mine's relative production rate (20 h × 330 d)


def hint(device: Device, name: str) -> float | None:
    """A numeric ``sim:`` hint of the device, typed or extra (e.g. ``mean_l_per_day``)."""
    if device.sim is None:
        return None
    value = getattr(device.sim, name, None)
    if value is None and device.sim.model_extra:
        value = device.sim.model_extra.get(name)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def profile_name(device: Device) -> str | None:
    return device.sim.load_profile if device.sim is not None else None


def shift_pattern(device: Device) -> str | None:
    return device.sim.shift_pattern if device.sim is not None else None


def rated_kw(device: Device) -> float:
    """Nameplate power [kW]: ``rated_kw``, ``capacity_kwp``, or the power gauge's ``rated_max``."""
    for value in (hint(device, "rated_kw"), hint(device, "capacity_kwp")):
        if value:
            return value
    for name in ("power_kw", "it_power_kw"):
        spec = device.metrics.get(name)
        if spec is not None and spec.rated_max:
            return spec.rated_max
    return _DEFAULT_RATED_KW


def mean_fraction(device: Device) -> float:
    pct = hint(device, "mean_load_pct")
    return pct / 100.0 if pct is not None else _DEFAULT_MEAN_FRACTION


def rated_hourly_quantity(device: Device, metric: str) -> float:
    """Largest plausible increase of a quantity metric per hour, physical units (for the meter
    model: initial registers, and when a reset may be injected safely)."""
    spec = device.metrics.get(metric)
    if spec is not None and spec.rated_max:
        return spec.rated_max
    unit = units.metric_unit(metric).symbol
    if unit == "kWh":
        return rated_kw(device)
    if unit == "GJ":
        return units.convert(rated_kw(device), "kWh_th", _GJ) or 1.0
    if unit == "Nm3":
        flow = 60.0 * (hint(device, "rated_flow_nm3_min") or 10.0)
        if metric.startswith("ch4_"):  # pure CH4: the flow's methane share
            return flow * (hint(device, "ch4_pct_mean") or 100.0) / 100.0
        return flow
    if unit == "t":
        per_day = hint(device, "mean_t_per_day")
        return hint(device, "rated_t_h") or (per_day / 4.0 if per_day else 10.0)
    if unit == "L":
        return (hint(device, "mean_l_per_day") or 100.0) / 4.0
    return 100.0


def mean_hourly_quantity(device: Device, metric: str) -> float:
    return rated_hourly_quantity(device, metric) * mean_fraction(device)


@dataclass
class DeviceTruth:
    """True values of one device over a chunk: quantities per step, gauge values per step."""

    quantities: dict[str, FloatArray] = field(default_factory=dict)
    gauges: dict[str, FloatArray] = field(default_factory=dict)


ChunkTruth = dict[str, DeviceTruth]


def clone_id(device_id: str, replica: int) -> str:
    """The id of ``device_id`` in replica ``replica`` (replica 0 keeps the original ids)."""
    return device_id if replica == 0 else f"{device_id}-r{replica}"


# ---------------------------------------------------------------------------------------------
# Layout: what each device of a site is, and how devices are linked (from the site document)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """The site document read as installations (base device ids)."""

    doc: SiteDocument
    devices: Mapping[str, Device]
    node_kind: Mapping[str, NodeKind]
    production_system: Mapping[str, bool]
    grid_meters: tuple[str, ...]
    first_level_loads: tuple[str, ...]  # electricity consumers directly under the grid node
    generators: tuple[str, ...]  # electricity into the grid node (PV, wind, gas, green)
    pv: tuple[str, ...]
    wind: tuple[str, ...]  # wind turbines and wind-profile lines (green import)
    gas_engines: tuple[str, ...]
    storage: tuple[str, ...]
    incomers: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]]  # node → (incomers, children)
    heat_pumps: Mapping[str, str]  # generation_heat meter → its electricity meter
    heat_consumers: tuple[str, ...]
    heat_producers: tuple[str, ...]  # heating-season generation_heat heat meters
    steam_consumers: tuple[str, ...]
    steam_producers: tuple[str, ...]
    boiler_fuel: Mapping[str, str]  # heat/steam producer → the gas or methane meter feeding it
    drained: tuple[str, ...]  # richest first
    engine_gas: tuple[str, ...]  # methane_utilised meters at the engines' node
    boiler_gas: tuple[str, ...]  # methane meters feeding boilers
    other_utilised: tuple[str, ...]  # methane utilised / sold meters of no known consumer
    flares: tuple[str, ...]
    vents: tuple[str, ...]
    ventilation: tuple[str, ...]
    production: tuple[str, ...]  # production meters
    node_meters: Mapping[str, tuple[str, ...]]  # node → electricity consumption meters
    production_of_node: Mapping[str, str]  # node → its production meter

    def device(self, device_id: str) -> Device:
        return self.devices[device_id]


def _electric(d: Device) -> bool:
    return d.carrier is Carrier.ELECTRICITY


def build_layout(doc: SiteDocument) -> Layout:
    devices = {d.id: d for d in doc.devices}
    node_kind = {n.id: n.kind for n in doc.nodes}
    production_system = {n.id: n.production_system for n in doc.nodes}
    by_node: dict[str, list[Device]] = {}
    for d in doc.devices:
        by_node.setdefault(d.node or "", []).append(d)

    grid = tuple(d.id for d in doc.devices if d.role in (Role.GRID_IMPORT, Role.GRID_EXPORT))
    grid_nodes = {devices[g].node for g in grid}
    pv = tuple(d.id for d in doc.devices if d.kind is DeviceKind.PV_INVERTER)
    wind = tuple(
        d.id
        for d in doc.devices
        if d.kind is DeviceKind.WIND_TURBINE
        or (_electric(d) and d.role is Role.GREEN_IMPORT)
        or (_electric(d) and d.role is Role.GENERATION_WIND)
    )
    engines = tuple(d.id for d in doc.devices if d.kind is DeviceKind.GAS_POWER_PLANT)
    storage = tuple(d.id for d in doc.devices if d.kind is DeviceKind.BATTERY_STORAGE)

    # Enterprise substations: consumption meters at a distribution node other than the grid's.
    incomers: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
    for node_id, kind in node_kind.items():
        if kind is not NodeKind.DISTRIBUTION or node_id in grid_nodes:
            continue
        intake = tuple(
            d.id for d in by_node.get(node_id, []) if _electric(d) and d.role is Role.CONSUMPTION
        )
        children = tuple(
            m
            for e in doc.edges
            if e.source == node_id and e.carrier is Carrier.ELECTRICITY
            for m in e.meters
            if m in devices and devices[m].role is Role.CONSUMPTION
        )
        if intake and children:
            incomers[node_id] = (intake, children)

    heat_pumps: dict[str, str] = {}
    for node_id, members in by_node.items():
        heat_out = [d for d in members if d.role is Role.GENERATION_HEAT and not _electric(d)]
        power_in = [d for d in members if _electric(d) and d.role is Role.CONSUMPTION]
        if len(heat_out) == 1 and len(power_in) == 1 and node_id:
            heat_pumps[heat_out[0].id] = power_in[0].id

    def heating(d: Device) -> bool:
        return profile_name(d) == Named.HEATING_SEASON.value

    heat_consumers = tuple(
        d.id
        for d in doc.devices
        if d.carrier in (Carrier.HEAT, Carrier.COOLING) and d.role is Role.CONSUMPTION
    )
    heat_producers = tuple(
        d.id
        for d in doc.devices
        if d.carrier is Carrier.HEAT and d.role is Role.GENERATION_HEAT and heating(d)
    )
    steam_consumers = tuple(
        d.id for d in doc.devices if d.carrier is Carrier.STEAM and d.role is Role.CONSUMPTION
    )
    steam_producers = tuple(
        d.id for d in doc.devices if d.carrier is Carrier.STEAM and d.role is Role.GENERATION_HEAT
    )

    boiler_fuel: dict[str, str] = {}
    for producer in (*heat_producers, *steam_producers):
        if producer in heat_pumps:
            continue
        node = devices[producer].node
        fuels = [
            d
            for d in by_node.get(node or "", [])
            if d.kind in (DeviceKind.GAS_METER, DeviceKind.METHANE_METER)
            and d.role in (Role.FUEL_SUPPLY, Role.CONSUMPTION, Role.METHANE_UTILISED)
        ]
        if fuels and node:
            boiler_fuel[producer] = fuels[0].id

    drained = sorted(
        (d for d in doc.devices if d.role is Role.METHANE_DRAINED),
        key=lambda d: -(hint(d, "ch4_pct_mean") or 0.0),
    )
    engine_nodes = {devices[e].node for e in engines}
    engine_gas = tuple(
        d.id
        for d in doc.devices
        if d.role is Role.METHANE_UTILISED and d.node in engine_nodes and engines
    )
    boiler_gas = tuple(
        f for f in dict.fromkeys(boiler_fuel.values()) if devices[f].role is Role.METHANE_UTILISED
    )
    other_utilised = tuple(
        d.id
        for d in doc.devices
        if d.role in (Role.METHANE_UTILISED, Role.METHANE_SOLD)
        and d.id not in engine_gas
        and d.id not in boiler_gas
    )

    # The grid balance: consumers and generators on the edges of the grid connection node.
    first_level: list[str] = []
    generators: list[str] = []
    for e in doc.edges:
        if e.carrier is not Carrier.ELECTRICITY:
            continue
        for m in e.meters:
            found = devices.get(m)
            if found is None or m in grid or found.kind is DeviceKind.BATTERY_STORAGE:
                continue
            if (
                e.source in grid_nodes
                and node_kind.get(e.target) is not NodeKind.SINK
                and found.role is Role.CONSUMPTION
                and m not in first_level
            ):
                first_level.append(m)
            if e.target in grid_nodes and m not in generators:
                generators.append(m)
    if grid and not first_level:  # no graph: every consumer not below an enterprise substation
        below = {c for _i, children in incomers.values() for c in children}
        first_level = [
            d.id
            for d in doc.devices
            if _electric(d) and d.role is Role.CONSUMPTION and d.id not in below
        ]
    if grid and not generators:
        generators = [*pv, *wind, *engines]

    production = tuple(d.id for d in doc.devices if d.role is Role.PRODUCTION)
    node_meters = {
        node: tuple(d.id for d in members if _electric(d) and d.role is Role.CONSUMPTION)
        for node, members in by_node.items()
    }
    production_of_node: dict[str, str] = {}
    for p in production:
        node = devices[p].node
        if node and node not in production_of_node:
            production_of_node[node] = p
    return Layout(
        doc=doc,
        devices=devices,
        node_kind=node_kind,
        production_system=production_system,
        grid_meters=grid,
        first_level_loads=tuple(first_level),
        generators=tuple(generators),
        pv=pv,
        wind=wind,
        gas_engines=engines,
        storage=storage,
        incomers=incomers,
        heat_pumps=heat_pumps,
        heat_consumers=heat_consumers,
        heat_producers=heat_producers,
        steam_consumers=steam_consumers,
        steam_producers=steam_producers,
        boiler_fuel=boiler_fuel,
        drained=tuple(d.id for d in drained),
        engine_gas=engine_gas,
        boiler_gas=boiler_gas,
        other_utilised=other_utilised,
        flares=tuple(d.id for d in doc.devices if d.role is Role.METHANE_FLARED),
        vents=tuple(d.id for d in doc.devices if d.role is Role.METHANE_VENTED),
        ventilation=tuple(d.id for d in doc.devices if d.role is Role.METHANE_VENTILATION),
        production=production,
        node_meters=node_meters,
        production_of_node=production_of_node,
    )


# ---------------------------------------------------------------------------------------------
# Shared site context: weather, profiles, constants
# ---------------------------------------------------------------------------------------------


class SiteContext:
    """What every replica of a site shares: the sky, calibrated profiles and constants."""

    def __init__(
        self,
        doc: SiteDocument,
        seed: int,
        step_s: float,
        assumptions: Assumptions | None = None,
        library: FactorLibrary | None = None,
    ) -> None:
        self.doc = doc
        self.seed = seed
        self.step_s = step_s
        self.assumptions = assumptions or default_assumptions()
        self.physics = self.assumptions.physics
        self.library = library or default_library()
        self.layout = build_layout(doc)
        self.tz = ZoneInfo(doc.site.timezone)
        self.climate = self.assumptions.climate(doc.site.province.value)
        latitude = doc.site.latitude_deg if doc.site.latitude_deg is not None else 35.0
        longitude = doc.site.longitude_deg if doc.site.longitude_deg is not None else 110.0
        self.weather = Weather(
            stream(seed, doc.site.id, "weather"),
            step_s,
            latitude,
            longitude,
            self.climate,
            self.physics,
        )
        self.calendar_kind = (
            CalendarKind.MINE if doc.site.kind is SiteKind.MINE else CalendarKind.PLANT
        )
        self._profiles: dict[tuple[str | None, str | None], Profile] = {}
        # Heating values as used by the physics: CH4 from the assumptions, natural gas from the
        # factor library (the same NCV the combustion formula uses).
        self.ch4_kw_per_nm3_min = self.physics.ch4_lhv_mj_per_nm3 * 1000.0 / 60.0
        ncv = self.library.get("fuel.natural_gas.ncv")  # GJ/10^4 Nm3
        self.ng_gj_per_nm3 = ncv.value * _NM3_PER_10K
        self.wind_fraction_mean = expected_wind_fraction(
            self.climate.wind_mean_m_s_hub, self.physics
        )
        self._chunk_cache: tuple[float, WeatherChunk] | None = None

    def profile(self, name: str | None, shift: str | None) -> Profile:
        key = (name, shift)
        found = self._profiles.get(key)
        if found is None:
            found = Profile(
                name, shift, self.calendar_kind, self.tz, self.assumptions.calendar, self.climate
            )
            self._profiles[key] = found
        return found

    def weather_for(self, cal: Calendar) -> WeatherChunk:
        """The weather of a chunk; computed once however many replicas ask."""
        key = float(cal.start_s[0])
        if self._chunk_cache is None or self._chunk_cache[0] != key:
            self._chunk_cache = (key, self.weather.advance(cal))
        return self._chunk_cache[1]

    def producing(self, cal: Calendar) -> BoolArray:
        return production_days(cal, self.calendar_kind, self.assumptions.calendar)


# ---------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------


class Noise:
    """``1 + sigma × AR(1)`` multiplicative noise, clipped at ``floor``."""

    def __init__(
        self,
        rng: np.random.Generator,
        step_s: float,
        tau_s: float,
        sigma: float,
        floor: float = 0.0,
    ) -> None:
        self._ar = AR1(rng, step_s, tau_s)
        self.sigma = sigma
        self.floor = floor

    def next(self, n: int) -> FloatArray:
        out: FloatArray = np.maximum(self.floor, 1.0 + self.sigma * self._ar.next(n))
        return out


class Availability:
    """1 while running, 0 while stopped: stopped while an AR(1) exceeds ``threshold``."""

    def __init__(
        self, rng: np.random.Generator, step_s: float, tau_s: float, threshold: float
    ) -> None:
        self._ar = AR1(rng, step_s, tau_s)
        self.threshold = threshold
        # running fraction = P(X <= threshold) for X ~ N(0, 1)
        self.mean = 0.5 * math.erfc(-threshold / math.sqrt(2.0))

    def next(self, n: int) -> FloatArray:
        out: FloatArray = (self._ar.next(n) <= self.threshold).astype(np.float64)
        return out


_PROFILE_NOISE = {
    Named.CONTINUOUS.value: (2 * 3600.0, 0.03),
    Named.FLAT.value: (2 * 3600.0, 0.03),
    Named.DATA_CENTRE.value: (6 * 3600.0, 0.01),
    Named.OFFICE.value: (1800.0, 0.08),
    Named.EV_CHARGING.value: (900.0, 0.25),
    Named.LOGISTICS_SHIFT.value: (1800.0, 0.10),
    Named.COLD_STORE.value: (600.0, 0.06),
}
_DEFAULT_NOISE = (1800.0, 0.05)


class ProductionProcess:
    """Relative production rate of one production line (mean 1 over its full shifts)."""

    def __init__(self, ctx: SiteContext, meter: Device, key: str) -> None:
        self.profile = ctx.profile(profile_name(meter), shift_pattern(meter))
        stops = stream(ctx.seed, ctx.doc.site.id, key, "stoppages")
        noise = stream(ctx.seed, ctx.doc.site.id, key, "production-noise")
        self._availability = Availability(stops, ctx.step_s, _STOPPAGE_TAU_S, _STOPPAGE_THRESHOLD)
        self._noise = Noise(noise, ctx.step_s, 1200.0, 0.06)

    def advance(self, cal: Calendar, temp: FloatArray) -> FloatArray:
        shape = self.profile.shape(cal, temp)
        rate: FloatArray = (
            shape * self._availability.next(cal.n) * self._noise.next(cal.n)
        ) / self._availability.mean
        return rate


def _split(total: FloatArray, weights: Sequence[FloatArray]) -> list[FloatArray]:
    """``total`` shared in proportion to ``weights`` (positive arrays)."""
    stacked = np.vstack(weights)
    shares = stacked / np.maximum(stacked.sum(axis=0), 1e-12)
    return [total * shares[i] for i in range(len(weights))]


@dataclass
class _Pool:
    """Drained gas still available in one step: mixture [Nm³/min] and CH4 concentration [%]."""

    mixture: FloatArray
    pct: FloatArray

    def take_ch4(self, ch4_wanted: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Take up to ``ch4_wanted`` of pure CH4 [Nm³/min]: (CH4 taken, mixture taken)."""
        frac = self.pct / 100.0
        available = self.mixture * frac
        ch4 = np.minimum(ch4_wanted, available)
        mixture = np.where(frac > 0, ch4 / np.maximum(frac, 1e-12), 0.0)
        self.mixture = np.maximum(0.0, self.mixture - mixture)
        return ch4, mixture

    def take_mixture(self, mixture_wanted: FloatArray) -> tuple[FloatArray, FloatArray]:
        mixture = np.minimum(mixture_wanted, self.mixture)
        self.mixture = self.mixture - mixture
        return mixture * self.pct / 100.0, mixture


# ---------------------------------------------------------------------------------------------
# One replica of the site
# ---------------------------------------------------------------------------------------------


class ReplicaPlant:
    """Replica ``replica`` of a site: all of its devices' truths, chunk by chunk."""

    def __init__(self, ctx: SiteContext, replica: int) -> None:
        self.ctx = ctx
        self.replica = replica
        self.layout = ctx.layout
        self.ids = {d: clone_id(d, replica) for d in self.layout.devices}
        site = ctx.doc.site.id
        step = ctx.step_s

        def rng(device_id: str, purpose: str) -> np.random.Generator:
            return stream(ctx.seed, site, self.ids[device_id], purpose)

        self._rng = rng
        lay = self.layout
        # Production processes: one per production meter; the site-wide one is the raw coal's.
        self.processes: dict[str, ProductionProcess] = {
            p: ProductionProcess(ctx, lay.device(p), f"replica-{replica}/{p}")
            for p in lay.production
        }
        raw = [p for p in lay.production if lay.device(p).carrier is Carrier.RAW_COAL]
        self.site_process = raw[0] if raw else None
        self._noise: dict[str, Noise] = {}
        for d in lay.devices.values():
            tau, sigma = _PROFILE_NOISE.get(profile_name(d) or "", _DEFAULT_NOISE)
            self._noise[d.id] = Noise(rng(d.id, "load"), step, tau, sigma)
        self._avail = {
            d: Availability(rng(d, "availability"), step, 6 * 3600.0, 2.2)
            for d in (*lay.gas_engines, *lay.flares)
        }
        self._ar: dict[tuple[str, str], AR1] = {}
        self._soiling = {g: 0.96 + 0.04 * float(rng(g, "soiling").random()) for g in lay.pv}
        self._offsite_wind = {
            w: (AR1(rng(w, "wind-1"), step, 8 * 3600.0), AR1(rng(w, "wind-2"), step, 8 * 3600.0))
            for w in lay.wind
            if lay.device(w).kind is not DeviceKind.WIND_TURBINE
        }
        # Event counts and event sizes from separate streams: chunk lengths change nothing.
        self._events = {d: rng(d, "events") for d in lay.devices}
        self._sizes = {d: rng(d, "sizes") for d in lay.devices}
        self._soc_kwh = {
            s: (hint(lay.device(s), "capacity_kwh") or 4 * rated_kw(lay.device(s))) * 0.5
            for s in lay.storage
        }
        self._silo_t = {p: 0.0 for p in lay.production}
        self._loading_left_t = {p: 0.0 for p in lay.production}
        self._bag_carry_t = {p: 0.0 for p in lay.production}

    # --- helpers ---------------------------------------------------------------------------

    def _z(self, device_id: str, purpose: str, tau_s: float, n: int) -> FloatArray:
        """The next ``n`` values of the device's standard-normal AR(1) named ``purpose``."""
        key = (device_id, purpose)
        process = self._ar.get(key)
        if process is None:
            process = AR1(self._rng(device_id, purpose), self.ctx.step_s, tau_s)
            self._ar[key] = process
        return process.next(n)

    def _vary(
        self, device_id: str, purpose: str, tau_s: float, sigma: float, n: int, floor: float = 0.0
    ) -> FloatArray:
        """Multiplicative noise ``max(floor, 1 + sigma × AR(1))``."""
        out: FloatArray = np.maximum(floor, 1.0 + sigma * self._z(device_id, purpose, tau_s, n))
        return out

    def _load(self, d: Device, shape: FloatArray) -> FloatArray:
        rated = rated_kw(d)
        spec = d.metrics.get("power_kw")
        cap = max(rated, spec.rated_max or 0.0) if spec is not None else rated
        p = rated * mean_fraction(d) * shape * self._noise[d.id].next(len(shape))
        out: FloatArray = np.clip(p, 0.0, cap * 1.05)
        return out

    def _idle_fraction(self, d: Device) -> float:
        kind = self.layout.node_kind.get(d.node or "")
        physics = self.ctx.physics
        idle = (
            physics.idle_fraction_utility
            if kind is NodeKind.UTILITY
            else physics.idle_fraction_process
        )
        return min(idle, mean_fraction(d))

    def _linked_load(self, d: Device, rate: FloatArray) -> FloatArray:
        idle, mean = self._idle_fraction(d), mean_fraction(d)
        p = rated_kw(d) * (idle + (mean - idle) * rate) * self._noise[d.id].next(len(rate))
        out: FloatArray = np.clip(p, 0.0, rated_kw(d) * 1.1)
        return out

    # --- the chunk -------------------------------------------------------------------------

    def advance(self, cal: Calendar) -> ChunkTruth:
        ctx, lay = self.ctx, self.layout
        wx = ctx.weather_for(cal)
        n, step_h = cal.n, cal.step_h
        temp = wx.air_temp_degc
        truth: dict[str, DeviceTruth] = {d: DeviceTruth() for d in lay.devices}
        power: dict[str, FloatArray] = {}

        rates = {p: proc.advance(cal, temp) for p, proc in self.processes.items()}
        site_rate = rates[self.site_process] if self.site_process else None

        # 1. production meters (except products metered in kWh, which follow their node's load)
        for p in lay.production:
            self._production(lay.device(p), rates[p], cal, temp, truth[p])

        # 2. electrical loads on profiles or on production
        heat_pump_power = set(lay.heat_pumps.values())
        incomer_ids = {i for ins, _c in lay.incomers.values() for i in ins}
        for d in lay.devices.values():
            if not _electric(d) or d.role is not Role.CONSUMPTION:
                continue
            if d.id in heat_pump_power or d.id in incomer_ids:
                continue
            name = profile_name(d)
            linked = lay.production_of_node.get(d.node or "")
            if linked is not None and (
                lay.device(linked).carrier is not Carrier.PRODUCT
                or name in (Named.PRODUCTION_SHIFT, Named.SHIFT)
            ):
                power[d.id] = self._linked_load(d, rates[linked])
            elif site_rate is not None and name in (
                Named.PRODUCTION_SHIFT,
                Named.SHIFT,
                Named.HOIST_CYCLE,
            ):
                power[d.id] = self._linked_load(d, site_rate)
            else:
                shape = ctx.profile(name, shift_pattern(d)).shape(cal, temp)
                power[d.id] = self._load(d, shape)
            if d.kind is DeviceKind.ELECTRICITY_METER and "cold_room_temp_degc" in d.metrics:
                door = np.where((cal.local_hour >= 6) & (cal.local_hour < 22), 0.6, 0.0)
                truth[d.id].gauges["cold_room_temp_degc"] = (
                    -18.0 + door + 0.5 * self._z(d.id, "room", 900.0, n)
                )

        # 3. heat and steam, and what the boilers burn
        fuel_gj: dict[str, FloatArray] = {}  # fuel meter → heat input needed [GJ per step]
        self._heat(cal, wx, truth, power, fuel_gj)

        # 4. coal-mine methane, gas engines
        self._methane(cal, wx, site_rate, truth, power, fuel_gj)

        # 5. natural-gas meters feeding boilers
        for meter, gj in fuel_gj.items():
            d = lay.device(meter)
            if d.kind is DeviceKind.GAS_METER:
                nm3 = gj / ctx.ng_gj_per_nm3
                self._gas_meter(d, nm3, cal, truth[meter])

        # 6. products in kWh follow the load of their node (IT energy = the IT load)
        for p in lay.production:
            d = lay.device(p)
            kwh_metrics = [
                m
                for m, s in d.metrics.items()
                if units.metric_unit(m).symbol == "kWh" and s.kind is not MetricKind.GAUGE
            ]
            if kwh_metrics:
                node_power = [power[m] for m in lay.node_meters.get(d.node or "", ()) if m in power]
                p_kw = (
                    np.sum(node_power, axis=0)
                    if node_power
                    else self._load(d, ctx.profile(profile_name(d), None).shape(cal, temp))
                )
                truth[p].quantities[kwh_metrics[0]] = p_kw * step_h
                for m, s in d.metrics.items():
                    if s.kind is MetricKind.GAUGE and units.metric_unit(m).symbol == "kW":
                        truth[p].gauges[m] = p_kw

        # 7. enterprise substations: incomers carry their sub-meters, losses, unmetered use
        loss = ctx.physics.substation_loss_fraction
        for intake, children in lay.incomers.values():
            total = self._sum(power, children, n) * (1.0 + loss + _INCOMER_UNMETERED_FRACTION)
            weights = [self._vary(i, "split", 6 * 3600.0, 0.02, n, 0.5) for i in intake]
            for i, share in zip(intake, _split(total, weights), strict=True):
                power[i] = share

        # 8. generation
        for g in lay.pv:
            d = lay.device(g)
            capacity = hint(d, "capacity_kwp") or rated_kw(d)
            poa = wx.poa_w_m2 * self._vary(g, "clouds", 600.0, 0.03, n, 0.5)
            power[g] = pv_power_kw(capacity * self._soiling[g], poa, temp, ctx.physics)
        for w in lay.wind:
            d = lay.device(w)
            rated = rated_kw(d)
            if d.kind is DeviceKind.WIND_TURBINE:
                speed = wx.wind_hub_m_s * self._vary(w, "gusts", 300.0, 0.05, n, 0.5)
                availability = np.clip(
                    0.97 + 0.02 * self._z(w, "turbines", 12 * 3600.0, n), 0.85, 1.0
                )
                power[w] = rated * wind_power_fraction(speed, ctx.physics) * availability
                truth[w].gauges["wind_speed_m_s"] = speed
            else:  # a line from an off-site wind farm: its own wind, scaled to the line's mean
                x1, x2 = (ar.next(n) for ar in self._offsite_wind[w])
                sigma = ctx.climate.wind_mean_m_s_hub / math.sqrt(math.pi / 2.0)
                speed = sigma * np.sqrt(x1**2 + x2**2)
                scale = mean_fraction(d) / max(ctx.wind_fraction_mean, 1e-6)
                power[w] = rated * np.minimum(1.0, wind_power_fraction(speed, ctx.physics) * scale)

        # 9. storage against the renewable surplus
        load = self._sum(power, lay.first_level_loads, n) * (1.0 + loss)
        renewables = self._sum(power, lay.generators, n)
        storage = self._storage(cal, load - renewables, truth)

        # 10. grid meters carry the balance
        if lay.grid_meters:
            net = load - renewables - storage
            weights = [self._vary(g, "split", 6 * 3600.0, 0.02, n, 0.5) for g in lay.grid_meters]
            for g, share in zip(lay.grid_meters, _split(net, weights), strict=True):
                t = truth[g]
                self._put(t, lay.device(g), "energy_import_kwh", np.maximum(share, 0.0) * step_h)
                self._put(t, lay.device(g), "energy_export_kwh", np.maximum(-share, 0.0) * step_h)
                t.gauges["power_kw"] = share

        # 11. electricity meters get their registers from their power
        for d_id, p_kw in power.items():
            d = lay.device(d_id)
            t = truth[d_id]
            if d.role in (Role.GENERATION_PV, Role.GENERATION_WIND, Role.GENERATION_GAS):
                self._put(t, d, "energy_export_kwh", p_kw * step_h)
            else:
                self._put(t, d, "energy_import_kwh", p_kw * step_h)
            if "power_kw" in d.metrics:
                t.gauges["power_kw"] = p_kw

        # 12. fuel dispensers, weather stations, and anything not modelled
        for d in lay.devices.values():
            if d.kind is DeviceKind.FUEL_DISPENSER:
                self._dispenser(d, cal, temp, site_rate, truth[d.id])
            elif d.kind is DeviceKind.WEATHER_STATION:
                t = truth[d.id]
                t.gauges["irradiance_w_m2"] = wx.poa_w_m2
                t.gauges["air_temp_degc"] = temp
                at_wind_farm = any(lay.device(w).node == d.node for w in lay.wind)
                t.gauges["wind_speed_m_s"] = wx.wind_hub_m_s if at_wind_farm else wx.wind_10m_m_s
        for d in lay.devices.values():
            self._fill_missing(d, cal, temp, truth[d.id])
        return {self.ids[d]: t for d, t in truth.items()}

    # --- pieces ----------------------------------------------------------------------------

    @staticmethod
    def _sum(power: Mapping[str, FloatArray], ids: Iterable[str], n: int) -> FloatArray:
        out = np.zeros(n)
        for i in ids:
            if i in power:
                out = out + power[i]
        return out

    @staticmethod
    def _put(t: DeviceTruth, d: Device, metric: str, values: FloatArray) -> None:
        """Set a quantity only if the device declares the metric."""
        if metric in d.metrics:
            t.quantities[metric] = values

    def _production(
        self, d: Device, rate: FloatArray, cal: Calendar, temp: FloatArray, t: DeviceTruth
    ) -> None:
        quantity = [
            m
            for m, s in d.metrics.items()
            if s.kind is not MetricKind.GAUGE and units.metric_unit(m).symbol == "t"
        ]
        if not quantity:
            return  # products in kWh: step 6
        metric = quantity[0]
        kind = d.metrics[metric].kind
        rated_t_h = hint(d, "rated_t_h") or (d.metrics[metric].rated_max or 10.0)
        mean_t_h = rated_t_h * mean_fraction(d)
        step_h = cal.step_h
        made_t = mean_t_h * rate * step_h  # what the line makes in each step
        rng, sizes = self._events[d.id], self._sizes[d.id]
        rate_metric = next(
            (m for m, s in d.metrics.items() if s.kind is MetricKind.GAUGE and m.endswith("_t_h")),
            None,
        )
        if kind is MetricKind.INTERVAL:  # a weighbridge: trucks of 18–42 t
            mean_truck = sum(_TRUCK_T) / 2.0
            counts = rng.poisson(np.maximum(made_t, 0.0) / mean_truck)
            total = int(counts.sum())
            loads = sizes.uniform(*_TRUCK_T, size=total)
            loads = np.round(loads / _TRUCK_RESOLUTION_T) * _TRUCK_RESOLUTION_T
            per_step = np.zeros(cal.n)
            if total:
                owner = np.repeat(np.arange(cal.n), counts)
                np.add.at(per_step, owner, loads)
            t.quantities[metric] = per_step
            if rate_metric:
                t.gauges[rate_metric] = per_step / step_h
            return
        batch = hint(d, "batch_t")
        if d.carrier is Carrier.RAW_COAL and batch is None:  # a belt scale: continuous
            t.quantities[metric] = made_t
            if rate_metric:
                t.gauges[rate_metric] = made_t / step_h
            return
        if d.carrier is Carrier.PRODUCT and (batch or _BAG_BATCH_T) <= 10.0:
            size = batch or _BAG_BATCH_T  # bags: whole batches completed in each step
            cumulative = self._bag_carry_t[d.id] + np.cumsum(made_t)
            done = np.floor(cumulative / size) * size
            self._bag_carry_t[d.id] = float(cumulative[-1] - done[-1])
            t.quantities[metric] = np.diff(np.concatenate([[0.0], done]))
            if rate_metric:
                t.gauges[rate_metric] = made_t / step_h
            return
        # Batch loading (trains): the product accumulates in a silo; once a batch is there, it
        # is loaded at the scale's rated rate until the batch is complete.
        size = batch or _TRAIN_BATCH_T
        loaded = np.zeros(cal.n)
        silo, left = self._silo_t[d.id], self._loading_left_t[d.id]
        per_step_max = rated_t_h * step_h
        made = made_t.tolist()
        for k in range(cal.n):
            silo += made[k]
            if left <= 0.0 and silo >= size:
                left = size
            if left > 0.0:
                amount = min(per_step_max, left, silo)
                loaded[k] = amount
                left -= amount
                silo -= amount
        self._silo_t[d.id], self._loading_left_t[d.id] = silo, left
        t.quantities[metric] = loaded
        if rate_metric:
            t.gauges[rate_metric] = loaded / step_h

    def _heat(
        self,
        cal: Calendar,
        wx: WeatherChunk,
        truth: dict[str, DeviceTruth],
        power: dict[str, FloatArray],
        fuel_gj: dict[str, FloatArray],
    ) -> None:
        ctx, lay = self.ctx, self.layout
        physics = ctx.physics
        n, step_h = cal.n, cal.step_h
        temp = wx.air_temp_degc

        def kw_to_gj(kw: FloatArray) -> FloatArray:
            out: FloatArray = units.convert(1.0, "kWh_th", _GJ) * kw * step_h
            return out

        # consumers (heating season, or their own profile)
        for c in lay.heat_consumers:
            d = lay.device(c)
            shape = ctx.profile(profile_name(d), None).shape(cal, temp)
            kw = self._load(d, shape)
            self._heat_meter(truth[c], d, kw, kw_to_gj(kw))
        # producers: heat pumps first up to their capacity, boilers the rest
        producers = [lay.device(p) for p in lay.heat_producers]
        if producers:
            heating = ctx.profile(Named.HEATING_SEASON.value, None).shape(cal, temp)
            supply = (
                sum(rated_kw(p) * mean_fraction(p) for p in producers)
                * heating
                * self._noise[producers[0].id].next(n)
            )
            base = [p for p in producers if p.id in lay.heat_pumps]
            boilers = [p for p in producers if p.id not in lay.heat_pumps]
            caps = [rated_kw(p) * min(1.0, 1.3 * mean_fraction(p)) for p in base]
            base_total = np.minimum(supply, sum(caps)) if base else np.zeros(n)
            rest = supply - base_total if boilers else np.zeros(n)
            outputs: dict[str, FloatArray] = {}
            for p, cap in zip(base, caps, strict=True):
                outputs[p.id] = base_total * (cap / max(sum(caps), 1e-9))
            for p in boilers:
                outputs[p.id] = rest * (rated_kw(p) / sum(rated_kw(b) for b in boilers))
            for p_id, kw in outputs.items():
                d = lay.device(p_id)
                self._heat_meter(truth[p_id], d, kw, kw_to_gj(kw))
                if p_id in lay.heat_pumps:
                    elec = lay.device(lay.heat_pumps[p_id])
                    cop = self._cop(d, elec)
                    power[elec.id] = kw / cop
                elif p_id in lay.boiler_fuel:
                    meter = lay.boiler_fuel[p_id]
                    efficiency = (
                        physics.methane_boiler_efficiency
                        if lay.device(meter).carrier is Carrier.COAL_MINE_METHANE
                        else physics.gas_boiler_efficiency
                    )
                    gj = kw_to_gj(kw) / efficiency
                    fuel_gj[meter] = fuel_gj.get(meter, np.zeros(n)) + gj
        # heat pumps outside the heating system (profile-driven heat meters): electricity only
        for elec_id in lay.heat_pumps.values():
            if elec_id not in power:
                d = lay.device(elec_id)
                shape = ctx.profile(profile_name(d), None).shape(cal, temp)
                power[elec_id] = self._load(d, shape)
        # steam: consumers on their profile; producers cover them plus network losses
        steam_total = np.zeros(n)
        for c in lay.steam_consumers:
            d = lay.device(c)
            rated_t_h = hint(d, "rated_t_h") or 10.0
            shape = ctx.profile(profile_name(d), None).shape(cal, temp)
            t_h = rated_t_h * mean_fraction(d) * shape * self._noise[c].next(n)
            steam_total = steam_total + t_h
            self._steam_meter(truth[c], d, t_h, step_h)
        producers_s = [lay.device(p) for p in lay.steam_producers]
        if producers_s:
            total = steam_total * (1.0 + physics.steam_network_loss_fraction)
            if not lay.steam_consumers:  # no consumers metered: producers on their profile
                total = sum(
                    (hint(p, "rated_t_h") or 10.0)
                    * mean_fraction(p)
                    * ctx.profile(profile_name(p), None).shape(cal, temp)
                    for p in producers_s
                ) * self._noise[producers_s[0].id].next(n)
            weights = [hint(p, "rated_t_h") or 1.0 for p in producers_s]
            for p, w in zip(producers_s, weights, strict=True):
                t_h = total * w / sum(weights)
                self._steam_meter(truth[p.id], p, t_h, step_h)
                fuel_meter = lay.boiler_fuel.get(p.id)
                if fuel_meter is not None:
                    heat_gj = t_h * step_h * physics.steam_enthalpy_gj_per_t
                    gj = heat_gj / physics.gas_boiler_efficiency
                    fuel_gj[fuel_meter] = fuel_gj.get(fuel_meter, np.zeros(n)) + gj

    def _cop(self, heat: Device, elec: Device) -> float:
        heat_mean = rated_kw(heat) * mean_fraction(heat)
        elec_mean = rated_kw(elec) * mean_fraction(elec)
        if heat.sim is not None and elec.sim is not None and elec_mean > 0 and heat_mean > 0:
            return heat_mean / elec_mean
        return self.ctx.physics.heat_pump_cop_default

    def _heat_meter(self, t: DeviceTruth, d: Device, kw: FloatArray, gj: FloatArray) -> None:
        self._put(t, d, "heat_gj", gj)
        if "power_kw" in d.metrics:
            t.gauges["power_kw"] = kw

    def _steam_meter(self, t: DeviceTruth, d: Device, t_h: FloatArray, step_h: float) -> None:
        steam_t = t_h * step_h
        self._put(t, d, "steam_t", steam_t)
        self._put(t, d, "heat_gj", steam_t * self.ctx.physics.steam_enthalpy_gj_per_t)
        if "flow_t_h" in d.metrics:
            t.gauges["flow_t_h"] = t_h

    def _gas_meter(self, d: Device, nm3: FloatArray, cal: Calendar, t: DeviceTruth) -> None:
        self._put(t, d, "volume_nm3", nm3)
        if "flow_nm3_min" in d.metrics:
            t.gauges["flow_nm3_min"] = nm3 / cal.step_min

    def _gas_line(
        self,
        t: DeviceTruth,
        d: Device,
        mixture_nm3_min: FloatArray,
        ch4_nm3_min: FloatArray,
        step_min: float,
    ) -> None:
        pct = np.where(
            mixture_nm3_min > 1e-9, 100.0 * ch4_nm3_min / np.maximum(mixture_nm3_min, 1e-9), 0.0
        )
        t.gauges["mixture_flow_nm3_min"] = mixture_nm3_min
        t.gauges["ch4_pct"] = np.clip(pct, 0.0, 100.0)
        self._put(t, d, "mixture_nm3", mixture_nm3_min * step_min)
        self._put(t, d, "ch4_nm3", ch4_nm3_min * step_min)

    def _methane(
        self,
        cal: Calendar,
        wx: WeatherChunk,
        site_rate: FloatArray | None,
        truth: dict[str, DeviceTruth],
        power: dict[str, FloatArray],
        fuel_gj: dict[str, FloatArray],
    ) -> None:
        ctx, lay = self.ctx, self.layout
        n, step_min = cal.n, cal.step_min
        activity = site_rate if site_rate is not None else np.full(n, _MEAN_PRODUCTION_RATE)
        # return-air methane: near-constant air, CH4 following mining activity
        for v in lay.ventilation:
            d = lay.device(v)
            air = (hint(d, "rated_flow_nm3_min") or 1000.0) * self._vary(v, "air", 3600.0, 0.01, n)
            pct = (
                (hint(d, "ch4_pct_mean") or 0.3)
                * (0.85 + 0.2 * np.minimum(activity, 1.5))
                * self._vary(v, "ch4", 6 * 3600.0, 0.08, n, 0.2)
            )
            truth[v].gauges["air_flow_nm3_min"] = air
            truth[v].gauges["ch4_pct"] = pct
            self._put(truth[v], d, "ch4_nm3", air * pct / 100.0 * step_min)
        if not lay.drained:
            for u in (*lay.engine_gas, *lay.boiler_gas, *lay.other_utilised):
                self._gas_line(truth[u], lay.device(u), np.zeros(n), np.zeros(n), step_min)
            for g in lay.gas_engines:
                power[g] = np.zeros(n)
            return
        # drainage mains: slow variation, weak coupling to mining
        pools: list[_Pool] = []
        for dr in lay.drained:
            d = lay.device(dr)
            mixture = (
                (hint(d, "rated_flow_nm3_min") or 100.0)
                * self._vary(dr, "flow", 12 * 3600.0, 0.06, n, 0.2)
                * (1.0 + _DRAINAGE_PRODUCTION_COUPLING * (activity - _MEAN_PRODUCTION_RATE))
            )
            pct = np.clip(
                (hint(d, "ch4_pct_mean") or 30.0) * self._vary(dr, "ch4", 24 * 3600.0, 0.05, n),
                1.0,
                100.0,
            )
            self._gas_line(truth[dr], d, mixture, mixture * pct / 100.0, step_min)
            pools.append(_Pool(mixture.copy(), pct))

        def take_ch4(wanted: FloatArray) -> tuple[FloatArray, FloatArray]:
            ch4_total, mixture_total = np.zeros(n), np.zeros(n)
            left = wanted.copy()
            for pool in pools:  # richest gas first
                ch4, mixture = pool.take_ch4(left)
                ch4_total += ch4
                mixture_total += mixture
                left = left - ch4
            return ch4_total, mixture_total

        # gas engines: each wants its load; all share what the richest gas gives
        kw_per_nm3_min = ctx.ch4_kw_per_nm3_min * ctx.physics.gas_engine_electrical_efficiency
        wants = {
            g: rated_kw(lay.device(g))
            * mean_fraction(lay.device(g))
            * self._noise[g].next(n)
            * self._avail[g].next(n)
            / kw_per_nm3_min
            for g in lay.gas_engines
        }
        wanted_total = self._sum(wants, wants, n)
        ch4_engines, mixture_engines = take_ch4(wanted_total)
        for g, want in wants.items():
            share = np.where(wanted_total > 0, want / np.maximum(wanted_total, 1e-12), 0.0)
            output = ch4_engines * share * kw_per_nm3_min
            power[g] = np.minimum(output, rated_kw(lay.device(g)) * 1.05)
        for u in lay.engine_gas:
            part = 1.0 / len(lay.engine_gas)
            self._gas_line(
                truth[u], lay.device(u), mixture_engines * part, ch4_engines * part, step_min
            )
        # boilers on drained gas: what the heat system asked for, if the gas is there
        for u in lay.boiler_gas:
            gj = fuel_gj.pop(u, np.zeros(n))
            wanted = gj / (ctx.physics.ch4_lhv_mj_per_nm3 / 1000.0) / step_min  # Nm3/min CH4
            ch4, mixture = take_ch4(wanted)
            self._gas_line(truth[u], lay.device(u), mixture, ch4, step_min)
        # other utilisation or sale: a steady draw
        for u in lay.other_utilised:
            d = lay.device(u)
            wanted = (
                (hint(d, "rated_flow_nm3_min") or 10.0)
                * (hint(d, "ch4_pct_mean") or 30.0)
                / 100.0
                * mean_fraction(d)
                * self._noise[u].next(n)
            )
            ch4, mixture = take_ch4(wanted)
            self._gas_line(truth[u], lay.device(u), mixture, ch4, step_min)
        # the flare burns surplus up to its capacity, the leanest gas first; the rest is vented
        for f in lay.flares:
            d = lay.device(f)
            capacity = (hint(d, "rated_flow_nm3_min") or 60.0) * self._avail[f].next(n)
            ch4_f, mixture_f = np.zeros(n), np.zeros(n)
            left = capacity.copy()
            for pool in reversed(pools):
                ch4, mixture = pool.take_mixture(left)
                ch4_f += ch4
                mixture_f += mixture
                left = left - mixture
            self._gas_line(truth[f], d, mixture_f, ch4_f, step_min)
            if "flame_temp_degc" in d.metrics:
                burning = mixture_f > 0.5
                flame = ctx.physics.flare_flame_temp_degc * self._vary(f, "flame", 600.0, 0.03, n)
                truth[f].gauges["flame_temp_degc"] = np.where(burning, flame, wx.air_temp_degc)
        rest_mixture = np.sum([p.mixture for p in pools], axis=0)
        rest_ch4 = np.sum([p.mixture * p.pct / 100.0 for p in pools], axis=0)
        for v in lay.vents:
            part = 1.0 / len(lay.vents)
            self._gas_line(truth[v], lay.device(v), rest_mixture * part, rest_ch4 * part, step_min)

    def _storage(
        self, cal: Calendar, surplus_need: FloatArray, truth: dict[str, DeviceTruth]
    ) -> FloatArray:
        """Dispatch the batteries against ``load − renewables`` [kW]; returns discharge − charge."""
        lay, physics = self.layout, self.ctx.physics
        n, step_h = cal.n, cal.step_h
        total = np.zeros(n)
        if not lay.storage:
            return total
        if len(surplus_need) == 0:
            surplus_need = np.zeros(n)
        units_ = [lay.device(s) for s in lay.storage]
        share = 1.0 / len(units_)
        hours = cal.local_hour
        for d in units_:
            rated = rated_kw(d)
            capacity = hint(d, "capacity_kwh") or 4.0 * rated
            e_min = capacity * physics.storage_soc_min_pct / 100.0
            e_max = capacity * physics.storage_soc_max_pct / 100.0
            eta_c, eta_d = physics.storage_charge_efficiency, physics.storage_discharge_efficiency
            soc = self._soc_kwh[d.id]
            charge = np.zeros(n)
            discharge = np.zeros(n)
            soc_pct = np.zeros(n)
            need = (surplus_need * share).tolist()
            hour = hours.tolist()
            for k in range(n):
                h, x = hour[k], need[k]
                if 9.0 <= h < 16.0 and x < 0.0:  # midday surplus: charge
                    p = min(rated, -x, (e_max - soc) / (eta_c * step_h))
                    p = max(p, 0.0)
                    charge[k] = p
                    soc += p * eta_c * step_h
                elif 17.0 <= h < 23.0 and x > 0.0:  # evening: discharge
                    p = min(rated, x, (soc - e_min) * eta_d / step_h)
                    p = max(p, 0.0)
                    discharge[k] = p
                    soc -= p / eta_d * step_h
                soc_pct[k] = 100.0 * soc / capacity
            self._soc_kwh[d.id] = soc
            t = truth[d.id]
            self._put(t, d, "energy_charge_kwh", charge * step_h)
            self._put(t, d, "energy_discharge_kwh", discharge * step_h)
            if "power_kw" in d.metrics:
                t.gauges["power_kw"] = discharge - charge
            if "soc_pct" in d.metrics:
                t.gauges["soc_pct"] = soc_pct
            total = total + discharge - charge
        return total

    def _dispenser(
        self,
        d: Device,
        cal: Calendar,
        temp: FloatArray,
        site_rate: FloatArray | None,
        t: DeviceTruth,
    ) -> None:
        quantity = [m for m, s in d.metrics.items() if s.kind is not MetricKind.GAUGE]
        if not quantity:
            return
        metric = quantity[0]
        in_tonnes = units.metric_unit(metric).symbol == "t"
        per_day = hint(d, "mean_t_per_day" if in_tonnes else "mean_l_per_day") or (
            1.0 if in_tonnes else 100.0
        )
        rng, sizes = self._events[d.id], self._sizes[d.id]
        name = profile_name(d)
        if name == "monthly_test_run":
            # Generator test: first Tuesday of each month, 10:00–11:00 local, a month's quantity.
            first_tuesday = (cal.weekday == 1) & (cal.day <= 7)
            running = first_tuesday & (cal.local_hour >= 10.0) & (cal.local_hour < 11.0)
            days_in_month = np.array(
                [_days_in_month(int(y), int(m)) for y, m in zip(cal.year, cal.month, strict=True)]
            )
            per_step = np.where(running, per_day * days_in_month * cal.step_h, 0.0)
            t.quantities[metric] = np.round(per_step / _FUEL_RESOLUTION) * _FUEL_RESOLUTION
            return
        profile = self.ctx.profile(name, shift_pattern(d))
        if site_rate is not None and profile.is_production:
            shape = site_rate
        else:
            shape = profile.shape(cal, temp)
        day_mean = profile.active_day_mean
        expected = per_day * cal.step_h / 24.0 * shape / max(day_mean, 1e-9)
        size = _REFUEL_LNG_T if in_tonnes else _REFUEL_L
        counts = rng.poisson(np.maximum(expected, 0.0) / size)
        total = int(counts.sum())
        fills = sizes.gamma(4.0, size / 4.0, size=total)
        fills = np.maximum(_FUEL_RESOLUTION, np.round(fills / _FUEL_RESOLUTION) * _FUEL_RESOLUTION)
        per_step = np.zeros(cal.n)
        if total:
            np.add.at(per_step, np.repeat(np.arange(cal.n), counts), fills)
        t.quantities[metric] = per_step

    def _fill_missing(self, d: Device, cal: Calendar, temp: FloatArray, t: DeviceTruth) -> None:
        """Any declared metric no model filled: a plausible generic value."""
        n = cal.n
        for metric, spec in d.metrics.items():
            if metric in t.quantities or metric in t.gauges:
                continue
            unit = units.metric_unit(metric).symbol
            if spec.kind is MetricKind.GAUGE:
                if unit == "degC":
                    t.gauges[metric] = temp.copy()
                elif unit == "%":
                    wobble = self._vary(d.id, metric, 600.0, 0.05, n)
                    t.gauges[metric] = np.clip(50.0 * wobble, 0.0, 100.0)
                else:
                    top = spec.rated_max or rated_hourly_quantity(d, metric)
                    wobble = self._vary(d.id, metric, 600.0, 0.05, n)
                    t.gauges[metric] = top * mean_fraction(d) * wobble
            else:
                hourly = mean_hourly_quantity(d, metric)
                shape = self.ctx.profile(profile_name(d), shift_pattern(d)).shape(cal, temp)
                wobble = self._vary(d.id, f"fill:{metric}", 1800.0, 0.05, n)
                t.quantities[metric] = hourly * cal.step_h * shape * wobble


def _days_in_month(year: int, month: int) -> int:
    nxt = date(year + (month == 12), month % 12 + 1, 1)
    return (nxt - date(year, month, 1)).days


# ---------------------------------------------------------------------------------------------
# The whole site: replicas sharing one sky
# ---------------------------------------------------------------------------------------------


class SitePlant:
    """All replicas of a site; :meth:`advance` gives every device's truth for a chunk."""

    def __init__(
        self,
        doc: SiteDocument,
        seed: int,
        step_s: float,
        replicas: Iterable[int] = (0,),
        assumptions: Assumptions | None = None,
    ) -> None:
        self.ctx = SiteContext(doc, seed, step_s, assumptions)
        self.replicas = [ReplicaPlant(self.ctx, r) for r in replicas]

    def advance(self, cal: Calendar) -> ChunkTruth:
        out: ChunkTruth = {}
        for replica in self.replicas:
            out.update(replica.advance(cal))
        return out

    def devices(self) -> Iterable[tuple[str, Device, int]]:
        """(published id, base device, replica) of every device of every replica."""
        for replica in self.replicas:
            for base_id, device in self.ctx.layout.devices.items():
                yield replica.ids[base_id], device, replica.replica

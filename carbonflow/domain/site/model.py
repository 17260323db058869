"""The site model: one park, mine or enterprise as a validated, immutable document — pure, no I/O.

A *site document* (a YAML file, see ``docs/sites.md``) declares everything the platform needs to
know about a site before the first reading arrives: the site itself and its 2020 baseline, the
organisations in it, the nodes and edges of its energy-flow graph (ACCOUNTING §5), its products,
the energy budgets of its enterprises (用能预算), and every device with the metrics it publishes.

Every model is frozen and forbids unknown keys, so a typo is an error, not a silently ignored
field. Closed lists (device kinds, carriers, roles, …) are :class:`~enum.StrEnum` s; an unknown
value is reported with the list of valid ones. Metric names end in a unit suffix known to
:func:`carbonflow.domain.units.metric_unit` (``energy_import_kwh`` → kWh).

Each device kind has default metrics (:data:`DEVICE_KINDS`), merged into the device's
``metrics`` at validation time, so the validated document lists every metric a device publishes.

Validation happens in two layers, both collected by pydantic into one ``ValidationError``:
field-level checks (types, closed lists, units), and, once every field is valid, the
cross-references between sections (duplicate ids, references to missing nodes/organisations/
products/devices). Validators that find several problems raise :class:`SiteModelError`, which
carries each problem with its own location; :func:`validation_issues` flattens a
``ValidationError`` into located :class:`Issue` s for the file loader to map onto line numbers.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from carbonflow.domain.site.credit_code import credit_code_problem
from carbonflow.domain.units import Dimension, UnitError, lookup, metric_unit

# --------------------------------------------------------------------------------------------
# Closed lists
# --------------------------------------------------------------------------------------------


class SiteKind(StrEnum):
    PARK = "park"  # 园区: several enterprises
    MINE = "mine"  # 煤矿: one organisation
    ENTERPRISE = "enterprise"  # one enterprise outside a park


class GridRegion(StrEnum):
    """Regional grids of the MEE/NBS regional electricity CO2 factors (REFERENCE §1.3)."""

    NORTH = "north"  # 华北
    NORTHEAST = "northeast"  # 东北
    EAST = "east"  # 华东
    CENTRAL = "central"  # 华中
    NORTHWEST = "northwest"  # 西北
    SOUTH = "south"  # 南方
    SOUTHWEST = "southwest"  # 西南


class Province(StrEnum):
    """Provincial-level divisions (pinyin ids), as in the provincial electricity factors
    (REFERENCE Appendix A)."""

    BEIJING = "beijing"
    TIANJIN = "tianjin"
    HEBEI = "hebei"
    SHANXI = "shanxi"
    INNER_MONGOLIA = "inner_mongolia"
    LIAONING = "liaoning"
    JILIN = "jilin"
    HEILONGJIANG = "heilongjiang"
    SHANGHAI = "shanghai"
    JIANGSU = "jiangsu"
    ZHEJIANG = "zhejiang"
    ANHUI = "anhui"
    FUJIAN = "fujian"
    JIANGXI = "jiangxi"
    SHANDONG = "shandong"
    HENAN = "henan"
    HUBEI = "hubei"
    HUNAN = "hunan"
    GUANGDONG = "guangdong"
    GUANGXI = "guangxi"
    HAINAN = "hainan"
    CHONGQING = "chongqing"
    SICHUAN = "sichuan"
    GUIZHOU = "guizhou"
    YUNNAN = "yunnan"
    TIBET = "tibet"
    SHAANXI = "shaanxi"
    GANSU = "gansu"
    QINGHAI = "qinghai"
    NINGXIA = "ningxia"
    XINJIANG = "xinjiang"


class NodeKind(StrEnum):
    """What a node of the energy-flow graph is."""

    SUPPLY = "supply"  # energy entering from outside: grid connection, gas pipeline, fuel purchase
    GENERATION = "generation"  # on-site generation: PV, wind, gas engines
    STORAGE = "storage"  # batteries, thermal storage
    CONVERSION = "conversion"  # boilers, heat pumps, transformers that change carrier or voltage
    DISTRIBUTION = "distribution"  # substations, busbars, heat networks, gas mains
    PROCESS = "process"  # production process units: hoists, ventilation, washing, kilns, data halls
    BUILDING = "building"  # offices, canteens, dormitories, bathhouses
    UTILITY = "utility"  # compressed air, pumping, cooling, lighting shared by processes
    TRANSPORT = "transport"  # vehicles, EV charging, fuel dispensing
    METHANE = "methane"  # gas drainage stations and gas handling
    SINK = "sink"  # leaves the site: atmosphere (vent, flare, ventilation air), export, sale


class Carrier(StrEnum):
    """What flows: an energy carrier, a product, or nothing (weather)."""

    ELECTRICITY = "electricity"
    HEAT = "heat"  # hot water / district heat
    STEAM = "steam"
    COOLING = "cooling"  # chilled water
    NATURAL_GAS = "natural_gas"
    LNG = "lng"
    LPG = "lpg"
    DIESEL = "diesel"
    GASOLINE = "gasoline"
    FUEL_OIL = "fuel_oil"
    HYDROGEN = "hydrogen"
    RAW_COAL = "raw_coal"  # 原煤
    WASHED_COAL = "washed_coal"  # 洗精煤
    COKE = "coke"
    COAL_MINE_METHANE = "coal_mine_methane"  # drained gas and ventilation-air methane (煤矿瓦斯)
    PRODUCT = "product"  # a non-energy product (t of cathode material, t handled, …)
    CARBONATE = "carbonate"  # carbonate-bearing material fed to a process (limestone, Li2CO3)
    NONE = "none"  # measures no flow (weather station)


# Carriers of products (as opposed to energy) on edges: product links between nodes.
PRODUCT_CARRIERS = frozenset({Carrier.RAW_COAL, Carrier.WASHED_COAL, Carrier.COKE, Carrier.PRODUCT})
# Heat carriers: metered in GJ, bought as purchased heat (``heat_import``), netted against heat
# delivered off site (``heat_export``) and shared by an ``attribution`` rule like electricity.
HEAT_CARRIERS = frozenset({Carrier.HEAT, Carrier.STEAM, Carrier.COOLING})
# What an attribution rule shares: the carriers of one group leave a distribution node together.
SHARED_CARRIERS = frozenset({Carrier.ELECTRICITY, *HEAT_CARRIERS})


def carrier_group(carrier: str) -> str:
    """``electricity``, ``heat`` (heat, steam, cooling) or the carrier itself: the carriers an
    attribution rule shares together."""
    return "heat" if carrier in {c.value for c in HEAT_CARRIERS} else carrier


class Role(StrEnum):
    """Which flow of the site a device measures; the calc service books its readings by role."""

    GRID_IMPORT = "grid_import"  # meter at a grid connection (export register, if any, = export)
    GRID_EXPORT = "grid_export"  # export-only meter at a grid connection
    GREEN_IMPORT = "green_import"  # direct-line green power (绿电直连) from an off-site plant
    GENERATION_PV = "generation_pv"
    GENERATION_WIND = "generation_wind"
    GENERATION_GAS = "generation_gas"  # gas engines / turbines, incl. coal-mine-methane engines
    GENERATION_HEAT = "generation_heat"  # heat produced on site (boiler, heat pump outlet)
    STORAGE = "storage"
    CONSUMPTION = "consumption"  # energy used by the device's node
    HEAT_IMPORT = "heat_import"  # purchased heat or steam
    HEAT_EXPORT = "heat_export"  # heat or steam delivered off site (netted against heat_import)
    FUEL_SUPPLY = "fuel_supply"  # fuel bought or dispensed (diesel, gas, coal) for combustion
    PRODUCTION = "production"  # product output meter (belt scale, product counter)
    METHANE_DRAINED = "methane_drained"  # Q_抽放, drainage station main
    METHANE_VENTILATION = "methane_ventilation"  # Q_风排, ventilation-air methane at a return shaft
    METHANE_UTILISED = "methane_utilised"  # Q_回收利用 on site (gas engines, boilers)
    METHANE_FLARED = "methane_flared"  # Q_火炬
    METHANE_VENTED = "methane_vented"  # drained gas released unburnt
    METHANE_SOLD = "methane_sold"  # drained gas sold off site (utilised, not the mine's CO2)
    PROCESS_CARBONATE = "process_carbonate"  # carbonate decomposed in a process: process CO2
    WEATHER = "weather"


class DeviceKind(StrEnum):
    ELECTRICITY_METER = "electricity_meter"
    PV_INVERTER = "pv_inverter"
    WIND_TURBINE = "wind_turbine"
    BATTERY_STORAGE = "battery_storage"
    EV_CHARGER = "ev_charger"
    GAS_METER = "gas_meter"
    HEAT_METER = "heat_meter"
    STEAM_METER = "steam_meter"
    FUEL_DISPENSER = "fuel_dispenser"
    PRODUCTION_METER = "production_meter"
    METHANE_DRAINAGE = "methane_drainage"
    METHANE_METER = "methane_meter"
    VENTILATION_SHAFT = "ventilation_shaft"
    GAS_POWER_PLANT = "gas_power_plant"
    FLARE = "flare"
    WEATHER_STATION = "weather_station"
    CARBONATE_SCALE = "carbonate_scale"


class MetricKind(StrEnum):
    COUNTER = "counter"  # cumulative register; interval quantity = difference of readings
    INTERVAL = "interval"  # quantity since the previous report
    GAUGE = "gauge"  # instantaneous value; never integrated into ledgers


# Dimensions a counter or interval metric may have: quantities that add up over time.
QUANTITY_DIMENSIONS = frozenset(
    {
        Dimension.ENERGY,
        Dimension.GAS_VOLUME,
        Dimension.LIQUID_VOLUME,
        Dimension.MASS,
        Dimension.HEAT,
    }
)

# Dimensions the device multiplier (CT × PT ratio, pulse factor) scales; concentrations,
# temperatures, irradiance and speeds are read as they are.
MULTIPLIED_DIMENSIONS = QUANTITY_DIMENSIONS | {
    Dimension.POWER,
    Dimension.GAS_FLOW,
    Dimension.MASS_FLOW,
}


def multiplier_applies(metric: str) -> bool:
    """Whether a device's ``multiplier`` scales readings of ``metric``."""
    return metric_unit(metric).dimension in MULTIPLIED_DIMENSIONS


# --------------------------------------------------------------------------------------------
# The device-kind catalogue: default metrics, allowed carriers and roles
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DefaultMetric:
    name: str  # ends in its unit suffix
    kind: MetricKind
    description: str


@dataclass(frozen=True, slots=True)
class DeviceKindSpec:
    description: str
    carriers: tuple[Carrier, ...]  # carriers a device of this kind may declare
    roles: tuple[Role, ...]  # roles a device of this kind may declare
    metrics: tuple[DefaultMetric, ...]  # published unless the device sets default_metrics: false


_C, _G = MetricKind.COUNTER, MetricKind.GAUGE
_IMPORT = DefaultMetric("energy_import_kwh", _C, "active energy imported / consumed [kWh]")
_EXPORT = DefaultMetric("energy_export_kwh", _C, "active energy exported / generated [kWh]")
_POWER = DefaultMetric("power_kw", _G, "active power, positive in the direction of the role [kW]")
# A line of coal-mine gas: mixture flow and CH4 concentration for the live view, and the
# flowmeter's cumulative registers (mixture, and pure CH4 = mixture × concentration) for the
# ledgers (ACCOUNTING §4: Q in pure CH4 at the standard state, 0 °C and 101.325 kPa).
_GAS_LINE = (
    DefaultMetric("mixture_flow_nm3_min", _G, "gas-mixture flow at the standard state [Nm³/min]"),
    DefaultMetric("ch4_pct", _G, "CH4 volume concentration of the mixture [%]"),
    DefaultMetric("mixture_nm3", _C, "cumulative gas-mixture volume [Nm³]"),
    DefaultMetric("ch4_nm3", _C, "cumulative pure-CH4 volume [Nm³]"),
)
_GASES = (
    Carrier.NATURAL_GAS,
    Carrier.LNG,
    Carrier.LPG,
    Carrier.HYDROGEN,
    Carrier.COAL_MINE_METHANE,
)
_METHANE_ROLES = (
    Role.METHANE_DRAINED,
    Role.METHANE_UTILISED,
    Role.METHANE_FLARED,
    Role.METHANE_VENTED,
    Role.METHANE_SOLD,
)

DEVICE_KINDS: Mapping[DeviceKind, DeviceKindSpec] = {
    DeviceKind.ELECTRICITY_METER: DeviceKindSpec(
        "electricity meter (grid connection, feeder, sub-meter); add energy_export_kwh for a "
        "bidirectional meter",
        (Carrier.ELECTRICITY,),
        (
            Role.GRID_IMPORT,
            Role.GRID_EXPORT,
            Role.GREEN_IMPORT,
            Role.CONSUMPTION,
            Role.GENERATION_PV,
            Role.GENERATION_WIND,
            Role.GENERATION_GAS,
            Role.STORAGE,
        ),
        (_IMPORT, _POWER),
    ),
    DeviceKind.PV_INVERTER: DeviceKindSpec(
        "PV inverter or PV plant generation meter",
        (Carrier.ELECTRICITY,),
        (Role.GENERATION_PV,),
        (_EXPORT, _POWER),
    ),
    DeviceKind.WIND_TURBINE: DeviceKindSpec(
        "wind turbine or wind-farm generation meter",
        (Carrier.ELECTRICITY,),
        (Role.GENERATION_WIND,),
        (_EXPORT, _POWER, DefaultMetric("wind_speed_m_s", _G, "hub-height wind speed [m/s]")),
    ),
    DeviceKind.BATTERY_STORAGE: DeviceKindSpec(
        "battery energy-storage system at its point of connection",
        (Carrier.ELECTRICITY,),
        (Role.STORAGE,),
        (
            DefaultMetric("energy_charge_kwh", _C, "energy taken in while charging [kWh]"),
            DefaultMetric("energy_discharge_kwh", _C, "energy delivered while discharging [kWh]"),
            DefaultMetric("power_kw", _G, "active power, positive discharging [kW]"),
            DefaultMetric("soc_pct", _G, "state of charge [%]"),
        ),
    ),
    DeviceKind.EV_CHARGER: DeviceKindSpec(
        "electric-vehicle charger or charging hub",
        (Carrier.ELECTRICITY,),
        (Role.CONSUMPTION,),
        (_IMPORT, _POWER),
    ),
    DeviceKind.GAS_METER: DeviceKindSpec(
        "gas flowmeter (natural gas, LNG vapour, LPG, hydrogen, coal-mine gas as fuel)",
        _GASES,
        (Role.FUEL_SUPPLY, Role.CONSUMPTION, *_METHANE_ROLES),
        (
            DefaultMetric("volume_nm3", _C, "cumulative volume at the standard state [Nm³]"),
            DefaultMetric("flow_nm3_min", _G, "flow at the standard state [Nm³/min]"),
        ),
    ),
    DeviceKind.HEAT_METER: DeviceKindSpec(
        "heat meter on a hot-water circuit",
        (Carrier.HEAT, Carrier.COOLING),
        (Role.CONSUMPTION, Role.HEAT_IMPORT, Role.HEAT_EXPORT, Role.GENERATION_HEAT),
        (
            DefaultMetric("heat_gj", _C, "cumulative heat [GJ]"),
            DefaultMetric("power_kw", _G, "thermal power [kW]"),
        ),
    ),
    DeviceKind.STEAM_METER: DeviceKindSpec(
        "steam flowmeter with heat computation",
        (Carrier.STEAM,),
        (Role.CONSUMPTION, Role.HEAT_IMPORT, Role.HEAT_EXPORT, Role.GENERATION_HEAT),
        (
            DefaultMetric("steam_t", _C, "cumulative steam mass [t]"),
            DefaultMetric("heat_gj", _C, "cumulative heat in the steam [GJ]"),
            DefaultMetric("flow_t_h", _G, "steam mass flow [t/h]"),
        ),
    ),
    DeviceKind.FUEL_DISPENSER: DeviceKindSpec(
        "liquid-fuel dispenser or tank outlet",
        (Carrier.DIESEL, Carrier.GASOLINE, Carrier.FUEL_OIL, Carrier.LPG, Carrier.LNG),
        (Role.FUEL_SUPPLY, Role.CONSUMPTION),
        (DefaultMetric("volume_l", _C, "cumulative volume dispensed [L]"),),
    ),
    DeviceKind.CARBONATE_SCALE: DeviceKindSpec(
        "scale or feeder weighing carbonate-bearing material into a kiln or reactor (limestone, "
        "dolomite, lithium carbonate): process CO2, GB/T 32151",
        (Carrier.CARBONATE,),
        (Role.PROCESS_CARBONATE,),
        (DefaultMetric("fed_t", _C, "cumulative material fed [t]"),),
    ),
    DeviceKind.PRODUCTION_METER: DeviceKindSpec(
        "product output meter (belt scale, weighbridge, product counter); names its product — "
        "or, as role consumption, a scale on a product link metering what is fed on",
        (Carrier.PRODUCT, Carrier.RAW_COAL, Carrier.WASHED_COAL, Carrier.COKE),
        (Role.PRODUCTION, Role.CONSUMPTION),
        (
            DefaultMetric("output_t", _C, "cumulative output [t]"),
            DefaultMetric("output_rate_t_h", _G, "output rate [t/h]"),
        ),
    ),
    DeviceKind.METHANE_DRAINAGE: DeviceKindSpec(
        "gas-drainage (抽采) station main: all gas drained from the seams",
        (Carrier.COAL_MINE_METHANE,),
        (Role.METHANE_DRAINED,),
        _GAS_LINE,
    ),
    DeviceKind.METHANE_METER: DeviceKindSpec(
        "coal-mine-gas line downstream of drainage: to gas engines, boilers, vent, sale",
        (Carrier.COAL_MINE_METHANE,),
        _METHANE_ROLES,
        _GAS_LINE,
    ),
    DeviceKind.VENTILATION_SHAFT: DeviceKindSpec(
        "return-air (回风) shaft: ventilation air flow and its CH4 concentration",
        (Carrier.COAL_MINE_METHANE,),
        (Role.METHANE_VENTILATION,),
        (
            DefaultMetric("air_flow_nm3_min", _G, "return-air flow [Nm³/min]"),
            DefaultMetric("ch4_pct", _G, "CH4 volume concentration of the return air [%]"),
            DefaultMetric("ch4_nm3", _C, "cumulative pure-CH4 volume in the return air [Nm³]"),
        ),
    ),
    DeviceKind.GAS_POWER_PLANT: DeviceKindSpec(
        "gas engines or turbines: electricity out (meter the gas in with a methane/gas meter)",
        (Carrier.ELECTRICITY,),
        (Role.GENERATION_GAS,),
        (_EXPORT, _POWER),
    ),
    DeviceKind.FLARE: DeviceKindSpec(
        "flare (火炬) burning coal-mine gas",
        (Carrier.COAL_MINE_METHANE,),
        (Role.METHANE_FLARED,),
        (*_GAS_LINE, DefaultMetric("flame_temp_degc", _G, "flame temperature [°C]")),
    ),
    DeviceKind.WEATHER_STATION: DeviceKindSpec(
        "weather station (PV plane-of-array irradiance, air temperature, wind)",
        (Carrier.NONE,),
        (Role.WEATHER,),
        (
            DefaultMetric("irradiance_w_m2", _G, "plane-of-array irradiance [W/m²]"),
            DefaultMetric("air_temp_degc", _G, "air temperature [°C]"),
            DefaultMetric("wind_speed_m_s", _G, "wind speed [m/s]"),
        ),
    ),
}

# --------------------------------------------------------------------------------------------
# Located issues
# --------------------------------------------------------------------------------------------

Loc = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem in a site document; ``loc`` is the path of the offending field."""

    loc: Loc
    message: str


class SiteModelError(ValueError):
    """Several problems found by one validator, each located relative to the validated object."""

    def __init__(self, issues: Sequence[Issue]) -> None:
        self.issues = tuple(issues)
        super().__init__(
            "; ".join(f"{format_loc(i.loc) or '<document>'}: {i.message}" for i in issues)
        )


def format_loc(loc: Sequence[str | int]) -> str:
    """``('devices', 7, 'carrier')`` → ``devices[7].carrier``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part != "[key]":
            text += f".{part}" if text else str(part)
    return text


def _suggest(value: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.75)
    return f"did you mean {close[0]!r}? " if close else ""


def validation_issues(error: ValidationError) -> list[Issue]:
    """Every problem of a ``ValidationError`` from a site model, with its full location."""
    issues: list[Issue] = []
    for err in error.errors():
        loc: Loc = tuple(err["loc"])
        cause = err.get("ctx", {}).get("error")
        if isinstance(cause, SiteModelError):
            issues.extend(Issue(loc + i.loc, i.message) for i in cause.issues)
        elif isinstance(cause, ValueError):
            issues.append(Issue(loc, str(cause)))
        elif err["type"] == "extra_forbidden":
            name = str(loc[-1]) if loc else ""
            hint = _suggest(name, _FIELD_NAMES)
            issues.append(Issue(loc, f"unknown field {name!r} ({hint}check the spelling)"))
        elif err["type"] == "missing":
            issues.append(Issue(loc, "required field is missing"))
        else:
            issues.append(Issue(loc, f"{err['msg']} (got {_short(err['input'])})"))
    return issues


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --------------------------------------------------------------------------------------------
# Field types
# --------------------------------------------------------------------------------------------

_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")
_ID = re.compile(r"^[a-z0-9](?:[a-z0-9_-]*[a-z0-9])?$")
_METRIC = re.compile(r"^[a-z][a-z0-9_]*$")
_MAX_ID_LENGTH = 64


def _check_slug(value: str) -> str:
    if len(value) > _MAX_ID_LENGTH or not _SLUG.match(value):
        raise ValueError(
            f"invalid site id {value!r}: use lowercase letters, digits and '-' "
            f"(at most {_MAX_ID_LENGTH} characters)"
        )
    return value


def _check_id(value: str) -> str:
    if len(value) > _MAX_ID_LENGTH or not _ID.match(value):
        raise ValueError(
            f"invalid id {value!r}: use lowercase letters, digits, '-' and '_' "
            f"(at most {_MAX_ID_LENGTH} characters; ids appear in MQTT topics)"
        )
    return value


def _check_metric_name(value: str) -> str:
    if not _METRIC.match(value):
        raise ValueError(f"invalid metric name {value!r}: use lowercase letters, digits and '_'")
    try:
        metric_unit(value)
    except UnitError as exc:
        raise ValueError(str(exc)) from None
    return value


def _closed(enum: type[StrEnum], what: str) -> Callable[[object], object]:
    """A before-validator that names the closed list when a value is not in it."""
    values = [m.value for m in enum]

    def check(value: object) -> object:
        if isinstance(value, str) and value not in values:
            raise ValueError(
                f"unknown {what} {value!r} ({_suggest(value, values)}expected one of: "
                f"{', '.join(values)})"
            )
        return value

    return check


Slug = Annotated[str, AfterValidator(_check_slug)]
Id = Annotated[str, AfterValidator(_check_id)]
MetricName = Annotated[str, AfterValidator(_check_metric_name)]
SiteKindField = Annotated[SiteKind, BeforeValidator(_closed(SiteKind, "site kind"))]
ProvinceField = Annotated[Province, BeforeValidator(_closed(Province, "province"))]
GridRegionField = Annotated[GridRegion, BeforeValidator(_closed(GridRegion, "grid region"))]
NodeKindField = Annotated[NodeKind, BeforeValidator(_closed(NodeKind, "node kind"))]
CarrierField = Annotated[Carrier, BeforeValidator(_closed(Carrier, "carrier"))]
RoleField = Annotated[Role, BeforeValidator(_closed(Role, "role"))]
DeviceKindField = Annotated[DeviceKind, BeforeValidator(_closed(DeviceKind, "device kind"))]
MetricKindField = Annotated[MetricKind, BeforeValidator(_closed(MetricKind, "metric kind"))]
Pct = Annotated[float, Field(ge=0, le=100)]
NonNegative = Annotated[float, Field(ge=0)]
Positive = Annotated[float, Field(gt=0)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _without(data: Any, defaults: Mapping[str, Any]) -> Any:
    """``data`` without the fields added after the first stored documents while they hold their
    default, so the normalised form — and ``document_sha256`` — of an existing file does not
    change when the model grows (a changed hash recomputes the site's results)."""
    if isinstance(data, dict):
        for name, default in defaults.items():
            if name in data and data[name] == default:
                del data[name]
    return data


# --------------------------------------------------------------------------------------------
# The document
# --------------------------------------------------------------------------------------------


class Baseline(_Model):
    """Baseline-year values (ACCOUNTING §6: reduction = (baseline − current) / baseline).

    ``basis``: the electricity basis its CO2 figures are on (a reduction compares the current
    figure on the same basis); ``source``: ``entered`` (from records, cited in ``evidence``) or
    ``computed`` (from the platform's stored data of that year)."""

    year: int = Field(default=2020, ge=2000, le=2100)
    basis: Literal["location", "market"] = "location"
    source: Literal["entered", "computed"] = "entered"
    evidence: str | None = Field(default=None, min_length=1)  # e.g. "2020 energy audit, p. 12"
    energy_tce: NonNegative | None = None  # comprehensive energy consumption [tce/yr]
    electricity_kwh: NonNegative | None = None  # electricity consumption [kWh/yr]
    zero_carbon_energy_tce: NonNegative | None = None  # zero-carbon energy used [tce/yr]
    co2_t: NonNegative | None = None  # CO2, scope 1 + 2 [t/yr]
    co2e_t: NonNegative | None = None  # all GHG incl. methane, scope 1 + 2 [tCO2e/yr]
    raw_coal_t: NonNegative | None = None  # raw-coal output [t/yr]
    methane_drained_ch4_nm3: NonNegative | None = None  # Q_drained, pure CH4 [Nm³/yr]
    methane_utilised_ch4_nm3: NonNegative | None = None  # Q_utilised, pure CH4 [Nm³/yr]
    # product id → output in the product's unit [unit/yr]
    product_output: dict[Id, NonNegative] = Field(default_factory=dict)


class TargetSet(_Model):
    """Target values for one year; each overrides the default for the site's kind (MISSION)."""

    co2_reduction_pct: Pct | None = None  # total CO2 below baseline [%]
    co2_per_raw_coal_reduction_pct: Pct | None = None  # tCO2/t raw coal below baseline [%]
    electricity_per_raw_coal_kwh_t: NonNegative | None = None  # ceiling [kWh/t] (GB 29444 scope)
    energy_per_raw_coal_reduction_pct: Pct | None = None  # kgce/t raw coal below baseline [%]
    zero_carbon_energy_share_pct: Pct | None = None  # floor [%]
    methane_utilisation_pct: Pct | None = None  # floor, Q_utilised / Q_drained [%]
    co2_per_energy_t_tce: NonNegative | None = None  # park core indicator ceiling [tCO2/tce]
    clean_energy_share_pct: Pct | None = None  # floor [%]
    low_carbon_vehicle_share_pct: Pct | None = None  # floor [%]


class SiteInfo(_Model):
    id: Slug
    name: str = Field(min_length=1)
    name_zh: str | None = None
    kind: SiteKindField
    timezone: str = "Asia/Shanghai"  # IANA zone; local day and month boundaries of ledgers
    province: ProvinceField
    grid_region: GridRegionField
    latitude_deg: float | None = Field(default=None, ge=-90, le=90)
    longitude_deg: float | None = Field(default=None, ge=-180, le=180)

    @field_validator("timezone")
    @classmethod
    def _iana_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}: use an IANA zone such as 'Asia/Shanghai'"
            ) from None
        return value


class Organisation(_Model):
    """An enterprise inside the site (one per enterprise of a park; a mine is one organisation)."""

    id: Id
    name: str = Field(min_length=1)
    name_zh: str | None = None
    industry: str | None = None  # free text, e.g. coal_mining, battery_materials, data_centre
    # The registered name on the business licence (营业执照), as a submitted ledger carries it.
    legal_name: str | None = Field(default=None, min_length=1)
    # Unified social credit code (统一社会信用代码), 18 characters with a valid GB 32100-2015 check
    # character (carbonflow/domain/site/credit_code.py).
    credit_code: str | None = None

    @field_validator("credit_code")
    @classmethod
    def _valid_credit_code(cls, value: str | None) -> str | None:
        if value is not None:
            problem = credit_code_problem(value)
            if problem is not None:
                raise ValueError(problem)
        return value


class Node(_Model):
    """A process unit, workshop, building or utility: a node of the energy-flow graph."""

    id: Id
    name: str = Field(min_length=1)
    name_zh: str | None = None
    kind: NodeKindField
    org: Id | None = None
    # Inside the raw-coal production system (GB 29444-2012 scope: main, auxiliary and attached
    # production), as opposed to non-production and residential use. Meaningful for mines.
    production_system: bool = True


class Edge(_Model):
    """A link of the energy-flow graph: ``carrier`` flows from ``source`` to ``target``."""

    source: Id
    target: Id
    carrier: CarrierField
    # Devices whose readings, summed, measure this flow (a bidirectional meter may sit on the
    # edge into the site and on the edge out: the register in the edge's direction counts).
    meters: list[Id] = Field(default_factory=list)
    # A product link: the product of ``source`` that flows into ``target`` to make the target's
    # products (raw coal into the preparation plant). Optional when a production meter on the
    # edge names it or the source node makes exactly one product.
    product: Id | None = None

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> Any:
        return _without(handler(self), {"product": None})


class Product(_Model):
    id: Id
    name: str = Field(min_length=1)
    name_zh: str | None = None
    unit: str  # a unit of the unit table: t, MWh, …
    node: Id  # the node that makes it
    org: Id | None = None

    @field_validator("unit")
    @classmethod
    def _known_unit(cls, value: str) -> str:
        try:
            return lookup(value).symbol
        except UnitError as exc:
            raise ValueError(str(exc)) from None


class ProductBaseline(_Model):
    """One product in the year before a project (深度降碳 targets compare unit-product emissions
    with it): output [product unit/yr] and its cradle-to-gate footprint in the site
    [tCO2e/yr, location-based, as the platform's product intensity]."""

    output: Positive
    co2e_t: NonNegative


class ProjectBaseline(_Model):
    """Per-product baseline of a decarbonisation project, "the year before the project"."""

    year: int = Field(ge=2000, le=2100)
    products: dict[Id, ProductBaseline] = Field(default_factory=dict)


class Powertrain(StrEnum):
    """What moves a vehicle. Low-carbon (区内低碳运输工具, 清洁能源车辆): electric, hydrogen fuel
    cell, plug-in hybrid, natural gas (CNG/LNG: the plan pairs 加气站 with charging and hydrogen
    stations), methanol (Jinzhong plan) — a reading of the seed documents, which define no list."""

    BATTERY_ELECTRIC = "battery_electric"
    FUEL_CELL = "fuel_cell"
    PLUG_IN_HYBRID = "plug_in_hybrid"
    NATURAL_GAS = "natural_gas"
    METHANOL = "methanol"
    HYBRID = "hybrid"  # a conventional hybrid burns only petrol or diesel
    DIESEL = "diesel"
    GASOLINE = "gasoline"


LOW_CARBON_POWERTRAINS = frozenset(
    {
        Powertrain.BATTERY_ELECTRIC,
        Powertrain.FUEL_CELL,
        Powertrain.PLUG_IN_HYBRID,
        Powertrain.NATURAL_GAS,
        Powertrain.METHANOL,
    }
)
PowertrainField = Annotated[Powertrain, BeforeValidator(_closed(Powertrain, "powertrain"))]


class VehicleGroup(_Model):
    """``count`` transport vehicles of one powertrain in service over [in_service_from,
    in_service_to) (dates, site-local; open-ended when omitted)."""

    org: Id | None = None
    node: Id | None = None  # the transport node they belong to
    powertrain: PowertrainField
    count: Annotated[int, Field(ge=0)]
    in_service_from: date | None = None
    in_service_to: date | None = None
    low_carbon: bool | None = None  # overrides the powertrain's class (recorded in the file)
    note: str | None = None

    @property
    def is_low_carbon(self) -> bool:
        if self.low_carbon is not None:
            return self.low_carbon
        return self.powertrain in LOW_CARBON_POWERTRAINS

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if (
            self.in_service_from is not None
            and self.in_service_to is not None
            and self.in_service_to <= self.in_service_from
        ):
            raise SiteModelError(
                [Issue(("in_service_to",), "a vehicle group leaves service after it enters")]
            )
        return self


class Budget(_Model):
    """An organisation's energy-use budget (用能预算) for one calendar year."""

    org: Id
    year: int = Field(ge=2000, le=2100)
    energy_tce: NonNegative | None = None  # comprehensive energy [tce/yr]
    co2_t: NonNegative | None = None  # CO2 [t/yr]


class MetricSpec(_Model):
    """How a device publishes one metric. A bare string is shorthand for ``{kind: …}``."""

    kind: MetricKindField
    # Largest plausible true value (after the multiplier) in the metric's unit: the value of a
    # gauge, the quantity of one interval report, or the increase of a counter per hour.
    rated_max: Positive | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: object) -> object:
        return {"kind": data} if isinstance(data, str) else data


class SimHints(BaseModel):
    """Hints for the simulator; known keys are typed, others are kept as given."""

    model_config = ConfigDict(frozen=True, extra="allow")

    rated_kw: Positive | None = None  # nameplate power [kW]
    capacity_kwp: Positive | None = None  # PV DC capacity [kWp]
    capacity_kwh: Positive | None = None  # storage energy capacity [kWh]
    load_profile: str | None = None  # named profile: flat, shift, office, pv, wind, …
    shift_pattern: str | None = None  # e.g. "3x8" (three 8-h shifts), "2x10+maintenance"
    mean_load_pct: Pct | None = None  # mean load [% of rated_kw]
    rated_flow_nm3_min: Positive | None = None  # gas or air flow at rated conditions [Nm³/min]
    ch4_pct_mean: Pct | None = None  # mean CH4 concentration [%]
    rated_t_h: Positive | None = None  # rated output [t/h]
    publish_interval_s: Positive | None = None  # reporting period [s]


class CarbonateFeed(_Model):
    """What a ``process_carbonate`` device weighs: which carbonate (a key ``carbonate.<id>`` of
    GB/T 32151.34—2024 Table C.2 in the factor library), its mass fraction in the material
    weighed, and the fraction decomposed in the process."""

    carbonate: Annotated[str, Field(pattern=r"^[a-z0-9_]{2,32}$")]
    purity: Annotated[float, Field(gt=0, le=1)] = 1.0
    calcination: Annotated[float, Field(gt=0, le=1)] = 1.0


class Device(_Model):
    """A meter or instrument publishing readings, and the flow it measures."""

    id: Id
    name: str = Field(min_length=1)
    name_zh: str | None = None
    kind: DeviceKindField
    carrier: CarrierField
    role: RoleField
    node: Id | None = None
    org: Id | None = None
    product: Id | None = None  # the product a production meter measures
    multiplier: Positive = 1.0  # CT × PT ratio: true value = reading × multiplier
    counter_modulus: Positive | None = None  # counter registers wrap at this value
    serial: str | None = None  # meter serial number
    default_metrics: bool = True  # merge the kind's default metrics into ``metrics``
    metrics: dict[MetricName, MetricSpec] = Field(default_factory=dict)
    sim: SimHints | None = None
    carbonate: CarbonateFeed | None = None  # role process_carbonate only

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> Any:
        return _without(handler(self), {"carbonate": None})

    @model_validator(mode="before")
    @classmethod
    def _merge_default_metrics(cls, data: object) -> object:
        """Defaults of the kind first, then the device's own metrics (field-wise overrides)."""
        if not isinstance(data, Mapping) or data.get("default_metrics", True) is not True:
            return data
        kind, own = data.get("kind"), data.get("metrics") or {}
        if not isinstance(kind, str) or kind not in DEVICE_KINDS or not isinstance(own, Mapping):
            return data  # the field validators report it
        merged: dict[object, object] = {
            m.name: {"kind": m.kind.value} for m in DEVICE_KINDS[DeviceKind(kind)].metrics
        }
        for name, spec in own.items():
            default = merged.get(name)
            given = {"kind": spec} if isinstance(spec, str) else spec
            if isinstance(default, dict) and isinstance(given, Mapping):
                merged[name] = {**default, **given}
            else:
                merged[name] = spec
        return {**data, "metrics": merged}

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        issues: list[Issue] = []
        spec = DEVICE_KINDS[self.kind]
        if self.carrier not in spec.carriers:
            issues.append(
                Issue(("carrier",), _not_for(self.kind, "carrier", self.carrier, spec.carriers))
            )
        if self.role not in spec.roles:
            issues.append(Issue(("role",), _not_for(self.kind, "role", self.role, spec.roles)))
        if not self.metrics:
            issues.append(Issue(("metrics",), "a device publishes at least one metric"))
        for name, metric in self.metrics.items():
            unit = metric_unit(name)
            if metric.kind is not MetricKind.GAUGE and unit.dimension not in QUANTITY_DIMENSIONS:
                issues.append(
                    Issue(
                        ("metrics", name, "kind"),
                        f"a {metric.kind.value} adds up over time, but {name!r} is a "
                        f"{unit.dimension.value} in {unit.symbol}; use a gauge, or a quantity "
                        "metric (kWh, Nm3, L, t, GJ)",
                    )
                )
        if self.counter_modulus is not None and not self.counter_metrics():
            issues.append(
                Issue(("counter_modulus",), "counter_modulus set, but no metric is a counter")
            )
        issues.extend(self._role_issues())
        if issues:
            raise SiteModelError(issues)
        return self

    def _role_issues(self) -> list[Issue]:
        """What a role names: a production meter its product, a process_carbonate device its
        carbonate — and no other role either."""
        issues = []
        if self.role is Role.PRODUCTION and self.product is None:
            issues.append(Issue(("product",), "a production meter names the product it measures"))
        if self.role is not Role.PRODUCTION and self.product is not None:
            issues.append(
                Issue(("product",), f"only role 'production' names a product, not {self.role!r}")
            )
        if (self.role is Role.PROCESS_CARBONATE) != (self.carbonate is not None):
            issues.append(
                Issue(
                    ("carbonate",),
                    "a process_carbonate device names its carbonate (carbonate: {carbonate: "
                    "caco3, purity: 0.9}), and only such a device does",
                )
            )
        return issues

    def counter_metrics(self) -> list[str]:
        return [name for name, m in self.metrics.items() if m.kind is MetricKind.COUNTER]


def _not_for(kind: DeviceKind, what: str, value: StrEnum, allowed: Sequence[StrEnum]) -> str:
    expected = ", ".join(a.value for a in allowed)
    return f"{what} {value.value!r} is not valid for a {kind.value} (expected: {expected})"


class UnmeteredRule(StrEnum):
    """Who takes what a distribution node received beyond its sub-meters (losses, unmetered)."""

    COMMON = "common"  # the park's common account
    PRO_RATA = "pro_rata"  # the enterprises behind the sub-meters, in proportion


class Attribution(_Model):
    """Who owns the electricity and heat a park buys (ACCOUNTING §6a): the grid import (or the
    purchased heat and steam) metered at ``node`` (a distribution node) belongs, interval by
    interval, to the organisations behind the metered edges of that carrier leaving the node
    (each in proportion to its sub-meters' share of what the node received), and the rest — the
    node's own organisation's use, losses, unmetered use — to ``common``, the park's common
    account (or, with ``unmetered: pro_rata``, the losses and unmetered use to the enterprises
    in proportion)."""

    node: Id
    common: Id  # the organisation that holds the park's common account
    unmetered: UnmeteredRule = UnmeteredRule.COMMON


class SiteDocument(_Model):
    """One site file, validated. ``model_dump(mode="json")`` is its normalised form."""

    site: SiteInfo
    baseline: Baseline = Field(default_factory=Baseline)
    targets: dict[Annotated[int, Field(ge=2000, le=2100)], TargetSet] = Field(default_factory=dict)
    organisations: list[Organisation] = Field(default_factory=list)
    nodes: list[Node] = Field(default_factory=list)
    edges: list[Edge] = Field(default_factory=list)
    products: list[Product] = Field(default_factory=list)
    budgets: list[Budget] = Field(default_factory=list)
    devices: list[Device] = Field(default_factory=list)
    project_baseline: ProjectBaseline | None = None
    vehicles: list[VehicleGroup] = Field(default_factory=list)
    attribution: list[Attribution] = Field(default_factory=list)

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> Any:
        return _without(
            handler(self), {"project_baseline": None, "vehicles": [], "attribution": []}
        )

    @model_validator(mode="after")
    def _references(self) -> Self:
        issues = reference_issues(self)
        if not issues:
            issues = attribution_issues(self) + edge_unit_issues(self)
        if issues:
            raise SiteModelError(issues)
        return self


_LISTED = 12  # ids listed in an "unknown id" message


def edge_unit_issues(doc: SiteDocument) -> list[Issue]:
    """The meters of one edge are summed, so they must measure a common quantity: an edge whose
    meters share no dimension among their counter and interval metrics (diesel in L on one, in t
    on another) is refused, naming the edge and each meter's units."""
    issues: list[Issue] = []
    devices = {d.id: d for d in doc.devices}
    for i, e in enumerate(doc.edges):
        meters = [devices[m] for m in e.meters if m in devices]
        if len(meters) < 2:
            continue
        units_of = {
            d.id: sorted(
                {name: metric_unit(name) for name, m in d.metrics.items()
                 if m.kind is not MetricKind.GAUGE}.items()
            )
            for d in meters
        }  # fmt: skip
        shared = set.intersection(*({u.dimension for _n, u in units_of[d.id]} for d in meters))
        if not shared:
            listed = "; ".join(
                f"{d}: {', '.join(f'{n} [{u.symbol}]' for n, u in found) or 'no quantity metric'}"
                for d, found in units_of.items()
            )
            issues.append(
                Issue(
                    ("edges", i, "meters"),
                    f"the meters of edge {e.source!r} → {e.target!r} ({e.carrier.value}) measure "
                    f"no common quantity, so they cannot be summed ({listed})",
                )
            )
    return issues


def attribution_issues(doc: SiteDocument) -> list[Issue]:
    """An attribution names a distribution node and an organisation of the file, once per node,
    and every flow it shares has an owner: each electricity, heat, steam or cooling edge leaving
    the node (but into a sink) is metered and ends at a node of an organisation — a flow with no
    owner is an error."""
    issues: list[Issue] = []
    nodes = {n.id: n for n in doc.nodes}
    orgs = {o.id for o in doc.organisations}
    seen: dict[str, int] = {}
    for i, rule in enumerate(doc.attribution):
        node = nodes.get(rule.node)
        if node is None or node.kind is not NodeKind.DISTRIBUTION:
            what = "unknown node" if node is None else f"a {node.kind.value} node"
            issues.append(
                Issue(
                    ("attribution", i, "node"), f"{rule.node!r} is {what}, not a distribution node"
                )
            )
            continue
        if rule.common not in orgs:
            issues.append(
                Issue(("attribution", i, "common"), f"unknown organisation {rule.common!r}")
            )
        if rule.node in seen:
            issues.append(Issue(("attribution", i, "node"), f"{rule.node!r} is attributed twice"))
        seen.setdefault(rule.node, i)
        for j, e in enumerate(doc.edges):
            if e.source != rule.node or e.carrier not in SHARED_CARRIERS:
                continue
            target = nodes.get(e.target)
            if target is None or target.kind is NodeKind.SINK:
                continue
            if not e.meters:
                issues.append(
                    Issue(
                        ("edges", j, "meters"),
                        f"{e.carrier.value} from {e.source!r} to {e.target!r} has no owner: the "
                        f"edge is not metered, and attribution[{i}] shares {rule.node!r} by meters",
                    )
                )
            if target.org is None:
                issues.append(
                    Issue(
                        ("nodes", list(nodes).index(e.target), "org"),
                        f"{e.carrier.value} from {e.source!r} to {e.target!r} has no owner: node "
                        f"{e.target!r} belongs to no organisation (attribution[{i}])",
                    )
                )
    return issues


def reference_issues(doc: SiteDocument) -> list[Issue]:  # noqa: C901, PLR0912, PLR0915 — one check per kind of reference in the site document
    """Duplicate ids, and references to organisations, nodes, products or devices not defined."""
    issues: list[Issue] = []

    def unique(section: str, ids: Sequence[str]) -> set[str]:
        first: dict[str, int] = {}
        for i, item_id in enumerate(ids):
            if item_id in first:
                where = f"{section}[{first[item_id]}]"
                issues.append(Issue((section, i, "id"), f"duplicate id {item_id!r} (also {where})"))
            first.setdefault(item_id, i)
        return set(first)

    orgs = unique("organisations", [o.id for o in doc.organisations])
    nodes = unique("nodes", [n.id for n in doc.nodes])
    products = unique("products", [p.id for p in doc.products])
    devices = unique("devices", [d.id for d in doc.devices])

    def ref(loc: Loc, what: str, value: str | None, known: set[str]) -> None:
        if value is not None and value not in known:
            names = sorted(known)
            listing = ", ".join(names[:_LISTED]) + (", …" if len(names) > _LISTED else "")
            hint = _suggest(value, known)
            issues.append(
                Issue(loc, f"unknown {what} {value!r} ({hint}defined: {listing or 'none'})")
            )

    def once(seen: dict[Any, int], key: object, loc: Loc, what: str) -> None:
        if key in seen:
            issues.append(Issue(loc, f"duplicate {what} (also {loc[0]}[{seen[key]}])"))
        seen.setdefault(key, int(loc[1]))

    if doc.site.kind is SiteKind.MINE and len(doc.organisations) != 1:
        found = len(doc.organisations)
        issues.append(Issue(("organisations",), f"a mine is one organisation; found {found}"))
    for i, n in enumerate(doc.nodes):
        ref(("nodes", i, "org"), "organisation", n.org, orgs)
    seen_edges: dict[Any, int] = {}
    for i, e in enumerate(doc.edges):
        ref(("edges", i, "source"), "node", e.source, nodes)
        ref(("edges", i, "target"), "node", e.target, nodes)
        for j, meter in enumerate(e.meters):
            ref(("edges", i, "meters", j), "device", meter, devices)
        if e.carrier is Carrier.NONE:
            issues.append(Issue(("edges", i, "carrier"), "an edge carries energy or a product"))
        if e.source == e.target:
            issues.append(Issue(("edges", i, "target"), f"edge from {e.source!r} to itself"))
        once(seen_edges, (e.source, e.target, e.carrier), ("edges", i), "edge")
        if e.product is not None:
            ref(("edges", i, "product"), "product", e.product, products)
            made_at = next((p.node for p in doc.products if p.id == e.product), None)
            if made_at is not None and made_at != e.source:
                issues.append(
                    Issue(
                        ("edges", i, "product"),
                        f"product {e.product!r} is made at {made_at!r}, not at the edge's "
                        f"source {e.source!r}",
                    )
                )
            if e.carrier not in PRODUCT_CARRIERS:
                carriers = ", ".join(sorted(c.value for c in PRODUCT_CARRIERS))
                issues.append(
                    Issue(
                        ("edges", i, "carrier"),
                        f"an edge naming a product carries one of {carriers}",
                    )
                )
    if doc.project_baseline is not None:
        for product_id in doc.project_baseline.products:
            ref(("project_baseline", "products", product_id), "product", product_id, products)
    for i, v in enumerate(doc.vehicles):
        ref(("vehicles", i, "org"), "organisation", v.org, orgs)
        ref(("vehicles", i, "node"), "node", v.node, nodes)
    for i, p in enumerate(doc.products):
        ref(("products", i, "node"), "node", p.node, nodes)
        ref(("products", i, "org"), "organisation", p.org, orgs)
    seen_budgets: dict[Any, int] = {}
    for i, b in enumerate(doc.budgets):
        ref(("budgets", i, "org"), "organisation", b.org, orgs)
        once(seen_budgets, (b.org, b.year), ("budgets", i), f"budget for {b.org!r} in {b.year}")
    for product_id in doc.baseline.product_output:
        ref(("baseline", "product_output", product_id), "product", product_id, products)
    product_units = {p.id: lookup(p.unit) for p in doc.products}
    for i, d in enumerate(doc.devices):
        ref(("devices", i, "node"), "node", d.node, nodes)
        ref(("devices", i, "org"), "organisation", d.org, orgs)
        ref(("devices", i, "product"), "product", d.product, products)
        unit = product_units.get(d.product or "")
        if unit is not None and not any(
            m.kind is not MetricKind.GAUGE and metric_unit(name).dimension is unit.dimension
            for name, m in d.metrics.items()
        ):
            issues.append(
                Issue(
                    ("devices", i, "metrics"),
                    f"product {d.product!r} is counted in {unit.symbol}, but no counter or "
                    f"interval metric of the device is a {unit.dimension.value}",
                )
            )
    return issues


# --------------------------------------------------------------------------------------------
# Normalised form
# --------------------------------------------------------------------------------------------


def document_json(doc: SiteDocument) -> dict[str, Any]:
    """The normalised document as JSON-ready data (defaults filled, default metrics merged)."""
    return doc.model_dump(mode="json")


def document_sha256(doc: SiteDocument) -> str:
    """Hex SHA-256 of the canonical JSON of the normalised document (keys sorted, no spaces).

    Comments, key order and formatting of the source file do not change it.
    """
    text = json.dumps(document_json(doc), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _field_names() -> frozenset[str]:
    models: tuple[type[BaseModel], ...] = (
        SiteDocument, SiteInfo, Baseline, TargetSet, Organisation, Node, Edge, Product, Budget,
        Device, MetricSpec, SimHints, ProjectBaseline, ProductBaseline, VehicleGroup,
    )  # fmt: skip
    return frozenset(name for model in models for name in model.model_fields)


_FIELD_NAMES = _field_names()

"""The one unit table. Every unit conversion in carbonflow goes through it, at the edge.

Metric names carry their unit as a suffix (``energy_import_kwh``, ``ch4_flow_nm3_min``); the
suffix names the metric's canonical unit. A reading may arrive in another unit of the same
dimension (``{"value": 1.2, "unit": "MWh"}``); :func:`convert` turns it into the canonical unit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum


class Dimension(StrEnum):
    ENERGY = "energy"
    POWER = "power"
    GAS_VOLUME = "gas_volume"
    GAS_FLOW = "gas_flow"
    LIQUID_VOLUME = "liquid_volume"
    MASS = "mass"
    HEAT = "heat"
    FRACTION = "fraction"
    IRRADIANCE = "irradiance"
    SPEED = "speed"
    TEMPERATURE = "temperature"
    MASS_FLOW = "mass_flow"


@dataclass(frozen=True, slots=True)
class Unit:
    symbol: str
    dimension: Dimension
    to_canonical: float  # multiply a value in this unit by this to get the canonical unit


# Canonical unit of each dimension first; aliases map to the same Unit.
_UNITS: tuple[Unit, ...] = (
    Unit("kWh", Dimension.ENERGY, 1.0),
    Unit("Wh", Dimension.ENERGY, 1e-3),
    Unit("MWh", Dimension.ENERGY, 1e3),
    Unit("GWh", Dimension.ENERGY, 1e6),
    Unit("kW", Dimension.POWER, 1.0),
    Unit("W", Dimension.POWER, 1e-3),
    Unit("MW", Dimension.POWER, 1e3),
    Unit("Nm3", Dimension.GAS_VOLUME, 1.0),
    Unit("10^4 Nm3", Dimension.GAS_VOLUME, 1e4),
    Unit("Nm3/min", Dimension.GAS_FLOW, 1.0),
    Unit("Nm3/h", Dimension.GAS_FLOW, 1.0 / 60.0),
    Unit("Nm3/s", Dimension.GAS_FLOW, 60.0),
    Unit("L", Dimension.LIQUID_VOLUME, 1.0),
    Unit("m3", Dimension.LIQUID_VOLUME, 1e3),
    Unit("t", Dimension.MASS, 1.0),
    Unit("kg", Dimension.MASS, 1e-3),
    Unit("g", Dimension.MASS, 1e-6),
    Unit("GJ", Dimension.HEAT, 1.0),
    Unit("MJ", Dimension.HEAT, 1e-3),
    Unit("kWh_th", Dimension.HEAT, 3.6e-3),
    Unit("%", Dimension.FRACTION, 1.0),
    Unit("fraction", Dimension.FRACTION, 100.0),
    Unit("W/m2", Dimension.IRRADIANCE, 1.0),
    Unit("m/s", Dimension.SPEED, 1.0),
    Unit("degC", Dimension.TEMPERATURE, 1.0),
    Unit("t/h", Dimension.MASS_FLOW, 1.0),
)

UNITS: dict[str, Unit] = {u.symbol: u for u in _UNITS}
_ALIASES = {
    "kwh": "kWh", "wh": "Wh", "mwh": "MWh", "gwh": "GWh",
    "kw": "kW", "w": "W", "mw": "MW",
    "nm3": "Nm3", "nm³": "Nm3", "Nm³": "Nm3", "m3n": "Nm3",
    "nm3/min": "Nm3/min", "nm3/h": "Nm3/h", "nm3/s": "Nm3/s",
    "Nm³/min": "Nm3/min", "Nm³/h": "Nm3/h",
    "l": "L", "m³": "m3",
    "gj": "GJ", "mj": "MJ",
    "pct": "%", "percent": "%",
    "w/m2": "W/m2", "W/m²": "W/m2", "°C": "degC", "c": "degC",
}  # fmt: skip

# Metric-name suffix -> canonical unit symbol. Longest suffix wins (``_nm3_min`` before ``_nm3``).
SUFFIX_UNITS: dict[str, str] = {
    "_kwh": "kWh",
    "_kw": "kW",
    "_nm3": "Nm3",
    "_nm3_min": "Nm3/min",
    "_l": "L",
    "_t": "t",
    "_gj": "GJ",
    "_pct": "%",
    "_w_m2": "W/m2",
    "_m_s": "m/s",
    "_degc": "degC",
    "_t_h": "t/h",
}
_SUFFIXES_LONGEST_FIRST = sorted(SUFFIX_UNITS, key=len, reverse=True)


class UnitError(ValueError):
    """A unit that is not in the table, or a conversion across dimensions."""


def lookup(symbol: str) -> Unit:
    """The :class:`Unit` for a symbol or one of its documented aliases."""
    unit = UNITS.get(symbol) or UNITS.get(_ALIASES.get(symbol, _ALIASES.get(symbol.lower(), "")))
    if unit is None:
        known = ", ".join(sorted(UNITS))
        raise UnitError(f"unknown unit {symbol!r}; known units: {known}")
    return unit


def metric_unit(metric: str) -> Unit:
    """The canonical unit a metric name declares by its suffix (``power_kw`` -> kW)."""
    for suffix in _SUFFIXES_LONGEST_FIRST:
        if metric.endswith(suffix) and len(metric) > len(suffix):
            return UNITS[SUFFIX_UNITS[suffix]]
    raise UnitError(
        f"metric {metric!r} does not end in a unit suffix; use one of {', '.join(SUFFIX_UNITS)}"
    )


def convert(value: float, from_symbol: str, to: Unit) -> float:
    """``value`` in ``from_symbol`` expressed in ``to`` (same dimension only)."""
    source = lookup(from_symbol)
    if source.dimension is not to.dimension:
        raise UnitError(
            f"cannot convert {source.symbol} ({source.dimension}) to {to.symbol} ({to.dimension})"
        )
    if source is to:
        return value
    return value * source.to_canonical / to.to_canonical


@dataclass(frozen=True, slots=True)
class Ratio:
    """``numerator / denominator`` in ``unit``; ``value`` is None when undefined (with a reason)."""

    numerator: float
    denominator: float
    unit: str
    value: float | None
    undefined_reason: str | None = None

    @property
    def defined(self) -> bool:
        return self.value is not None


def ratio(numerator: float, denominator: float, unit: str, *, what: str = "ratio") -> Ratio:
    """``numerator / denominator``; undefined (not an error) when the denominator is 0."""
    if not (math.isfinite(numerator) and math.isfinite(denominator)):
        raise ValueError(f"{what}: non-finite input {numerator} / {denominator}")
    if denominator < 0:
        raise ValueError(f"{what}: negative denominator {denominator}")
    if denominator == 0:
        return Ratio(numerator, denominator, unit, None, f"{what}: undefined, denominator is 0")
    return Ratio(numerator, denominator, unit, numerator / denominator)

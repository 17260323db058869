"""Where a ledger line or an indicator value comes from: devices, readings, factors, GWPs. Pure.

A ledger line is one source of the ledger's ``activity`` section, named by its
:func:`line_id` ``<category>.<carrier>.<scope>`` (``purchased_electricity.electricity.scope_2``).
Its trace lists, from the same inputs the ledger is built from (``document.LedgerInputs``):

- the line as the ledger shows it (quantity + unit, energy, emissions by scope, gas and view);
- the device metrics behind it (``devices.meters_of``: by role and carrier), each with its meter
  serials, registers, multiplier, quantity, the count and time range of its readings in the
  period and its 15-min intervals by quality — measured, estimated (gap filled from the readings
  around the gap) and missing (no data, counted as zero) — of the period's expected intervals;
- the readings of all of them together (count, first and last);
- every factor record of the line's factor sets (value, unit, version, data year, source), the
  GWP behind each gas's CO2e and the set it belongs to (``gwp.ch4.ar5`` → ``ar5``);
- the emissions rows (scope × gas × basis) of the line.

An indicator's trace (:func:`indicator_inputs`) says what a value is computed from: the inventory
(every source of the site or organisation), device roles read directly (raw coal hoisted,
end-use consumption, methane volumes), or neither (the fleet share reads the site file).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from carbonflow.domain.inventory.lines import InventoryLine
from carbonflow.domain.ledger.devices import DeviceMeter, device_row, meters_of
from carbonflow.domain.ledger.document import (
    LedgerInputs,
    _activity,
    _emissions,
    _factors,
    rounded,
)
from carbonflow.domain.readings.quality import Quality

LINE_ID_PATTERN = r"^[a-z][a-z0-9_]{0,63}\.[a-z][a-z0-9_]{0,63}\.scope_[1-3]$"
INTERVAL_UNIT = "15-min interval"
READING_UNIT = "reading"


def line_id(category: str, carrier: str, scope: str) -> str:
    """The id of an activity line: ``<category>.<carrier>.<scope>``."""
    return f"{category}.{carrier}.{scope}"


def parse_line_id(value: str) -> tuple[str, str, str] | None:
    """(category, carrier, scope) of a line id, None if it is not one."""
    if not re.fullmatch(LINE_ID_PATTERN, value):
        return None
    category, carrier, scope = value.split(".")
    return category, carrier, scope


def line_ids(inputs: LedgerInputs) -> list[str]:
    """Every line id of the ledger built from ``inputs``, in the ledger's order."""
    keys = {(str(ln.category), ln.carrier, str(ln.scope)) for ln in inputs.lines}
    return [line_id(*k) for k in sorted(keys)]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def device_trace(meter: DeviceMeter, line: Mapping[str, Any], org_id: str | None) -> dict[str, Any]:
    """One device metric behind a line: the ledger's ``devices`` row, its readings' count and
    time range, and its intervals by quality."""
    missing_rows = meter.count(Quality.MISSING)
    measured, estimated = meter.count(Quality.MEASURED), meter.count(Quality.ESTIMATED)
    return {
        **device_row(meter, line, org_id, rounded),
        "readings": {
            "count": meter.readings,
            "unit": READING_UNIT,
            "first_at": _iso(meter.first_reading_at),
            "last_at": _iso(meter.last_reading_at),
        },
        "intervals": {
            "unit": INTERVAL_UNIT,
            "expected": meter.expected_intervals,
            "measured": measured,
            "estimated": estimated,
            # stored as missing, or never computed (no row): both count as zero
            "missing": max(missing_rows, meter.expected_intervals - measured - estimated),
        },
    }


def readings_summary(meters: Sequence[DeviceMeter]) -> dict[str, Any]:
    """The readings of a set of device metrics together: count, first and last."""
    firsts = [m.first_reading_at for m in meters if m.first_reading_at is not None]
    lasts = [m.last_reading_at for m in meters if m.last_reading_at is not None]
    return {
        "count": sum(m.readings for m in meters),
        "unit": READING_UNIT,
        "first_at": _iso(min(firsts)) if firsts else None,
        "last_at": _iso(max(lasts)) if lasts else None,
    }


def gwp_rows(lines: Sequence[InventoryLine]) -> list[dict[str, Any]]:
    """The GWP behind each gas's CO2e, from the emissions rows, with the set it belongs to."""
    seen: dict[str, dict[str, Any]] = {}
    for row in _emissions(lines):
        key = str(row["gwp_key"])
        parts = key.split(".")
        seen[row["gas"]] = {
            "gas": row["gas"],
            "gwp_key": key,
            "gwp_set": parts[2] if len(parts) == 3 and parts[0] == "gwp" else None,
            "gwp": row["gwp"],
            "unit": "tCO2e/t",
        }
    return [seen[g] for g in sorted(seen)]


def trace_line(inputs: LedgerInputs, line: str) -> dict[str, Any] | None:
    """The trace of line ``line`` (module doc), None if the ledger has no such line."""
    key = parse_line_id(line)
    if key is None:
        return None
    category, carrier, scope = key
    group = tuple(
        ln for ln in inputs.lines
        if (str(ln.category), ln.carrier, str(ln.scope)) == (category, carrier, scope)
    )  # fmt: skip
    if not group:
        return None
    meters = meters_of(inputs.meters, category, carrier)
    rows = _activity(group, meters)
    return {
        "line_id": line,
        "category": category,
        "carrier": carrier,
        "scope": scope,
        "line": rows[0],
        "devices": [device_trace(m, rows[0], inputs.org_id) for m in meters],
        "readings": readings_summary(meters),
        "factors": _factors(group),
        "factor_set_ids": sorted({ln.factors.set_id for ln in group if ln.factors.set_id}),
        "gwp": gwp_rows(group),
        "emissions": _emissions(group),
    }


@dataclass(frozen=True, slots=True)
class IndicatorInputs:
    """What an indicator is computed from."""

    inventory: bool  # the carbon inventory of the site or organisation (every source)
    roles: frozenset[str] = frozenset()  # device roles whose quantities it reads directly


_INVENTORY = IndicatorInputs(True)
_PRODUCTION = frozenset({"production"})
# Indicator → its inputs (carbonflow/domain/indicators/kpis.py, site_indicators and
# org_indicators); an indicator not listed (organisation totals, product intensities) rests on
# the inventory.
INDICATOR_INPUTS: Mapping[str, IndicatorInputs] = {
    "zero_carbon_energy_share": _INVENTORY,
    "clean_energy_share": _INVENTORY,
    "co2_per_energy": _INVENTORY,
    "total_co2_reduction": _INVENTORY,
    "co2_per_raw_coal": IndicatorInputs(True, _PRODUCTION),
    "co2_per_raw_coal_reduction": IndicatorInputs(True, _PRODUCTION),
    "electricity_per_raw_coal": IndicatorInputs(False, frozenset({"consumption", "production"})),
    "energy_per_raw_coal": IndicatorInputs(True, frozenset({"consumption", "production"})),
    "energy_per_raw_coal_reduction": IndicatorInputs(
        True, frozenset({"consumption", "production"})
    ),
    "methane_utilisation_rate": IndicatorInputs(
        False, frozenset({"methane_drained", "methane_utilised", "methane_sold"})
    ),
    "methane_drainage_rate": IndicatorInputs(
        False, frozenset({"methane_drained", "methane_ventilation"})
    ),
    "low_carbon_vehicle_share": IndicatorInputs(False),
}


def indicator_inputs(indicator: str) -> IndicatorInputs:
    return INDICATOR_INPUTS.get(indicator, _INVENTORY)


def trace_indicator(inputs: LedgerInputs, indicator: str) -> dict[str, Any]:
    """The devices, readings, factors and GWPs behind an indicator over ``inputs``' period:
    every inventory line's (when it rests on the inventory) and the meters of the roles it reads
    (``inputs.meters`` holds both)."""
    wanted = indicator_inputs(indicator)
    lines = inputs.lines if wanted.inventory else ()
    used = [
        m for m in inputs.meters
        if m.role in wanted.roles
        or (wanted.inventory and any(m.feeds(str(ln.category), ln.carrier) for ln in lines))
    ]  # fmt: skip
    used.sort(key=lambda m: (m.device_id, m.metric))
    sub = replace(inputs, lines=tuple(lines))
    return {
        "inventory": wanted.inventory,
        "roles": sorted(wanted.roles),
        "lines": line_ids(sub),
        "devices": [device_trace(m, _line_of(m, lines), inputs.org_id) for m in used],
        "readings": readings_summary(used),
        "factors": _factors(lines),
        "factor_set_ids": sorted({ln.factors.set_id for ln in lines if ln.factors.set_id}),
        "gwp": gwp_rows(lines),
        "energy_tce": rounded(math.fsum(ln.energy_tce for ln in lines)),
    }


def _line_of(meter: DeviceMeter, lines: Sequence[InventoryLine]) -> dict[str, Any]:
    """The first inventory line (in the ledger's order) a meter feeds; a device an indicator
    reads directly stands under none."""
    keys = sorted({(str(ln.category), ln.carrier, str(ln.scope)) for ln in lines})
    for category, carrier, scope in keys:
        if meter.feeds(category, carrier):
            return {"category": category, "carrier": carrier, "scope": scope}
    return {"category": None, "carrier": meter.carrier, "scope": None}

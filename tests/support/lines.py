"""Inventory lines for tests: one :class:`InventoryLine` with defaults for what a test does not
care about (an electricity line of 1 MWh, measured)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from carbonflow.domain.inventory.lines import (
    Basis,
    Category,
    FactorTrail,
    Gas,
    InventoryLine,
    Scope,
)
from carbonflow.domain.readings.quality import Quality


def line(
    *,
    org_id: str = "",
    node_id: str = "n",
    carrier: str = "electricity",
    category: str = "purchased_electricity",
    basis: str = "location",
    gas: str = "CO2",
    scope: str = "scope_2",
    activity: float = 1.0,
    activity_unit: str = "MWh",
    energy_tce: float = 0.0,
    zero_carbon_tce: float = 0.0,
    gas_t: float = 0.0,
    tco2e: float = 0.0,
    factors: FactorTrail | None = None,
    records: tuple[Mapping[str, Any], ...] = (),
    quality: str = "measured",
    completeness: float = 1.0,
) -> InventoryLine:
    return InventoryLine(
        org_id, node_id, carrier, Category(category), Basis(basis), Gas(gas), Scope(scope),
        activity, activity_unit, energy_tce, zero_carbon_tce, gas_t, tco2e,
        factors if factors is not None else FactorTrail(records=records), Quality(quality),
        completeness,
    )  # fmt: skip

"""The two comprehensive energy totals of a period (综合能源消费量) [tce]. Pure.

A mine that burns its own drained coal-mine methane (gas engines, boilers: role
``methane_utilised``, or a ``fuel_supply`` meter on ``coal_mine_methane``) consumes energy it
also produced: counted, it is part of the energy the site uses (GB/T 2589: every energy
consumed, at its coefficient — the inventory books it with the tce of the CH4 burnt); left out,
the total is the energy brought in from outside and produced otherwise. Both are stated, each
labelled, wherever on-site methane utilisation is involved (issue 15), and every energy-based
indicator names the one it divides by (:data:`carbonflow.domain.indicators.formulas.ENERGY_TOTAL`):

- ``with_utilised_methane``: Σ ``energy_tce`` of all lines (the total every indicator used so far);
- ``without_utilised_methane``: the same less the ``energy_tce`` of the lines of carrier
  ``coal_mine_methane`` (the methane burnt on site).

Energy sits on ``location`` and ``both`` lines only (balance.py), so a plain sum counts it once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from carbonflow.domain.inventory.lines import InventoryLine

METHANE_CARRIER = "coal_mine_methane"


class EnergyTotal(StrEnum):
    """Which comprehensive energy consumption a figure is, or an indicator divides by."""

    WITH_UTILISED_METHANE = "with_utilised_methane"
    WITHOUT_UTILISED_METHANE = "without_utilised_methane"


# (zh, en) labels of the two totals, for the ledger document and the API.
LABELS: Mapping[EnergyTotal, tuple[str, str]] = {
    EnergyTotal.WITH_UTILISED_METHANE: (
        "综合能源消费量（含煤矿瓦斯利用量）",
        "Comprehensive energy consumption, including utilised coal-mine methane",
    ),
    EnergyTotal.WITHOUT_UTILISED_METHANE: (
        "综合能源消费量（不含煤矿瓦斯利用量）",
        "Comprehensive energy consumption, excluding utilised coal-mine methane",
    ),
}


@dataclass(frozen=True, slots=True)
class EnergyTotals:
    """A period's energy [tce]: everything, and the part that is methane utilised on site."""

    total_tce: float
    utilised_methane_tce: float

    def of(self, which: EnergyTotal) -> float:
        if which is EnergyTotal.WITH_UTILISED_METHANE:
            return self.total_tce
        return self.total_tce - self.utilised_methane_tce

    @property
    def involves_methane(self) -> bool:
        return self.utilised_methane_tce != 0


def energy_totals(lines: Iterable[InventoryLine]) -> EnergyTotals:
    """The period's two totals from its inventory lines (module doc)."""
    rows = list(lines)
    return EnergyTotals(
        total_tce=math.fsum(r.energy_tce for r in rows),
        utilised_methane_tce=math.fsum(r.energy_tce for r in rows if r.carrier == METHANE_CARRIER),
    )

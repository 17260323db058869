"""The lines of the emission inventory: what they are made of, and which count in which view.
Pure.

A line of the inventory (a ``calc_carbon`` row, for one interval or summed over a period) is
booked with a :class:`Scope`, a :class:`Category`, a :class:`Gas` and a :class:`Basis`.
Scope-2 electricity is reported twice (GHG Protocol Scope 2 Guidance, ACCOUNTING §3): in the
location-based :class:`View` (grid average) and in the market-based one (contracts, certificates
and the residual mix). A line's basis says where it counts: a ``location`` or ``market`` line in
its own view only, a ``both`` line (scope 1, heat, self-generation, direct supply) in each —
:meth:`Basis.in_view`, the one statement of that rule in Python (the SQL of the rollups and of
the dashboards states it again, in ``carbonflow/storage`` and ``carbonflow/grafana``).

The values are the strings stored in ``calc_carbon``; rows keep plain strings, and the members
compare equal to them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any, Protocol, TypeVar

from carbonflow.domain.exact import allocate_exact
from carbonflow.domain.factors import SelectedFactor
from carbonflow.domain.readings.quality import Quality


class Scope(StrEnum):
    SCOPE_1 = "scope_1"  # direct: combustion, process, fugitive, flaring
    SCOPE_2 = "scope_2"  # indirect: purchased electricity and heat


class Gas(StrEnum):
    CO2 = "CO2"
    CH4 = "CH4"
    N2O = "N2O"


class Category(StrEnum):
    FUEL_COMBUSTION = "fuel_combustion"
    PROCESS = "process"
    FUGITIVE = "fugitive"
    FLARING = "flaring"
    SELF_GENERATION = "self_generation"
    PURCHASED_ELECTRICITY = "purchased_electricity"
    GREEN_ELECTRICITY = "green_electricity"
    PURCHASED_HEAT = "purchased_heat"


class View(StrEnum):
    """One of the two scope-2 reports."""

    LOCATION = "location"
    MARKET = "market"


class Basis(StrEnum):
    """The views a line counts in."""

    LOCATION = "location"
    MARKET = "market"
    BOTH = "both"

    def in_view(self, view: View) -> bool:
        """A line counts in a view if its basis is that view or ``both``."""
        return self is Basis.BOTH or self.value == view.value


# (org, node, carrier, category, basis, gas): what identifies a line of one interval or period
LineKey = tuple[str, str, str, str, str, str]


@dataclass(frozen=True, slots=True)
class FactorTrail:
    """The factors behind a line: the principal one (key, version, value, unit — the first
    used), the stored factor set once the line is stored, and the full records.

    A line computed from readings carries the factors it ``used``; a line read back from
    ``calc_carbon`` carries the principal columns and ``set_id``, and its ``records`` once the
    factor set has been read (ledgers)."""

    key: str | None = None
    version: str | None = None
    value: float | None = None
    unit: str | None = None
    set_id: int | None = None  # calc_factor_set, once stored
    used: tuple[SelectedFactor, ...] = ()  # as selected by the calculation
    records: tuple[Mapping[str, Any], ...] = ()  # full records of the stored factor set

    @classmethod
    def of(cls, used: Sequence[SelectedFactor]) -> FactorTrail:
        """The trail of the factors a calculation used (the first is the principal one)."""
        if not used:
            return cls()
        principal = used[0]
        return cls(
            principal.key, principal.version, principal.value, principal.unit, used=tuple(used)
        )


@dataclass(frozen=True, slots=True)
class Figures:
    """What a line, or a sum of lines, amounts to in both views: energy and zero-carbon energy
    [tce], CO2e location- and market-based [tCO2e], CO2 location- and market-based [t] — the six
    quantities the flow graph attributes (:data:`FIGURES`, in this order)."""

    energy_tce: float = 0.0
    zero_carbon_tce: float = 0.0
    tco2e_location: float = 0.0
    tco2e_market: float = 0.0
    co2_t_location: float = 0.0
    co2_t_market: float = 0.0

    def as_tuple(self) -> tuple[float, float, float, float, float, float]:
        return (
            self.energy_tce, self.zero_carbon_tce, self.tco2e_location, self.tco2e_market,
            self.co2_t_location, self.co2_t_market,
        )  # fmt: skip

    def __iter__(self) -> Iterator[float]:
        return iter(self.as_tuple())

    def component(self, name: str) -> float:
        """One quantity by its name in :data:`FIGURES`."""
        return float(getattr(self, name))

    def is_zero(self) -> bool:
        return not any(c != 0 for c in self.as_tuple())

    def __add__(self, other: Figures) -> Figures:
        """Component by component, exactly rounded (``math.fsum`` of the two)."""
        return Figures.sum((self, other))

    @classmethod
    def sum(cls, parts: Iterable[Figures]) -> Figures:
        """Component by component, exactly rounded (``math.fsum``); no parts is zero."""
        rows = [p.as_tuple() for p in parts]
        return cls(*(math.fsum(r[i] for r in rows) for i in range(6)))

    def split(self, weights: Sequence[float]) -> list[Figures]:
        """Parts in proportion to ``weights`` whose components add up exactly
        (:func:`allocate_exact`)."""
        parts = [allocate_exact(c, weights) for c in self.as_tuple()]
        return [Figures(*(parts[i][k] for i in range(6))) for k in range(len(weights))]


FIGURES = tuple(f.name for f in fields(Figures))


@dataclass(frozen=True, slots=True)
class InventoryLine:
    """One source of the inventory, for one interval or summed over a period (a ``calc_carbon``
    row): where it is booked, what it is, its activity, energy, gas mass and CO2e, the factors
    behind it and how well it was measured."""

    org_id: str
    node_id: str
    carrier: str
    category: Category
    basis: Basis
    gas: Gas
    scope: Scope
    activity: float
    activity_unit: str
    energy_tce: float
    zero_carbon_tce: float
    gas_t: float
    tco2e: float
    factors: FactorTrail
    quality: Quality
    completeness: float

    def key(self) -> LineKey:
        return (self.org_id, self.node_id, self.carrier, self.category, self.basis, self.gas)

    def figures(self) -> Figures:
        """The line's energy, and its CO2e and CO2 in each view it counts in."""
        loc = self.basis.in_view(View.LOCATION)
        mkt = self.basis.in_view(View.MARKET)
        co2 = self.gas_t if self.gas == Gas.CO2 else 0.0
        return Figures(
            self.energy_tce,
            self.zero_carbon_tce,
            self.tco2e if loc else 0.0,
            self.tco2e if mkt else 0.0,
            co2 if loc else 0.0,
            co2 if mkt else 0.0,
        )


class _Based(Protocol):
    @property
    def basis(self) -> str: ...


B = TypeVar("B", bound=_Based)


def in_view(lines: Iterable[B], view: View) -> list[B]:
    """The lines (rows with a stored ``basis``) that count in ``view``, in their order."""
    return [line for line in lines if Basis(line.basis).in_view(view)]


class _Line(_Based, Protocol):
    @property
    def scope(self) -> str: ...
    @property
    def gas(self) -> str: ...
    @property
    def gas_t(self) -> float: ...
    @property
    def tco2e(self) -> float: ...


@dataclass(frozen=True, slots=True)
class ViewTotals:
    """The emissions of one view [tCO2e] and its gas masses [t] (exactly rounded sums)."""

    view: View
    scope1_tco2e: float
    scope2_tco2e: float
    total_tco2e: float
    co2_t: float
    ch4_t: float
    n2o_t: float

    def gas_t(self, gas: str) -> float:
        """The mass of ``gas`` [t]."""
        return {Gas.CO2: self.co2_t, Gas.CH4: self.ch4_t, Gas.N2O: self.n2o_t}[Gas(gas)]


def view_totals(lines: Iterable[_Line], view: View) -> ViewTotals:
    """Scope 1, scope 2 and all emissions of the lines counting in ``view``, and each gas."""
    chosen = in_view(lines, view)

    def gas_t(gas: Gas) -> float:
        return math.fsum(ln.gas_t for ln in chosen if ln.gas == gas)

    return ViewTotals(
        view=view,
        scope1_tco2e=math.fsum(ln.tco2e for ln in chosen if ln.scope == Scope.SCOPE_1),
        scope2_tco2e=math.fsum(ln.tco2e for ln in chosen if ln.scope == Scope.SCOPE_2),
        total_tco2e=math.fsum(ln.tco2e for ln in chosen),
        co2_t=gas_t(Gas.CO2),
        ch4_t=gas_t(Gas.CH4),
        n2o_t=gas_t(Gas.N2O),
    )


class _PeriodLine(_Line, Protocol):
    @property
    def energy_tce(self) -> float: ...
    @property
    def zero_carbon_tce(self) -> float: ...
    @property
    def quality(self) -> str: ...
    @property
    def completeness(self) -> float: ...


@dataclass(frozen=True, slots=True)
class PeriodTotals:
    """A period's settled lines summed in both scope-2 views (docs/calc.md): energy and
    zero-carbon energy [tce] in the location view (the energy sits on location and both
    lines), emissions [tCO2e] and CO2 [t] in each view, scope 1 once (it is ``both``)."""

    energy_tce: float
    zero_carbon_tce: float
    location_tco2e: float
    market_tco2e: float
    co2_location_t: float
    co2_market_t: float
    scope1_tco2e: float
    scope2_location_tco2e: float
    scope2_market_tco2e: float
    quality: str | None  # :meth:`Quality.combine` of the lines; None without lines
    completeness: float  # mean over the lines; 0 without lines


def period_totals(lines: Sequence[_PeriodLine]) -> PeriodTotals:
    """:class:`PeriodTotals` of ``lines`` (summed over a period and settled)."""
    location = view_totals(lines, View.LOCATION)
    market = view_totals(lines, View.MARKET)
    # Zero-carbon energy of the location view (location and both lines): the aggregates'
    # choice; the indicators sum every line, the park dashboard the both lines only.
    energy = in_view(lines, View.LOCATION)
    return PeriodTotals(
        energy_tce=math.fsum(ln.energy_tce for ln in energy),
        zero_carbon_tce=math.fsum(ln.zero_carbon_tce for ln in energy),
        location_tco2e=location.total_tco2e,
        market_tco2e=market.total_tco2e,
        co2_location_t=location.co2_t,
        co2_market_t=market.co2_t,
        scope1_tco2e=location.scope1_tco2e,
        scope2_location_tco2e=location.scope2_tco2e,
        scope2_market_tco2e=market.scope2_tco2e,
        quality=Quality.combine(ln.quality for ln in lines).value if lines else None,
        completeness=math.fsum(ln.completeness for ln in lines) / len(lines) if lines else 0.0,
    )

"""Which factor applies to a site, purpose and accounting year — with site pins. Pure.

Every factor the calc service uses is picked here and returned as a
:class:`~carbonflow.domain.factors.SelectedFactor` (key, version, value, unit, source, and how
and why it was chosen), so every stored figure traces back to a factor version.

**Purposes** a site may pin (a library key) or override (its own value and source) in
``factor_pin`` (:data:`PURPOSES`; fuel, tce and density purposes are per carrier):

============================== ===============================================================
``electricity.location``       grid factor of location-based scope 2 (default: the MEE/NBS
                               average of the site's province, newest data year ≤ the year)
``electricity.market_residual`` market-based remainder (default: national residual factor)
``heat.purchased``             purchased heat (default 0.11 tCO2/GJ)
``methane.gwp``                pin ``gwp.ch4.<set>`` (default SAR 21, the Chinese method)
``methane.density``, ``methane.flare_oxidation``, ``methane.utilisation_oxidation``
``fuel.<carrier>.ncv|cc|of``   combustion parameters (default GB/T 32151.34 Table C.1)
``tce.<carrier>``              standard-coal coefficient (default GB/T 2589; electricity at the
                               equivalent value — pin ``tce.electricity.equal_value.2022``)
``density.<carrier>``          kg/L of a liquid fuel metered in litres
``ncv.ch4``                    NCV of pure CH4 (tce of metered coal-mine methane)
============================== ===============================================================

**tce without a GB/T 2589 coefficient** (LNG; pure CH4 — the library's coal-mine-gas value is
per Nm³ of gas *mixture*): ``coefficient = NCV ÷ 29.3076 GJ/tce`` (the definition of tce),
recorded as a derived factor naming both inputs and their versions.

A missing factor raises :class:`~carbonflow.domain.factors.FactorNotFound` saying what was asked.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

from carbonflow.domain.factors import (
    ElectricityBasis,
    FactorLibrary,
    FactorNotFound,
    FactorPin,
    FactorValue,
    GridGeography,
    SelectedFactor,
    Selection,
    SiteOverride,
    select_electricity_factor,
    use_factor,
)
from carbonflow.domain.factors.library import Confidence
from carbonflow.domain.inventory.carbon import FuelParameters, fuel_parameters
from carbonflow.domain.inventory.energy import tce_coefficient
from carbonflow.domain.inventory.methane import GwpSet, MethaneParameters, methane_parameters
from carbonflow.domain.site.plan import SitePlan

PURPOSES = (
    "electricity.location",
    "electricity.market_residual",
    "heat.purchased",
    "methane.gwp",
    "methane.density",
    "methane.flare_oxidation",
    "methane.utilisation_oxidation",
    "ncv.ch4",
    "tce.gj_per_tce",
)

GREEN_ZERO_KEY = "green.evidenced_purchase.zero"
SELF_ZERO_KEY = "green.self_generated_non_fossil.zero"
GEC_KEY = "green.gec.mwh_per_certificate"
HEAT_KEY = "heat.purchased.default"
GJ_PER_TCE_KEY = "tce.definition.gj_per_tce"
CH4_NCV_KEY = "ncv.ch4.pure_standard"
DEFAULT_GWP = GwpSet.SAR

_CONFIDENCE_ORDER = (Confidence.A, Confidence.B_PLUS, Confidence.B, Confidence.U)


def valid_purpose(purpose: str) -> bool:
    if purpose in PURPOSES:
        return True
    if purpose.startswith("fuel."):
        parts = purpose.split(".")
        return len(parts) == 3 and parts[2] in ("ncv", "cc", "of") and bool(parts[1])
    return purpose.startswith(("tce.", "density.")) and len(purpose.split(".")) == 2


def _weakest(*levels: Confidence) -> Confidence:
    return max(levels, key=_CONFIDENCE_ORDER.index)


@dataclass
class SiteFactors:
    """The factors of one site and accounting year; per-carrier ones resolved on first use."""

    library: FactorLibrary
    year: int
    location: SelectedFactor
    residual: SelectedFactor
    green_zero: SelectedFactor
    self_zero: SelectedFactor
    heat: SelectedFactor
    gec: SelectedFactor
    methane: MethaneParameters
    pins: Mapping[str, FactorPin]
    _fuels: dict[str, FuelParameters] = field(default_factory=dict, repr=False)
    _tce: dict[tuple[str, str], SelectedFactor] = field(default_factory=dict, repr=False)

    def _pin(self, purpose: str, expected_unit: str | None = None) -> SelectedFactor | None:
        pin = self.pins.get(purpose)
        if pin is None:
            return None
        return self.library.resolve_pin(pin, expected_unit=expected_unit)

    def fuel(self, carrier: str) -> FuelParameters:
        """NCV / CC / OF of a fuel carrier (site overrides per parameter)."""
        if carrier not in self._fuels:
            overrides: dict[str, SiteOverride | None] = {}
            for parameter in ("ncv", "cc", "of"):
                pin = self.pins.get(f"fuel.{carrier}.{parameter}")
                overrides[parameter] = pin if isinstance(pin, SiteOverride) else None
            self._fuels[carrier] = fuel_parameters(
                self.library,
                carrier,
                ncv=overrides["ncv"],
                cc=overrides["cc"],
                of=overrides["of"],
            )
        return self._fuels[carrier]

    def density(self, carrier: str) -> SelectedFactor:
        """kg/L of a liquid fuel (``density.<carrier>``)."""
        pinned = self._pin(f"density.{carrier}", "kg/L")
        if pinned is not None:
            return pinned
        key = f"density.{carrier}"
        if key not in self.library:
            raise FactorNotFound(
                f"no density for {carrier!r} metered in litres (asked for {key!r} in kg/L); "
                "add it to carbonflow/domain/factors/calc_supplement.yaml or override "
                f"purpose density.{carrier} for the site"
            )
        return use_factor(self.library.get(key))

    def tce(self, carrier: str, *, pure_ch4: bool = False) -> SelectedFactor:
        """Standard-coal coefficient of ``carrier`` (kgce/<unit> or derived tce/<unit>)."""
        cache_key = (carrier, "pure" if pure_ch4 else "")
        if cache_key in self._tce:
            return self._tce[cache_key]
        pinned = self._pin(f"tce.{carrier}")
        if pinned is not None:
            chosen = pinned
        elif pure_ch4:
            chosen = self._derived_tce(carrier, self._ch4_ncv())
        elif carrier in self.library.carriers:
            chosen = tce_coefficient(self.library, carrier)
        else:
            try:
                ncv = self.fuel(carrier).ncv
            except FactorNotFound as exc:
                raise FactorNotFound(
                    f"no tce coefficient for carrier {carrier!r}: GB/T 2589 gives none and no "
                    f"NCV to derive one ({exc}); override purpose tce.{carrier} for the site"
                ) from None
            chosen = self._derived_tce(carrier, ncv)
        self._tce[cache_key] = chosen
        return chosen

    def _ch4_ncv(self) -> SelectedFactor:
        pinned = self._pin("ncv.ch4", "GJ/10^4 Nm3")
        return pinned if pinned is not None else use_factor(self.library.get(CH4_NCV_KEY))

    def _derived_tce(self, carrier: str, ncv: SelectedFactor) -> SelectedFactor:
        """NCV [GJ/unit] ÷ 29.3076 GJ/tce → [tce/unit], recorded as a derived factor."""
        pinned = self._pin("tce.gj_per_tce", "GJ/tce")
        per = pinned if pinned is not None else use_factor(self.library.get(GJ_PER_TCE_KEY))
        unit = ncv.factor.denominator_unit
        if ncv.factor.numerator_unit != "GJ" or unit is None:
            raise ValueError(f"{ncv.key} is not a GJ/<unit> calorific value: {ncv.unit}")
        value = ncv.value / per.value
        factor = FactorValue(
            key=f"derived.tce.{carrier}",
            value=value,
            unit=f"tce/{unit}",
            source=f"derived: {ncv.key} ({ncv.version}) ÷ {per.key} ({per.version})",
            confidence=_weakest(ncv.confidence, per.confidence),
            version=f"{ncv.version}+{per.version}",
            file="derived",
            note=f"{ncv.value:g} {ncv.unit} ÷ {per.value:g} GJ/tce = {value:.6g} tce/{unit}",
        )
        return SelectedFactor(
            factor,
            Selection.RULE,
            f"no GB/T 2589 coefficient for {carrier}: NCV ÷ tce definition",
        )

    def fixed(self) -> tuple[SelectedFactor, ...]:
        m = self.methane
        return (
            self.location, self.residual, self.green_zero, self.self_zero, self.heat, self.gec,
            m.density, m.flare_oxidation, m.utilisation_oxidation, m.gwp,
        )  # fmt: skip


def _pinned_or(
    library: FactorLibrary, pins: Mapping[str, FactorPin], purpose: str, key: str, unit: str
) -> SelectedFactor:
    pin = pins.get(purpose)
    if pin is not None:
        return library.resolve_pin(pin, expected_unit=unit)
    return use_factor(library.get(key))


def site_factors(
    library: FactorLibrary,
    *,
    province: str,
    grid_region: str,
    year: int,
    pins: Mapping[str, FactorPin] | None = None,
    as_of: date | None = None,
) -> SiteFactors:
    """The factors of a site for accounting ``year`` (module doc)."""
    pins = dict(pins or {})
    location = select_electricity_factor(
        province,
        grid_region,
        ElectricityBasis.AVERAGE,
        year,
        geography=GridGeography.PROVINCE,
        pin=pins.get("electricity.location"),
        library=library,
        as_of=as_of,
    )
    residual = select_electricity_factor(
        None,
        None,
        ElectricityBasis.RESIDUAL,
        year,
        geography=GridGeography.NATIONAL,
        pin=pins.get("electricity.market_residual"),
        library=library,
        as_of=as_of,
    )
    gwp_pin = pins.get("methane.gwp")
    gwp_set: GwpSet | str = DEFAULT_GWP
    if gwp_pin is not None:
        if isinstance(gwp_pin, SiteOverride) or not gwp_pin.key.startswith("gwp.ch4."):
            raise ValueError("purpose methane.gwp takes a pin of a key gwp.ch4.<set>")
        gwp_set = gwp_pin.key.removeprefix("gwp.ch4.")

    def opt(purpose: str, unit: str) -> SelectedFactor | None:
        pin = pins.get(purpose)
        return None if pin is None else library.resolve_pin(pin, expected_unit=unit)

    methane = methane_parameters(
        library,
        gwp_set,
        density=opt("methane.density", "t/10^4 Nm3"),
        flare_oxidation=opt("methane.flare_oxidation", "fraction"),
        utilisation_oxidation=opt("methane.utilisation_oxidation", "fraction"),
    )
    if gwp_pin is not None:
        methane = MethaneParameters(
            methane.density,
            methane.flare_oxidation,
            methane.utilisation_oxidation,
            SelectedFactor(methane.gwp.factor, Selection.PIN, f"pinned by site: {gwp_pin.reason}"),
        )
    return SiteFactors(
        library=library,
        year=year,
        location=location,
        residual=residual,
        green_zero=use_factor(library.get(GREEN_ZERO_KEY)),
        self_zero=use_factor(library.get(SELF_ZERO_KEY)),
        heat=_pinned_or(library, pins, "heat.purchased", HEAT_KEY, "tCO2/GJ"),
        gec=use_factor(library.get(GEC_KEY)),
        methane=methane,
        pins=pins,
    )


def plan_factors(
    library: FactorLibrary, plan: SitePlan, year: int, pins: Mapping[str, FactorPin] | None
) -> SiteFactors:
    """The factors of the planned site (its province and grid region) for accounting ``year``."""
    return site_factors(
        library, province=plan.province, grid_region=plan.grid_region, year=year, pins=pins
    )


def fingerprint(records: object) -> str:
    """SHA-256 of a JSON-able description (factor records, register entries …)."""
    text = json.dumps(records, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()

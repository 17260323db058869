"""Which grid electricity factor applies: the selection rule of ACCOUNTING.md §3.

**Rule**: among the MEE/NBS factors of the asked geography (province, region or national) and
basis (average, residual, fossil), take the one with the newest data year not after the
accounting year — optionally only among those published on or before ``as_of`` (to reproduce a
ledger as it was closed). A site pin (a library key, e.g. the ETS reporting factor 0.5703) or a
site override (a measured/supplier value with its own source) replaces the rule and is recorded
as such. The returned :class:`SelectedFactor` carries the reason in words, e.g.
``"newest data year ≤ 2026: 2023 (province 山西 (shanxi), basis average, published 2025-12-31)"``.

**Any year computes** (issue 15): a year without a published factor uses the newest earlier
data year, and a year before the first published data year uses the earliest one; either way
the returned factor carries the accounting year asked for (``requested_year``) next to its
``data_year`` and is flagged ``factor_year_fallback`` (:attr:`SelectedFactor.year_fallback`)
on the figure, the ledger line and the API response — it is never silent and never an error.

What still raises :class:`FactorNotFound`, naming what was asked and what exists: a province
without a factor (西藏), a basis not published at the asked geography (residual and fossil are
national only), or nothing published on or before ``as_of``.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from carbonflow.domain.factors.library import (
    FactorLibrary,
    FactorNotFound,
    FactorPin,
    FactorValue,
    SelectedFactor,
    Selection,
    default_library,
)

ELECTRICITY_FILE = "mee_nbs_electricity.yaml"
ELECTRICITY_FACTOR_UNIT = "tCO2/MWh"


class ElectricityBasis(StrEnum):
    """The three bases (口径) MEE/NBS publish per data year."""

    AVERAGE = "average"  # grid average: location-based
    RESIDUAL = "residual"  # excluding market-traded non-fossil electricity: market-based remainder
    FOSSIL = "fossil"  # fossil-fuelled generation only


class GridGeography(StrEnum):
    PROVINCE = "province"
    REGION = "region"
    NATIONAL = "national"


def select_electricity_factor(
    province: str | None,
    region: str | None,
    basis: ElectricityBasis | str,
    accounting_year: int,
    *,
    geography: GridGeography | str = GridGeography.PROVINCE,
    pin: FactorPin | None = None,
    library: FactorLibrary | None = None,
    as_of: date | None = None,
) -> SelectedFactor:
    """The grid CO2 factor [tCO2/MWh] for an accounting year, with the reason it was picked.

    ``province`` and ``region`` accept ids or Chinese names; ``region`` defaults to the
    province's grid region when ``geography`` is ``"region"``. ``pin`` bypasses the rule.
    """
    lib = library if library is not None else default_library()
    if pin is not None:
        selected = lib.resolve_pin(pin, expected_unit=ELECTRICITY_FACTOR_UNIT)
        outside = _outside_validity(selected.factor, accounting_year)
        reason = f"{selected.reason}; {outside}" if outside else selected.reason
        return SelectedFactor(selected.factor, selected.selection, reason, accounting_year)

    wanted_basis = ElectricityBasis(basis)
    geo = GridGeography(geography)
    if geo is GridGeography.PROVINCE:
        if province is None:
            raise ValueError("geography 'province' needs a province")
        area = lib.geography.province(province).province_id
        asked = f"province={province!r}"
        label = lib.geography.province(province).label
    elif geo is GridGeography.REGION:
        if region is None and province is None:
            raise ValueError("geography 'region' needs a region or a province")
        found = lib.geography.region(region) if region else lib.geography.region_of(str(province))
        area = found.region_id
        asked = f"region={region or found.name_zh!r}"
        label = found.label
    else:
        area = "national"
        asked = "national"
        label = ""

    electricity = lib.file(ELECTRICITY_FILE)
    same_geo = [f for f in electricity.factors if f.tag("geography") == geo.value]
    same_area = [f for f in same_geo if f.tag("area") == area]
    same_basis = [f for f in same_area if f.tag("basis") == wanted_basis.value]
    published = [
        f
        for f in same_basis
        if f.data_year is not None
        and (as_of is None or f.valid_from is None or f.valid_from <= as_of)
    ]
    if not published:
        head = (
            f"no electricity factor for {asked}, basis={wanted_basis.value!r}"
            + (f", published on or before {as_of.isoformat()}" if as_of else "")
            + f" in {ELECTRICITY_FILE}"
        )
        exists = _what_exists(lib, geo, wanted_basis, electricity.factors, same_area, same_basis)
        raise FactorNotFound(f"{head}; {exists}")
    best, rule = _by_year(published, accounting_year)
    reason = (
        f"{rule}: {best.data_year} ({geo.value}" + (f" {label}" if label else "") + ", "
        f"basis {wanted_basis.value}, published {best.valid_from})"
        + (f"; only factors published on or before {as_of.isoformat()}" if as_of else "")
    )
    if best.data_year != accounting_year:
        reason += f"; factor_year_fallback: data year {best.data_year} for {accounting_year}"
    return SelectedFactor(best, Selection.RULE, reason, accounting_year)


def _by_year(published: list[FactorValue], accounting_year: int) -> tuple[FactorValue, str]:
    """The factor of the newest data year ≤ ``accounting_year``, or — for a year before the
    first published one — the earliest, with the rule applied in words."""
    eligible = [f for f in published if (f.data_year or 0) <= accounting_year]
    if eligible:
        best = max(eligible, key=lambda f: f.data_year or 0)
        return best, f"newest data year ≤ {accounting_year}"
    earliest = min(published, key=lambda f: f.data_year or 0)
    return earliest, f"no data year ≤ {accounting_year} published, earliest data year"


def _what_exists(
    lib: FactorLibrary,
    geo: GridGeography,
    basis: ElectricityBasis,
    all_factors: tuple[FactorValue, ...],
    same_area: list[FactorValue],
    same_basis: list[FactorValue],
) -> str:
    if same_basis:
        years = sorted({f"{f.data_year} (published {f.valid_from})" for f in same_basis})
        return f"data years available: {', '.join(years)}"
    if same_area:
        where = sorted({str(f.tag("geography")) for f in all_factors if f.tag("basis") == basis})
        return f"basis {basis.value!r} is published for: {', '.join(where) or 'nothing'}"
    with_basis = {
        str(f.tag("area"))
        for f in all_factors
        if f.tag("geography") == geo.value and f.tag("basis") == basis
    }
    if geo is GridGeography.PROVINCE:
        names = [p.label for p in lib.geography.provinces if p.province_id in with_basis]
        return f"provinces with data: {', '.join(names)}"
    if geo is GridGeography.REGION:
        names = [r.label for r in lib.geography.regions if r.region_id in with_basis]
        return f"regions with data: {', '.join(names)}"
    return "no national factors in the file"


def _outside_validity(factor: FactorValue, accounting_year: int) -> str:
    start, end = date(accounting_year, 1, 1), date(accounting_year, 12, 31)
    if factor.valid_to is not None and factor.valid_to < start:
        return f"note: valid only until {factor.valid_to}, before accounting year {accounting_year}"
    if factor.valid_from is not None and factor.valid_from > end:
        return f"note: valid only from {factor.valid_from}, after accounting year {accounting_year}"
    return ""

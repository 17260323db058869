"""Which factor a site uses for a year, with pins and overrides
(carbonflow/domain/inventory/site_factors.py)."""

from __future__ import annotations

from functools import cache

import pytest

from carbonflow.domain.factors import FactorLibrary, FactorNotFound, PinnedFactor, SiteOverride
from carbonflow.domain.factors.library import (
    Confidence,
    Selection,
    load_library,
    package_data_files,
)
from carbonflow.domain.inventory.site_factors import fingerprint, site_factors, valid_purpose


@cache
def library() -> FactorLibrary:
    return load_library(package_data_files())


def test_the_rule_picks_the_newest_data_year_not_after_the_accounting_year() -> None:
    f = site_factors(library(), province="shanxi", grid_region="north", year=2025)
    assert (f.location.key, f.location.value) == (
        "electricity.mee_nbs.province.shanxi.average.2023", 0.6634)  # fmt: skip
    assert f.location.selection is Selection.RULE
    assert (f.residual.key, f.residual.value) == (
        "electricity.mee_nbs.national.residual.2023", 0.6096)  # fmt: skip
    assert f.heat.value == 0.11 and f.methane.gwp.value == 21.0
    f2022 = site_factors(library(), province="inner_mongolia", grid_region="north", year=2022)
    assert f2022.location.value == 0.6849


def test_a_year_before_the_first_data_year_computes_with_the_earliest() -> None:
    f = site_factors(library(), province="shanxi", grid_region="north", year=2019)
    # earliest published: 2021 (Shanxi average 0.7222, national residual 0.5942)
    assert (f.location.factor.data_year, f.location.value) == (2021, 0.7222)
    assert (f.residual.factor.data_year, f.residual.value) == (2021, 0.5942)
    assert f.location.year_fallback and f.residual.year_fallback
    assert f.location.requested_year == f.residual.requested_year == 2019


def test_pins_and_overrides_are_used_and_recorded() -> None:
    pins: dict[str, PinnedFactor | SiteOverride] = {
        "electricity.location": PinnedFactor("electricity.ets_reporting.national.2022", "ETS"),
        "heat.purchased": SiteOverride(
            "site.x.heat", 0.095, "tCO2/GJ", "supplier statement 2025", Confidence.B, "v1",
            reason="supplier factor",
        ),
        "methane.gwp": PinnedFactor("gwp.ch4.ar5", "GHG Protocol report"),
    }  # fmt: skip
    f = site_factors(library(), province="shanxi", grid_region="north", year=2025, pins=pins)
    assert f.location.value == 0.5703 and f.location.selection is Selection.PIN
    assert f.heat.value == 0.095 and f.heat.selection is Selection.OVERRIDE
    assert f.methane.gwp.value == 28.0 and f.methane.gwp.selection is Selection.PIN


def test_tce_without_a_gbt2589_coefficient_is_derived_from_the_ncv() -> None:
    f = site_factors(library(), province="shanxi", grid_region="north", year=2025)
    # LNG: 51.498 GJ/t ÷ 29.3076 GJ/tce = 1.757155 tce/t
    lng = f.tce("lng")
    assert lng.unit == "tce/t" and lng.value == pytest.approx(51.498 / 29.3076)
    assert "fuel.lng.ncv" in lng.source and lng.confidence is Confidence.B
    # Pure CH4: 357.9 GJ/10^4 Nm3 ÷ 29.3076 = 12.2119 tce/10^4 Nm3 (1.2212 kgce/Nm3), U.
    ch4 = f.tce("coal_mine_methane", pure_ch4=True)
    assert ch4.unit == "tce/10^4 Nm3" and ch4.value == pytest.approx(357.9 / 29.3076)
    assert ch4.confidence is Confidence.U
    assert f.tce("electricity").value == 0.1229


def test_a_missing_density_names_what_to_add() -> None:
    f = site_factors(library(), province="shanxi", grid_region="north", year=2025)
    with pytest.raises(FactorNotFound, match=r"density\.kerosene"):
        f.density("kerosene")
    assert f.density("diesel").value == 0.84


def test_purposes_and_fingerprints() -> None:
    assert valid_purpose("electricity.location") and valid_purpose("fuel.diesel.ncv")
    assert valid_purpose("tce.electricity") and not valid_purpose("fuel.diesel")
    assert not valid_purpose("anything")
    assert fingerprint([1, "a"]) == fingerprint([1, "a"]) != fingerprint([1, "b"])

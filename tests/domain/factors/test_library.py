"""The factor library: data files, transcription checks, the electricity selection rule.

Values are checked against /work/shared/domain/REFERENCE.md; tolerance: exact equality for
transcribed values, 5e-4 relative for REFERENCE's own rounded derived emission factors.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from carbonflow.domain.factors import (
    Confidence,
    FactorError,
    FactorNotFound,
    PinnedFactor,
    Selection,
    SiteOverride,
    UnknownAreaError,
    default_library,
    default_targets,
    load_library,
    select_electricity_factor,
)
from carbonflow.domain.factors.library import SUPPLEMENT_FILE, package_data_files, unique_paths

LIB = default_library()


# --- the data files --------------------------------------------------------------------------


def test_every_factor_has_unit_source_confidence_and_file_version() -> None:
    for factor_file in LIB.files:
        assert factor_file.version, factor_file.name
        for f in factor_file.factors:
            assert f.unit and f.source and f.version == factor_file.version, f.key
            assert isinstance(f.confidence, Confidence)
            assert f.file == factor_file.name


def test_file_names_and_versions() -> None:
    versions = {f.name: f.version for f in LIB.files}
    assert versions["mee_nbs_electricity.yaml"] == "mee-nbs-electricity-2025-12-31"
    assert versions["gbt32151_34_2024_fuels.yaml"] == "gbt-32151.34-2024-appendix-c"
    assert versions["gbt2589_2020_tce.yaml"] == "gbt-2589-2020"
    assert {p.name for p in package_data_files()} >= {"geography.yaml", "targets.yaml"}


def test_electricity_table_is_complete() -> None:
    # 3 data years × (3 national bases + 7 regions + 30 provinces) = 120 values
    electricity = LIB.file("mee_nbs_electricity.yaml").factors
    assert len(electricity) == 120
    provinces = {f.tag("area") for f in electricity if f.tag("geography") == "province"}
    assert len(provinces) == 30
    assert "xizang" not in provinces
    assert len(LIB.geography.provinces) == 31  # 西藏 is known but has no factor
    assert len(LIB.find("electricity.mee_nbs.province.", basis="average")) == 90
    for year in (2021, 2022, 2023):
        for basis in ("average", "residual", "fossil"):
            assert f"electricity.mee_nbs.national.{basis}.{year}" in LIB
        regions = LIB.find("electricity.mee_nbs.region.", basis="average")
        assert len([f for f in regions if f.data_year == year]) == 7


@pytest.mark.parametrize(
    ("key", "value", "confidence", "valid_from"),
    [
        ("electricity.mee_nbs.national.average.2021", 0.5568, "A", date(2024, 4, 12)),
        ("electricity.mee_nbs.national.residual.2021", 0.5942, "A", date(2024, 4, 12)),
        ("electricity.mee_nbs.national.fossil.2021", 0.8426, "A", date(2024, 4, 12)),
        ("electricity.mee_nbs.national.average.2022", 0.5366, "A", date(2024, 12, 20)),
        ("electricity.mee_nbs.national.residual.2022", 0.5856, "A", date(2024, 12, 20)),
        ("electricity.mee_nbs.national.fossil.2022", 0.8325, "A", date(2024, 12, 20)),
        ("electricity.mee_nbs.national.average.2023", 0.5306, "A", date(2025, 12, 31)),
        ("electricity.mee_nbs.national.residual.2023", 0.6096, "A", date(2025, 12, 31)),
        ("electricity.mee_nbs.national.fossil.2023", 0.8273, "A", date(2025, 12, 31)),
        ("electricity.mee_nbs.region.north.average.2021", 0.7120, "B", date(2024, 4, 12)),
        ("electricity.mee_nbs.region.south.average.2021", 0.4326, "B+", date(2024, 4, 12)),
        ("electricity.mee_nbs.region.southwest.average.2023", 0.2472, "A", date(2025, 12, 31)),
        ("electricity.mee_nbs.province.shanxi.average.2021", 0.7222, "B", date(2024, 4, 12)),
        ("electricity.mee_nbs.province.shanxi.average.2022", 0.7096, "A", date(2024, 12, 20)),
        ("electricity.mee_nbs.province.shanxi.average.2023", 0.6634, "B+", date(2025, 12, 31)),
        ("electricity.mee_nbs.province.inner_mongolia.average.2023", 0.6479, "B+", None),
        ("electricity.mee_nbs.province.shaanxi.average.2022", 0.6558, "B", None),
        ("electricity.mee_nbs.province.yunnan.average.2022", 0.1073, "B", None),
        ("electricity.mee_nbs.province.xinjiang.average.2023", 0.6021, "B+", None),
        ("electricity.ets_reporting.national.2022", 0.5703, "A", date(2023, 2, 15)),
        ("electricity.ets_reporting.national.reports_2021_2022", 0.5810, "U", None),
        ("electricity.ets_reporting.national.before_2021", 0.6101, "U", None),
    ],
)
def test_electricity_values_match_reference(
    key: str, value: float, confidence: str, valid_from: date | None
) -> None:
    f = LIB.get(key)
    assert f.value == value
    assert f.unit == "tCO2/MWh"
    assert f.confidence == Confidence(confidence)
    if valid_from is not None:
        assert f.valid_from == valid_from


# REFERENCE.md §2.1 "EF per physical unit" column, computed there from NCV × CC × OF × 44/12 and
# rounded to 5 significant figures; recomputing it from the transcribed parameters checks all
# 78 parameter values at once.
EF_PER_UNIT = {
    "anthracite": 2.5215,
    "bituminous_coal": 1.7417,
    "lignite": 1.1729,
    "cleaned_coal": 2.2082,
    "other_washed_coal": 1.0519,
    "briquette": 1.9360,
    "other_coal_products": 2.1081,
    "coke": 2.8604,
    "petroleum_coke": 3.2115,
    "crude_oil": 3.0202,
    "fuel_oil": 3.1705,
    "gasoline": 2.9251,
    "diesel": 3.0959,
    "kerosene": 3.0334,
    "lng": 2.8313,
    "lpg": 3.1013,
    "naphtha": 3.1981,
    "tar": 2.6446,
    "crude_benzene": 3.4109,
    "other_petroleum_products": 2.9488,
    "refinery_dry_gas": 3.0389,
    "natural_gas": 21.622,
    "blast_furnace_gas": 8.4811,
    "converter_gas": 15.124,
    "coke_oven_gas": 8.8638,
    "other_gas": 2.3148,
}


@pytest.mark.parametrize(("fuel", "ef"), sorted(EF_PER_UNIT.items()))
def test_fuel_parameters_reproduce_reference_emission_factors(fuel: str, ef: float) -> None:
    ncv = LIB.get(f"fuel.{fuel}.ncv").value
    cc = LIB.get(f"fuel.{fuel}.cc").value
    of = LIB.get(f"fuel.{fuel}.of").value
    # e.g. natural gas: 389.31 GJ/10^4 Nm3 × 0.0153 tC/GJ × 0.99 × 44/12 = 21.622 tCO2/10^4 Nm3
    assert ncv * cc * of * 44 / 12 == pytest.approx(ef, rel=5e-4)


def test_all_26_fuels_and_the_flagged_values_are_unconfirmed() -> None:
    fuels = {f.tag("fuel") for f in LIB.find("fuel.")}
    assert len(fuels) == 26
    unconfirmed = {f.key for f in LIB.find("fuel.") if f.confidence is Confidence.U}
    assert unconfirmed == {
        "fuel.cleaned_coal.ncv",
        "fuel.lng.cc",
        "fuel.coke_oven_gas.ncv",
        "fuel.coke_oven_gas.cc",
    }
    assert "26.344" in LIB.get("fuel.cleaned_coal.ncv").note
    assert LIB.get("fuel.natural_gas.ncv").unit == "GJ/10^4 Nm3"
    assert LIB.get("fuel.natural_gas.ncv").confidence is Confidence.B_PLUS


@pytest.mark.parametrize(
    ("key", "value", "unit"),
    [
        ("tce.electricity.equivalent", 0.1229, "kgce/kWh"),
        ("tce.electricity.equal_value.2022", 0.3007, "kgce/kWh"),
        ("tce.raw_coal", 0.7143, "kgce/kg"),
        ("tce.coke", 0.9714, "kgce/kg"),
        ("tce.diesel", 1.4571, "kgce/kg"),
        ("tce.gasoline", 1.4714, "kgce/kg"),
        ("tce.natural_gas.gas_field", 1.2143, "kgce/Nm3"),
        ("tce.natural_gas.oil_field", 1.3300, "kgce/Nm3"),
        ("tce.heat", 0.03412, "kgce/MJ"),
        ("heat.purchased.default", 0.11, "tCO2/GJ"),
        ("methane.ch4_density.standard", 7.17, "t/10^4 Nm3"),
        ("methane.flare_oxidation", 0.98, "fraction"),
        ("methane.utilisation_oxidation", 0.99, "fraction"),
        ("gwp.ch4.sar", 21, "tCO2e/tCH4"),
        ("gwp.ch4.ar4", 25, "tCO2e/tCH4"),
        ("gwp.ch4.ar5", 28, "tCO2e/tCH4"),
        ("gwp.ch4.ar6_fossil", 29.8, "tCO2e/tCH4"),
        ("gwp.n2o.ar5", 265, "tCO2e/tN2O"),
        ("green.gec.mwh_per_certificate", 1.0, "MWh/certificate"),
        ("electricity_footprint.national.average.2024", 0.5777, "tCO2e/MWh"),
        ("electricity_footprint.national.average.2023", 0.6205, "tCO2e/MWh"),
    ],
)
def test_other_reference_values(key: str, value: float, unit: str) -> None:
    f = LIB.get(key)
    assert (f.value, f.unit) == (value, unit)


def test_zero_carbon_park_thresholds_are_data() -> None:
    core = [t for t in default_targets().targets if t.indicator == "co2_per_energy"]
    assert sorted((t.energy_tce_min, t.energy_tce_max, t.threshold) for t in core) == [
        (200_000, 1_000_000, 0.20),
        (1_000_000, None, 0.30),
    ]
    assert default_targets().at_risk_band == 0.10


def test_missing_key_names_the_files_and_near_keys() -> None:
    with pytest.raises(FactorNotFound) as err:
        LIB.get("fuel.natural_gass.ncv")
    message = str(err.value)
    assert "no factor 'fuel.natural_gass.ncv'" in message
    assert "gbt32151_34_2024_fuels.yaml" in message
    assert "fuel.natural_gas.ncv" in message


# --- the selection rule ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("year", "data_year", "value"),
    [(2021, 2021, 0.7222), (2022, 2022, 0.7096), (2023, 2023, 0.6634), (2026, 2023, 0.6634)],
)
def test_newest_data_year_not_after_the_accounting_year(
    year: int, data_year: int, value: float
) -> None:
    selected = select_electricity_factor("shanxi", None, "average", year)
    assert (selected.factor.data_year, selected.value) == (data_year, value)
    assert selected.selection is Selection.RULE
    assert selected.reason.startswith(f"newest data year ≤ {year}: {data_year}")
    assert selected.version == "mee-nbs-electricity-2025-12-31"


def test_as_of_reproduces_a_ledger_closed_before_a_publication() -> None:
    # The 2023 factors were published 2025-12-31: a ledger closed in mid-2025 used 2022.
    selected = select_electricity_factor("山西", None, "average", 2026, as_of=date(2025, 6, 30))
    assert (selected.factor.data_year, selected.value) == (2022, 0.7096)
    assert "published on or before 2025-06-30" in selected.reason


@pytest.mark.parametrize("name", ["shanxi", "Shanxi", "山西", "山西省", " SHANXI "])
def test_province_by_pinyin_or_chinese_name(name: str) -> None:
    assert select_electricity_factor(name, None, "average", 2025).value == 0.6634


def test_shaanxi_is_not_shanxi_and_inner_mongolia_aliases() -> None:
    assert select_electricity_factor("陕西", None, "average", 2025).value == 0.6335
    for name in ("inner_mongolia", "内蒙古", "内蒙古自治区", "neimenggu", "Inner Mongolia"):
        assert select_electricity_factor(name, None, "average", 2025).value == 0.6479


def test_region_and_national_geographies() -> None:
    north = select_electricity_factor("shanxi", None, "average", 2025, geography="region")
    assert north.key == "electricity.mee_nbs.region.north.average.2023"
    assert north.value == 0.6361
    by_name = select_electricity_factor(None, "华北", "average", 2022, geography="region")
    assert by_name.value == 0.6776
    national = select_electricity_factor(None, None, "average", 2025, geography="national")
    assert national.value == 0.5306
    residual = select_electricity_factor(None, None, "residual", 2024, geography="national")
    assert residual.value == 0.6096


def test_missing_province_error_names_what_was_asked_and_what_exists() -> None:
    with pytest.raises(FactorNotFound) as err:
        select_electricity_factor("西藏", None, "average", 2026)
    message = str(err.value)
    assert message.startswith(
        "no electricity factor for province='西藏', basis='average' in "
        "mee_nbs_electricity.yaml; provinces with data: 北京 (beijing), 天津 (tianjin)"
    )
    assert "山西 (shanxi)" in message
    assert "西藏" not in message.split("provinces with data:")[1]


def test_basis_only_published_nationally() -> None:
    with pytest.raises(FactorNotFound, match="basis 'residual' is published for: national"):
        select_electricity_factor("shanxi", None, "residual", 2026)


def test_accounting_year_before_the_first_data_year_takes_the_earliest_flagged() -> None:
    # Shanxi's provincial average is published for data years 2021-2023: 2020 (the baseline
    # year) and 1999 take 2021 (0.7222 tCO2/MWh), flagged with both years.
    for year in (2020, 1999):
        selected = select_electricity_factor("shanxi", None, "average", year)
        assert (selected.key, selected.value) == (
            "electricity.mee_nbs.province.shanxi.average.2021", 0.7222)  # fmt: skip
        assert selected.selection is Selection.RULE and selected.year_fallback
        assert selected.reason.startswith(
            f"no data year ≤ {year} published, earliest data year: 2021"
        )
        record = selected.record()
        assert (record["factor_data_year"], record["requested_year"]) == (2021, year)
        assert record["factor_year_fallback"] is True


def test_a_year_after_the_newest_data_year_takes_it_flagged() -> None:
    # 2024 and 2026 have no published factor (REFERENCE §1.1): the newest earlier, 2023.
    newest = select_electricity_factor("shanxi", None, "average", 2026)
    assert (newest.factor.data_year, newest.value, newest.year_fallback) == (2023, 0.6634, True)
    assert "factor_year_fallback: data year 2023 for 2026" in newest.reason
    exact = select_electricity_factor("shanxi", None, "average", 2023)
    assert (exact.factor.data_year, exact.year_fallback) == (2023, False)
    assert exact.record()["factor_year_fallback"] is False


def test_nothing_published_by_as_of_still_says_so() -> None:
    with pytest.raises(FactorNotFound, match=r"published on or before 2020-01-01"):
        select_electricity_factor("shanxi", None, "average", 2020, as_of=date(2020, 1, 1))


def test_unknown_province_lists_known_ones() -> None:
    with pytest.raises(UnknownAreaError, match="unknown province 'shanxii'; known provinces"):
        select_electricity_factor("shanxii", None, "average", 2025)


def test_site_pin_of_the_ets_reporting_factor_is_recorded() -> None:
    pin = PinnedFactor("electricity.ets_reporting.national.2022", "power-sector ETS report")
    selected = select_electricity_factor("shanxi", None, "average", 2025, pin=pin)
    assert selected.value == 0.5703
    assert selected.selection is Selection.PIN
    assert selected.reason == (
        "pinned by site: electricity.ets_reporting.national.2022 (power-sector ETS report)"
    )
    record = selected.record()
    assert record["factor_version"] == "mee-ets-reporting-electricity-2023-02-15"
    assert record["selection"] == "pin"


def test_pin_outside_its_validity_is_noted() -> None:
    pin = PinnedFactor("electricity.ets_reporting.national.reports_2021_2022", "old report")
    selected = select_electricity_factor("shanxi", None, "average", 2025, pin=pin)
    assert "valid only until 2023-02-15" in selected.reason


def test_site_override_with_its_own_source() -> None:
    override = SiteOverride(
        key="site.park-a.electricity.supplier",
        value=0.4123,
        unit="tCO2/MWh",
        source="supplier statement 2025-03 (Shanxi grid co.)",
        confidence=Confidence.B,
        version="site-park-a-v3",
        reason="supplier-specific factor",
    )
    selected = select_electricity_factor("shanxi", None, "average", 2025, pin=override)
    assert selected.value == 0.4123
    assert selected.selection is Selection.OVERRIDE
    assert "supplier statement 2025-03" in selected.reason
    assert selected.factor.file == "site override"


def test_pin_with_the_wrong_unit_is_refused() -> None:
    with pytest.raises(ValueError, match=r"in tCO2/GJ, expected tCO2/MWh"):
        select_electricity_factor(
            "shanxi", None, "average", 2025, pin=PinnedFactor("heat.purchased.default", "x")
        )


# --- the loader's checks ----------------------------------------------------------------------

GEO = Path(next(p for p in package_data_files() if p.name == "geography.yaml"))


def _write(tmp_path: Path, name: str, factors: str) -> Path:
    path = tmp_path / name
    path.write_text(
        "schema: carbonflow-factors/1\nversion: test-1\ntitle: t\n"
        "sources:\n  s1: {document: doc, read_in: here}\nfactors:\n" + factors,
        encoding="utf-8",
    )
    return path


ROW = (
    "  - {{key: {key}, value: 1.0, unit: t/t, confidence: B, data_year: null, "
    "valid_from: null, valid_to: null, source: {source}}}\n"
)


def test_loader_rejects_duplicate_keys(tmp_path: Path) -> None:
    a = _write(tmp_path, "a.yaml", ROW.format(key="x.y", source="s1"))
    b = _write(tmp_path, "b.yaml", ROW.format(key="x.y", source="s1"))
    with pytest.raises(FactorError, match=r"'x.y' is defined twice: in a.yaml and in b.yaml"):
        load_library([GEO, a, b])


def test_loader_rejects_unknown_source_and_missing_fields(tmp_path: Path) -> None:
    bad_source = _write(tmp_path, "a.yaml", ROW.format(key="x.y", source="nope"))
    with pytest.raises(FactorError, match="unknown source 'nope'"):
        load_library([GEO, bad_source])
    no_unit = _write(
        tmp_path,
        "b.yaml",
        "  - {key: x.z, value: 1, confidence: A, data_year: null, valid_from: null, "
        "valid_to: null, source: s1}\n",
    )
    with pytest.raises(FactorError, match=r"b.yaml factor #1 \(x.z\): missing field 'unit'"):
        load_library([GEO, no_unit])


def test_loader_rejects_bad_confidence(tmp_path: Path) -> None:
    bad = _write(
        tmp_path,
        "a.yaml",
        "  - {key: x.y, value: 1, unit: t/t, confidence: C, data_year: null, "
        "valid_from: null, valid_to: null, source: s1}\n",
    )
    with pytest.raises(FactorError, match="confidence must be one of"):
        load_library([GEO, bad])


def test_calc_supplement_is_part_of_the_library() -> None:
    # Moved from the calc service into the library with its name and version unchanged
    # (docs/calc.md).
    assert SUPPLEMENT_FILE.parent == package_data_files()[0].parent
    assert SUPPLEMENT_FILE in package_data_files()
    diesel = LIB.get("density.diesel")
    assert (diesel.value, diesel.file, diesel.version) == (
        0.84,
        "calc_supplement.yaml",
        "calc-supplement-2026-11-22",
    )
    # Callers still listing it beside the package files get each file once.
    twice = load_library([*package_data_files(), SUPPLEMENT_FILE])
    assert twice.keys() == LIB.keys()
    assert unique_paths([SUPPLEMENT_FILE, SUPPLEMENT_FILE]) == (SUPPLEMENT_FILE,)

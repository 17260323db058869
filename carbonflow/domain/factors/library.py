"""The factor library: dated, source-named reference data files loaded into frozen dataclasses.

Every emission factor, calorific value, tce coefficient, GWP and threshold the accounting method
uses lives in a YAML file next to this module (ACCOUNTING.md: "never as a code constant"). A file
of schema ``carbonflow-factors/1`` looks like::

    schema: carbonflow-factors/1
    version: mee-nbs-electricity-2025-12-31     # recorded with every figure computed from it
    title: ...
    sources:                                    # id -> the document and where it was read
      mee_nbs_2023: {document: "...", read_in: "..."}
    factors:
      - key: electricity.mee_nbs.province.shanxi.average.2023
        value: 0.6634
        unit: tCO2/MWh                          # "<numerator>/<denominator>" or "fraction"
        confidence: B+                          # A / B / B+ / U (REFERENCE.md)
        data_year: 2023                         # or null
        valid_from: 2025-12-31                  # date or null (unbounded)
        valid_to: null
        source: mee_nbs_2023                    # an id in `sources`
        tags: {geography: province, area: shanxi, basis: average}
        note: optional text

The denominator of ``unit`` is a symbol of :mod:`carbonflow.domain.units` wherever a quantity is
converted into it (``kgce/kWh``, ``GJ/10^4 Nm3``, ``t/10^4 Nm3``).

Loading reads package data and is the only I/O in the domain; :func:`default_library` caches it.
A missing key raises :class:`FactorNotFound` naming the key, the files searched and the nearest
keys that do exist.
"""

from __future__ import annotations

import difflib
import functools
import importlib.resources
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from carbonflow.domain.factors.geography import Geography, parse_geography

FACTORS_SCHEMA = "carbonflow-factors/1"
GEOGRAPHY_SCHEMA = "carbonflow-geography/1"
TARGETS_SCHEMA = "carbonflow-targets/1"
PACKAGE = "carbonflow.domain.factors"
# Values the calc service needs beyond the method files (tce definition, pure-CH4 NCV, liquid
# densities); it lived in services/calc/reference/ until the file moved here unchanged (same file
# name and version, so the rows stored under that name keep their meaning).
SUPPLEMENT_FILE = Path(__file__).with_name("calc_supplement.yaml")


class Confidence(StrEnum):
    """How sure we are of a value (REFERENCE.md)."""

    A = "A"  # quoted from an official reprint or a report quoting the issuing body
    B_PLUS = "B+"  # two or more independent secondary sources agree
    B = "B"  # one secondary source citing the official document
    U = "U"  # unconfirmed: not confirmed by a source, or sources conflict


class FactorError(ValueError):
    """A factor data file is malformed (raised at load time, naming the file and the entry)."""


class FactorNotFound(LookupError):  # noqa: N818 — the name the method documents use
    """No factor matches what was asked for; the message names what exists instead."""

    def __str__(self) -> str:  # LookupError would repr() a single argument
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True, slots=True)
class Source:
    source_id: str
    document: str
    read_in: str

    @property
    def citation(self) -> str:
        return f"{self.document} — read in: {self.read_in}"


@dataclass(frozen=True, slots=True)
class FactorValue:
    """One value of the library with its unit, source, confidence and validity."""

    key: str
    value: float
    unit: str
    source: str  # the document and where it was read (full citation)
    confidence: Confidence
    version: str  # version string of the file the value came from
    file: str  # file name, or "site override"
    valid_from: date | None = None
    valid_to: date | None = None
    data_year: int | None = None
    note: str = ""
    source_id: str = ""
    tags: tuple[tuple[str, str], ...] = ()

    def tag(self, name: str) -> str | None:
        for tag_name, tag_value in self.tags:
            if tag_name == name:
                return tag_value
        return None

    @property
    def numerator_unit(self) -> str:
        """``tCO2`` of ``tCO2/MWh``; the whole unit when it has no ``/``."""
        return self.unit.split("/", 1)[0]

    @property
    def denominator_unit(self) -> str | None:
        """``MWh`` of ``tCO2/MWh``; ``None`` for a dimensionless value (``fraction``)."""
        parts = self.unit.split("/", 1)
        return parts[1] if len(parts) == 2 else None

    def valid_on(self, day: date) -> bool:
        """Whether ``day`` lies within [valid_from, valid_to] (open ends are unbounded)."""
        if self.valid_from is not None and day < self.valid_from:
            return False
        return not (self.valid_to is not None and day > self.valid_to)


@dataclass(frozen=True, slots=True)
class FactorFile:
    name: str
    version: str
    title: str
    sources: tuple[Source, ...]
    factors: tuple[FactorValue, ...]


@dataclass(frozen=True, slots=True)
class CarrierCoefficients:
    """Which tce coefficient an energy carrier uses by default, and its selectable variants."""

    carrier: str
    default_key: str
    variants: tuple[tuple[str, str], ...] = ()

    def key_for(self, variant: str | None) -> str:
        if variant is None:
            return self.default_key
        for name, key in self.variants:
            if name == variant:
                return key
        known = ", ".join(name for name, _ in self.variants) or "none"
        raise FactorNotFound(
            f"no tce coefficient variant {variant!r} for carrier {self.carrier!r}; "
            f"variants: {known}"
        )


class Selection(StrEnum):
    """How a factor came to be used for a figure."""

    RULE = "rule"  # chosen by a documented selection rule (e.g. newest data year ≤ year)
    DEFAULT = "default"  # the library's default for this quantity
    PIN = "pin"  # a site pinned this library key
    OVERRIDE = "override"  # a site-measured or supplier value with its own source


@dataclass(frozen=True, slots=True)
class SelectedFactor:
    """A factor as used for a figure, with how and why it was picked. Record it with the figure."""

    factor: FactorValue
    selection: Selection
    reason: str
    # the accounting year the factor was asked for (year-bound factors: grid electricity)
    requested_year: int | None = None

    @property
    def year_fallback(self) -> bool:
        """``factor_year_fallback``: the factor's data year is not the accounting year asked
        for (no factor published for that year: the newest earlier one, or the earliest)."""
        data_year = self.factor.data_year
        return (
            self.requested_year is not None
            and data_year is not None
            and data_year != self.requested_year
        )

    @property
    def key(self) -> str:
        return self.factor.key

    @property
    def value(self) -> float:
        return self.factor.value

    @property
    def unit(self) -> str:
        return self.factor.unit

    @property
    def version(self) -> str:
        return self.factor.version

    @property
    def source(self) -> str:
        return self.factor.source

    @property
    def confidence(self) -> Confidence:
        return self.factor.confidence

    def record(self) -> dict[str, str | float | int | bool | None]:
        """A flat mapping for ledgers and storage rows (with the accounting year asked for and
        whether the data year differs from it, ``factor_year_fallback``)."""
        return {
            "factor_key": self.factor.key,
            "factor_value": self.factor.value,
            "factor_unit": self.factor.unit,
            "factor_version": self.factor.version,
            "factor_file": self.factor.file,
            "factor_source": self.factor.source,
            "factor_confidence": str(self.factor.confidence),
            "factor_data_year": self.factor.data_year,
            "requested_year": self.requested_year,
            "factor_year_fallback": self.year_fallback,
            "selection": str(self.selection),
            "selection_reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class PinnedFactor:
    """A site pins one library key (e.g. the ETS reporting factor for power-sector reports)."""

    key: str
    reason: str


@dataclass(frozen=True, slots=True)
class SiteOverride:
    """A site-measured or supplier-given value with its own source, used instead of a default."""

    key: str  # the site's own key, e.g. "site.mine-a.fuel.raw_coal.ncv"
    value: float
    unit: str
    source: str  # lab report, supplier statement, contract … (document and date)
    confidence: Confidence
    version: str  # e.g. the site document's version or hash
    reason: str = ""
    valid_from: date | None = None
    valid_to: date | None = None
    data_year: int | None = None

    def to_factor(self) -> FactorValue:
        return FactorValue(
            key=self.key,
            value=self.value,
            unit=self.unit,
            source=self.source,
            confidence=self.confidence,
            version=self.version,
            file="site override",
            valid_from=self.valid_from,
            valid_to=self.valid_to,
            data_year=self.data_year,
            note=self.reason,
        )


FactorPin = PinnedFactor | SiteOverride


def use_factor(factor: FactorValue | SelectedFactor, reason: str | None = None) -> SelectedFactor:
    """``factor`` as a :class:`SelectedFactor`; a bare library value counts as the default."""
    if isinstance(factor, SelectedFactor):
        return factor
    return SelectedFactor(
        factor=factor,
        selection=Selection.DEFAULT,
        reason=reason or f"default {factor.key} from {factor.file} ({factor.version})",
    )


def require_unit(factor: FactorValue | SelectedFactor, unit: str, what: str) -> SelectedFactor:
    """``factor`` as a :class:`SelectedFactor`, after checking its unit is exactly ``unit``."""
    selected = use_factor(factor)
    if selected.unit != unit:
        raise ValueError(f"{what} needs a factor in {unit}; {selected.key} is in {selected.unit}")
    return selected


@dataclass(frozen=True)
class FactorLibrary:
    """All factor files, the province/region table and the tce carrier defaults."""

    files: tuple[FactorFile, ...]
    geography: Geography
    carriers: Mapping[str, CarrierCoefficients]
    _index: Mapping[str, FactorValue] = field(repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        index: dict[str, FactorValue] = {}
        for factor_file in self.files:
            for factor in factor_file.factors:
                other = index.get(factor.key)
                if other is not None:
                    raise FactorError(
                        f"factor key {factor.key!r} is defined twice: in {other.file} "
                        f"and in {factor_file.name}"
                    )
                index[factor.key] = factor
        object.__setattr__(self, "_index", index)

    def get(self, key: str) -> FactorValue:
        """The factor with exactly this key; :class:`FactorNotFound` lists near keys."""
        factor = self._index.get(key)
        if factor is not None:
            return factor
        close = difflib.get_close_matches(key, self._index, n=5, cutoff=0.6)
        prefix = key.rsplit(".", 1)[0] if "." in key else key
        while prefix and not any(k.startswith(prefix + ".") for k in self._index):
            prefix = prefix.rsplit(".", 1)[0] if "." in prefix else ""
        near = sorted(k for k in self._index if prefix and k.startswith(prefix + "."))
        files = ", ".join(f.name for f in self.files)
        hints = []
        if close:
            hints.append(f"did you mean: {', '.join(close)}")
        if near:
            shown = ", ".join(near[:20])
            more = f" … ({len(near)} in all)" if len(near) > 20 else ""
            hints.append(f"keys under {prefix!r}: {shown}{more}")
        hint = "; ".join(hints) or "no key shares its first segment"
        raise FactorNotFound(f"no factor {key!r} in {files}; {hint}")

    def __contains__(self, key: object) -> bool:
        return key in self._index

    def keys(self) -> tuple[str, ...]:
        return tuple(self._index)

    def find(self, prefix: str = "", **tags: str) -> tuple[FactorValue, ...]:
        """Factors whose key starts with ``prefix`` and whose tags include all of ``tags``."""
        return tuple(
            f
            for f in self._index.values()
            if f.key.startswith(prefix) and all(f.tag(k) == v for k, v in tags.items())
        )

    def file(self, name: str) -> FactorFile:
        for factor_file in self.files:
            if factor_file.name == name:
                return factor_file
        known = ", ".join(f.name for f in self.files)
        raise FactorNotFound(f"no factor file {name!r}; files: {known}")

    def carrier(self, carrier: str) -> CarrierCoefficients:
        found = self.carriers.get(carrier)
        if found is None:
            known = ", ".join(sorted(self.carriers))
            raise FactorNotFound(f"no tce coefficient for carrier {carrier!r}; carriers: {known}")
        return found

    def resolve_pin(self, pin: FactorPin, *, expected_unit: str | None = None) -> SelectedFactor:
        """The factor a site pin or override stands for, recorded as such."""
        if isinstance(pin, SiteOverride):
            factor = pin.to_factor()
            reason = (
                f"site override {pin.key} = {pin.value} {pin.unit} (source: {pin.source}"
                f"; version {pin.version})" + (f": {pin.reason}" if pin.reason else "")
            )
            selected = SelectedFactor(factor, Selection.OVERRIDE, reason)
        else:
            factor = self.get(pin.key)
            selected = SelectedFactor(
                factor, Selection.PIN, f"pinned by site: {pin.key} ({pin.reason})"
            )
        if expected_unit is not None and factor.unit != expected_unit:
            raise ValueError(
                f"pinned factor {factor.key} is in {factor.unit}, expected {expected_unit}"
            )
        return selected


# --- loading -----------------------------------------------------------------------------------


def _require(entry: Mapping[str, Any], name: str, where: str) -> Any:
    if name not in entry:
        raise FactorError(f"{where}: missing field {name!r}")
    return entry[name]


def _opt_date(value: Any, where: str) -> date | None:
    if value is None or isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError as exc:
            raise FactorError(f"{where}: not an ISO date: {value!r}") from exc
    raise FactorError(f"{where}: not a date: {value!r}")


def _parse_factor_file(name: str, doc: Mapping[str, Any]) -> FactorFile:
    version = str(_require(doc, "version", name))
    raw_sources = _require(doc, "sources", name)
    if not isinstance(raw_sources, Mapping):
        raise FactorError(f"{name}: 'sources' must be a mapping")
    sources = {
        str(sid): Source(
            str(sid),
            str(_require(s, "document", f"{name} source {sid}")),
            str(_require(s, "read_in", f"{name} source {sid}")),
        )
        for sid, s in raw_sources.items()
    }
    factors: list[FactorValue] = []
    for i, entry in enumerate(_require(doc, "factors", name) or ()):
        where = f"{name} factor #{i + 1} ({entry.get('key', '?')})"
        source_id = str(_require(entry, "source", where))
        source = sources.get(source_id)
        if source is None:
            raise FactorError(f"{where}: unknown source {source_id!r}; sources: {sorted(sources)}")
        try:
            confidence = Confidence(str(_require(entry, "confidence", where)))
        except ValueError as exc:
            raise FactorError(f"{where}: confidence must be one of A, B, B+, U") from exc
        value = _require(entry, "value", where)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise FactorError(f"{where}: value must be a number, got {value!r}")
        data_year = entry.get("data_year")
        if data_year is not None and not isinstance(data_year, int):
            raise FactorError(f"{where}: data_year must be an integer or null")
        tags = entry.get("tags") or {}
        factors.append(
            FactorValue(
                key=str(_require(entry, "key", where)),
                value=float(value),
                unit=str(_require(entry, "unit", where)),
                source=source.citation,
                source_id=source_id,
                confidence=confidence,
                version=version,
                file=name,
                valid_from=_opt_date(_require(entry, "valid_from", where), where),
                valid_to=_opt_date(_require(entry, "valid_to", where), where),
                data_year=data_year,
                note=str(entry.get("note") or ""),
                tags=tuple((str(k), str(v)) for k, v in tags.items()),
            )
        )
    return FactorFile(
        name=name,
        version=version,
        title=str(doc.get("title", "")),
        sources=tuple(sources.values()),
        factors=tuple(factors),
    )


def _parse_carriers(name: str, raw: Any) -> dict[str, CarrierCoefficients]:
    if not isinstance(raw, Mapping):
        raise FactorError(f"{name}: 'carriers' must be a mapping")
    carriers: dict[str, CarrierCoefficients] = {}
    for carrier, spec in raw.items():
        variants = spec.get("variants") or {}
        carriers[str(carrier)] = CarrierCoefficients(
            carrier=str(carrier),
            default_key=str(_require(spec, "default", f"{name} carrier {carrier}")),
            variants=tuple((str(k), str(v)) for k, v in variants.items()),
        )
    return carriers


def read_yaml(path: Path) -> tuple[str, Mapping[str, Any]]:
    """A data file's schema id and content."""
    with path.open(encoding="utf-8") as fh:
        doc = yaml.safe_load(fh)
    if not isinstance(doc, Mapping):
        raise FactorError(f"{path.name}: not a YAML mapping")
    return str(doc.get("schema", "")), doc


def package_data_files() -> tuple[Path, ...]:
    """The YAML data files shipped in this package, sorted by name."""
    root = importlib.resources.files(PACKAGE)
    return tuple(
        sorted(
            (Path(str(p)) for p in root.iterdir() if p.name.endswith(".yaml")),
            key=lambda p: p.name,
        )
    )


def unique_paths(paths: Iterable[Path]) -> tuple[Path, ...]:
    """``paths`` in order without repeats of the same file (callers listing ``SUPPLEMENT_FILE``
    beside ``package_data_files()``, from before it moved into this package)."""
    seen: set[Path] = set()
    out: list[Path] = []
    for path in paths:
        resolved = Path(path).resolve()
        if resolved not in seen:
            seen.add(resolved)
            out.append(Path(path))
    return tuple(out)


def load_library(paths: Iterable[Path] | None = None) -> FactorLibrary:
    """Load the factor files (default: every data file of this package) into a library.

    Files of other schemas (targets) are skipped; exactly one geography file is required.
    """
    files: list[FactorFile] = []
    geography: Geography | None = None
    carriers: dict[str, CarrierCoefficients] = {}
    for path in unique_paths(paths if paths is not None else package_data_files()):
        schema, doc = read_yaml(path)
        if schema == FACTORS_SCHEMA:
            files.append(_parse_factor_file(path.name, doc))
            if "carriers" in doc:
                carriers.update(_parse_carriers(path.name, doc["carriers"]))
        elif schema == GEOGRAPHY_SCHEMA:
            geography = parse_geography(path.name, doc)
        elif schema != TARGETS_SCHEMA:
            raise FactorError(f"{path.name}: unknown schema {schema!r}")
    if geography is None:
        raise FactorError("no geography file (schema carbonflow-geography/1) among the files")
    library = FactorLibrary(files=tuple(files), geography=geography, carriers=carriers)
    for carrier in carriers.values():
        for key in (carrier.default_key, *(k for _, k in carrier.variants)):
            if key not in library:
                raise FactorError(f"carrier {carrier.carrier!r} names unknown factor {key!r}")
    return library


@functools.cache
def default_library() -> FactorLibrary:
    """The library of the shipped data files, loaded once per process."""
    return load_library()

"""Indicator targets by site kind and year, from ``targets.yaml`` (schema carbonflow-targets/1).

The file's header documents its schema. Which target applies in a given year, and the
on-track / at-risk / off-track status, are computed by :mod:`carbonflow.domain.indicators.formulas`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from carbonflow.domain.factors.library import (
    TARGETS_SCHEMA,
    Confidence,
    FactorError,
    package_data_files,
    read_yaml,
)

TARGETS_FILE = "targets.yaml"


class Comparator(StrEnum):
    GE = ">="
    GT = ">"
    LE = "<="
    LT = "<"

    @property
    def higher_is_better(self) -> bool:
        return self in (Comparator.GE, Comparator.GT)

    def satisfied(self, value: float, threshold: float) -> bool:
        if self is Comparator.GE:
            return value >= threshold
        if self is Comparator.GT:
            return value > threshold
        if self is Comparator.LE:
            return value <= threshold
        return value < threshold


@dataclass(frozen=True, slots=True)
class Target:
    target_id: str
    indicator: str
    site_kind: str
    comparator: Comparator
    threshold: float
    unit: str
    source: str  # document and where it was read
    confidence: Confidence
    version: str  # version of targets.yaml
    year: int | None = None  # milestone year; None for a standing target
    from_year: int | None = None  # first year of a standing target
    industry: str | None = None
    baseline: str | None = None  # "2020" or "project_start" for *_reduction indicators
    energy_tce_min: float | None = None  # applicability band [tce/yr], inclusive
    energy_tce_max: float | None = None  # exclusive
    note: str = ""

    def applies_to_size(self, energy_tce: float | None) -> bool:
        """Whether a site consuming ``energy_tce`` [tce/yr] falls in this target's band."""
        if self.energy_tce_min is None and self.energy_tce_max is None:
            return True
        if energy_tce is None:
            return False
        if self.energy_tce_min is not None and energy_tce < self.energy_tce_min:
            return False
        return not (self.energy_tce_max is not None and energy_tce >= self.energy_tce_max)


@dataclass(frozen=True, slots=True)
class TargetSet:
    version: str
    at_risk_band: float  # fraction of the target (see indicators.status_against)
    targets: tuple[Target, ...]


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def parse_targets(name: str, doc: Mapping[str, Any]) -> TargetSet:
    version = str(doc.get("version", ""))
    sources = {
        str(sid): f"{s['document']} — read in: {s['read_in']}"
        for sid, s in (doc.get("sources") or {}).items()
    }
    band = float((doc.get("status_rule") or {}).get("at_risk_band", 0.10))
    targets: list[Target] = []
    seen: set[str] = set()
    for entry in doc.get("targets") or ():
        where = f"{name} target {entry.get('id', '?')}"
        try:
            target_id = str(entry["id"])
            source_id = str(entry["source"])
            if source_id not in sources:
                raise FactorError(f"{where}: unknown source {source_id!r}")
            size = entry.get("band") or {}
            year = entry.get("year")
            from_year = entry.get("from_year")
            if (year is None) == (from_year is None):
                raise FactorError(f"{where}: give exactly one of year and from_year")
            targets.append(
                Target(
                    target_id=target_id,
                    indicator=str(entry["indicator"]),
                    site_kind=str(entry["site_kind"]),
                    comparator=Comparator(str(entry["comparator"])),
                    threshold=float(entry["threshold"]),
                    unit=str(entry["unit"]),
                    source=sources[source_id],
                    confidence=Confidence(str(entry["confidence"])),
                    version=version,
                    year=None if year is None else int(year),
                    from_year=None if from_year is None else int(from_year),
                    industry=None if entry.get("industry") is None else str(entry["industry"]),
                    baseline=None if entry.get("baseline") is None else str(entry["baseline"]),
                    energy_tce_min=_opt_float(size.get("energy_tce_min")),
                    energy_tce_max=_opt_float(size.get("energy_tce_max")),
                    note=str(entry.get("note") or ""),
                )
            )
        except (KeyError, ValueError, TypeError) as exc:
            if isinstance(exc, FactorError):
                raise
            raise FactorError(f"{where}: {exc!r}") from exc
        if target_id in seen:
            raise FactorError(f"{where}: duplicate id")
        seen.add(target_id)
    return TargetSet(version=version, at_risk_band=band, targets=tuple(targets))


def load_targets(path: Path | None = None) -> TargetSet:
    """Load ``targets.yaml`` (default: the one shipped in this package)."""
    if path is None:
        path = next(p for p in package_data_files() if p.name == TARGETS_FILE)
    schema, doc = read_yaml(path)
    if schema != TARGETS_SCHEMA:
        raise FactorError(f"{path.name}: expected schema {TARGETS_SCHEMA}, got {schema!r}")
    return parse_targets(path.name, doc)


@functools.cache
def default_targets() -> TargetSet:
    """The shipped targets, loaded once per process."""
    return load_targets()

"""Provinces and grid regions: ids, Chinese names and aliases (data in ``geography.yaml``).

Callers may name a province by its pinyin id (``shanxi``, ``inner_mongolia``), its Chinese
name (``山西``, ``山西省``, ``内蒙古自治区``) or a listed alias; a region by its id (``north``) or
Chinese name (``华北``). Matching ignores case and surrounding blanks, and treats ``-``, blanks
and ``_`` alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class UnknownAreaError(ValueError):
    """A province or region name that is not in the geography table."""


@dataclass(frozen=True, slots=True)
class Region:
    region_id: str
    name_zh: str
    aliases: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.name_zh} ({self.region_id})"


@dataclass(frozen=True, slots=True)
class Province:
    province_id: str
    name_zh: str
    name_zh_full: str
    region_id: str  # default grid region; a site may set another (e.g. eastern Inner Mongolia)
    aliases: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.name_zh} ({self.province_id})"


def _norm(name: str) -> str:
    return name.strip().lower().replace("-", "_").replace(" ", "_")


@dataclass(frozen=True)
class Geography:
    version: str
    provinces: tuple[Province, ...]
    regions: tuple[Region, ...]
    membership_confidence: str = "U"

    def province(self, name: str) -> Province:
        """The province called ``name`` (id, Chinese name or alias)."""
        wanted = _norm(name)
        for p in self.provinces:
            if wanted in {_norm(n) for n in (p.province_id, p.name_zh, p.name_zh_full, *p.aliases)}:
                return p
        known = ", ".join(p.label for p in self.provinces)
        raise UnknownAreaError(f"unknown province {name!r}; known provinces: {known}")

    def region(self, name: str) -> Region:
        """The grid region called ``name`` (id, Chinese name or alias)."""
        wanted = _norm(name)
        for r in self.regions:
            if wanted in {_norm(n) for n in (r.region_id, r.name_zh, *r.aliases)}:
                return r
        known = ", ".join(r.label for r in self.regions)
        raise UnknownAreaError(f"unknown grid region {name!r}; known regions: {known}")

    def region_of(self, province: str) -> Region:
        """The default grid region of a province."""
        return self.region(self.province(province).region_id)


def parse_geography(name: str, doc: Mapping[str, Any]) -> Geography:
    """A :class:`Geography` from the parsed ``geography.yaml`` (carbonflow-geography/1)."""
    regions = tuple(
        Region(str(rid), str(spec["zh"]), tuple(str(a) for a in spec.get("aliases") or ()))
        for rid, spec in (doc.get("regions") or {}).items()
    )
    region_ids = {r.region_id for r in regions}
    provinces: list[Province] = []
    for pid, spec in (doc.get("provinces") or {}).items():
        region_id = str(spec["region"])
        if region_id not in region_ids:
            raise ValueError(f"{name}: province {pid} has unknown region {region_id!r}")
        provinces.append(
            Province(
                province_id=str(pid),
                name_zh=str(spec["zh"]),
                name_zh_full=str(spec["zh_full"]),
                region_id=region_id,
                aliases=tuple(str(a) for a in spec.get("aliases") or ()),
            )
        )
    return Geography(
        version=str(doc.get("version", "")),
        provinces=tuple(provinces),
        regions=regions,
        membership_confidence=str(doc.get("membership_confidence", "U")),
    )

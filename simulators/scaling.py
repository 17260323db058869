"""Scaling a site's fleet for load tests: clones of every device, as a valid site document — pure.

Replica 0 is the site as written; replica ``r`` ≥ 1 adds a copy of every device with the id
``<id>-r<r>`` (:func:`simulators.plant.clone_id`), its serial suffixed the same way, on the same
nodes and edges (an edge's meters list every replica's meter, so the registry sums them). The
simulator simulates each replica as an independent copy of the site's installations; loading
the same scaled document into the registry (``carbonflow simulate --register``) makes both agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from carbonflow.domain.site.model import SiteDocument
from simulators.plant import clone_id


@dataclass(frozen=True)
class Fleet:
    """A site scaled to ``replicas`` copies, of which the first ``len(devices)`` devices
    (replica by replica, in site-file order) are published."""

    doc: SiteDocument  # the document to register: exactly the published devices
    base: SiteDocument  # the site as written
    replicas: int
    devices: tuple[str, ...]  # published device ids


def scale_site(doc: SiteDocument, factor: int) -> SiteDocument:
    """``doc`` with every device cloned ``factor`` times in all (``factor`` = 1: unchanged)."""
    if factor < 1:
        raise ValueError(f"scale factor must be at least 1, got {factor}")
    return fleet(doc, devices=factor * len(doc.devices)).doc


def fleet(doc: SiteDocument, devices: int | None = None) -> Fleet:
    """The site scaled to exactly ``devices`` devices (``None``: the site as written).

    Replicas are added until there are enough devices; the last one may be partial (its
    devices are still simulated, only the first ones are published and registered).
    """
    base_ids = [d.id for d in doc.devices]
    if not base_ids:
        raise ValueError(f"site {doc.site.id} has no devices to simulate")
    wanted = len(base_ids) if devices is None else devices
    if wanted < 1:
        raise ValueError(f"a fleet needs at least one device, got {wanted}")
    replicas = math.ceil(wanted / len(base_ids))
    published = [clone_id(d, r) for r in range(replicas) for d in base_ids][:wanted]
    if replicas == 1 and wanted == len(base_ids):
        return Fleet(doc, doc, 1, tuple(published))
    keep = set(published)
    data: dict[str, Any] = doc.model_dump(mode="python")
    cloned: list[dict[str, Any]] = []
    for r in range(replicas):
        for d in data["devices"]:
            new_id = clone_id(d["id"], r)
            if new_id not in keep:
                continue
            copy = dict(d)
            copy["id"] = new_id
            if r:
                copy["name"] = f"{d['name']} (replica {r})"
                if d.get("serial"):
                    copy["serial"] = f"{d['serial']}-r{r}"
            cloned.append(copy)
    data["devices"] = cloned
    for edge in data["edges"]:
        clones = (clone_id(m, r) for r in range(replicas) for m in edge["meters"])
        edge["meters"] = [c for c in clones if c in keep]
    return Fleet(SiteDocument.model_validate(data), doc, replicas, tuple(published))

"""Reference data as the calc cycle uses it: the stored factor versions, the library and targets
they make up (reloaded only when a version changes), each site's factors per accounting year with
the fingerprint its results are computed with, and the green-power register.

Reads only; the engine commits.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, NamedTuple

from carbonflow.domain.factors import FactorLibrary, FactorNotFound, TargetSet
from carbonflow.domain.inventory.green import RegisterEntry
from carbonflow.domain.inventory.site_factors import SiteFactors, fingerprint, plan_factors
from carbonflow.domain.site.plan import SitePlan
from carbonflow.storage import reference as ref
from carbonflow.storage.db import Conn


@dataclass(frozen=True)
class Reference:
    """The reference data of one set of stored versions."""

    versions: dict[str, str]
    library: FactorLibrary
    targets: TargetSet


class ReferenceCache:
    """The current :class:`Reference`, and when the factor fingerprints are next due for a
    check (at once after anything in the reference data changed)."""

    def __init__(self, files: Sequence[Path], check_every_s: float) -> None:
        self.files = tuple(files)
        self._check_every_s = check_every_s
        self._current: Reference | None = None
        self._checked_at = -math.inf

    def stored_versions(self, conn: Conn) -> dict[str, str]:
        return ref.current_versions(conn)

    def store_files(self, conn: Conn) -> list[ref.FileSync]:
        """Store the data files not yet stored at their version (idempotent; not committed)."""
        return ref.sync_reference_files(conn, self.files)

    def load(self, conn: Conn, versions: dict[str, str]) -> Reference:
        """The reference data of ``versions``, read again only when they changed."""
        if self._current is None or self._current.versions != versions:
            self._current = Reference(
                versions, ref.library_from_db(conn), ref.targets_from_db(conn)
            )
            self.recheck()
        return self._current

    def recheck(self) -> None:
        """Check the factor fingerprints in the next cycle."""
        self._checked_at = -math.inf

    def check_due(self, monotonic_now: float) -> bool:
        return monotonic_now - self._checked_at >= self._check_every_s

    def checked(self, monotonic_now: float) -> None:
        self._checked_at = monotonic_now


class YearFactors(NamedTuple):
    """The factors of one site and accounting year (``None`` when one is missing: ``error``
    says which), and the fingerprint of everything its results depend on."""

    factors: SiteFactors | None
    fingerprint: str
    error: str | None


def year_factors(
    reference: Reference,
    plan: SitePlan,
    pins: Mapping[str, Any],
    register: Sequence[RegisterEntry],
    year: int,
) -> YearFactors:
    try:
        factors = plan_factors(reference.library, plan, year, pins)
        return YearFactors(factors, fingerprint(_year_records(plan, factors, register, year)), None)
    except (FactorNotFound, ValueError) as exc:
        return YearFactors(None, fingerprint({"error": str(exc)}), str(exc))


def _year_records(
    plan: SitePlan, factors: SiteFactors, register: Sequence[RegisterEntry], year: int
) -> list[Any]:
    """What the fingerprint of a year covers: fixed factors, the fuels the site burns, tce of
    electricity, and the green-power claims that reach into the year."""
    records: list[Any] = [f.record() for f in factors.fixed()]
    for carrier in sorted({d.carrier for d in plan.devices if d.role == "fuel_supply"}):
        records.extend(_fuel_records(factors, carrier))
    records.append(factors.tce("electricity").record())
    start, end = date(year, 1, 1), date(year, 12, 31)
    records.extend(
        [e.instrument_id, e.kind, e.claimed_mwh, e.claim_start, e.claim_end, e.evidence,
         e.volume_mwh, e.certificates, e.valid_from, e.valid_to,
         *([] if e.org_id is None else [e.org_id])]
        for e in register
        if e.claim_start <= end and e.claim_end >= start
    )  # fmt: skip
    return records


def _fuel_records(factors: SiteFactors, carrier: str) -> list[Any]:
    """A fuel's factors as far as they exist, then what is missing (a fuel without factors
    still fingerprints: adding them later changes the year)."""
    records: list[Any] = []
    try:
        fuel = factors.fuel(carrier)
        records.extend(f.record() for f in (fuel.ncv, fuel.cc, fuel.of))
        records.append(factors.tce(carrier).record())
    except (FactorNotFound, ValueError) as exc:
        records.append({"missing": str(exc)})
    return records


class SiteYears:
    """One site's :class:`YearFactors` by accounting year, each computed once, from its pins and
    green register as read in the current transaction. ``on_error(year, error)`` is called the
    first time a year lacks a factor."""

    def __init__(
        self,
        reference: Reference,
        plan: SitePlan,
        pins: Mapping[str, Any],
        register: Sequence[RegisterEntry],
        on_error: Callable[[int, str], None] | None = None,
    ) -> None:
        self.reference = reference
        self.plan = plan
        self.pins = pins
        self.register = register
        self._on_error = on_error
        self._years: dict[int, YearFactors] = {}

    @classmethod
    def read(
        cls,
        conn: Conn,
        reference: Reference,
        plan: SitePlan,
        on_error: Callable[[int, str], None] | None = None,
    ) -> SiteYears:
        pins = ref.site_pins(conn, plan.site_id)
        return cls(reference, plan, pins, ref.green_instruments(conn, plan.site_id), on_error)

    def year(self, year: int) -> YearFactors:
        if year not in self._years:
            self._years[year] = year_factors(
                self.reference, self.plan, self.pins, self.register, year
            )
            error = self._years[year].error
            if error and self._on_error is not None:
                self._on_error(year, error)
        return self._years[year]

    def factors(self, year: int) -> SiteFactors | None:
        return self.year(year).factors

    def fingerprints(self) -> dict[str, str]:
        """The fingerprint of every year computed so far, by year."""
        return {str(y): f.fingerprint for y, f in self._years.items()}

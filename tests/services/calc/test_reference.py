"""Factors of a site and accounting year, and the fingerprint its results are computed with."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from carbonflow.domain.factors.library import default_library
from carbonflow.domain.factors.targets import default_targets
from carbonflow.domain.inventory.green import RegisterEntry
from carbonflow.domain.site.plan import SitePlan, plan_from_document
from carbonflow.sites.loader import EXAMPLES, load_site_file
from services.calc.reference import Reference, SiteYears, year_factors

REFERENCE = Reference({}, default_library(), default_targets())


def _plan() -> SitePlan:
    return plan_from_document(load_site_file(EXAMPLES / "inner-mongolia-park.yaml"))


def _entry(claim_start: date, claim_end: date) -> RegisterEntry:
    return RegisterEntry(
        "gec-1", "gec", "certificate", 100.0, claim_start, claim_end, 50.0, claim_start, claim_end
    )


def test_the_fingerprint_follows_the_green_register_of_the_year_only() -> None:
    plan = _plan()
    bare = year_factors(REFERENCE, plan, {}, [], 2025)
    assert bare.factors is not None and bare.error is None
    assert year_factors(REFERENCE, plan, {}, [], 2025) == bare
    this_year = year_factors(
        REFERENCE, plan, {}, [_entry(date(2025, 3, 1), date(2025, 3, 31))], 2025
    )
    next_year = year_factors(
        REFERENCE, plan, {}, [_entry(date(2026, 3, 1), date(2026, 3, 31))], 2025
    )
    assert this_year.fingerprint != bare.fingerprint
    assert next_year.fingerprint == bare.fingerprint


def test_a_year_without_factors_reports_once() -> None:
    plan = replace(_plan(), province="nowhere")
    errors: list[tuple[int, str]] = []
    years = SiteYears(REFERENCE, plan, {}, [], on_error=lambda y, e: errors.append((y, e)))
    assert years.factors(2025) is None
    assert years.year(2025).error
    assert len(errors) == 1 and errors[0][0] == 2025
    assert years.fingerprints() == {"2025": years.year(2025).fingerprint}

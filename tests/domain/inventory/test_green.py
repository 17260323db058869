"""Green-power instruments month by month (carbonflow/domain/inventory/green.py), hand-worked
numbers."""

from __future__ import annotations

from datetime import date
from functools import cache

import pytest

from carbonflow.domain.factors import SelectedFactor, use_factor
from carbonflow.domain.factors.library import load_library, package_data_files
from carbonflow.domain.inventory.balance import covered_in_interval
from carbonflow.domain.inventory.green import (
    NO_HOLDER,
    MonthPool,
    RegisterEntry,
    default_holder,
    month_bounds,
    month_claims,
    month_pool,
    monthly_volume,
)
from carbonflow.domain.site.plan import plan_from_document
from carbonflow.sites.loader import parse_site_text
from tests.support.small_park import SMALL_PARK


@cache
def factors() -> tuple[SelectedFactor, SelectedFactor, SelectedFactor]:
    lib = load_library(package_data_files())
    return (
        use_factor(lib.get("electricity.mee_nbs.national.residual.2023")),
        use_factor(lib.get("green.evidenced_purchase.zero")),
        use_factor(lib.get("green.gec.mwh_per_certificate")),
    )


def entry(**kw: object) -> RegisterEntry:
    values: dict[str, object] = {
        "instrument_id": "GEC-1",
        "kind": "certificate",
        "evidence": "serials 1-365",
        "volume_mwh": 365.0,
        "valid_from": date(2025, 1, 1),
        "valid_to": date(2025, 12, 31),
        "claimed_mwh": 365.0,
        "claim_start": date(2025, 1, 1),
        "claim_end": date(2025, 12, 31),
        "certificates": 365,
    }
    values.update(kw)
    return RegisterEntry(**values)  # type: ignore[arg-type]


def pool(entries: list[RegisterEntry], month: date, holder: str | None = "o") -> MonthPool:
    # entries stored without holder are the site's default holder's ("o", its one organisation)
    residual, zero, gec = factors()
    return month_pool(entries, month, residual=residual, zero=zero, gec=gec, holder=holder)


def test_a_yearly_claim_is_spread_over_the_months_by_days() -> None:
    # 365 MWh claimed for 2025: February gets 28 days × 1 MWh/day = 28 MWh, March 31.
    e = entry()
    assert monthly_volume(e, *month_bounds(date(2025, 2, 10))) == pytest.approx(28.0)
    assert monthly_volume(e, *month_bounds(date(2025, 3, 1))) == pytest.approx(31.0)
    assert monthly_volume(e, *month_bounds(date(2026, 1, 1))) == 0.0
    assert month_bounds(date(2024, 2, 5)) == (date(2024, 2, 1), date(2024, 2, 29))


def test_accepted_certificates_form_the_month_pool() -> None:
    p = pool([entry()], date(2025, 3, 1))
    assert p.holder_pools() == {"o": pytest.approx(31.0)}
    assert p.any_mwh == pytest.approx(31.0)
    assert [c.accepted for c in p.claims] == [True]
    assert p.offered[0][0].org_id == "o"  # the holder resolved


def test_certificates_whose_count_does_not_match_the_volume_are_refused() -> None:
    # 300 certificates × 1 MWh ≠ 365 MWh: refused, nothing in the pool.
    p = pool([entry(certificates=300)], date(2025, 3, 1))
    assert p.any_mwh == 0.0
    outcome = month_claims(p, {})
    assert not outcome[0].accepted and "does not equal" in outcome[0].reason


def test_instruments_without_evidence_or_outside_their_validity_are_refused() -> None:
    no_evidence = entry(instrument_id="C-1", kind="green_power_contract", evidence=" ",
                        certificates=None)  # fmt: skip
    expired = entry(instrument_id="C-2", kind="green_power_contract", certificates=None,
                    valid_from=date(2024, 1, 1), valid_to=date(2024, 12, 31))  # fmt: skip
    p = pool([no_evidence, expired], date(2025, 3, 1))
    assert p.any_mwh == 0.0
    reasons = [c.reason for c in month_claims(p, {})]
    assert "no evidence" in reasons[0] and "outside the period" in reasons[1]


def test_the_pool_covers_the_cumulative_net_import_in_time_order() -> None:
    # Pool 1.0 MWh; intervals import 0.4, 0.4, 0.4, then export 0.5 (net −0.5), then import
    # 0.4: cumulative N = 0.4, 0.8, 1.2, 0.7, 1.1 → covered clamp(N, 0, 1) = 0.4, 0.8, 1.0, 0.7,
    # 1.0 → per interval 0.4, 0.4, 0.2, −0.3 (given back), 0.3. Month: N = 1.1 → covered 1.0.
    n = 0.0
    covered = []
    for net in (0.4, 0.4, 0.4, -0.5, 0.4):
        covered.append(covered_in_interval(n, net, 1.0))
        n += net
    assert covered == pytest.approx([0.4, 0.4, 0.2, -0.3, 0.3])
    assert sum(covered) == pytest.approx(1.0)
    assert covered_in_interval(0.0, 5.0, 0.0) == 0.0  # no pool


def test_month_claims_record_applied_and_unused_volume_per_instrument() -> None:
    # Two contracts of 20 and 15 MWh in March; the month's net import covered 30 MWh:
    # the first backs 20, the second 10 with 5 unused.
    a = entry(
        instrument_id="A",
        kind="green_power_contract",
        certificates=None,
        claimed_mwh=20.0,
        volume_mwh=20.0,
        claim_start=date(2025, 3, 1),
        claim_end=date(2025, 3, 31),
    )
    b = entry(
        instrument_id="B",
        kind="green_power_contract",
        certificates=None,
        claimed_mwh=15.0,
        volume_mwh=15.0,
        claim_start=date(2025, 3, 1),
        claim_end=date(2025, 3, 31),
    )
    p = pool([a, b], date(2025, 3, 1))
    assert p.holder_pools() == {"o": pytest.approx(35.0)}
    claims = month_claims(p, {"o": 30.0})
    assert [(c.instrument_id, c.applied_mwh, c.unused_mwh) for c in claims] == [
        ("A", 20.0, 0.0), ("B", 10.0, 5.0)
    ]  # fmt: skip


def test_direct_supply_entries_are_evidence_for_metered_power_not_pool() -> None:
    p = pool([entry(kind="direct_supply", certificates=None)], date(2025, 3, 1))
    assert p.any_mwh == 0.0 and p.offered == ()


def test_an_entry_nobody_holds_is_refused_never_site_wide() -> None:
    # A site of several organisations without a common account: no default holder.
    p = pool([entry()], date(2025, 3, 1), holder=None)
    assert p.any_mwh == 0.0 and p.holder_pools() == {}
    (claim,) = month_claims(p, {})
    assert not claim.accepted and claim.applied_mwh == 0.0 and claim.reason == NO_HOLDER
    assert claim.offered_mwh == pytest.approx(31.0)
    # an entry with its own holder keeps it, whatever the default
    held = pool([entry(org_id="b-co")], date(2025, 3, 1), holder="park")
    assert held.holder_pools() == {"b-co": pytest.approx(31.0)}


SINGLE = """
site: {id: one, name: One, kind: mine, province: shanxi, grid_region: north,
       timezone: Asia/Shanghai}
organisations: [{id: o, name: O}]
nodes:
  - {id: sub, name: Sub, kind: distribution, org: o}
"""


def test_the_default_holder_is_the_only_organisation_else_the_common_account() -> None:
    assert default_holder(plan_from_document(parse_site_text(SINGLE, "one.yaml"))) == "o"
    park = parse_site_text(SMALL_PARK + "attribution: [{node: sub, common: park}]\n", "p.yaml")
    assert default_holder(plan_from_document(park)) == "park"
    # several organisations and no attribution: nobody
    assert default_holder(plan_from_document(parse_site_text(SMALL_PARK, "p.yaml"))) is None

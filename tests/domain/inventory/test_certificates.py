"""The green-certificate register (carbonflow/domain/inventory/certificates.py) and market-based
Scope 2 by holder (balance.py, green.py): hand-worked numbers. Issue 15."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import date
from functools import cache
from typing import Any

import pytest

from carbonflow.domain.factors import SelectedFactor, use_factor
from carbonflow.domain.factors.library import load_library, package_data_files
from carbonflow.domain.inventory.balance import Quantity, SlotResult, slot_inventory
from carbonflow.domain.inventory.certificates import (
    Batch,
    BatchStatus,
    Claim,
    ClaimRequest,
    Refusal,
    add_months,
    batch_status,
    check_cancel,
    check_claim,
    check_withdraw,
    expires_on,
    is_expired,
)
from carbonflow.domain.inventory.green import (
    RegisterEntry,
    default_holder,
    month_claims,
    month_pool,
)
from carbonflow.domain.inventory.lines import Basis, Category, InventoryLine
from carbonflow.domain.inventory.site_factors import SiteFactors, site_factors
from carbonflow.domain.site.plan import SitePlan, flow_metric, plan_from_document, reverse_metric
from carbonflow.sites.loader import parse_site_text
from tests.support.small_park import SMALL_PARK

MAY_2025 = date(2025, 5, 1)
GEC = Batch("certificate", 100.0, MAY_2025, serial_first=1_001, serial_last=1_100)
SETTLEMENT = Batch("green_power_contract", 40.5, MAY_2025)
TODAY = date(2025, 7, 15)


def claim(batch: Batch = GEC, claims: Sequence[Claim] = (), /, **kw: Any) -> Claim | Refusal:
    values: dict[str, Any] = {"month": date(2025, 6, 1)}
    values.update({k: v for k, v in kw.items() if k in {"month", "mwh", "serial_first",
                                                        "serial_last"}})  # fmt: skip
    return check_claim(
        batch,
        claims,
        ClaimRequest(**values),
        today=kw.get("today", TODAY),
        consumption_mwh=kw.get("consumption", 500.0),
        holder_claimed_mwh=kw.get("claimed", 0.0),
        ledger_closed=bool(kw.get("closed", False)),
    )


# --- validity and states ----------------------------------------------------------------------


def test_a_batch_expires_two_years_after_its_production_month() -> None:
    # produced May 2025 → valid May 2025 … April 2027 → expired from 2027-05-01
    assert expires_on(date(2025, 5, 17)) == date(2027, 5, 1)
    assert expires_on(date(2024, 12, 1)) == date(2026, 12, 1)
    assert not is_expired(MAY_2025, date(2027, 4, 30))
    assert is_expired(MAY_2025, date(2027, 5, 1))
    assert add_months(date(2025, 11, 30), 3) == date(2026, 2, 1)


def test_states_held_claimed_cancelled_expired() -> None:
    part = [Claim(date(2025, 6, 1), 30.0, 1_001, 1_030)]
    whole = [*part, Claim(date(2025, 7, 1), 70.0, 1_031, 1_100)]
    assert batch_status(GEC, [], TODAY) is BatchStatus.HELD
    assert batch_status(GEC, part, TODAY) is BatchStatus.HELD  # 70 MWh still held
    assert batch_status(GEC, whole, TODAY) is BatchStatus.CLAIMED
    assert batch_status(GEC, part, date(2027, 5, 1)) is BatchStatus.EXPIRED
    assert batch_status(GEC, whole, date(2030, 1, 1)) is BatchStatus.CLAIMED  # claimed is kept
    cancelled = Batch("certificate", 100.0, MAY_2025, 1_001, 1_100, cancelled=True)
    assert batch_status(cancelled, [], TODAY) is BatchStatus.CANCELLED


# --- claims -----------------------------------------------------------------------------------


def test_a_claim_of_the_whole_batch_and_of_a_sub_range_of_serials() -> None:
    # 100 serials 1 001…1 100 × 1 MWh = 100 MWh; serials 1 011…1 030 = 20 certificates = 20 MWh
    assert claim() == Claim(date(2025, 6, 1), 100.0, 1_001, 1_100)
    assert claim(serial_first=1_011, serial_last=1_030, month=date(2025, 6, 20)) == Claim(
        date(2025, 6, 1), 20.0, 1_011, 1_030
    )


def test_a_serial_is_claimed_once() -> None:
    taken = [Claim(date(2025, 6, 1), 20.0, 1_011, 1_030)]
    again = claim(GEC, taken, serial_first=1_030, serial_last=1_040)
    assert isinstance(again, Refusal) and again.status == 409
    assert "already claimed" in again.en and "只能申领一次" in again.zh
    rest = claim(GEC, taken, serial_first=1_031, serial_last=1_100)
    assert rest == Claim(date(2025, 6, 1), 70.0, 1_031, 1_100)


def test_a_claim_never_exceeds_the_holders_consumption_of_the_month() -> None:
    # holder consumed 120 MWh in June and already claimed 30 MWh: 90 MWh left; 100 > 90 → 409
    refused = claim(consumption=120.0, claimed=30.0)
    assert isinstance(refused, Refusal) and refused.status == 409
    assert "90 MWh" in refused.en and "90 MWh" in refused.zh
    # exactly what is left is accepted: serials 1 001…1 090 = 90 MWh
    assert claim(consumption=120.0, claimed=30.0, serial_last=1_090) == Claim(
        date(2025, 6, 1), 90.0, 1_001, 1_090
    )
    # nothing consumed (month not computed, or exported on balance): nothing to claim
    assert isinstance(claim(consumption=0.0), Refusal)


def test_settlements_without_serials_are_claimed_by_volume_within_the_batch() -> None:
    # 40.5 MWh settlement: 25 + 15.5 = 40.5 MWh claimable, a further 0.1 MWh is not
    first = claim(SETTLEMENT, mwh=25.0)
    assert first == Claim(date(2025, 6, 1), 25.0)
    assert claim(SETTLEMENT, [Claim(date(2025, 6, 1), 25.0)], mwh=15.5) == Claim(
        date(2025, 6, 1), 15.5
    )
    full = [Claim(date(2025, 6, 1), 25.0), Claim(date(2025, 7, 1), 15.5)]
    twice = claim(SETTLEMENT, full, mwh=0.1)
    assert isinstance(twice, Refusal) and twice.status == 409
    for bad in ({}, {"mwh": 0.0}, {"mwh": 5.0, "serial_first": 1, "serial_last": 5}):
        refused = claim(SETTLEMENT, **bad)
        assert isinstance(refused, Refusal) and refused.status == 422, bad
    # certificates come in whole MWh
    gec_no_serials = Batch("certificate", 10.0, MAY_2025)
    half = claim(gec_no_serials, mwh=2.5)
    assert isinstance(half, Refusal) and half.status == 422


@pytest.mark.parametrize(
    ("kw", "status"),
    [
        ({"today": date(2027, 5, 1)}, 409),  # expired
        ({"month": date(2025, 4, 1)}, 422),  # before production
        ({"month": date(2027, 5, 1), "today": date(2027, 4, 2)}, 422),  # beyond validity
        ({"closed": True}, 409),  # the month's ledger is closed
        ({"serial_first": 1_000, "serial_last": 1_010}, 422),  # outside the batch
        ({"serial_first": 1_001, "serial_last": 1_010, "mwh": 11.0}, 422),  # 10 serials ≠ 11
    ],
)
def test_claims_refused_with_status_and_reasons_in_both_languages(
    kw: dict[str, object], status: int
) -> None:
    refused = claim(**kw)
    assert isinstance(refused, Refusal) and refused.status == status
    assert refused.en and refused.zh and " / " in refused.detail


def test_cancelled_batches_and_withdrawing_after_the_ledger_closed() -> None:
    cancelled = Batch("certificate", 100.0, MAY_2025, 1_001, 1_100, cancelled=True)
    assert isinstance(claim(cancelled), Refusal)
    assert check_cancel(GEC, []) is None
    assert check_cancel(cancelled, []) is not None  # final
    part = [Claim(date(2025, 6, 1), 30.0, 1_001, 1_030)]
    refused = check_cancel(GEC, part)
    assert refused is not None and refused.status == 409 and "30 MWh" in refused.en
    assert check_withdraw(ledger_closed=False, month=date(2025, 6, 1)) is None
    closed = check_withdraw(ledger_closed=True, month=date(2025, 6, 1))
    assert closed is not None and closed.status == 409 and "2025-06" in closed.zh


# --- market-based scope 2 by holder -----------------------------------------------------------

# tests/support/small_park.py with the attribution rule: of the 10 MWh bought at "sub" in one
# interval, a-co takes 6 000/10 900 × 10 = 5.504587156 MWh, b-co 3 000/10 900 × 10 = 2.752293578
# MWh, the park's common account 1 900/10 900 × 10 = 1.743119266 MWh (test_attribution.py).
PARK = SMALL_PARK + "attribution: [{node: sub, common: park}]\n"
VALUES = {
    ("grid", "flow"): 10_000.0,
    ("grid", "reverse"): 0.0,
    ("feeder-a", "flow"): 6_000.0,
    ("feeder-b", "flow"): 3_000.0,
    ("bess", "reverse"): 1_000.0,
    ("bess", "flow"): 900.0,
}
A_MWH = 10 * 6_000 / 10_900
RESIDUAL = 0.6096  # national residual mix 2023 [tCO2/MWh], the factor of 2025


@cache
def factors() -> SiteFactors:
    lib = load_library(package_data_files())
    return site_factors(lib, province="shanxi", grid_region="north", year=2025)


@cache
def park_plan() -> SitePlan:
    return plan_from_document(parse_site_text(PARK, "g.yaml"))


def park_slot(
    holders: Mapping[str, float] | None = None,
    before: Mapping[str, float] | None = None,
) -> SlotResult:
    plan = park_plan()
    q: dict[tuple[int, int], Quantity] = {}
    for (device_id, which), value in VALUES.items():
        d = next(x for x in plan.devices if x.device_id == device_id)
        m = reverse_metric(d) if which == "reverse" else flow_metric(d)
        assert m is not None
        q[(d.device_pk, m.metric_id)] = Quantity(value, "measured", 1.0)
    return slot_inventory(
        plan, q, factors(), day=date(2025, 6, 3), holder_pools=holders, holder_before_mwh=before,
    )  # fmt: skip


def market_by_org(rows: Sequence[InventoryLine]) -> dict[str, float]:
    out: dict[str, float] = {}
    for r in rows:
        if r.basis == Basis.MARKET:
            out[r.org_id] = out.get(r.org_id, 0.0) + r.tco2e
    return out


def green_by_org(rows: Sequence[InventoryLine]) -> dict[str, float]:
    out: dict[str, float] = {}
    for r in rows:
        if r.category == Category.GREEN_ELECTRICITY and r.basis == Basis.MARKET:
            out[r.org_id] = out.get(r.org_id, 0.0) + r.activity
    return out


def test_a_claim_for_a_co_changes_a_cos_market_based_scope_2_and_nobody_elses() -> None:
    bare = market_by_org(park_slot().rows)
    # a-co holds 2 MWh claimed for the month: (5.504587156 − 2) × 0.6096 = 2.136396330 t
    claimed = park_slot(holders={"a-co": 2.0})
    market = market_by_org(claimed.rows)
    assert bare["a-co"] == pytest.approx(A_MWH * RESIDUAL, rel=1e-12)
    assert market["a-co"] == pytest.approx((A_MWH - 2.0) * RESIDUAL, rel=1e-12)
    assert market["b-co"] == pytest.approx(bare["b-co"], rel=1e-12)
    assert market["park"] == pytest.approx(bare["park"], rel=1e-12)
    assert green_by_org(claimed.rows) == pytest.approx({"a-co": 2.0})
    ((org, share, own),) = claimed.holders
    assert org == "a-co" and share == pytest.approx(A_MWH) and own == pytest.approx(2.0)
    # the site is the sum of its owners' lines; location-based unchanged by certificates
    site_market = 10 * RESIDUAL - 2.0 * RESIDUAL
    assert math.fsum(market.values()) == pytest.approx(site_market, abs=1e-9)
    loc = [r.tco2e for r in claimed.rows if r.basis == Basis.LOCATION]
    assert math.fsum(loc) == pytest.approx(10 * 0.6634, abs=1e-9)


def test_a_holders_pool_never_covers_beyond_its_own_share() -> None:
    # 100 MWh claimed by a-co: only its 5.504587156 MWh are covered, the rest of the site is not
    result = park_slot(holders={"a-co": 100.0})
    assert green_by_org(result.rows) == pytest.approx({"a-co": A_MWH}, rel=1e-12)
    market = market_by_org(result.rows)
    assert market["a-co"] == pytest.approx(0.0, abs=1e-12)
    assert market["b-co"] == pytest.approx(10 * 3_000 / 10_900 * RESIDUAL, rel=1e-12)
    # later in the month, 8 MWh of a-co's pool and 5.504587156 MWh already covered: this
    # interval covers 8 − 5.504587156 = 2.495412844 MWh of a-co's share
    later = park_slot(holders={"a-co": 8.0}, before={"a-co": A_MWH})
    assert green_by_org(later.rows) == pytest.approx({"a-co": 8.0 - A_MWH}, rel=1e-12)


def test_an_entry_without_holder_covers_only_the_common_accounts_share() -> None:
    # A legacy period contract of 2 MWh for June 2025 stored without holder, on the park of two
    # enterprises (a-co, b-co) and the common account (park): it is the common account's
    # (default_holder) and covers only park's 1 900/10 900 × 10 = 1.743119266 MWh; a-co's
    # 5.504587156 × 0.6096 = 3.355596330 t and b-co's 2.752293578 × 0.6096 = 1.677798165 t
    # do not change. Site: (10 − 1.743119266) × 0.6096 = 5.033394495 t.
    june, june_end = date(2025, 6, 1), date(2025, 6, 30)
    legacy = RegisterEntry(
        "PPA-OLD", "green_power_contract", "settlement 2025-06", 2.0, june, june_end, 2.0, june,
        june_end,
    )  # fmt: skip
    assert default_holder(park_plan()) == "park"
    residual, zero, gec = month_factors()
    pool = month_pool(
        [legacy], june, residual=residual, zero=zero, gec=gec, holder=default_holder(park_plan())
    )
    assert pool.holder_pools() == {"park": pytest.approx(2.0)}
    bare = market_by_org(park_slot().rows)
    result = park_slot(holders=pool.holder_pools())
    market = market_by_org(result.rows)
    park_mwh = 10 * 1_900 / 10_900
    assert park_mwh == pytest.approx(1.743119266, rel=1e-9)
    assert green_by_org(result.rows) == pytest.approx({"park": park_mwh}, rel=1e-12)
    assert market["park"] == pytest.approx(0.0, abs=1e-12)
    assert market["a-co"] == pytest.approx(3.355596330, rel=1e-9)
    assert market["a-co"] == pytest.approx(bare["a-co"], rel=1e-12)
    assert market["b-co"] == pytest.approx(1.677798165, rel=1e-9)
    assert market["b-co"] == pytest.approx(bare["b-co"], rel=1e-12)
    # site = Σ organisations + common account
    assert math.fsum(market.values()) == pytest.approx(5.033394495, rel=1e-9)
    ((org, share, own),) = result.holders
    assert org == "park" and share == pytest.approx(park_mwh) and own == pytest.approx(park_mwh)
    # the claim row: 1.743119266 MWh applied, 0.256880734 MWh beyond park's import unused
    (claim,) = month_claims(pool, {"park": own})
    assert claim.applied_mwh == pytest.approx(park_mwh)
    assert claim.unused_mwh == pytest.approx(2.0 - park_mwh)
    assert "holder park" in claim.reason


@cache
def month_factors() -> tuple[SelectedFactor, SelectedFactor, SelectedFactor]:
    lib = load_library(package_data_files())
    return (
        use_factor(lib.get("electricity.mee_nbs.national.residual.2023")),
        use_factor(lib.get("green.evidenced_purchase.zero")),
        use_factor(lib.get("green.gec.mwh_per_certificate")),
    )


def test_the_month_pool_is_kept_by_holder_and_claims_apply_per_holder() -> None:
    # a-co's claim (20 MWh) and a contract stored without holder (30 MWh): the latter is the
    # common account's (park), never site-wide
    june, june_end = date(2025, 6, 1), date(2025, 6, 30)
    a = RegisterEntry(
        "B1/claim-1", "certificate", "GEC 1011-1030", 20.0, june, june_end, 20.0, june,
        june_end, 20, "a-co",
    )  # fmt: skip
    site = RegisterEntry(
        "C1", "green_power_contract", "settlement", 30.0, june, june_end, 30.0, june, june_end,
    )  # fmt: skip
    residual, zero, gec = month_factors()
    pool = month_pool([a, site], june, residual=residual, zero=zero, gec=gec, holder="park")
    assert pool.holder_pools() == {"a-co": pytest.approx(20.0), "park": pytest.approx(30.0)}
    assert pool.any_mwh == pytest.approx(50.0)
    # a-co's own share covered 12 MWh of its 20; park's 30 of 30
    claims = {c.instrument_id: c for c in month_claims(pool, {"a-co": 12.0, "park": 30.0})}
    assert claims["B1/claim-1"].applied_mwh == pytest.approx(12.0)
    assert claims["B1/claim-1"].unused_mwh == pytest.approx(8.0)
    assert claims["C1"].applied_mwh == pytest.approx(30.0)

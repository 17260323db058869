"""Transfer of a register batch (issue 15): whole, tradable, held, nothing claimed, to another
organisation."""

from __future__ import annotations

from datetime import date

from carbonflow.domain.inventory.certificates import Batch, Claim, Refusal, check_transfer

APRIL = date(2025, 4, 1)
MAY = date(2025, 5, 1)
TODAY = date(2025, 6, 15)
BATCH = Batch("certificate", 10.0, APRIL, 1, 10)
CANCELLED = Batch("certificate", 10.0, APRIL, 1, 10, cancelled=True)


def _check(
    batch: Batch = BATCH,
    claims: tuple[Claim, ...] = (),
    *,
    tradable: bool | None = True,
    to_org: str = "b-co",
    today: date = TODAY,
) -> Refusal | None:
    return check_transfer(
        batch, claims, tradable=tradable, holder="a-co", to_org=to_org, today=today
    )


def test_a_tradable_held_batch_may_move() -> None:
    assert _check() is None


def test_refusals_name_the_reason_in_both_languages() -> None:
    cases = [
        (_check(tradable=False), 409, "not tradable", "不可交易"),
        (_check(tradable=None), 409, "not tradable", "不可交易"),
        (_check(CANCELLED), 409, "cancelled", "非持有"),
        # first day of the production month + 24 months: from April 2027 it is expired
        (_check(today=date(2027, 4, 1)), 409, "expired", "非持有"),
        (_check(claims=(Claim(MAY, 2.0, 1, 2),)), 409, "2 MWh", "撤回"),
        (_check(claims=(Claim(MAY, 10.0, 1, 10),)), 409, "claimed, not held", "非持有"),
        (_check(to_org="a-co"), 422, "already holds", "已持有"),
    ]
    for refusal, status, en, zh in cases:
        assert refusal is not None
        assert refusal.status == status
        assert en in refusal.en and zh in refusal.zh, refusal

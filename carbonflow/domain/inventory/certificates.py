"""The green-certificate register (绿证): batch states and the rules of a claim. Pure.

Rules of the national system (发改能源〔2023〕1044号): one certificate = 1 MWh of renewable
electricity; each certificate has a unique serial number; it is valid for two years from its
production month; an organisation's renewable consumption is what it holds and applies to its
own consumption. Green-power trading settlements (绿电交易结算) and direct supply (绿电直连) are
separate evidence types under the same rules (a settlement or a metered direct-supply volume of
one production month, registered once, applied once).

A **batch** (one ``green_instrument`` row with a production month) moves through these states:

- ``held``: registered, unclaimed volume left, before :func:`expires_on` of its production month;
- ``claimed``: all of its volume applied by claims (a claim applies part or all of a batch to
  the holder's own purchased electricity of one month);
- ``cancelled``: withdrawn from the register by its holder or an admin (final; only while
  nothing of it is claimed);
- ``expired``: unclaimed volume left on or after :func:`expires_on` (a pure date function:
  first day of the production month + 24 months; nothing to run).

A claim is withdrawn (its volume is held again) only while the month's ledger is open; once
the holder's (or the site's) ledger of that month is closed the claim is final.

**Partial claims.** A batch with serial numbers is claimed by a sub-range of its serials (the
whole batch when none is given): ``mwh = (last − first + 1) × 1 MWh``; two active claims of the
same batch never share a serial. A batch without serials is claimed by volume: the active
claims never sum beyond the batch's volume. Certificates are claimed in whole MWh.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from carbonflow.domain.calendar import first_of_month

VALIDITY_MONTHS = 24  # validity of a certificate from its production month [months]
MWH_PER_CERTIFICATE = 1.0  # one green certificate = 1 MWh (发改能源〔2023〕1044号)
_TOLERANCE_MWH = 1e-9  # float slack when comparing volumes [MWh]


class BatchStatus(StrEnum):
    HELD = "held"
    CLAIMED = "claimed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class Batch:
    """What the rules need of one register batch."""

    kind: str  # certificate / green_power_contract / direct_supply
    volume_mwh: float
    production_month: date  # any day of the month
    serial_first: int | None = None
    serial_last: int | None = None
    cancelled: bool = False

    @property
    def serialised(self) -> bool:
        return self.serial_first is not None and self.serial_last is not None


@dataclass(frozen=True, slots=True)
class Claim:
    """One active (not withdrawn) claim of a batch on one consumption month."""

    month: date  # first day of the consumption month
    mwh: float
    serial_first: int | None = None
    serial_last: int | None = None


@dataclass(frozen=True, slots=True)
class ClaimRequest:
    month: date  # any day of the consumption month
    mwh: float | None = None
    serial_first: int | None = None
    serial_last: int | None = None


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a change is refused: the HTTP status it maps to and the reason in English and
    Chinese."""

    status: int  # 409: the register's state forbids it; 422: the request itself is wrong
    en: str
    zh: str

    @property
    def detail(self) -> str:
        return f"{self.en} / {self.zh}"


def add_months(day: date, months: int) -> date:
    """The first day of the month ``months`` after the month of ``day``."""
    index = day.year * 12 + (day.month - 1) + months
    return date(index // 12, index % 12 + 1, 1)


def expires_on(production_month: date) -> date:
    """The first day on which a batch of ``production_month`` is expired: the first day of the
    production month + 24 months (valid two years from its production month)."""
    return add_months(first_of_month(production_month), VALIDITY_MONTHS)


def is_expired(production_month: date, on: date) -> bool:
    return on >= expires_on(production_month)


def claimed_mwh(claims: Sequence[Claim]) -> float:
    return math.fsum(c.mwh for c in claims)


def unclaimed_mwh(batch: Batch, claims: Sequence[Claim]) -> float:
    """The batch's volume not applied by its active claims [MWh]."""
    return max(0.0, batch.volume_mwh - claimed_mwh(claims))


def batch_status(batch: Batch, claims: Sequence[Claim], on: date) -> BatchStatus:
    """The state of the batch on ``on`` (module doc)."""
    if batch.cancelled:
        return BatchStatus.CANCELLED
    if unclaimed_mwh(batch, claims) <= _TOLERANCE_MWH:
        return BatchStatus.CLAIMED
    if is_expired(batch.production_month, on):
        return BatchStatus.EXPIRED
    return BatchStatus.HELD


def serial_count(first: int, last: int) -> int:
    return last - first + 1


def check_claim(
    batch: Batch,
    claims: Sequence[Claim],
    request: ClaimRequest,
    *,
    today: date,
    consumption_mwh: float,
    holder_claimed_mwh: float,
    ledger_closed: bool,
) -> Claim | Refusal:
    """The claim ``request`` would make, or why it is refused.

    ``claims``: the batch's active claims; ``consumption_mwh``: the holder's own attributed
    purchased electricity of the month (net grid import) [MWh]; ``holder_claimed_mwh``: what
    the holder's active claims of any batch already apply to that month [MWh];
    ``ledger_closed``: the holder's or the site's ledger of the month is closed.
    """
    month = first_of_month(request.month)
    refusal = _state_refusal(batch, month, today=today, ledger_closed=ledger_closed)
    if refusal is not None:
        return refusal
    wanted = _wanted(batch, claims, request, month)
    if isinstance(wanted, Refusal):
        return wanted
    left = consumption_mwh - holder_claimed_mwh
    if wanted.mwh > left + _TOLERANCE_MWH:
        return Refusal(
            409,
            f"claim of {wanted.mwh:g} MWh exceeds the holder's own purchased electricity of "
            f"{month:%Y-%m} not yet claimed: {max(0.0, left):g} MWh "
            f"({consumption_mwh:g} MWh consumed, {holder_claimed_mwh:g} MWh claimed)",
            f"申领 {wanted.mwh:g} MWh 超过持有者 {month:%Y-%m} 自身外购电量中尚未申领的 "
            f"{max(0.0, left):g} MWh（用电 {consumption_mwh:g} MWh，已申领 "
            f"{holder_claimed_mwh:g} MWh）",
        )
    return wanted


def _state_refusal(
    batch: Batch, month: date, *, today: date, ledger_closed: bool
) -> Refusal | None:
    """Why the batch cannot be claimed for ``month`` at all, if it cannot."""
    production = first_of_month(batch.production_month)
    expiry = expires_on(production)
    if batch.cancelled:
        return Refusal(409, "the batch is cancelled", "该批次已注销")
    if today >= expiry:
        return Refusal(
            409,
            f"the batch expired on {expiry.isoformat()} (two years from its production month)",
            f"该批次已于 {expiry.isoformat()} 过期（自生产月份起两年有效）",
        )
    if not production <= month < expiry:
        return Refusal(
            422,
            f"consumption month {month:%Y-%m} is outside the batch's validity "
            f"{production:%Y-%m} … {add_months(expiry, -1):%Y-%m}",
            f"消费月份 {month:%Y-%m} 不在该批次有效期 {production:%Y-%m} 至 "
            f"{add_months(expiry, -1):%Y-%m} 内",
        )
    if ledger_closed:
        return Refusal(
            409,
            f"the ledger of {month:%Y-%m} is closed; claims for it are final",
            f"{month:%Y-%m} 台账已关闭，不能再申领",
        )
    return None


def _wanted(
    batch: Batch, claims: Sequence[Claim], request: ClaimRequest, month: date
) -> Claim | Refusal:
    """The serials and volume the request asks for, checked against the batch."""
    if batch.serialised:
        return _wanted_serials(batch, claims, request, month)
    return _wanted_volume(batch, claims, request, month)


def _wanted_serials(
    batch: Batch, claims: Sequence[Claim], request: ClaimRequest, month: date
) -> Claim | Refusal:
    """A sub-range of the batch's serials (the whole batch by default), none claimed."""
    assert batch.serial_first is not None and batch.serial_last is not None
    first = batch.serial_first if request.serial_first is None else request.serial_first
    last = batch.serial_last if request.serial_last is None else request.serial_last
    if not batch.serial_first <= first <= last <= batch.serial_last:
        return Refusal(
            422,
            f"serials {first}–{last} are not a range within the batch "
            f"{batch.serial_first}–{batch.serial_last}",
            f"序号 {first}–{last} 不在该批次序号范围 {batch.serial_first}–{batch.serial_last} 内",
        )
    mwh = serial_count(first, last) * MWH_PER_CERTIFICATE
    if request.mwh is not None and not math.isclose(request.mwh, mwh, abs_tol=1e-9):
        return Refusal(
            422,
            f"mwh {request.mwh:g} does not equal the {serial_count(first, last)} serials × 1 MWh",
            f"电量 {request.mwh:g} MWh 与 {serial_count(first, last)} 个序号 × 1 MWh 不符",
        )
    for c in claims:
        overlaps = c.serial_first is not None and c.serial_last is not None
        if overlaps and c.serial_first <= last and c.serial_last >= first:  # type: ignore[operator]
            return _double(f"serials {c.serial_first}–{c.serial_last}", c.month)
    return Claim(month, mwh, first, last)


def _wanted_volume(
    batch: Batch, claims: Sequence[Claim], request: ClaimRequest, month: date
) -> Claim | Refusal:
    """A volume of a batch without serials, within what its claims left."""
    if request.serial_first is not None or request.serial_last is not None:
        return Refusal(
            422, "the batch has no serial numbers: claim by mwh", "该批次无序号，请按电量申领"
        )
    if request.mwh is None or not (math.isfinite(request.mwh) and request.mwh > 0):
        return Refusal(
            422, "mwh > 0 is required for a batch without serials", "无序号批次须给出大于 0 的电量"
        )
    if batch.kind == "certificate" and request.mwh != math.floor(request.mwh):
        return Refusal(
            422, "certificates are claimed in whole MWh (1 certificate = 1 MWh)",
            "绿证按整数兆瓦时申领（1 张 = 1 MWh）",
        )  # fmt: skip
    left = unclaimed_mwh(batch, claims)
    if request.mwh > left + _TOLERANCE_MWH:
        if left <= _TOLERANCE_MWH and claims:
            return _double("the whole batch", claims[0].month)
        return Refusal(
            409,
            f"claim of {request.mwh:g} MWh exceeds the batch's unclaimed {left:g} MWh",
            f"申领 {request.mwh:g} MWh 超过该批次未申领的 {left:g} MWh",
        )
    return Claim(month, request.mwh)


def _double(what: str, month: date) -> Refusal:
    return Refusal(
        409,
        f"{what} of the batch already claimed for {month:%Y-%m}; a certificate is claimed once",
        f"该批次的 {what} 已申领于 {month:%Y-%m}；每张证书只能申领一次",
    )


def check_withdraw(*, ledger_closed: bool, month: date) -> Refusal | None:
    """A claim goes back to held only while the month's ledger is open."""
    if ledger_closed:
        return Refusal(
            409,
            f"the ledger of {month:%Y-%m} is closed; its claims are final",
            f"{month:%Y-%m} 台账已关闭，申领不可撤回",
        )
    return None


def check_cancel(batch: Batch, claims: Sequence[Claim]) -> Refusal | None:
    """Cancel (final) only a batch that is not cancelled and has nothing claimed."""
    if batch.cancelled:
        return Refusal(409, "the batch is already cancelled", "该批次已注销")
    if claims:
        return Refusal(
            409,
            f"{claimed_mwh(claims):g} MWh of the batch are claimed: withdraw the claims first",
            f"该批次已申领 {claimed_mwh(claims):g} MWh：请先撤回申领",
        )
    return None


def check_transfer(
    batch: Batch,
    claims: Sequence[Claim],
    *,
    tradable: bool | None,
    holder: str,
    to_org: str,
    today: date,
) -> Refusal | None:
    """A batch moves to another organisation only whole, tradable (绿证可交易) and held: not
    cancelled, not expired, nothing of it claimed (a claim applies it to its holder's own
    consumption). The receiving organisation must differ from the holder."""
    if not tradable:
        return Refusal(409, "the batch is not tradable", "该批次不可交易")
    status = batch_status(batch, claims, today)
    if status is not BatchStatus.HELD:
        return Refusal(
            409, f"the batch is {status.value}, not held", f"该批次状态为 {status.value}，非持有"
        )
    if claims:
        return Refusal(
            409,
            f"{claimed_mwh(claims):g} MWh of the batch are claimed: withdraw the claims first",
            f"该批次已申领 {claimed_mwh(claims):g} MWh：请先撤回申领",
        )
    if to_org == holder:
        return Refusal(422, f"{holder!r} already holds the batch", f"{holder!r} 已持有该批次")
    return None

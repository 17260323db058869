"""Green-power instruments against purchased electricity, month by month. Pure.

The register (``green_instrument``) holds green-power trading contracts (绿电交易, settlement
voucher), certificates (绿证 GEC, 1 GEC = 1 MWh) and direct supply (绿电直连). Direct supply is
metered (devices with role ``green_import``): its volume counts as it is measured, and its
register entry is the evidence. Contracts and certificates are *period instruments*:

1. **Monthly volume.** An entry claims ``claimed_mwh`` for [claim_start, claim_end]; a month
   receives ``claimed_mwh × (days of the claim period in the month ÷ days of the claim period)``.
2. **Acceptance** is the pure core's
   (:func:`carbonflow.domain.inventory.carbon.electricity_market_based`): validity must overlap the
   month, evidence must be given, volume ≥ 0, an id is claimed once; certificates must match
   ``certificates × 1 MWh`` (``green.gec.mwh_per_certificate``).
3. **By holder only** (issue 15). Every entry has exactly one holder, an organisation of the
   site, and covers only that organisation's share of the net import (its *holder pool*,
   :attr:`MonthPool.holders`); nothing is site-wide. An entry stored without a holder (registered
   before holders existed) is the site's :func:`default_holder`'s: its one organisation, else the
   park's common account (the ``common`` organisation of the site file's ``attribution``), else
   nobody — then it is refused. Claims of the certificate register
   (:mod:`carbonflow.domain.inventory.certificates`) reach this module as one entry each, for the
   claimed month and holder only.
4. **Matching in time order.** A holder's accepted monthly volume (its *pool*) covers its share
   ``R`` of the month's cumulative net grid import as it grows: after each interval ``clamp(R,
   0, pool)`` is covered, so an interval covers the change of that (an exporting interval gives
   coverage back; :func:`carbonflow.domain.inventory.balance.covered_in_interval`). Every
   interval's market-based figure is final and additive: over the month the covered volume is
   min(pool, max(0, the holder's month net import)), what the core computes for the month as a
   whole. Late data early in a month moves coverage in the later intervals of the month
   (recomputed from the month's start).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date

from carbonflow.domain.calendar import first_of_month, last_of_month
from carbonflow.domain.factors import SelectedFactor
from carbonflow.domain.inventory.carbon import (
    GreenInstrument,
    InstrumentClaim,
    InstrumentKind,
    electricity_market_based,
)
from carbonflow.domain.site.plan import SitePlan

PERIOD_KINDS = (InstrumentKind.GREEN_POWER_CONTRACT.value, InstrumentKind.CERTIFICATE.value)


@dataclass(frozen=True, slots=True)
class RegisterEntry:
    """One ``green_instrument`` row (dates inclusive, site-local)."""

    instrument_id: str
    kind: str
    evidence: str
    volume_mwh: float
    valid_from: date
    valid_to: date
    claimed_mwh: float
    claim_start: date
    claim_end: date
    certificates: int | None = None
    org_id: str | None = None  # the holder; None: legacy, the site's default_holder's


@dataclass(frozen=True, slots=True)
class MonthPool:
    month_start: date
    month_end: date  # inclusive
    # (entry with its holder resolved, monthly volume offered)
    offered: tuple[tuple[RegisterEntry, float], ...]
    claims: tuple[InstrumentClaim, ...]  # acceptance by the core (applied = offered if accepted)
    holders: tuple[tuple[str, float], ...] = ()  # (holder, accepted volume) covering its share

    def holder_pools(self) -> dict[str, float]:
        return {org: mwh for org, mwh in self.holders if mwh > 0}

    @property
    def any_mwh(self) -> float:
        """Everything accepted for the month, all holders [MWh]."""
        return math.fsum(mwh for _org, mwh in self.holders)


NO_HOLDER = (
    "no holder: the site has several organisations and no common account (attribution); "
    "register the instrument for its holder organisation"
)


def default_holder(plan: SitePlan) -> str | None:
    """The holder of an entry stored without one: the site's one organisation; on a site of
    several, the park's common account — the ``common`` organisation of the site file's
    ``attribution`` rules when they name exactly one; else None (such an entry is refused)."""
    document = plan.document
    if document is not None:
        orgs = sorted({o.id for o in document.organisations})
        commons = sorted({a.common for a in document.attribution})
    else:
        orgs = sorted({d.org_id for d in plan.devices if d.org_id is not None})
        commons = sorted({r.common_org for r in plan.shares})
    if len(orgs) == 1:
        return orgs[0]
    return commons[0] if len(commons) == 1 else None


def month_bounds(day: date) -> tuple[date, date]:
    """The first and the last day (inclusive) of the month holding ``day``."""
    return first_of_month(day), last_of_month(day)


def monthly_volume(entry: RegisterEntry, month_start: date, month_end: date) -> float:
    """The share of ``claimed_mwh`` falling in the month, by days [MWh]."""
    lo = max(entry.claim_start, month_start)
    hi = min(entry.claim_end, month_end)
    if hi < lo:
        return 0.0
    days = (entry.claim_end - entry.claim_start).days + 1
    return entry.claimed_mwh * ((hi - lo).days + 1) / days


def month_pool(
    entries: Sequence[RegisterEntry],
    month_start: date,
    *,
    residual: SelectedFactor,
    zero: SelectedFactor,
    gec: SelectedFactor,
    holder: str | None = None,
) -> MonthPool:
    """The accepted green volume of the month containing ``month_start``, by holder (module
    doc); ``holder`` is the site's :func:`default_holder`, the holder of entries stored without
    one (None: they are refused)."""
    start, end = month_bounds(month_start)
    offered: list[tuple[RegisterEntry, float]] = []
    instruments: list[GreenInstrument] = []
    for stored in entries:
        if stored.kind not in PERIOD_KINDS:
            continue
        volume = monthly_volume(stored, start, end)
        if volume <= 0 and not (stored.claim_start <= end and stored.claim_end >= start):
            continue
        entry = stored if stored.org_id is not None else replace(stored, org_id=holder)
        evidence = entry.evidence
        if entry.kind == InstrumentKind.CERTIFICATE.value:
            expected = (entry.certificates or 0) * gec.value
            if entry.certificates is None or not math.isclose(
                expected, entry.volume_mwh, rel_tol=1e-9, abs_tol=1e-9
            ):
                evidence = ""  # refused below: the volume does not match the certificate count
        offered.append((entry, volume))
        instruments.append(
            GreenInstrument(
                InstrumentKind(entry.kind),
                entry.instrument_id,
                volume,
                entry.valid_from,
                entry.valid_to,
                evidence,
            )
        )
    total = math.fsum(v for _, v in offered)
    market = electricity_market_based(
        total, instruments, residual, period_start=start, period_end=end, zero_factor=zero
    )
    claims: list[InstrumentClaim] = []
    holders: dict[str, list[float]] = {}
    for (entry, _volume), core in zip(offered, market.claims, strict=True):
        claim = core if entry.org_id is not None else _no_holder(core)
        if entry.org_id is not None and claim.accepted:
            holders.setdefault(entry.org_id, []).append(claim.applied_mwh)
        claims.append(claim)
    return MonthPool(
        start, end, tuple(offered), tuple(claims),
        tuple((org, math.fsum(v)) for org, v in sorted(holders.items())),
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class GreenClaim:
    """One instrument's claim on the month (a ``calc_green_claim`` row, a ledger line)."""

    instrument_id: str
    kind: str
    accepted: bool
    offered_mwh: float
    applied_mwh: float
    unused_mwh: float
    reason: str


def month_claims(pool: MonthPool, holder_covered: Mapping[str, float]) -> tuple[GreenClaim, ...]:
    """Per instrument: how much of its holder's covered import it backs (in register order);
    ``holder_covered`` is what each holder's entries covered of its own share [MWh]."""
    lefts: dict[str, float] = dict(holder_covered)
    out: list[GreenClaim] = []
    for (entry, volume), claim in zip(pool.offered, pool.claims, strict=True):
        if not claim.accepted:
            reason = _refusal(entry, claim.reason)
            out.append(GreenClaim(entry.instrument_id, entry.kind, False, volume, 0, 0, reason))
            continue
        holder = entry.org_id or ""  # an accepted entry has its holder (month_pool)
        left = lefts.get(holder, 0.0)
        applied = max(0.0, min(volume, left))
        lefts[holder] = left - applied
        unused = volume - applied
        out.append(
            GreenClaim(
                entry.instrument_id,
                entry.kind,
                True,
                volume,
                applied,
                unused,
                f"{entry.kind} accepted: {applied:g} MWh applied"
                + (
                    f", {unused:g} MWh beyond the month's net import unused of holder {holder}"
                    if unused
                    else ""
                ),
            )
        )
    return tuple(out)


def _no_holder(claim: InstrumentClaim) -> InstrumentClaim:
    """An entry nobody holds is refused: nothing is covered site-wide."""
    return InstrumentClaim(claim.instrument, False, 0.0, 0.0, NO_HOLDER)


def _refusal(entry: RegisterEntry, reason: str) -> str:
    """Why an entry is refused, in the register's words."""
    if entry.org_id is None or entry.kind != InstrumentKind.CERTIFICATE.value:
        return reason
    if not entry.evidence.strip():
        return "no evidence given"
    if reason.startswith("no"):
        return "certificate count × 1 MWh does not equal the volume"
    return reason

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
3. **By holder** (issue 15). An entry with a holder organisation (``org_id``) covers only that
   organisation's share of the net import (its *holder pool*, :attr:`MonthPool.holders`); an
   entry without one (the site itself, registered before holders existed) keeps the site-wide
   rule below, split over the owners by attribution weights. Claims of the certificate register
   (:mod:`carbonflow.domain.inventory.certificates`) reach this module as one entry each, for the
   claimed month and holder only.
4. **Matching in time order.** The accepted monthly volume (the month's *pool*) covers the
   month's cumulative net grid import ``N`` as it grows: after each interval ``clamp(N, 0,
   pool)`` is covered, so an interval covers the change of that (an exporting interval gives
   coverage back; :func:`carbonflow.domain.inventory.balance.covered_in_interval`). Every interval's
   market-based figure is final and additive: over the month the covered volume is
   min(pool, max(0, month net import)), what the core computes for the month as a whole. Late
   data early in a month moves coverage in the later intervals of the month (recomputed).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from carbonflow.domain.calendar import first_of_month, last_of_month
from carbonflow.domain.factors import SelectedFactor
from carbonflow.domain.inventory.carbon import (
    GreenInstrument,
    InstrumentClaim,
    InstrumentKind,
    electricity_market_based,
)

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
    org_id: str | None = None  # the holder; None: the site itself (site-wide, legacy)


@dataclass(frozen=True, slots=True)
class MonthPool:
    month_start: date
    month_end: date  # inclusive
    pool_mwh: float  # accepted volume of entries without holder: covers the site's net import
    offered: tuple[tuple[RegisterEntry, float], ...]  # (entry, monthly volume offered)
    claims: tuple[InstrumentClaim, ...]  # acceptance by the core (applied = offered if accepted)
    holders: tuple[tuple[str, float], ...] = ()  # (holder, accepted volume) covering its share

    def holder_pools(self) -> dict[str, float]:
        return {org: mwh for org, mwh in self.holders if mwh > 0}

    @property
    def any_mwh(self) -> float:
        """Everything accepted for the month, site-wide and by holder [MWh]."""
        return self.pool_mwh + math.fsum(mwh for _org, mwh in self.holders)


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
) -> MonthPool:
    """The accepted green volume of the month containing ``month_start`` (module doc)."""
    start, end = month_bounds(month_start)
    offered: list[tuple[RegisterEntry, float]] = []
    instruments: list[GreenInstrument] = []
    for entry in entries:
        if entry.kind not in PERIOD_KINDS:
            continue
        volume = monthly_volume(entry, start, end)
        if volume <= 0 and not (entry.claim_start <= end and entry.claim_end >= start):
            continue
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
    site: list[float] = []
    holders: dict[str, list[float]] = {}
    for (entry, _volume), claim in zip(offered, market.claims, strict=True):
        if claim.accepted:
            into = site if entry.org_id is None else holders.setdefault(entry.org_id, [])
            into.append(claim.applied_mwh)
    return MonthPool(
        start, end, math.fsum(site), tuple(offered), market.claims,
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


def month_claims(
    pool: MonthPool, covered_mwh: float, holder_covered: Mapping[str, float] | None = None
) -> tuple[GreenClaim, ...]:
    """Per instrument: how much of the month's covered import it backs (in register order);
    ``covered_mwh`` is what the site-wide entries covered, ``holder_covered`` what each
    holder's entries covered of its own share [MWh]."""
    lefts: dict[str | None, float] = {None: covered_mwh}
    lefts.update(holder_covered or {})
    out: list[GreenClaim] = []
    for (entry, volume), claim in zip(pool.offered, pool.claims, strict=True):
        if not claim.accepted:
            reason = claim.reason
            if entry.kind == InstrumentKind.CERTIFICATE.value and not entry.evidence.strip():
                reason = "no evidence given"
            elif entry.kind == InstrumentKind.CERTIFICATE.value and claim.reason.startswith("no"):
                reason = "certificate count × 1 MWh does not equal the volume"
            out.append(GreenClaim(entry.instrument_id, entry.kind, False, volume, 0, 0, reason))
            continue
        left = lefts.get(entry.org_id, 0.0)
        applied = max(0.0, min(volume, left))
        lefts[entry.org_id] = left - applied
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
                    f", {unused:g} MWh beyond the month's net import unused"
                    + ("" if entry.org_id is None else f" of holder {entry.org_id}")
                    if unused
                    else ""
                ),
            )
        )
    return tuple(out)

"""SQL of the green-certificate register's claims (``green_claim``) and batch states.

The rules are :mod:`carbonflow.domain.inventory.certificates`; this module reads what they need
(a batch, its active claims, the holder's consumption and claims of a month, whether the
month's ledger is closed) and writes what they allow. Every change runs under the register's
transaction-level advisory lock (the one serial ranges are checked under), so two concurrent
claims of the same serials or of the same holder's month cannot both pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa

from carbonflow.domain.inventory.certificates import Batch, Claim
from carbonflow.domain.ledger.document import RegisterClaim
from carbonflow.storage.db import make_row
from carbonflow.storage.registry import org_filter
from carbonflow.storage.schema import calc_carbon, green_claim, green_instrument, ledger_revision

_REGISTER_LOCK = "carbonflow.green_instrument.serials"  # as reference._SERIAL_LOCK


@dataclass(frozen=True, slots=True)
class ClaimRow:
    claim_id: int
    site_id: str
    instrument_id: str
    org_id: str
    month: date
    mwh: float
    serial_first: int | None
    serial_last: int | None
    claimed_at: datetime
    claimed_by: str
    withdrawn_at: datetime | None
    withdrawn_by: str | None

    def claim(self) -> Claim:
        return Claim(self.month, self.mwh, self.serial_first, self.serial_last)


@dataclass(frozen=True, slots=True)
class BatchRow:
    site_id: str
    instrument_id: str
    org_id: str | None
    kind: str
    volume_mwh: float
    production_month: date | None
    serial_first: int | None
    serial_last: int | None
    cancelled_at: datetime | None
    tradable: bool | None = None

    def batch(self) -> Batch | None:
        """The domain batch; None for a legacy period entry (no production month)."""
        if self.production_month is None:
            return None
        return Batch(
            self.kind, self.volume_mwh, self.production_month, self.serial_first,
            self.serial_last, self.cancelled_at is not None,
        )  # fmt: skip


_CLAIM_COLUMNS = tuple(green_claim.c)


def lock_register(conn: sa.Connection) -> None:
    """The register's transaction-level advisory lock (held to commit)."""
    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext(_REGISTER_LOCK))))


def get_batch(
    conn: sa.Connection, site_id: str, instrument_id: str, *, org_id: str | None
) -> BatchRow | None:
    """One register entry the caller may see (``org_id``: an enterprise's own only)."""
    g = green_instrument
    row = conn.execute(
        sa.select(
            g.c.site_id, g.c.instrument_id, g.c.org_id, g.c.kind, g.c.volume_mwh,
            g.c.production_month, g.c.serial_first, g.c.serial_last, g.c.cancelled_at,
            g.c.tradable,
        ).where(
            g.c.site_id == site_id, g.c.instrument_id == instrument_id,
            org_filter(g.c.org_id, org_id),
        )
    ).first()  # fmt: skip
    return None if row is None else make_row(BatchRow, row)


def claims_of(
    conn: sa.Connection, site_id: str, instrument_id: str, *, active_only: bool = False
) -> list[ClaimRow]:
    """The claims of one batch, oldest first."""
    c = green_claim.c
    query = sa.select(*_CLAIM_COLUMNS).where(c.site_id == site_id, c.instrument_id == instrument_id)
    if active_only:
        query = query.where(c.withdrawn_at.is_(None))
    return [make_row(ClaimRow, r) for r in conn.execute(query.order_by(c.claim_id))]


def claims_by_batch(
    conn: sa.Connection, site_id: str, instrument_ids: list[str]
) -> dict[str, list[ClaimRow]]:
    """The active claims of these batches, by batch."""
    if not instrument_ids:
        return {}
    c = green_claim.c
    query = (
        sa.select(*_CLAIM_COLUMNS)
        .where(c.site_id == site_id, c.instrument_id.in_(instrument_ids), c.withdrawn_at.is_(None))
        .order_by(c.claim_id)
    )
    out: dict[str, list[ClaimRow]] = {}
    for r in conn.execute(query):
        row = make_row(ClaimRow, r)
        out.setdefault(row.instrument_id, []).append(row)
    return out


def month_register_claims(
    conn: sa.Connection, site_id: str, month: date, org_id: str | None
) -> list[RegisterClaim]:
    """The active claims applied to ``month`` (its first day) at the site, with their batch's
    evidence type and production month; of one holder if ``org_id`` (a ledger's rows)."""
    c, g = green_claim.c, green_instrument.c
    query = (
        sa.select(
            c.claim_id, c.instrument_id, c.org_id, g.kind, c.mwh, g.production_month,
            c.serial_first, c.serial_last,
        )
        .select_from(
            green_claim.join(
                green_instrument,
                sa.and_(g.site_id == c.site_id, g.instrument_id == c.instrument_id),
            )
        )
        .where(c.site_id == site_id, c.month == month, c.withdrawn_at.is_(None))
        .order_by(c.org_id, c.instrument_id, c.claim_id)
    )  # fmt: skip
    if org_id is not None:
        query = query.where(c.org_id == org_id)
    return [make_row(RegisterClaim, r) for r in conn.execute(query)]


def get_claim(
    conn: sa.Connection, site_id: str, instrument_id: str, claim_id: int
) -> ClaimRow | None:
    c = green_claim.c
    row = conn.execute(
        sa.select(*_CLAIM_COLUMNS).where(
            c.site_id == site_id, c.instrument_id == instrument_id, c.claim_id == claim_id
        )
    ).first()
    return None if row is None else make_row(ClaimRow, row)


def holder_claimed_mwh(conn: sa.Connection, org_id: str, month: date) -> float:
    """What the holder's active claims of any batch, at any site, apply to ``month`` [MWh]."""
    c = green_claim.c
    total = conn.execute(
        sa.select(sa.func.coalesce(sa.func.sum(c.mwh), 0.0)).where(
            c.org_id == org_id, c.month == month, c.withdrawn_at.is_(None)
        )
    ).scalar_one()
    return float(total)


def holder_consumption_mwh(
    conn: sa.Connection, site_id: str, org_id: str, start: datetime, end: datetime
) -> float:
    """The holder's own attributed purchased electricity at the site in [start, end): its net
    grid import booked to it (location rows), never negative [MWh]."""
    k = calc_carbon.c
    total = conn.execute(
        sa.select(sa.func.coalesce(sa.func.sum(k.activity), 0.0)).where(
            k.site_id == site_id,
            k.org_id == org_id,
            k.start_ts >= start,
            k.start_ts < end,
            k.category == "purchased_electricity",
            k.basis == "location",
        )
    ).scalar_one()
    return max(0.0, float(total))


def ledger_closed(conn: sa.Connection, site_id: str, org_id: str, month: date) -> bool:
    """The holder's or the site's ledger of ``month`` has a closed revision."""
    r = ledger_revision.c
    query = sa.select(r.revision).where(
        r.site_id == site_id, r.org_id.in_([org_id, ""]), r.month == month
    )
    return conn.execute(sa.select(sa.exists(query))).scalar() is True


def insert_claim(
    conn: sa.Connection,
    site_id: str,
    instrument_id: str,
    org_id: str,
    claim: Claim,
    *,
    at: datetime,
    by: str,
) -> ClaimRow:
    row = conn.execute(
        sa.insert(green_claim)
        .values(
            site_id=site_id, instrument_id=instrument_id, org_id=org_id, month=claim.month,
            mwh=claim.mwh, serial_first=claim.serial_first, serial_last=claim.serial_last,
            claimed_at=at, claimed_by=by,
        )
        .returning(*_CLAIM_COLUMNS)
    ).one()  # fmt: skip
    _touch(conn, site_id, instrument_id)
    return make_row(ClaimRow, row)


def withdraw_claim(conn: sa.Connection, row: ClaimRow, *, at: datetime, by: str) -> ClaimRow:
    c = green_claim.c
    out = conn.execute(
        sa.update(green_claim)
        .where(c.claim_id == row.claim_id)
        .values(withdrawn_at=at, withdrawn_by=by)
        .returning(*_CLAIM_COLUMNS)
    ).one()
    _touch(conn, row.site_id, row.instrument_id)
    return make_row(ClaimRow, out)


def cancel_batch(conn: sa.Connection, site_id: str, instrument_id: str, *, at: datetime) -> None:
    g = green_instrument.c
    conn.execute(
        sa.update(green_instrument)
        .where(g.site_id == site_id, g.instrument_id == instrument_id)
        .values(cancelled_at=at, updated_at=at)
    )


def transfer_batch(
    conn: sa.Connection, site_id: str, instrument_id: str, to_org: str, *, at: datetime
) -> None:
    """The batch's holder becomes ``to_org`` (the rules: ``check_transfer``)."""
    g = green_instrument.c
    conn.execute(
        sa.update(green_instrument)
        .where(g.site_id == site_id, g.instrument_id == instrument_id)
        .values(org_id=to_org, updated_at=at)
    )


def _touch(conn: sa.Connection, site_id: str, instrument_id: str) -> None:
    g = green_instrument.c
    conn.execute(
        sa.update(green_instrument)
        .where(g.site_id == site_id, g.instrument_id == instrument_id)
        .values(updated_at=sa.func.now())
    )

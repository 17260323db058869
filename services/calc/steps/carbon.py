"""Step b: the inventory of every affected 15-min interval (:mod:`carbonflow.domain.inventory.
balance`) and the month's green-power claims (:mod:`carbonflow.domain.inventory.green`).

A range is first extended, for every month with a green pool, to the month's start and to the end
of its data: each holder's pool covers the holder's share of the month's cumulative net import,
computed from the month's start, so a change moves coverage in every later interval of the month.
A missing factor is a ``data`` event and its slots get no carbon rows until the factor exists;
invalid data in one interval is a ``data`` event and the other intervals go on (no poison
interval).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from carbonflow.domain.calendar import merge_ranges, month_bounds, next_month
from carbonflow.domain.factors import FactorNotFound
from carbonflow.domain.inventory.balance import Quantity, inventory_devices, slot_inventory
from carbonflow.domain.inventory.green import MonthPool, default_holder, month_claims, month_pool
from carbonflow.domain.inventory.lines import InventoryLine
from carbonflow.domain.site.plan import quantity_keys
from carbonflow.storage import calc_queue
from carbonflow.storage import carbon as carbon_db
from carbonflow.storage import indicators as indicators_db
from carbonflow.storage import intervals as intervals_db
from services.calc.context import StepContext
from services.calc.reference import SiteYears
from services.calc.windows import SLOT, Range

#: (device_pk, metric_id) → the quantity of one interval
_SlotQuantities = dict[tuple[int, int], Quantity]


@dataclass(frozen=True)
class CarbonDone:
    ranges: list[Range]  # recomputed (the requested ones, extended and merged)
    rows_written: int


def recompute_carbon(ctx: StepContext, ranges: Sequence[Range]) -> CarbonDone:
    if not ranges:
        return CarbonDone([], 0)
    site = _SiteCarbon(ctx)
    done = merge_ranges(site.extend(lo, hi) for lo, hi in ranges)
    written = sum(site.replace(lo, hi) for lo, hi in done)
    site.report_problems()
    site.replace_claims()
    calc_queue.save_site_state(ctx.conn, ctx.plan.site_id, factor_sets=site.years.fingerprints())
    return CarbonDone(done, written)


class _SiteCarbon:
    """One site's carbon step: its factors by year and green pools by month, each computed
    once, and the data problems met (reported once at the end, each with its first day)."""

    def __init__(self, ctx: StepContext) -> None:
        self.ctx = ctx
        self.site_id = ctx.plan.site_id
        self.zone = ZoneInfo(ctx.plan.timezone)
        self.years = SiteYears.read(ctx.conn, ctx.reference, ctx.plan, self._missing_factor)
        self.pools: dict[date, MonthPool] = {}
        self.holder = default_holder(ctx.plan)  # of entries stored without one
        self.keys = quantity_keys(inventory_devices(ctx.plan))
        self.problems: dict[str, date] = {}
        # per month of this run and holder with a pool: its share of the month's net import so
        # far, and what its pool covered [MWh] (whole months, see extend)
        self.holder_share: dict[date, dict[str, float]] = {}
        self.holder_covered: dict[date, dict[str, float]] = {}

    def _missing_factor(self, year: int, error: str) -> None:
        self.ctx.log_once(f"{self.site_id}:{year}:{error}", "%s %s: %s", self.site_id, year, error)
        indicators_db.insert_data_event(
            self.ctx.conn,
            self.site_id,
            f"missing factor for {year}: {error}",
            date(year, 1, 1),
            self.ctx.now,
        )

    def pool(self, month: date) -> MonthPool | None:
        """The month's green pool; None while the year lacks a factor."""
        if month not in self.pools:
            factors = self.years.factors(month.year)
            if factors is None:
                return None
            self.pools[month] = month_pool(
                self.years.register,
                month,
                residual=factors.residual,
                zero=factors.green_zero,
                gec=factors.gec,
                holder=self.holder,
            )
        return self.pools[month]

    def extend(self, lo: datetime, hi: datetime) -> Range:
        """[lo, hi) extended to the start and the end of the data of every month with a green
        pool it touches: coverage follows each holder's share of the month's cumulative net
        import from the month's start, so any change moves it for every later interval."""
        start, end = lo, hi
        month = lo.astimezone(self.zone).date().replace(day=1)
        last_local = (hi - SLOT).astimezone(self.zone).date().replace(day=1)
        while month <= last_local:
            pool = self.pool(month)
            if pool is not None and pool.any_mwh > 0:
                m0, m1 = month_bounds(month, self.zone)
                start = min(start, m0)
                data_end = intervals_db.last_interval_end(self.ctx.conn, self.keys, max(lo, m0))
                if data_end is not None:
                    end = max(end, min(m1, data_end))
            month = next_month(month)
        return start, end

    def replace(self, lo: datetime, hi: datetime) -> int:
        """The carbon rows of [lo, hi) recomputed and replaced; the number written."""
        quantities: dict[datetime, _SlotQuantities] = {}
        for row in intervals_db.intervals_in(self.ctx.conn, self.keys, lo, hi):
            quantities.setdefault(row.start, {})[(row.device_pk, row.metric_id)] = Quantity(
                row.quantity, row.quality, row.completeness
            )
        out: list[tuple[datetime, InventoryLine]] = []
        for slot in sorted(quantities):
            out.extend(self._slot_rows(slot, quantities[slot]))

        return carbon_db.replace_carbon(
            self.ctx.conn,
            self.site_id,
            lo,
            hi,
            out,
            factor_sets=self.ctx.factor_sets,
            computed_at=self.ctx.now,
        )

    def _slot_rows(
        self,
        slot: datetime,
        quantities: _SlotQuantities,
    ) -> list[tuple[datetime, InventoryLine]]:
        local = slot.astimezone(self.zone)
        factors = self.years.factors(local.year)
        if factors is None:
            return []
        month = local.date().replace(day=1)
        pool = self.pool(month)
        holder_pools = pool.holder_pools() if pool is not None else {}
        # holder pools: the range starts at the month's start (extend), so nothing before
        share = self.holder_share.setdefault(month, {})
        covered = self.holder_covered.setdefault(month, {})
        try:
            result = slot_inventory(
                self.ctx.plan, quantities, factors, day=local.date(), holder_pools=holder_pools,
                holder_before_mwh=share,
            )  # fmt: skip
        except (FactorNotFound, ValueError) as exc:
            # Invalid data or configuration in one interval: no rows for it, a data event, and
            # the rest of the site goes on (no poison interval).
            self.problems.setdefault(f"interval not computed: {exc}", local.date())
            return []
        for org, left_mwh, own_mwh in result.holders:
            share[org] = share.get(org, 0.0) + left_mwh
            covered[org] = covered.get(org, 0.0) + own_mwh
        for problem in result.problems:
            self.problems.setdefault(problem, local.date())
        return [(slot, line) for line in result.rows]

    def report_problems(self) -> None:
        for problem, day in self.problems.items():
            self.ctx.log_once(f"{self.site_id}:{problem}", "%s: %s", self.site_id, problem)
            indicators_db.insert_data_event(self.ctx.conn, self.site_id, problem, day, self.ctx.now)

    def replace_claims(self) -> None:
        """The green-power claims of every month with instruments on offer."""
        for month, pool in self.pools.items():
            if not pool.offered:
                continue
            m0, _m1 = month_bounds(month, self.zone)
            own = self.holder_covered.get(month, {})
            carbon_db.replace_green_claims(
                self.ctx.conn, self.site_id, m0,
                [(c.instrument_id, c.kind, c.accepted, c.offered_mwh, c.applied_mwh, c.unused_mwh,
                  c.reason) for c in month_claims(pool, own)],
                self.ctx.now,
            )  # fmt: skip

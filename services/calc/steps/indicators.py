"""Step d: indicators of the local days, months and years the recomputed carbon touches, with
their coverage, budgets of the years, and early-warning events with hysteresis
(:mod:`carbonflow.domain.indicators.kpis`, :mod:`carbonflow.domain.flows.graph`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from carbonflow.domain.calendar import settled_periods
from carbonflow.domain.flows.graph import QUARANTINED, FlowGraph
from carbonflow.domain.indicators.coverage import Coverage, inconclusive_reason
from carbonflow.domain.indicators.kpis import (
    Event,
    budget_events,
    budget_outcomes,
    indicator_events,
    site_targets,
)
from carbonflow.domain.indicators.period import (
    accounting_keys,
    evaluate_period,
    period_coverage,
    period_inputs,
)
from carbonflow.storage import carbon as carbon_db
from carbonflow.storage import indicators as indicators_db
from carbonflow.storage import intervals as intervals_db
from carbonflow.storage import rollup
from services.calc.context import StepContext, log
from services.calc.reference import SiteYears
from services.calc.windows import Range

GRAINS = ("day", "month", "year")
EVENT_GRAINS = ("month", "year")


@dataclass(frozen=True)
class IndicatorsDone:
    written: int  # indicator rows upserted
    events_raised: int  # events new to calc_event


def recompute_indicators(
    ctx: StepContext,
    ranges: Sequence[Range],
    *,
    later: Sequence[Range] = (),
    live: Sequence[Range] = (),
) -> IndicatorsDone:
    """Indicators of the periods touching ``ranges``, but not of those a recompute's later
    chunk (``later``) touches again unless ``live`` data touch them as well: a month or year
    is evaluated once per recompute, not once per chunk (:func:`settled_periods`)."""
    periods = _periods_touching(ctx, ranges)
    settled = {grain: settled_periods(sorted(periods[grain]), later, live) for grain in GRAINS}
    if not any(settled.values()):
        return IndicatorsDone(0, 0)
    site = _SiteIndicators(ctx)
    for grain in GRAINS:
        site.evaluate(grain, settled[grain])
    indicators_db.upsert_indicators(ctx.conn, site.rows, ctx.now)
    raised = indicators_db.insert_events(
        ctx.conn, [indicators_db.event_row(ctx.plan.site_id, e, ctx.now) for e in site.events]
    )
    for e in site.events:
        log.info("early warning %s/%s: %s", ctx.plan.site_id, e.org_id or "-", e.message)
    return IndicatorsDone(len(site.rows), raised)


def _periods_touching(ctx: StepContext, ranges: Sequence[Range]) -> dict[str, set[Range]]:
    periods: dict[str, set[Range]] = {grain: set() for grain in GRAINS}
    for lo, hi in ranges:
        for grain, items in rollup.periods_touching(ctx.conn, lo, hi, ctx.plan.timezone).items():
            periods[grain].update(items)
    return periods


class _SiteIndicators:
    """One site's indicator rows and events of the cycle, period by period."""

    def __init__(self, ctx: StepContext) -> None:
        plan = ctx.plan
        self.ctx = ctx
        self.site_id = plan.site_id
        self.targets = site_targets(ctx.reference.targets, plan.document, plan.site_id)
        self.baseline = plan.document.baseline if plan.document is not None else None
        self.years = SiteYears.read(ctx.conn, ctx.reference, plan)
        self.pks = [d.device_pk for d in plan.devices]
        self.keys = accounting_keys(plan)
        self.rows: list[tuple[Any, ...]] = []
        self.events: list[Event] = []

    def evaluate(self, grain: str, periods: Sequence[Range]) -> None:
        for p0, p1 in periods:
            self._period(grain, p0, p1)

    def _period(self, grain: str, p0: datetime, p1: datetime) -> None:
        plan = self.ctx.plan
        data_end = carbon_db.last_carbon_end(self.ctx.conn, self.site_id, p0, p1)
        if data_end is None:
            return
        year = p0.astimezone(ZoneInfo(plan.timezone)).year
        factors = self.years.factors(year)
        if factors is None:
            return
        conn, tz = self.ctx.conn, plan.timezone
        devices = intervals_db.device_totals(conn, self.pks, p0, data_end, tz)
        coverage = period_coverage(
            plan, grain, (p0, p1), data_end, devices,
            intervals_db.data_presence(conn, self.keys, p0, data_end),
        )  # fmt: skip
        inputs = period_inputs(
            plan, year, (p0, data_end),
            carbon_db.carbon_totals(conn, self.site_id, p0, data_end, tz), devices, coverage,
        )  # fmt: skip
        evaluation = evaluate_period(inputs, self.targets, factors, organisations=grain != "day")
        outcomes, graph = evaluation.outcomes, evaluation.graph
        if graph is not None:
            self._quarantined(graph, p0)
        self.rows.extend(
            indicators_db.indicator_row(self.site_id, grain, p0, p1, o, inputs.completeness)
            for o in outcomes
        )
        if grain in EVENT_GRAINS:
            states = indicators_db.alert_states(conn, self.site_id, "indicator", grain, p0)
            events, after = indicator_events(
                outcomes, states, grain=grain, period_start=p0, at=data_end,
                finished=data_end >= p1,
            )  # fmt: skip
            indicators_db.upsert_alert_states(
                conn, self.site_id, "indicator", grain, p0, after, self.ctx.now
            )
            self.events.extend(events)
        if grain == "year" and graph is not None:
            self._budgets(year, (p0, p1), data_end, graph, inputs.coverage)

    def _quarantined(self, graph: FlowGraph, p0: datetime) -> None:
        """Edges the graph left out (meters in disagreeing units) as data events."""
        day = p0.astimezone(ZoneInfo(self.ctx.plan.timezone)).date()
        for note in graph.notes:
            if note.startswith(QUARANTINED):
                self.ctx.log_once(f"{self.site_id}:{note}", "%s: %s", self.site_id, note)
                indicators_db.insert_data_event(
                    self.ctx.conn, self.site_id, note, day, self.ctx.now
                )

    def _budgets(
        self, year: int, period: Range, as_of: datetime, graph: FlowGraph, coverage: Coverage | None
    ) -> None:
        """The year's budgets upserted; their crossings as events (hysteresis)."""
        consumed = {org: (v.energy_tce, v.co2_t_market) for org, v in graph.orgs.items()}
        statuses = budget_outcomes(
            self.ctx.plan.document, year, year_start=period[0], year_end=period[1],
            consumed=consumed, as_of=as_of, band=self.ctx.reference.targets.at_risk_band,
            inconclusive=inconclusive_reason(coverage),
        )  # fmt: skip
        conn, p0 = self.ctx.conn, period[0]
        indicators_db.upsert_budgets(
            conn,
            [indicators_db.budget_row(self.site_id, year, org, q, s) for org, q, s in statuses],
            self.ctx.now,
        )
        states = indicators_db.alert_states(conn, self.site_id, "budget", "year", p0)
        events, after = budget_events(
            statuses, states, period_start=p0, at=as_of, finished=as_of >= period[1]
        )
        indicators_db.upsert_alert_states(
            conn, self.site_id, "budget", "year", p0, after, self.ctx.now
        )
        self.events.extend(events)

"""The one evaluation of a period: what a site's period consists of, its indicators and those of
its organisations. Pure.

The calc service evaluates the local days, months and years it stores; the API evaluates any
other period on demand (a rolling 12 months). Both read the same stored totals and come here, so
a stored month and the same month asked for on demand are one computation:

1. the period's carbon lines are settled
   (:func:`~carbonflow.domain.inventory.balance.settle_period`);
2. device quantities are summed per (device, metric), completeness is their plain mean; the
   period's coverage (:func:`period_coverage`) is over the accounting meters;
3. the site's indicators (:func:`~carbonflow.domain.indicators.kpis.site_indicators`);
4. with organisations: the flow graph of the period attributes energy and carbon to them, and
   their indicators follow (:func:`~carbonflow.domain.indicators.kpis.org_indicators`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from carbonflow.domain.factors import TargetSet
from carbonflow.domain.flows.graph import FlowGraph, build_flows
from carbonflow.domain.indicators.coverage import Coverage, coverage_share
from carbonflow.domain.indicators.kpis import (
    Outcome,
    PeriodInputs,
    gated,
    org_indicators,
    site_indicators,
)
from carbonflow.domain.inventory.balance import settle_period
from carbonflow.domain.inventory.lines import InventoryLine
from carbonflow.domain.inventory.site_factors import SiteFactors
from carbonflow.domain.readings.quality import MeasuredTotal
from carbonflow.domain.site.plan import SitePlan, flow_metric

SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class PeriodEvaluation:
    inputs: PeriodInputs
    outcomes: list[Outcome]  # the site's, then its organisations'
    graph: FlowGraph | None  # when organisations were evaluated


_LABELS = {"year": "%Y", "month": "%Y-%m", "day": "%Y-%m-%d"}


@dataclass(frozen=True, slots=True)
class DataPresence:
    """What storage counted of a period's accounting meters: local days with data and the
    stored 15-min intervals by quality (measured / estimated / missing = gap-filled)."""

    days_with_data: int
    by_quality: Mapping[str, int]


def accounting_keys(plan: SitePlan) -> list[tuple[int, int]]:
    """(device_pk, metric_id) of the accounting meters: every active device's flow metric."""
    return [
        (d.device_pk, m.metric_id)
        for d in plan.active_devices()
        if (m := flow_metric(d)) is not None
    ]


def period_coverage(
    plan: SitePlan,
    grain: str,
    period: tuple[datetime, datetime],
    data_end: datetime,
    devices: Mapping[tuple[int, int], MeasuredTotal],
    presence: DataPresence,
) -> Coverage:
    """The coverage of [p0, p1) whose data reaches ``data_end``: ``devices`` are the totals of
    [p0, data_end) (their completeness is of that elapsed part)."""
    p0, p1 = period
    zone = ZoneInfo(plan.timezone)
    keys = accounting_keys(plan)
    share = coverage_share([devices[k].completeness for k in keys if k in devices], len(keys))
    stored = sum(presence.by_quality.values())

    def part(quality: str) -> float:
        return presence.by_quality.get(quality, 0) / stored if stored else 0.0

    local_start, local_end = p0.astimezone(zone), p1.astimezone(zone)
    label = (
        local_start.strftime(_LABELS[grain])
        if grain in _LABELS
        else f"{local_start:%Y-%m-%d %H:%M}–{local_end:%Y-%m-%d %H:%M}"
    )
    return Coverage(
        label=label,
        grain=grain,
        local_start=local_start,
        local_end=local_end,
        in_progress=data_end < p1,
        share=share,
        days_with_data=presence.days_with_data,
        measured_share=part("measured"),
        estimated_share=part("estimated"),
        gap_filled_share=part("missing"),
    )


def period_inputs(
    plan: SitePlan,
    year: int,
    period: tuple[datetime, datetime],
    totals: Sequence[InventoryLine],
    devices: Mapping[tuple[int, int], MeasuredTotal],
    coverage: Coverage | None = None,
) -> PeriodInputs:
    """What [start, end) of the site consists of: settled carbon lines, device quantities and
    their mean completeness, the period's length against its accounting year [days], and its
    coverage (None: not assessed)."""
    start, end = period
    carbon, _surplus = settle_period(totals)
    completeness = (
        math.fsum(v.completeness for v in devices.values()) / len(devices) if devices else 0.0
    )
    year_days = (date(year + 1, 1, 1) - date(year, 1, 1)).days
    return PeriodInputs(
        plan, year, (end - start).total_seconds() / SECONDS_PER_DAY, year_days, carbon,
        {k: v.quantity for k, v in devices.items()}, completeness,
        period_start=start, period_end=end, coverage=coverage,
    )  # fmt: skip


def evaluate_period(
    inputs: PeriodInputs,
    targets: TargetSet,
    factors: SiteFactors,
    *,
    organisations: bool = True,
) -> PeriodEvaluation:
    """The site's indicators of the period and, with ``organisations`` (and a site document),
    its organisations' through the period's flow graph."""
    plan = inputs.plan
    baseline = plan.document.baseline if plan.document is not None else None
    outcomes = site_indicators(inputs, targets, factors, baseline)
    graph: FlowGraph | None = None
    if organisations and plan.document is not None:
        graph = build_flows(plan, inputs.carbon, inputs.devices, factors)
        outcomes.extend(
            gated(o, inputs.coverage)
            for o in org_indicators(
                graph, kind=plan.kind, year=inputs.year, targets=targets, doc=plan.document
            )
        )
    return PeriodEvaluation(inputs, outcomes, graph)

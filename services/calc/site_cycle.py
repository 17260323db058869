"""One site in one cycle: reading windows from its dirty hours and request chunks, the three
steps (intervals, carbon, indicators), the hour/day/month rollups in between, and the queue
bookkeeping (dirty hours deleted where unchanged, requests advanced, watermarks).

All in the caller's transaction; the engine commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from carbonflow.domain.calendar import merge_ranges, overlaps, results_watermark
from carbonflow.domain.readings.device_intervals import ceil_to, floor_to
from carbonflow.domain.site.plan import DevicePlan, SitePlan, quantity_keys
from carbonflow.storage import calc_queue
from carbonflow.storage import carbon as carbon_db
from carbonflow.storage import intervals as intervals_db
from services.calc.context import StepContext
from services.calc.steps.carbon import recompute_carbon
from services.calc.steps.indicators import recompute_indicators
from services.calc.steps.intervals import IntervalsDone, PreparedIntervals, recompute_intervals
from services.calc.windows import HOUR, SLOT, Range


@dataclass(frozen=True)
class Limits:
    request_chunk: timedelta  # of a recompute request per cycle
    max_intervals: int  # about the most intervals one cycle writes for a site
    late_after: timedelta  # a reading received later than this after its time is late


@dataclass
class SiteWork:
    """What one site's cycle did so far (filled step by step: after a failure, what the steps
    before it did, as the cycle report has always counted it)."""

    intervals_written: int = 0
    carbon_rows_written: int = 0
    indicators_written: int = 0
    events_raised: int = 0
    dirty_hours_deleted: int = 0
    requests_advanced: int = 0
    read_ahead_used: int = 0  # 1 when the intervals had been read and computed ahead
    received: list[datetime] = field(default_factory=list)  # of the readings used, sorted


@dataclass
class SiteTodo:
    """What one site's cycle is to do: reading windows, carbon-only ranges, request cursors,
    and what decides which periods' indicators are final in this cycle."""

    windows: dict[tuple[int, int], list[Range]] = field(default_factory=dict)  # reading windows
    carbon: list[Range] = field(default_factory=list)  # carbon-only ranges
    advanced: list[tuple[int, datetime, bool]] = field(default_factory=list)  # id, cursor, done
    chunks: list[Range] = field(default_factory=list)  # the requests' chunks of this cycle
    later: list[Range] = field(default_factory=list)  # what the requests leave to later cycles
    live: list[Range] = field(default_factory=list)  # the dirty hours

    def add_device(self, device: DevicePlan, window: Range) -> None:
        for m in device.quantity_metrics():
            self.windows.setdefault((device.device_pk, m.metric_id), []).append(window)


def process_site(
    ctx: StepContext,
    hours: Sequence[calc_queue.DirtyHour],
    requests: Sequence[calc_queue.Request],
    limits: Limits,
    work: SiteWork,
    prepared: PreparedIntervals | None = None,
) -> None:
    """``prepared``: intervals read and computed ahead for this cycle's windows, used only if
    they are this cycle's windows (the caller makes sure no reading changed since)."""
    todo = site_todo(ctx.plan, hours, requests, limits)
    intervals = recompute_intervals(ctx, todo.windows, limits.late_after, prepared)
    work.read_ahead_used += intervals.read_ahead
    work.intervals_written += intervals.written
    work.received = intervals.received
    carbon = recompute_carbon(ctx, merge_ranges([*todo.carbon, *intervals.ranges]))
    work.carbon_rows_written += carbon.rows_written
    _rollups(ctx, intervals, carbon.ranges)
    # A request's chunks are among the ranges so that a period left to a later chunk is
    # evaluated by that chunk even when it finds no data (settled_periods).
    touched = merge_ranges([*carbon.ranges, *todo.chunks])
    if touched:
        done = recompute_indicators(ctx, touched, later=todo.later, live=todo.live)
        work.indicators_written += done.written
        work.events_raised += done.events_raised
    work.dirty_hours_deleted += calc_queue.delete_dirty_hours(ctx.conn, hours)
    for request_id, cursor, finished in todo.advanced:
        calc_queue.advance_request(ctx.conn, request_id, cursor, finished)
        work.requests_advanced += 1
    calc_queue.save_site_state(
        ctx.conn, ctx.plan.site_id,
        results_through=_watermark(ctx, carbon.ranges),
        last_received_at=max(intervals.received) if intervals.received else None,
    )  # fmt: skip


def _watermark(ctx: StepContext, ranges: Sequence[Range]) -> datetime | None:
    """The end of the recomputed ranges, capped at the cycle's time and at the end of the site's
    newest interval (a green-power change recomputes whole years, the future included)."""
    if not ranges:
        return None
    keys = quantity_keys(ctx.plan.devices)
    newest = intervals_db.last_interval_end(ctx.conn, keys, min(lo for lo, _hi in ranges))
    return results_watermark(ranges, ctx.now, newest)


def site_todo(
    plan: SitePlan,
    hours: Sequence[calc_queue.DirtyHour],
    requests: Sequence[calc_queue.Request],
    limits: Limits,
) -> SiteTodo:
    """Reading windows of the dirty hours and of a chunk of every request; the chunks are cut
    so that the site's cycle writes at most about ``limits.max_intervals`` intervals."""
    todo = SiteTodo()
    for h in hours:
        device = plan.by_pk.get(h.device_pk)
        if device is not None:
            todo.add_device(device, (h.hour_start, h.hour_start + HOUR))
            todo.live.append((h.hour_start, h.hour_start + HOUR))
    metrics = sum(len(d.quantity_metrics()) for d in plan.devices)
    budget = SLOT * max(4, limits.max_intervals // max(1, metrics))
    for r in requests:
        chunk_end = min(r.range_end, r.cursor + min(limits.request_chunk, budget))
        if r.layer == "intervals":
            for device in _request_devices(plan, r):
                todo.add_device(device, (r.cursor, chunk_end))
        else:
            todo.carbon.append((floor_to(r.cursor, SLOT), ceil_to(chunk_end, SLOT)))
        todo.advanced.append((r.request_id, chunk_end, chunk_end >= r.range_end))
        todo.chunks.append((r.cursor, chunk_end))
        if chunk_end < r.range_end:
            todo.later.append((chunk_end, r.range_end))
    return todo


def next_windows(
    plan: SitePlan, requests: Sequence[calc_queue.Request], limits: Limits
) -> dict[tuple[int, int], list[Range]]:
    """The reading windows of the site's next cycle if nothing else comes in (no dirty hour,
    no new request): the next chunk of every request this cycle does not finish."""
    ahead = [
        replace(r, cursor=cursor)
        for r, (_id, cursor, finished) in zip(
            requests, site_todo(plan, [], requests, limits).advanced, strict=True
        )
        if not finished
    ]
    return site_todo(plan, [], ahead, limits).windows


def _request_devices(plan: SitePlan, r: calc_queue.Request) -> list[DevicePlan]:
    """The devices of a request: all of the site's, or its one device if it still exists."""
    if r.device_pk is None:
        return list(plan.devices)
    one = plan.by_pk.get(r.device_pk)
    return [one] if one else []


def _rollups(ctx: StepContext, intervals: IntervalsDone, carbon: Sequence[Range]) -> None:
    """Hour, day and month rollups of the recomputed intervals and carbon (the hour rows
    computed ahead used when the intervals are one range, as a recompute's chunk is)."""
    merged = merge_ranges(intervals.ranges)
    hours = intervals.hours if len(merged) == 1 else None
    for lo, hi in merged:
        pks = sorted(pk for pk, ranges in intervals.touched.items() if overlaps((lo, hi), ranges))
        intervals_db.rollup_intervals(ctx.conn, pks, lo, hi, ctx.plan.timezone, hours)
    for lo, hi in carbon:
        carbon_db.rollup_carbon(ctx.conn, ctx.plan.site_id, lo, hi, ctx.plan.timezone)

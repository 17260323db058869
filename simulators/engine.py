"""The simulation as one deterministic stream — pure: configuration in, messages and truth out.

:class:`Simulation` runs the site's physics (:mod:`simulators.plant`) chunk by chunk, turns the
true quantities into readings (:mod:`simulators.meters`), batches them into messages and applies
the delivery faults (:mod:`simulators.faults`), and accumulates the truth per 15-minute interval
(:mod:`simulators.oracle`). :meth:`Simulation.stream` yields, in simulated-time order:

- :class:`~simulators.faults.Outgoing` messages, each with the simulated time it is due;
- :class:`OracleRecord` s: an interval's truth once the stream has passed its end, and register
  events (resets, replacements, rollovers) when they happen.

The same configuration (seed, start, step, fleet, faults, batch size, pacing) gives the same
stream, byte for byte. Nothing here touches the network, the clock or files: the shell
(:mod:`simulators.runner`) paces, publishes and writes.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from carbonflow.domain.site.model import SiteDocument, document_sha256
from simulators.assumptions import Assumptions, default_assumptions
from simulators.clock import make_calendar
from simulators.faults import Delivery, Outgoing, Tally, longest_disruption_h
from simulators.faultspec import FaultSpec
from simulators.ledger import ledger_records
from simulators.meters import CounterEvent, Meter
from simulators.oracle import FORMAT, INTERVAL_S, OracleBuilder, device_record
from simulators.plant import SitePlant, clone_id
from simulators.randomness import stream
from simulators.scaling import Fleet, fleet

MAX_STEP = timedelta(minutes=15)
# Readings held in memory per chunk (devices × steps); a chunk is at most a day.
_CHUNK_READINGS = 200_000
REALTIME = 1.0


def parse_speed(text: str) -> float:
    """``realtime`` (1), ``max`` (as fast as possible: inf), or a factor (``60``, ``60x``)."""
    value = text.strip().lower()
    if value == "realtime":
        return REALTIME
    if value == "max":
        return math.inf
    try:
        factor = float(value.removesuffix("x"))
    except ValueError:
        raise ValueError(f"speed {text!r}: realtime, max, or a factor such as 60") from None
    if factor <= 0:
        raise ValueError(f"speed {text!r} must be positive")
    return factor


@dataclass(frozen=True)
class SimConfig:
    """What to simulate. Times are simulated; ``speed`` says how fast they pass on the wall."""

    site: SiteDocument
    start: datetime
    duration: timedelta | None = None  # None: until stopped
    step: timedelta = timedelta(minutes=1)
    speed: float = REALTIME  # simulated seconds per wall second; inf = as fast as possible
    seed: int = 0
    devices: int | None = None  # scale the fleet to this many devices (None: as written)
    faults: FaultSpec = field(default_factory=FaultSpec)
    batch_size: int = 1  # reading sets per message (the contract's batch form)
    retired_device: str | None = None  # a registered, decommissioned device (inactive_device)
    max_payload_bytes: int = 262144  # ingest's limit (payload_too_large)
    retention_days: int = 3650  # ingest's retention window (too_old)
    send_serial: bool = True  # every reading set carries the meter's serial
    # Readings from this time on are published step by step, as a live device would, even at
    # max speed (a back-fill that reaches the present goes on live without batching delays).
    live_from: datetime | None = None
    # Registers to go on from (device id → counter metric → raw value, before the multiplier),
    # e.g. the stored readings when a demo restarts; devices not listed start afresh.
    resume_registers: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise ValueError("start must carry a time zone (e.g. 2026-10-01T00:00+08:00)")
        step_s = self.step.total_seconds()
        if step_s < 1 or step_s != int(step_s) or INTERVAL_S % int(step_s):
            raise ValueError(
                f"step {self.step} must be whole seconds dividing 15 min (1m, 5m, 15m, 30s …)"
            )
        if self.start.timestamp() % step_s:
            raise ValueError(f"start {self.start.isoformat()} is not on a {self.step} boundary")
        if self.duration is not None and (
            self.duration <= timedelta(0) or self.duration.total_seconds() % step_s
        ):
            raise ValueError(f"duration {self.duration} must be a positive multiple of the step")
        if self.speed <= 0:
            raise ValueError("speed must be positive")
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if self.live_from is not None and self.live_from.tzinfo is None:
            raise ValueError("live_from must carry a time zone")

    @property
    def step_s(self) -> float:
        return self.step.total_seconds()

    @property
    def steps(self) -> int | None:
        return None if self.duration is None else round(self.duration / self.step)

    @property
    def end(self) -> datetime | None:
        return None if self.duration is None else self.start + self.duration

    @property
    def paced(self) -> bool:
        """Paced runs publish every step as it comes due (one reading set per message)."""
        return math.isfinite(self.speed)

    def check_oracle(self) -> None:
        """The oracle needs whole 15-minute intervals."""
        if self.start.timestamp() % INTERVAL_S:
            raise ValueError(f"the oracle needs a start on a 15-min boundary, not {self.start}")
        if self.duration is not None and self.duration.total_seconds() % INTERVAL_S:
            raise ValueError("the oracle needs a duration of whole 15-min intervals")


@dataclass(frozen=True, slots=True)
class OracleRecord:
    record: dict[str, Any]
    at_s: float  # simulated time the record describes the past up to


Item = Outgoing | OracleRecord


def replica_of(device_id: str, base_ids: frozenset[str]) -> int:
    if device_id in base_ids:
        return 0
    head, _sep, tail = device_id.rpartition("-r")
    if head in base_ids and tail.isdigit():
        return int(tail)
    raise ValueError(f"{device_id!r} is not a device of the fleet")


class Simulation:
    """One run (or one worker's share of the replicas of a run); see the module doc."""

    def __init__(
        self,
        config: SimConfig,
        *,
        replicas: Sequence[int] | None = None,
        oracle: bool = False,
        assumptions: Assumptions | None = None,
    ) -> None:
        self.config = config
        self.assumptions = assumptions or default_assumptions()
        self.fleet: Fleet = fleet(config.site, config.devices)
        chosen = set(range(self.fleet.replicas) if replicas is None else replicas)
        base_ids = frozenset(d.id for d in config.site.devices)
        self.published = [d for d in self.fleet.devices if replica_of(d, base_ids) in chosen]
        site = config.site.site
        self.site_id = site.id
        self.tz = ZoneInfo(site.timezone)
        step_s = config.step_s
        self.plant = SitePlant(
            config.site, config.seed, step_s, sorted(chosen), assumptions=self.assumptions
        )
        by_id = {d.id: d for d in self.fleet.doc.devices}
        self.devices = {d: by_id[d] for d in self.published}
        disruption_h = longest_disruption_h(step_s, config.batch_size)
        self.meters = {
            d: Meter(
                self.site_id,
                d,
                device,
                stream(config.seed, self.site_id, d, "meter"),
                step_s=step_s,
                faults=config.faults,
                disruption_hours=disruption_h,
                send_serial=config.send_serial,
            )
            for d, device in self.devices.items()
        }
        for device_id, registers in config.resume_registers.items():
            meter = self.meters.get(device_id)
            if meter is not None:
                meter.resume(registers)
        self.delivery = Delivery(
            config.faults,
            site_id=self.site_id,
            devices=self.devices,
            seed=config.seed,
            step_s=step_s,
            batch_size=config.batch_size,
            tz=self.tz,
            retired_device=config.retired_device,
            max_payload_bytes=config.max_payload_bytes,
            retention_days=config.retention_days,
        )
        self.oracle: OracleBuilder | None = None
        if oracle:
            config.check_oracle()
            self.oracle = OracleBuilder(self.fleet.doc, self.published, self.tz)
        self.events: list[CounterEvent] = []
        per_day = round(86400 / step_s)
        per_interval = round(INTERVAL_S / step_s)
        fit = max(1, _CHUNK_READINGS // max(1, len(self.published)))
        self._chunk_steps = min(per_day, max(per_interval, fit // per_interval * per_interval))
        self.reached_s = config.start.timestamp()  # simulated time the stream has passed

    # --- records -----------------------------------------------------------------------------

    def header_records(self) -> list[dict[str, Any]]:
        c = self.config
        header = {
            "record": "header",
            "format": FORMAT,
            "site": self.site_id,
            "site_name": c.site.site.name,
            "site_sha256": document_sha256(self.fleet.doc),
            "timezone": c.site.site.timezone,
            "seed": c.seed,
            "start": c.start.astimezone(self.tz).isoformat(),
            "end": c.end.astimezone(self.tz).isoformat() if c.end else None,
            "step_s": c.step_s,
            "interval_s": INTERVAL_S,
            "devices": len(self.published),
            "replicas": self.fleet.replicas,
            "batch_size": c.batch_size,
            "faults": c.faults.as_dict(),
            "faults_spec": c.faults.describe(),
            "assumptions_version": self.assumptions.version,
            "units": "quantities after the multiplier, in each metric's unit; events raw",
        }
        return [header, *(device_record(self.devices[d]) for d in self.published)]

    def final_records(self, tally: Tally) -> list[dict[str, Any]]:
        """The summary (what was published and injected, what ingest should hold) and the
        expected ledgers of the intervals written so far."""
        injected = dict(sorted(self.delivery.injected.items()))
        for e in self.events:
            injected[e.kind] = injected.get(e.kind, 0) + 1
        summary = {
            "record": "summary",
            "reached": datetime.fromtimestamp(self.reached_s, tz=self.tz).isoformat(),
            "published": tally.record(),
            "injected": injected,
            "expected": {
                "stored_readings": tally.stored_readings,
                "rejections": dict(sorted(tally.rejections.items())),
            },
        }
        out = [summary]
        if self.oracle is not None:
            out.extend(
                ledger_records(self.fleet.doc, self.oracle.period, self.oracle.months, self.tz)
            )
        return out

    def _event_record(self, e: CounterEvent) -> dict[str, Any]:
        return {
            "record": "event",
            "ts": datetime.fromtimestamp(e.ts_s, tz=self.tz).isoformat(),
            **e.record(),
        }

    # --- the stream --------------------------------------------------------------------------

    def stream(self) -> Generator[Item, None, None]:
        c = self.config
        step_s, start_s = c.step_s, c.start.timestamp()
        total = c.steps
        delivery, meters, tz = self.delivery, self.meters, self.tz
        calendar = self.assumptions.calendar
        live_s = c.live_from.timestamp() if c.live_from is not None else math.inf
        k = 0
        while total is None or k < total:
            n = self._chunk_steps if total is None else min(self._chunk_steps, total - k)
            chunk_start = start_s + k * step_s
            cal = make_calendar(chunk_start, n, step_s, self.plant.ctx.tz, calendar)
            truth = self.plant.advance(cal)
            if self.oracle is not None:
                self.oracle.add_chunk(chunk_start, step_s, truth)
            if k == 0:
                t0 = datetime.fromtimestamp(start_s, tz=tz)
                for d, meter in meters.items():
                    first = meter.first_reading(truth[d])
                    if first:
                        delivery.add(
                            d,
                            start_s,
                            t0,
                            first,
                            meter.serial if meter.counters and c.send_serial else None,
                        )
                if c.paced:
                    delivery.flush(start_s)
                yield from delivery.release(start_s)
            reading_s = chunk_start + step_s * (1 + np.arange(n, dtype=np.float64))
            blocks = [(d, meters[d].block(truth[d], reading_s)) for d in self.published]
            events = sorted((e for _d, b in blocks for e in b.events), key=lambda e: e.ts_s)
            self.events.extend(events)
            event_i = 0
            times = reading_s.tolist()
            for j, t_s in enumerate(times):
                ts = datetime.fromtimestamp(t_s, tz=tz)
                for d, block in blocks:
                    serial = block.serials[j] if block.serials is not None else None
                    delivery.add(d, t_s, ts, block.values[j], serial)
                if c.paced or t_s >= live_s:
                    delivery.flush(t_s)
                yield from delivery.release(t_s)
                self.reached_s = t_s
                while event_i < len(events) and events[event_i].ts_s <= t_s:
                    yield OracleRecord(self._event_record(events[event_i]), t_s)
                    event_i += 1
                if self.oracle is not None and t_s % INTERVAL_S == 0:
                    for record in self.oracle.ready(t_s):
                        yield OracleRecord(record, t_s)
            k += n
        yield from delivery.drain()


def published_ids(site: SiteDocument, devices: int | None) -> list[str]:
    """The device ids a run publishes (for the registry and for tests)."""
    return list(fleet(site, devices).devices)


def base_device_id(device_id: str, site: SiteDocument) -> str:
    """The site-file id a (possibly cloned) device id stands for."""
    base_ids = frozenset(d.id for d in site.devices)
    r = replica_of(device_id, base_ids)
    return device_id if r == 0 else device_id[: -len(clone_id("", r))]

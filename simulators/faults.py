"""Delivery faults: the clean reading stream → the messages a real fleet would deliver — pure.

:class:`Delivery` takes each device's readings in time order, batches them into messages (the
contract's batch form: a JSON array of reading sets for one device, at most ``batch_size``), and
applies the faults of a :class:`~simulators.faultspec.FaultSpec`: gaps, clock skew, late
batches, duplicates, reordering, messages on wrong topics and malformed extra messages. Every
payload and topic is built with :mod:`carbonflow.domain.readings.contract`.

Each message carries what ingest should do with it (``kind``, ``readings`` it should store,
the one rejection ``reason`` it should record), so a run can be compared with the database:

- a ``valid`` message's readings are stored once (its first delivery);
- a ``duplicate`` stores nothing new and rejects nothing;
- a ``malformed`` or ``rerouted`` message produces exactly one ``rejected_reading`` row.

Malformed messages that depend on what was delivered before them (``counter_backwards``: a
reading 1 s after the newest delivered one, 5 % below it; ``duplicate_conflict``: a new value
for the reading just delivered) are built when the message they follow is released, from the
per-device record of what was delivered — so ingest's counter guard sees exactly that.

Disruptions (gaps, late batches) of one device are at least :data:`QUIET_AFTER_DISRUPTION_S`
apart, which bounds how far apart two readings the ingest counter guard compares can be
(:func:`longest_disruption_h`; the meter model only resets registers that are large enough).
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import zlib
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from carbonflow.domain import units
from carbonflow.domain.readings.contract import (
    Reason,
    device_topic,
    encode,
    encode_batch,
    reading_set_document,
)
from carbonflow.domain.site.model import Device, MetricKind
from simulators.faultspec import FaultSpec
from simulators.randomness import per_step_probability

GAP_S = (300.0, 4 * 3600.0)  # offline for 5 min – 4 h (log-uniform)
LATE_S = (3600.0, 6 * 3600.0)  # a late batch arrives 1–6 h late
SKEW_S = (5.0, 120.0)  # clock off by 5 s – 2 min (and at most a quarter of the step)
SKEW_DURATION_S = (3600.0, 24 * 3600.0)
DUPLICATE_DELAY_S = 900.0  # a duplicate arrives within 15 min
QUIET_AFTER_DISRUPTION_S = 12 * 3600.0  # no new gap or late batch this soon after one ends
FUTURE_YEARS = 50  # future_timestamp: a device clock set decades ahead
TOO_OLD_EXTRA_DAYS = 400  # too_old: this far beyond the retention window
BACKWARDS_FRACTION = 0.95  # counter_backwards: 5 % below the newest delivered reading
_YEAR_S = 365.25 * 86400.0
_BOGUS_METRIC = "sim_bogus_kwh"


def longest_disruption_h(step_s: float, batch_size: int) -> float:
    """The longest time between two readings of a device that ingest's counter guard may
    compare [h]: a gap or a late batch, a reordered and a lost message, plus a step."""
    message_s = batch_size * step_s
    return (max(GAP_S[1], LATE_S[1]) + 3 * message_s + step_s) / 3600.0


class MessageKind(StrEnum):
    VALID = "valid"  # readings to store
    DUPLICATE = "duplicate"  # a valid message delivered again: nothing new
    MALFORMED = "malformed"  # an extra message ingest rejects (one row)
    REROUTED = "rerouted"  # a valid message on a wrong topic: rejected (one row), readings lost


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One MQTT message to publish, and what ingest should make of it."""

    topic: str
    payload: bytes
    device: str
    release_s: float  # simulated time at which it is due
    kind: MessageKind
    reading_sets: int
    readings: int  # values in the message
    reason: Reason | None = None  # the rejection it should produce (malformed, rerouted)

    @property
    def stored_readings(self) -> int:
        """Readings ingest should store because of this message."""
        return self.readings if self.kind is MessageKind.VALID else 0


@dataclass(slots=True)
class _Queued:
    message: Outgoing
    sets: list[dict[str, Any]]
    set_times_s: list[float]  # published time of each reading set
    malformed_after: bool = False


@dataclass(slots=True)
class _DeviceState:
    device_id: str
    topic: str
    rng: random.Random
    counters: frozenset[str]
    intervals: frozenset[str]
    gauges: tuple[str, ...]
    pending: list[dict[str, Any]] = field(default_factory=list)
    pending_times_s: list[float] = field(default_factory=list)
    pending_values: int = 0
    seq: int = 0
    gap_until_s: float = -math.inf
    quiet_until_s: float = -math.inf
    late_until_s: float = -math.inf
    skew_s: float = 0.0
    skew_until_s: float = -math.inf
    carry: dict[str, float] = field(default_factory=dict)
    held: _Queued | None = None
    delivered: dict[str, tuple[float, float]] = field(default_factory=dict)  # counter → (ts, v)


class Delivery:
    """Batches readings into messages and applies the delivery faults (see the module doc)."""

    def __init__(
        self,
        spec: FaultSpec,
        *,
        site_id: str,
        devices: Mapping[str, Device],
        seed: int,
        step_s: float,
        batch_size: int,
        tz: ZoneInfo,
        retired_device: str | None = None,
        max_payload_bytes: int = 262144,
        retention_days: int = 3650,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.spec = spec
        self.site_id = site_id
        self.step_s = step_s
        self.batch_size = batch_size
        self.tz = tz
        self.retired_device = retired_device
        self.max_payload_bytes = max_payload_bytes
        self.retention_days = retention_days
        self.injected: Counter[str] = Counter()
        self._heap: list[tuple[float, int, _Queued]] = []
        self._order = itertools.count()
        self._p_gap = per_step_probability(_hourly_rate(spec.gap), step_s)
        self._p_skew = per_step_probability(_hourly_rate(spec.skew), step_s)
        self._late_rate_h = _hourly_rate(spec.late)
        self._max_skew_s = min(SKEW_S[1], step_s / 4.0)
        self._states: dict[str, _DeviceState] = {}
        for device_id, device in devices.items():
            counters = frozenset(
                m for m, s in device.metrics.items() if s.kind is MetricKind.COUNTER
            )
            intervals = frozenset(
                m for m, s in device.metrics.items() if s.kind is MetricKind.INTERVAL
            )
            gauges = tuple(m for m, s in device.metrics.items() if s.kind is MetricKind.GAUGE)
            seed_int = (seed * 1_000_003) ^ _crc(site_id, device_id, "delivery")
            self._states[device_id] = _DeviceState(
                device_id=device_id,
                topic=device_topic(site_id, device_id),
                rng=random.Random(seed_int),
                counters=counters,
                intervals=intervals,
                gauges=gauges,
            )

    # --- readings in -----------------------------------------------------------------------

    def add(
        self,
        device_id: str,
        ts_s: float,
        ts: datetime,
        values: Mapping[str, float],
        serial: str | None = None,
    ) -> None:
        """One reading set of ``device_id`` taken at ``ts`` (``ts_s`` epoch seconds)."""
        st = self._states[device_id]
        rng = st.rng
        if ts_s < st.gap_until_s or (
            self._p_gap > 0 and ts_s >= st.quiet_until_s and rng.random() < self._p_gap
        ):
            if ts_s >= st.gap_until_s:  # a new gap starts with this reading
                length = math.exp(rng.uniform(math.log(GAP_S[0]), math.log(GAP_S[1])))
                st.gap_until_s = ts_s + length
                st.quiet_until_s = st.gap_until_s + QUIET_AFTER_DISRUPTION_S
                self.injected["gap"] += 1
            self.injected["gap_readings"] += 1
            for m in st.intervals:
                if m in values:
                    st.carry[m] = st.carry.get(m, 0.0) + values[m]
            return
        if ts_s >= st.skew_until_s:
            st.skew_s = 0.0
            if self._p_skew > 0 and self._max_skew_s >= SKEW_S[0] and rng.random() < self._p_skew:
                magnitude = rng.uniform(SKEW_S[0], self._max_skew_s)
                st.skew_s = magnitude if rng.random() < 0.5 else -magnitude
                st.skew_until_s = ts_s + rng.uniform(*SKEW_DURATION_S)
                self.injected["skew"] += 1
        published_s = ts_s
        if st.skew_s:
            published_s = ts_s + st.skew_s
            ts = ts + timedelta(seconds=st.skew_s)
            self.injected["skewed_readings"] += 1
        if st.carry:
            merged = dict(values)
            for m, extra in st.carry.items():
                if m in merged:
                    merged[m] = round(merged[m] + extra, 9)
            values = merged
            st.carry = {}
        doc = reading_set_document(ts, values, seq=st.seq, serial=serial)
        st.seq += 1
        st.pending.append(doc)
        st.pending_times_s.append(published_s)
        st.pending_values += len(values)
        if len(st.pending) >= self.batch_size:
            self._flush(st, ts_s)

    def flush(self, now_s: float) -> None:
        """Every device's pending readings into messages (called each step when paced)."""
        for st in self._states.values():
            if st.pending:
                self._flush(st, now_s)

    # --- messages out ----------------------------------------------------------------------

    def release(self, until_s: float) -> Iterator[Outgoing]:
        """Messages due at or before ``until_s`` (simulated time), in delivery order."""
        heap = self._heap
        while heap and heap[0][0] <= until_s:
            _release, _order, item = heapq.heappop(heap)
            yield from self._deliver(item)

    def drain(self) -> Iterator[Outgoing]:
        """Everything still pending or held: the end of a run."""
        for st in self._states.values():
            if st.pending:
                self._flush(st, st.pending_times_s[-1])
            if st.held is not None:
                self._push(st.held.message.release_s, st.held)
                st.held = None
        while self._heap:
            _release, _order, item = heapq.heappop(self._heap)
            yield from self._deliver(item)

    @property
    def queued(self) -> int:
        return len(self._heap)

    # --- internals -------------------------------------------------------------------------

    def _push(self, release_s: float, item: _Queued) -> None:
        heapq.heappush(self._heap, (release_s, next(self._order), item))

    def _flush(self, st: _DeviceState, produced_s: float) -> None:
        sets, times = st.pending, st.pending_times_s
        payload = encode(sets[0]) if len(sets) == 1 else encode_batch(sets)
        values = st.pending_values
        st.pending, st.pending_times_s, st.pending_values = [], [], 0
        rng, spec = st.rng, self.spec
        span_h = len(sets) * self.step_s / 3600.0
        release_s = produced_s
        if produced_s < st.late_until_s:
            release_s = st.late_until_s
        elif (
            self._late_rate_h > 0
            and produced_s >= st.quiet_until_s
            and rng.random() < 1.0 - math.exp(-self._late_rate_h * span_h)
        ):
            st.late_until_s = produced_s + rng.uniform(*LATE_S)
            st.quiet_until_s = st.late_until_s + QUIET_AFTER_DISRUPTION_S
            release_s = st.late_until_s
            self.injected["late"] += 1
        if produced_s < st.late_until_s and release_s == st.late_until_s:
            self.injected["late_messages"] += 1
        kind, topic, reason = MessageKind.VALID, st.topic, None
        if spec.wrong_topic > 0 and rng.random() < spec.wrong_topic:
            reason = rng.choice(_WRONG_TOPIC)
            topic = self._wrong_topic(st.device_id, reason)
            kind = MessageKind.REROUTED
            self.injected[f"wrong_topic:{reason.value}"] += 1
        message = Outgoing(topic, payload, st.device_id, release_s, kind, len(sets), values, reason)
        item = _Queued(message, sets, times)
        if kind is MessageKind.VALID:
            item.malformed_after = spec.malformed > 0 and rng.random() < spec.malformed
        held, st.held = st.held, None
        if (
            kind is MessageKind.VALID
            and held is None
            and spec.reorder > 0
            and rng.random() < spec.reorder
        ):
            st.held = item  # delivered after the device's next message
            self.injected["reorder"] += 1
            return
        self._push(release_s, item)
        if held is not None:
            later = max(held.message.release_s, release_s)
            held.message = _at(held.message, later)
            self._push(later, held)
        if kind is MessageKind.VALID and spec.duplicate > 0 and rng.random() < spec.duplicate:
            again = release_s + rng.uniform(0.0, DUPLICATE_DELAY_S)
            copy = Outgoing(
                topic, payload, st.device_id, again, MessageKind.DUPLICATE, len(sets), values
            )
            self._push(again, _Queued(copy, sets, times))
            self.injected["duplicate"] += 1

    def _deliver(self, item: _Queued) -> Iterator[Outgoing]:
        message = item.message
        yield message
        if message.kind in (MessageKind.VALID, MessageKind.DUPLICATE):
            st = self._states[message.device]
            for doc, ts_s in zip(item.sets, item.set_times_s, strict=True):
                for m, v in doc["values"].items():
                    if m in st.counters:
                        seen = st.delivered.get(m)
                        if seen is None or ts_s > seen[0]:
                            st.delivered[m] = (ts_s, float(v))
        if item.malformed_after:
            extra = self._malformed(item)
            if extra is not None:
                self.injected[f"malformed:{extra.reason}"] += 1
                yield extra

    def _wrong_topic(self, device_id: str, reason: Reason) -> str:
        site, device = self.site_id[:58], device_id[:58]
        if reason is Reason.UNKNOWN_TOPIC:
            return device_topic(self.site_id, device_id).rsplit("/", 1)[0]  # no /telemetry
        if reason is Reason.UNKNOWN_SITE:
            return device_topic(f"{site}-mis", f"{device}-mis")
        if reason is Reason.UNKNOWN_DEVICE:
            return device_topic(self.site_id, f"{device}-mis")
        if reason is Reason.WRONG_SITE:
            return device_topic(f"{site}-old", device_id)
        raise ValueError(f"{reason} is not a wrong-topic reason")

    def _malformed(self, item: _Queued) -> Outgoing | None:
        """One extra message after ``item`` that ingest must reject with one row."""
        st = self._states[item.message.device]
        last = item.sets[-1]
        last_s = item.set_times_s[-1]
        values: dict[str, float] = last["values"]
        usable = [r for r in self.spec.reasons if self._usable(r, st)]
        if not usable:
            return None
        reason = st.rng.choice(usable)
        topic = st.topic
        ts_text: str = last["ts"]
        one = {"ts": ts_text, "values": values}
        payload: bytes
        if reason is Reason.PAYLOAD_TOO_LARGE:
            body = encode(one)
            payload = body + b" " * (self.max_payload_bytes + 1 - len(body))
        elif reason is Reason.MALFORMED_JSON:
            body = encode(one)
            payload = body[: max(1, len(body) // 2)]
        elif reason is Reason.INVALID_SCHEMA:
            payload = encode({**one, "valeus": values})
        elif reason is Reason.INVALID_VALUE:
            metric = next(iter(values))
            payload = encode({"ts": ts_text, "values": {metric: str(values[metric])}})
        elif reason is Reason.INVALID_TIMESTAMP:
            naive = ts_text[:19]  # RFC 3339 without its offset
            payload = encode({"ts": naive, "values": values})
        elif reason in (Reason.UNKNOWN_TOPIC, Reason.UNKNOWN_SITE, Reason.UNKNOWN_DEVICE,
                        Reason.WRONG_SITE):  # fmt: skip
            topic = self._wrong_topic(st.device_id, reason)
            payload = encode(one)
        elif reason is Reason.INACTIVE_DEVICE:
            assert self.retired_device is not None
            topic = device_topic(self.site_id, self.retired_device)
            payload = encode(one)
        elif reason is Reason.UNKNOWN_METRIC:
            payload = encode({"ts": ts_text, "values": {_BOGUS_METRIC: 1.0}})
        elif reason is Reason.UNIT_MISMATCH:
            metric = next(iter(values))
            wrong = "kWh" if units.metric_unit(metric).symbol == "degC" else "degC"
            payload = encode(
                {"ts": ts_text, "values": {metric: {"value": values[metric], "unit": wrong}}}
            )
        elif reason is Reason.FUTURE_TIMESTAMP:
            ahead = self._at(last_s + FUTURE_YEARS * _YEAR_S)
            payload = encode(reading_set_document(ahead, values))
        elif reason is Reason.TOO_OLD:
            old_s = last_s - (self.retention_days + TOO_OLD_EXTRA_DAYS) * 86400.0
            payload = encode(reading_set_document(self._at(old_s), values))
        elif reason is Reason.COUNTER_BACKWARDS:
            metric, (seen_s, seen_v) = next(
                (m, sv) for m, sv in sorted(st.delivered.items()) if sv[1] > 1.0
            )
            dip = {metric: round(seen_v * BACKWARDS_FRACTION, 9)}
            payload = encode(reading_set_document(self._at(seen_s + 1.0), dip))
        elif reason is Reason.DUPLICATE_CONFLICT:
            gauges = [m for m in st.gauges if m in values]
            metric = gauges[0] if gauges else next(iter(values))
            payload = encode({"ts": ts_text, "values": {metric: values[metric] + 1.0}})
        else:
            raise AssertionError(f"no builder for {reason}")
        return Outgoing(
            topic, payload, st.device_id, item.message.release_s, MessageKind.MALFORMED, 1,
            0, reason,
        )  # fmt: skip

    def _usable(self, reason: Reason, st: _DeviceState) -> bool:
        if reason is Reason.INACTIVE_DEVICE:
            return self.retired_device is not None
        if reason is Reason.COUNTER_BACKWARDS:
            return any(v > 1.0 for _ts, v in st.delivered.values())
        return True

    def _at(self, epoch_seconds: float) -> datetime:
        return datetime.fromtimestamp(epoch_seconds, tz=self.tz)


_WRONG_TOPIC: tuple[Reason, ...] = (
    Reason.UNKNOWN_TOPIC,
    Reason.UNKNOWN_SITE,
    Reason.UNKNOWN_DEVICE,
    Reason.WRONG_SITE,
)


def _at(message: Outgoing, release_s: float) -> Outgoing:
    return Outgoing(
        message.topic,
        message.payload,
        message.device,
        release_s,
        message.kind,
        message.reading_sets,
        message.readings,
        message.reason,
    )


def _hourly_rate(probability_per_hour: float) -> float:
    """Poisson rate per hour whose probability of at least one event per hour is ``p``."""
    return -math.log1p(-min(probability_per_hour, 0.999999))


def _crc(*names: str) -> int:
    return zlib.crc32("/".join(names).encode("utf-8"))


@dataclass
class Tally:
    """What a stream of messages should leave in the database, and what it published."""

    messages: int = 0
    reading_sets: int = 0
    readings: int = 0
    bytes: int = 0
    stored_readings: int = 0  # readings ingest should store
    duplicate_messages: int = 0
    rejections: Counter[str] = field(default_factory=Counter)  # reason → rows

    def add(self, message: Outgoing) -> None:
        self.messages += 1
        self.reading_sets += message.reading_sets
        self.readings += message.readings
        self.bytes += len(message.payload)
        self.stored_readings += message.stored_readings
        if message.kind is MessageKind.DUPLICATE:
            self.duplicate_messages += 1
        if message.reason is not None:
            self.rejections[message.reason.value] += 1

    def merge(self, other: Tally) -> None:
        self.messages += other.messages
        self.reading_sets += other.reading_sets
        self.readings += other.readings
        self.bytes += other.bytes
        self.stored_readings += other.stored_readings
        self.duplicate_messages += other.duplicate_messages
        self.rejections.update(other.rejections)

    def record(self) -> dict[str, Any]:
        return {
            "messages": self.messages,
            "reading_sets": self.reading_sets,
            "readings": self.readings,
            "bytes": self.bytes,
            "stored_readings": self.stored_readings,
            "duplicate_messages": self.duplicate_messages,
            "rejections": dict(sorted(self.rejections.items())),
        }

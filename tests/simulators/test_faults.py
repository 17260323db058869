"""Delivery faults and the fault spec: each fault does what it says, the truth is untouched, and
every malformed message is what the MQTT contract rejects, exactly once."""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections import Counter
from datetime import UTC, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import pytest

from carbonflow.domain.readings.contract import ContractError, Reason, parse_message, parse_topic
from carbonflow.domain.site.model import SiteDocument
from carbonflow.sites.loader import EXAMPLES, load_site_file
from simulators.engine import OracleRecord, SimConfig, Simulation
from simulators.faults import (
    LATE_S,
    SKEW_S,
    Delivery,
    MessageKind,
    Outgoing,
    Tally,
)
from simulators.faultspec import MALFORMED_REASONS, PRESETS, FaultSpec

TZ = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 10, 5, tzinfo=TZ)
# Reasons a message alone can show (no registry needed): the contract parser rejects them.
PARSE_REASONS = {
    Reason.PAYLOAD_TOO_LARGE,
    Reason.MALFORMED_JSON,
    Reason.INVALID_SCHEMA,
    Reason.INVALID_VALUE,
    Reason.INVALID_TIMESTAMP,
    Reason.UNKNOWN_TOPIC,
}


@cache
def mine() -> SiteDocument:
    return load_site_file(EXAMPLES / "shanxi-mine.yaml")


def stream(config: SimConfig) -> list[Outgoing]:
    return [m for m in Simulation(config).stream() if isinstance(m, Outgoing)]


def config(
    faults: str,
    *,
    days: float = 2,
    step_min: int = 15,
    batch_size: int = 1,
    devices: int | None = None,
) -> SimConfig:
    return SimConfig(
        mine(),
        START,
        timedelta(days=days),
        timedelta(minutes=step_min),
        math.inf,
        seed=4,
        faults=FaultSpec.parse(faults),
        batch_size=batch_size,
        devices=devices,
    )


# --- the spec -----------------------------------------------------------------------------------


def test_fault_spec_parses_presets_rates_and_reasons() -> None:
    spec = FaultSpec.parse("default,gap=0,out_of_order=0.5,reasons=malformed_json+too_old")
    assert spec.gap == 0 and spec.reorder == 0.5 and spec.reset == PRESETS["default"].reset
    assert spec.reasons == (Reason.MALFORMED_JSON, Reason.TOO_OLD)
    assert FaultSpec.parse(spec.describe()) == spec
    assert FaultSpec.parse("none") == FaultSpec() and not FaultSpec().any
    for bad, message in (
        ("gap", "key=rate"),
        ("gaps=0.1", "unknown fault"),
        ("gap=x", "must be a number"),
        ("gap=2", "not a probability"),
        ("reasons=store_failed", "cannot be injected"),
    ):
        with pytest.raises(ValueError, match=message):
            FaultSpec.parse(bad)
    assert Reason.STORE_FAILED not in MALFORMED_REASONS
    # The range-rule reasons of issue 14 are not injected by the simulators yet.
    assert set(Reason) - set(MALFORMED_REASONS) == {
        Reason.STORE_FAILED,
        Reason.DUPLICATE_KEY,
        Reason.INVALID_TEXT,
        Reason.SEQ_OUT_OF_RANGE,
        Reason.TIMESTAMP_OUT_OF_RANGE,
        Reason.VALUE_OUT_OF_RANGE,
        Reason.NON_FINITE_AFTER_CONVERSION,
        Reason.NEGATIVE_COUNTER,
        Reason.UNPROCESSABLE,
    }


# --- malformed messages -------------------------------------------------------------------------


def malformed_for(reason: Reason) -> tuple[Outgoing, Outgoing]:
    """(the valid message, the malformed one after it) for one reason."""
    spec = FaultSpec(malformed=1.0, reasons=(reason,))
    run = dataclasses.replace(
        config("none", days=0.25), faults=spec, retired_device="sim-retired-meter"
    )
    messages = stream(run)
    for before, extra in itertools.pairwise(messages):
        if extra.kind is MessageKind.MALFORMED and extra.device == "grid-line-1":
            return before, extra
    raise AssertionError(f"no malformed {reason} message")


@pytest.mark.parametrize("reason", MALFORMED_REASONS, ids=lambda r: r.value)
def test_each_malformed_message_carries_exactly_its_reason(reason: Reason) -> None:
    valid, extra = malformed_for(reason)
    assert extra.reason is reason and extra.stored_readings == 0
    received = datetime.now(UTC)
    parsed = parse_message(extra.topic, extra.payload, received, max_bytes=262144)
    if reason in PARSE_REASONS:
        assert [r.reason for r in parsed.rejections] == [reason]
        assert not parsed.reading_sets
        return
    # The rest need the registry or the stored readings: one reading set, one value.
    assert not parsed.rejections
    (one,) = parsed.reading_sets
    assert len(one.values) == (1 if reason in _ONE_VALUE else len(one.values))
    original = parse_message(valid.topic, valid.payload, received, 262144).reading_sets[-1]
    if reason is Reason.UNKNOWN_SITE:
        assert parsed.address is not None and parsed.address.site.endswith("-mis")
        assert one.device.endswith("-mis")
    elif reason is Reason.UNKNOWN_DEVICE:
        assert one.device == "grid-line-1-mis"
    elif reason is Reason.WRONG_SITE:
        assert parsed.address is not None and parsed.address.site.endswith("-old")
        assert one.device == "grid-line-1"
    elif reason is Reason.INACTIVE_DEVICE:
        assert one.device == "sim-retired-meter"
    elif reason is Reason.UNKNOWN_METRIC:
        assert one.values[0].metric not in {m for m in mine().devices[0].metrics}
    elif reason is Reason.UNIT_MISMATCH:
        assert one.values[0].unit == "degC"
    elif reason is Reason.FUTURE_TIMESTAMP:
        assert one.ts > received + timedelta(days=365 * 40)
    elif reason is Reason.TOO_OLD:
        assert one.ts < received - timedelta(days=3650)
    elif reason is Reason.COUNTER_BACKWARDS:
        # 1 s after the newest delivered reading, 5 % below it: neither reset nor rollover
        assert one.ts == original.ts + timedelta(seconds=1)
        newest = {v.metric: v.value for v in original.values}
        (dip,) = one.values
        assert dip.value == pytest.approx(0.95 * newest[dip.metric])
    elif reason is Reason.DUPLICATE_CONFLICT:
        assert one.ts == original.ts
        (value,) = one.values
        assert value.value != {v.metric: v.value for v in original.values}[value.metric]


_ONE_VALUE = {
    Reason.UNKNOWN_METRIC,
    Reason.UNIT_MISMATCH,
    Reason.COUNTER_BACKWARDS,
    Reason.DUPLICATE_CONFLICT,
}


def test_messages_on_wrong_topics_are_rejected_and_lose_their_readings() -> None:
    messages = stream(config("wrong_topic=0.3"))
    rerouted = [m for m in messages if m.kind is MessageKind.REROUTED]
    assert {m.reason for m in rerouted} == {
        Reason.UNKNOWN_TOPIC, Reason.UNKNOWN_SITE, Reason.UNKNOWN_DEVICE, Reason.WRONG_SITE
    }  # fmt: skip
    for m in rerouted:
        assert m.stored_readings == 0 and m.readings > 0
        if m.reason is Reason.UNKNOWN_TOPIC:
            with pytest.raises(ContractError):
                parse_topic(m.topic)
        else:
            assert parse_topic(m.topic).device is not None


# --- delivery faults ----------------------------------------------------------------------------


def keys(messages: list[Outgoing], kinds: set[MessageKind]) -> Counter[tuple[str, str, datetime]]:
    """(device, metric, ts) of every value in the messages, as the contract parses them."""
    out: Counter[tuple[str, str, datetime]] = Counter()
    now = datetime.now(UTC)
    for m in messages:
        if m.kind in kinds:
            for rs in parse_message(m.topic, m.payload, now, 262144).reading_sets:
                for v in rs.values:
                    out[(rs.device, str(v.metric), rs.ts)] += 1
    return out


def test_every_valid_reading_is_stored_once_whatever_the_delivery() -> None:
    messages = stream(config("heavy", days=3, batch_size=10))
    tally = Tally()
    for m in messages:
        tally.add(m)
    valid = keys(messages, {MessageKind.VALID})
    assert max(valid.values()) == 1  # no reading is sent twice as new
    assert sum(valid.values()) == tally.stored_readings
    duplicates = keys(messages, {MessageKind.DUPLICATE})
    assert duplicates and set(duplicates) <= set(valid)  # a duplicate adds nothing new
    kinds = Counter(m.kind for m in messages)
    assert kinds[MessageKind.MALFORMED] == sum(
        1 for m in messages if m.kind is MessageKind.MALFORMED and m.reason is not None
    )


def test_gaps_drop_readings_but_interval_metrics_report_the_whole_quantity() -> None:
    park = load_site_file(EXAMPLES / "inner-mongolia-park.yaml")
    base = config("none", days=3)
    clean = SimConfig(park, START, base.duration, base.step, math.inf, seed=4)
    gappy = SimConfig(park, START, base.duration, base.step, math.inf, seed=4,
                      faults=FaultSpec(gap=0.05))  # fmt: skip
    sim = Simulation(gappy)
    messages = [m for m in sim.stream() if isinstance(m, Outgoing)]
    assert sim.delivery.injected["gap"] > 0 and sim.delivery.injected["gap_readings"] > 0

    def handled(msgs: list[Outgoing]) -> float:
        return sum(
            v.value
            for m in msgs
            if m.device == "weighbridge"
            for rs in parse_message(m.topic, m.payload, START, 262144).reading_sets
            for v in rs.values
        )

    assert len(keys(messages, {MessageKind.VALID})) < len(keys(stream(clean), {MessageKind.VALID}))
    assert handled(messages) == pytest.approx(handled(stream(clean)), abs=1e-6)


def test_late_batches_arrive_hours_late_and_skewed_clocks_stay_in_order() -> None:
    sim = Simulation(config("late=0.05,skew=0.05", days=4, step_min=5))
    messages = [m for m in sim.stream() if isinstance(m, Outgoing)]
    assert sim.delivery.injected["late"] > 0 and sim.delivery.injected["skew"] > 0
    now = datetime.now(UTC)
    lateness = []
    per_device: dict[str, list[datetime]] = {}
    for m in messages:
        for rs in parse_message(m.topic, m.payload, now, 262144).reading_sets:
            per_device.setdefault(m.device, []).append(rs.ts)
            lateness.append(m.release_s - rs.ts.timestamp())
    assert max(lateness) >= LATE_S[0] - 5 * 60 - SKEW_S[1]
    assert max(lateness) <= LATE_S[1] + SKEW_S[1]
    for times in per_device.values():
        ordered = sorted(times)
        assert len(set(times)) == len(times)  # skew never makes two readings collide
        # readings of one device may arrive late, but each is within a quarter step of its slot
        for t in ordered:
            offset = (t.timestamp() - START.timestamp()) % 300
            assert min(offset, 300 - offset) <= 300 / 4 + 1e-6


def test_reordered_messages_come_after_the_next_one() -> None:
    delivery = Delivery(
        FaultSpec(reorder=1.0),
        site_id="s",
        devices={d.id: d for d in mine().devices[:1]},
        seed=1,
        step_s=60,
        batch_size=1,
        tz=TZ,
    )
    device = mine().devices[0].id
    for k in range(4):
        ts = START + timedelta(minutes=k)
        delivery.add(device, ts.timestamp(), ts, {"energy_import_kwh": 1.0 + k})
    order = [
        parse_message(m.topic, m.payload, START, 262144).reading_sets[0].ts
        for m in [*delivery.release(math.inf), *delivery.drain()]
    ]
    minutes = [round((t - START).total_seconds() / 60) for t in order]
    assert sorted(minutes) == [0, 1, 2, 3] and minutes != [0, 1, 2, 3]


# --- determinism --------------------------------------------------------------------------------


def test_a_seed_and_a_start_reproduce_the_stream_and_longer_runs_extend_it() -> None:
    first = stream(config("heavy", days=1))
    again = stream(config("heavy", days=1))
    assert [(m.topic, m.payload) for m in first] == [(m.topic, m.payload) for m in again]
    longer = stream(config("heavy", days=2))
    cut = START.timestamp() + 20 * 3600
    assert [m.payload for m in first if m.release_s < cut] == [
        m.payload for m in longer if m.release_s < cut
    ]
    other_seed = dataclasses.replace(config("heavy", days=1), seed=5)
    assert [m.payload for m in stream(other_seed)] != [m.payload for m in first]


def test_adding_devices_does_not_change_the_others() -> None:
    base = stream(config("heavy", days=1))
    scaled = stream(config("heavy", days=1, devices=100))
    own = {d.id for d in mine().devices}
    assert [m.payload for m in base] == [m.payload for m in scaled if m.device in own]
    assert len({m.device for m in scaled}) == 100


def test_oracle_records_come_after_their_interval_ends() -> None:
    sim = Simulation(config("none", days=0.5), oracle=True)
    last_message_s = -math.inf
    for item in sim.stream():
        if isinstance(item, OracleRecord):
            if item.record["record"] == "interval":
                end = datetime.fromisoformat(item.record["end"]).timestamp()
                assert end <= item.at_s and end <= last_message_s + 1e-6
        else:
            last_message_s = max(last_message_s, item.release_s)


def test_a_backfill_batches_until_it_is_live_then_goes_step_by_step() -> None:
    live = START + timedelta(hours=10)
    run = dataclasses.replace(config("none", days=0.75, batch_size=20), live_from=live)
    messages = stream(run)
    sizes_before = {m.reading_sets for m in messages if m.release_s < live.timestamp()}
    sizes_after = {m.reading_sets for m in messages if m.release_s > live.timestamp()}
    assert max(sizes_before) == 20  # catching up: batches of 20 reading sets (5 h at 15 min)
    assert sizes_after == {1}  # live: one reading set per device per step

"""The typed fast path of the contract accepts exactly what the general path accepts, unchanged.

``parse_message`` tries a typed decoder first and falls back to the general, field-by-field path
for anything unusual. The fast path may only ever accept: for any payload it takes, the general
path must give the same reading sets and no rejection.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carbonflow.domain.readings import contract
from carbonflow.domain.readings.contract import (
    ParsedMessage,
    TopicAddress,
    encode,
    reading_set_document,
)
from tests.support.ingest_fuzz import messages

RECEIVED = datetime(2026, 11, 21, 8, tzinfo=UTC)
ADDRESS = TopicAddress(site="a", device="m1")


def _general(payload: bytes) -> ParsedMessage:
    return contract._parse_general(ADDRESS, payload, RECEIVED)


def _assert_same(payload: bytes) -> bool:
    """True when the fast path took the payload (and then agrees with the general path)."""
    fast = contract._fast_reading_sets("m1", payload)
    if fast is None:
        return False
    general = _general(payload)
    assert general.rejections == (), (payload, general.rejections)
    assert general.reading_sets == fast, payload
    return True


_metric = st.sampled_from(["energy_import_kwh", "power_kw", "ch4_pct", "a:b", "流量_nm3"])
_value = st.one_of(
    st.floats(min_value=-1e15, max_value=1e15),
    st.integers(min_value=-(10**15), max_value=10**15),
    st.fixed_dictionaries(
        {"value": st.floats(min_value=-1e15, max_value=1e15)},
        optional={"unit": st.sampled_from(["kWh", "MWh", "W", "%", "Nm3:h"])},
    ),
)
_valid_set = st.builds(
    lambda ts, values, seq, serial: reading_set_document(ts, values, seq=seq, serial=serial),
    st.datetimes(
        min_value=datetime(1990, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    ),
    st.dictionaries(_metric, _value, min_size=1, max_size=4),
    st.one_of(st.none(), st.integers(min_value=0, max_value=2**63 - 1)),
    st.one_of(st.none(), st.text(alphabet="AB:-9", min_size=1, max_size=64)),
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(_valid_set, st.lists(_valid_set, min_size=1, max_size=5)))
def test_well_formed_payloads_take_the_fast_path_and_agree(document: object) -> None:
    assert _assert_same(encode(document))


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(messages())
def test_the_fast_path_never_accepts_what_the_general_path_rejects(
    message: tuple[str, bytes],
) -> None:
    _assert_same(message[1])


def test_payloads_the_fast_path_leaves_to_the_general_path() -> None:
    ts = "2026-11-21T08:00:00+08:00"
    declined = [
        b'{"ts":"%s","values":{"a_kwh":1},"values":{"a_kwh":2}}' % ts.encode(),  # duplicate key
        b'{"ts":"%s","values":{"a_kwh":1,"a_kwh":2}}' % ts.encode(),  # duplicate metric
        b'{"ts":"%s","values":{"a_kwh":1},"seq":null}' % ts.encode(),  # explicit null (accepted)
        b'{"ts":"%s","values":{"a_kwh":1e16}}' % ts.encode(),  # out of range
        b'{"ts":"%s","values":{"a_kwh":true}}' % ts.encode(),  # a boolean
        b'{"ts":"%s","values":{}}' % ts.encode(),  # no values
        b'{"ts":"\\u0032026-11-21T08:00:00Z","values":{"a_kwh":1}}',  # an escape
        b'{"ts":"%s","values":{"a_kwh":1},"seq":-1}' % ts.encode(),
        b'{"ts":"%s","values":{"a_kwh":1},"seq":9223372036854775808}' % ts.encode(),
        b'{"ts":"2026-11-21T08:00:00","values":{"a_kwh":1}}',  # no offset
        b"[]",
        b"12.5",  # a bare number carries no timestamp: the general path stamps it
    ]
    for payload in declined:
        assert contract._fast_reading_sets("m1", payload) is None, payload
        parsed = contract.parse_message("carbonflow/v1/a/m1/telemetry", payload, RECEIVED, 1 << 20)
        assert parsed == _general(payload), payload


def test_a_fleet_minute_batch_is_taken_whole() -> None:
    start = datetime(2026, 11, 21, tzinfo=UTC)
    sets = [
        reading_set_document(start + timedelta(minutes=m), {"energy_import_kwh": 10.0 + m}, seq=m)
        for m in range(50)
    ]
    fast = contract._fast_reading_sets("m1", encode(sets))
    assert fast is not None and len(fast) == 50
    assert fast[49].values[0].value == 59.0 and fast[49].seq == 49
    assert json.loads(encode(sets))[0]["ts"] == "2026-11-21T00:00:00.000+00:00"

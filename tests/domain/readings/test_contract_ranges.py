"""Range rules of the contract: hostile, well-formed payloads get a reason, not an exception."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from carbonflow.domain.readings.contract import (
    MAX_ABS_VALUE,
    SEQ_MAX,
    Reason,
    converted_value_problem,
    device_topic,
    parse_message,
)

NOW = datetime(2026, 11, 21, tzinfo=UTC)
TS = '"2026-11-21T07:59:00Z"'


def reasons(payload: bytes) -> list[Reason]:
    parsed = parse_message(device_topic("a", "m1"), payload, NOW, 100_000)
    return [r.reason for r in parsed.rejections]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        # beyond 64 bits orjson decodes an integer as a float: still out of range, not schema
        (
            b'{"ts": %s, "seq": %d, "values": {"power_kw": 1}}' % (TS.encode(), 2**64),
            Reason.SEQ_OUT_OF_RANGE,
        ),
        (b'{"ts": %d, "values": {"power_kw": 1}}' % 10**30, Reason.TIMESTAMP_OUT_OF_RANGE),
        (
            b'{"ts": %s, "seq": %d, "values": {"power_kw": 1}}' % (TS.encode(), 2**63),
            Reason.SEQ_OUT_OF_RANGE,
        ),
        (
            b'{"ts": %s, "seq": %s, "values": {"power_kw": 1}}' % (TS.encode(), b"9" * 400),
            Reason.SEQ_OUT_OF_RANGE,
        ),
        (
            b'{"ts": %s, "values": {"power_kw": %s}}' % (TS.encode(), b"9" * 400),
            Reason.VALUE_OUT_OF_RANGE,
        ),
        (b'{"ts": %s, "values": {"power_kw": 1e16}}' % TS.encode(), Reason.VALUE_OUT_OF_RANGE),
        (b"1" + b"0" * 400, Reason.VALUE_OUT_OF_RANGE),  # a bare number
        (
            b'{"ts": %s, "values": {"power_kw": %s}}' % (TS.encode(), b"9" * 5000),
            Reason.MALFORMED_JSON,
        ),
        (
            b'{"ts": "10000-01-01T00:00:00Z", "values": {"power_kw": 1}}',
            Reason.TIMESTAMP_OUT_OF_RANGE,
        ),
        (
            b'{"ts": "9999-12-31T23:00:00-05:00", "values": {"power_kw": 1}}',
            Reason.TIMESTAMP_OUT_OF_RANGE,
        ),
        (
            b'{"ts": "0001-01-01T00:00:00+05:00", "values": {"power_kw": 1}}',
            Reason.TIMESTAMP_OUT_OF_RANGE,
        ),
        (
            b'{"ts": "1969-07-20T20:17:00Z", "values": {"power_kw": 1}}',
            Reason.TIMESTAMP_OUT_OF_RANGE,
        ),
        (
            b'{"ts": "2026-11-21T08:00:00+99:00", "values": {"power_kw": 1}}',
            Reason.INVALID_TIMESTAMP,
        ),
        (b'{"ts": %d, "values": {"power_kw": 1}}' % 10**18, Reason.TIMESTAMP_OUT_OF_RANGE),
        (
            b'{"ts": %s, "ts": %s, "values": {"power_kw": 1}}' % (TS.encode(), TS.encode()),
            Reason.DUPLICATE_KEY,
        ),
        (
            b'{"ts": %s, "values": {"power_kw": 1, "power_kw": 2}}' % TS.encode(),
            Reason.DUPLICATE_KEY,
        ),
        (
            b'{"ts": %s, "values": {"power_kw": 1, "power\\u005fkw": 2}}' % TS.encode(),
            Reason.DUPLICATE_KEY,
        ),
        (
            b'{"ts": %s, "values": {"power_kw": NaN, "power_kw": 2}}' % TS.encode(),
            Reason.DUPLICATE_KEY,
        ),
        (b'{"devices": {}}', Reason.INVALID_SCHEMA),
    ],
)
def test_hostile_payload_is_one_rejection_with_its_reason(payload: bytes, reason: Reason) -> None:
    assert reasons(payload) == [reason]


def test_colons_in_strings_are_not_taken_for_duplicate_keys() -> None:
    payload = b'{"ts": "2026-11-21T07:59:00+08:00", "serial": "a:b::c", "values": {"power_kw": 1}}'
    parsed = parse_message(device_topic("a", "m1"), payload, NOW, 100_000)
    assert not parsed.rejections
    assert parsed.reading_sets[0].serial == "a:b::c"


def test_seq_at_the_signed_64_bit_limit_is_accepted() -> None:
    payload = b'{"ts": %s, "seq": %d, "values": {"power_kw": 1}}' % (TS.encode(), SEQ_MAX)
    parsed = parse_message(device_topic("a", "m1"), payload, NOW, 100_000)
    assert not parsed.rejections and parsed.reading_sets[0].seq == SEQ_MAX


def test_nul_in_a_metric_name_rejects_that_value_only() -> None:
    payload = b'{"ts": %s, "values": {"power_kw": 1, "a\\u0000b": 2}}' % TS.encode()
    parsed = parse_message(device_topic("a", "m1"), payload, NOW, 100_000)
    assert [r.reason for r in parsed.rejections] == [Reason.INVALID_TEXT]
    assert "\x00" not in parsed.rejections[0].detail and parsed.rejections[0].metric is None
    assert [v.metric for v in parsed.reading_sets[0].values] == ["power_kw"]


def test_nul_in_a_serial_quarantines_the_serial_and_keeps_the_values() -> None:
    payload = b'{"ts": %s, "serial": "S\\u0000N", "values": {"power_kw": 1}}' % TS.encode()
    parsed = parse_message(device_topic("a", "m1"), payload, NOW, 100_000)
    assert [r.reason for r in parsed.rejections] == [Reason.INVALID_TEXT]
    assert parsed.reading_sets[0].serial is None
    assert parsed.reading_sets[0].values[0].value == 1.0


def test_control_characters_in_a_unit_are_invalid_text() -> None:
    payload = b'{"ts": %s, "values": {"power_kw": {"value": 1, "unit": "k\\u001bW"}}}' % TS.encode()
    assert reasons(payload) == [Reason.INVALID_TEXT]


def test_a_batch_with_one_bad_reading_keeps_the_others() -> None:
    payload = (
        b'[{"ts": %s, "values": {"power_kw": 1}},'
        b' {"ts": "10000-01-01T00:00:00Z", "values": {"power_kw": 2}},'
        b' {"ts": %s, "seq": %d, "values": {"power_kw": 3}},'
        b' {"ts": "2026-11-21T07:58:00Z", "values": {"power_kw": 4}}]'
        % (TS.encode(), TS.encode(), 2**63)
    )
    parsed = parse_message(device_topic("a", "m1"), payload, NOW, 100_000)
    assert [r.reason for r in parsed.rejections] == [
        Reason.TIMESTAMP_OUT_OF_RANGE,
        Reason.SEQ_OUT_OF_RANGE,
    ]
    assert [s.values[0].value for s in parsed.reading_sets] == [1.0, 4.0]


def test_converted_value_rules() -> None:
    # 1e308 MW × 1000 kW/MW = inf kW
    assert converted_value_problem(1e308 * 1000)[0] is Reason.NON_FINITE_AFTER_CONVERSION  # type: ignore[index]
    # 2e12 GWh × 10⁶ kWh/GWh = 2e18 kWh > 10¹⁵
    assert converted_value_problem(2e12 * 1e6)[0] is Reason.VALUE_OUT_OF_RANGE  # type: ignore[index]
    assert converted_value_problem(MAX_ABS_VALUE) is None

"""The MQTT contract parser: every accepted form and every rejection reason it decides."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from carbonflow.domain.readings.contract import (
    ContractError,
    Reason,
    TopicAddress,
    device_topic,
    encode,
    gateway_topic,
    parse_message,
    parse_timestamp,
    parse_topic,
    reading_set_document,
)

NOW = datetime(2026, 11, 21, 0, 0, tzinfo=UTC)
T = device_topic("mine-a", "hoist-1")
LIMIT = 4096


def parse(payload: bytes, topic: str = T):
    return parse_message(topic, payload, NOW, LIMIT)


def reasons(payload: bytes, topic: str = T) -> list[Reason]:
    return [r.reason for r in parse(payload, topic).rejections]


def test_topics() -> None:
    assert parse_topic(T) == TopicAddress("mine-a", "hoist-1")
    assert parse_topic(gateway_topic("mine-a", "gw1")) == TopicAddress("mine-a", None, "gw1")
    for bad in (
        "carbonflow/v1/mine-a/hoist-1",
        "carbonflow/v1/Mine/x/telemetry",
        "carbonflow/v1/mine-a/gateway/telemetry",
        "carbonflow/v2/a/b/telemetry",
        "carbonflow/v1/a/b/telemetry/extra",
    ):
        with pytest.raises(ContractError) as err:
            parse_topic(bad)
        assert err.value.reason is Reason.UNKNOWN_TOPIC


def test_timestamps() -> None:
    # 08:00 at +08:00 is 00:00 UTC
    assert parse_timestamp("2026-11-21T08:00:00+08:00") == NOW
    assert parse_timestamp("2026-11-21T00:00:00Z") == NOW
    assert parse_timestamp(1_763_683_200_000) == datetime(2025, 11, 21, tzinfo=UTC)
    cases = {
        "2026-11-21T08:00:00": "no UTC offset",
        "2026-11-21": "no UTC offset",
        "yesterday": "not RFC 3339",
    }
    for raw, words in cases.items():
        with pytest.raises(ContractError, match=words):
            parse_timestamp(raw)
    with pytest.raises(ContractError, match="epoch seconds"):
        parse_timestamp(1_763_683_200)
    with pytest.raises(ContractError):
        parse_timestamp(True)
    with pytest.raises(ContractError):
        parse_timestamp(12.5)


def test_single_batch_and_gateway_forms() -> None:
    one = parse(encode(reading_set_document(NOW, {"energy_import_kwh": 1.5, "power_kw": 2}, seq=7)))
    assert not one.rejections
    (rs,) = one.reading_sets
    assert rs.device == "hoist-1" and rs.seq == 7 and rs.ts == NOW
    assert [(v.metric, v.value) for v in rs.values] == [
        ("energy_import_kwh", 1.5),
        ("power_kw", 2.0),
    ]

    batch = parse(
        encode(
            [reading_set_document(NOW + timedelta(minutes=i), {"power_kw": i}) for i in range(3)]
        )
    )
    assert len(batch.reading_sets) == 3 and not batch.rejections

    gw = parse(
        encode(
            {
                "devices": {
                    "a": reading_set_document(NOW, {"power_kw": 1}),
                    "b": [reading_set_document(NOW, {"power_kw": 2})],
                }
            }
        ),
        gateway_topic("mine-a", "gw1"),
    )
    assert sorted(s.device for s in gw.reading_sets) == ["a", "b"]


def test_bare_number_is_stamped_with_receive_time() -> None:
    (rs,) = parse(b"42.5").reading_sets
    assert rs.ts == NOW and rs.ts_from_broker and rs.values[0].metric is None


def test_value_with_unit_is_kept_for_conversion() -> None:
    (rs,) = parse(
        encode(
            {"ts": NOW.isoformat(), "values": {"energy_import_kwh": {"value": 1.2, "unit": "MWh"}}}
        )
    ).reading_sets
    assert rs.values[0].unit == "MWh" and rs.values[0].value == 1.2


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"x" * (LIMIT + 1), Reason.PAYLOAD_TOO_LARGE),
        (b"{", Reason.MALFORMED_JSON),
        (b"\xff\xfe", Reason.MALFORMED_JSON),
        (b"[" * 2000 + b"]" * 2000, Reason.MALFORMED_JSON),
        (b'"text"', Reason.INVALID_SCHEMA),
        (b"[]", Reason.INVALID_SCHEMA),
        (b'{"values": {"power_kw": 1}}', Reason.INVALID_SCHEMA),
        (b'{"ts": "2026-11-21T00:00:00Z", "values": {}}', Reason.INVALID_SCHEMA),
        (
            b'{"ts": "2026-11-21T00:00:00Z", "values": {"power_kw": 1}, "valeus": 1}',
            Reason.INVALID_SCHEMA,
        ),
        (
            b'{"ts": "2026-11-21T00:00:00Z", "seq": -1, "values": {"power_kw": 1}}',
            Reason.INVALID_SCHEMA,
        ),
        (
            b'{"ts": "2026-11-21T00:00:00Z", "serial": 5, "values": {"power_kw": 1}}',
            Reason.INVALID_SCHEMA,
        ),
        (
            b'{"ts": "2026-11-21T00:00:00Z", "values": {"power_kw": {"v": 1}}}',
            Reason.INVALID_SCHEMA,
        ),
        (b'{"ts": "2026-11-21T00:00:00Z", "values": {"power_kw": "1"}}', Reason.INVALID_VALUE),
        (b'{"ts": "2026-11-21T00:00:00Z", "values": {"power_kw": null}}', Reason.INVALID_VALUE),
        (b'{"ts": "2026-11-21T00:00:00Z", "values": {"power_kw": false}}', Reason.INVALID_VALUE),
        (b'{"ts": "2026-11-21T00:00:00Z", "values": {"power_kw": NaN}}', Reason.INVALID_VALUE),
        (
            b'{"ts": "2026-11-21T00:00:00Z", "values": {"power_kw": -Infinity}}',
            Reason.INVALID_VALUE,
        ),
        (b'{"ts": "2026-11-21T00:00:00Z", "values": {"power_kw": 1e400}}', Reason.INVALID_VALUE),
        (b"NaN", Reason.INVALID_VALUE),
        (b'{"ts": "21/11/2026", "values": {"power_kw": 1}}', Reason.INVALID_TIMESTAMP),
    ],
)
def test_each_rejection_reason(payload: bytes, reason: Reason) -> None:
    assert reasons(payload) == [reason]


def test_one_bad_value_does_not_reject_its_neighbours() -> None:
    parsed = parse(
        b'{"ts": "2026-11-21T00:00:00Z", "values": {"power_kw": NaN, "energy_import_kwh": 5}}'
    )
    assert [r.reason for r in parsed.rejections] == [Reason.INVALID_VALUE]
    assert parsed.rejections[0].metric == "power_kw"
    assert [v.metric for v in parsed.reading_sets[0].values] == ["energy_import_kwh"]


def test_gateway_rejects_bad_shape_and_non_slug_devices() -> None:
    gw = gateway_topic("mine-a", "gw1")
    assert reasons(b'{"x": 1}', gw) == [Reason.INVALID_SCHEMA]
    bad = parse(
        encode(
            {
                "devices": {
                    "Bad Id": reading_set_document(NOW, {"power_kw": 1}),
                    "ok": reading_set_document(NOW, {"power_kw": 1}),
                }
            }
        ),
        gw,
    )
    assert [r.reason for r in bad.rejections] == [Reason.INVALID_SCHEMA]
    assert [s.device for s in bad.reading_sets] == ["ok"]


def test_unknown_topic_is_a_rejection_not_an_exception() -> None:
    assert reasons(b"{}", "carbonflow/v1/x") == [Reason.UNKNOWN_TOPIC]


def test_payload_builders_round_trip() -> None:
    tz8 = timezone(timedelta(hours=8))
    doc = reading_set_document(
        datetime(2026, 11, 21, 8, tzinfo=tz8), {"power_kw": 3.5}, seq=1, serial="SN-1"
    )
    (rs,) = parse(encode(doc)).reading_sets
    assert rs.ts == NOW and rs.serial == "SN-1" and rs.seq == 1
    with pytest.raises(ValueError, match="timezone-aware"):
        reading_set_document(datetime(2026, 11, 21), {"power_kw": 1})

"""Fuzzing the pipeline: whatever a device sends, it is stored or quarantined, never raised."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings

from carbonflow.domain.readings.contract import Reason, device_topic, encode, reading_set_document
from services.ingest import pipeline as pipeline_module
from services.ingest.service import is_data_error
from tests.support.ingest_fuzz import NOW, assert_accounted, drive, messages, pipeline

TS = (NOW - timedelta(minutes=1)).isoformat()


@pytest.fixture(autouse=True)
def _quiet(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="services.ingest.pipeline")


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(messages())
def test_every_payload_is_stored_or_quarantined(message: tuple[str, bytes]) -> None:
    outcome = drive(*message)
    assert_accounted(outcome)
    # The contract itself classifies every payload; the catch-all boundary is a safety net.
    assert Reason.UNPROCESSABLE.value not in {r.reason for r in outcome.rejections}


@pytest.mark.parametrize(
    ("device", "values", "reason"),
    [
        # 1e308 MW would be inf kW (× 1000 kW/MW); it is beyond 10¹⁵ already as sent
        ("m1", {"power_kw": {"value": 1e308, "unit": "MW"}}, Reason.VALUE_OUT_OF_RANGE),
        # 1e12 GWh × 10⁶ kWh/GWh = 1e18 kWh > 10¹⁵ kWh
        ("m1", {"energy_import_kwh": {"value": 1e12, "unit": "GWh"}}, Reason.VALUE_OUT_OF_RANGE),
        ("m1", {"energy_import_kwh": -5.0}, Reason.NEGATIVE_COUNTER),
    ],
)
def test_values_are_checked_after_conversion(
    device: str, values: dict[str, object], reason: Reason
) -> None:
    out = drive(
        device_topic("a", device), encode({"ts": TS, "values": {**values, "power_kw_x": 1}})
    )
    got = [r.reason for r in out.rejections]
    assert reason.value in got and not out.rows


def test_one_bad_value_keeps_its_neighbours() -> None:
    payload = encode(
        {"ts": TS, "values": {"power_kw": {"value": 1e308, "unit": "MW"}, "energy_import_kwh": 7.0}}
    )
    out = drive(device_topic("a", "m1"), payload)
    assert [r.reason for r in out.rejections] == [Reason.VALUE_OUT_OF_RANGE.value]
    assert [row[3] for row in out.rows] == [7.0]


def test_seq_beyond_64_bits_never_reaches_copy() -> None:
    out = drive(
        device_topic("a", "m1"),
        b'{"ts": "%s", "seq": %d, "values": {"power_kw": 1}}' % (TS.encode(), 2**63),
    )
    assert [r.reason for r in out.rejections] == [Reason.SEQ_OUT_OF_RANGE.value] and not out.rows


def test_nul_never_reaches_a_text_column() -> None:
    payload = b'{"ts": "%s", "values": {"power_kw": 1, "x\\u0000": 2}}' % TS.encode()
    out = drive(device_topic("a", "m1"), payload)  # drive checks every text for NUL
    assert [r.reason for r in out.rejections] == [Reason.INVALID_TEXT.value]
    assert "\\x00" in out.rejections[0].detail and len(out.rows) == 1


def test_an_exception_in_any_step_quarantines_the_message(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*_args: object) -> None:
        raise ZeroDivisionError("a bug the content triggered\x00")

    monkeypatch.setattr(pipeline_module, "validate", explode)
    pipe = pipeline()
    good = encode(reading_set_document(NOW - timedelta(minutes=1), {"power_kw": 1.0}))
    out = drive(device_topic("a", "m1"), good, pipe)  # drive checks the row has no NUL
    assert [r.reason for r in out.rejections] == [Reason.UNPROCESSABLE.value]
    assert "ZeroDivisionError" in out.rejections[0].detail
    # idempotent on redelivery: the same content gives the same dedup key
    again = drive(device_topic("a", "m1"), good, pipe)
    assert again.rejections[0].dedup_key() == out.rejections[0].dedup_key()


def test_data_errors_are_told_from_schema_errors() -> None:
    import psycopg

    assert is_data_error(psycopg.DataError("NUL in text"))
    assert is_data_error(OverflowError("int too big to convert"))
    assert is_data_error(psycopg.IntegrityError("check violated"))
    assert not is_data_error(psycopg.errors.UndefinedTable("no table"))
    assert not is_data_error(psycopg.errors.InsufficientPrivilege("denied"))
    # A defect of ours is not the message's fault: it counts toward the fatal limit.
    assert not is_data_error(AttributeError("'NoneType' object has no attribute 'ts'"))
    assert not is_data_error(KeyError("metric"))

"""Destination profiles, the values of an upload and which periods are due, by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from carbonflow.domain.reporting.hj212 import Version
from carbonflow.domain.reporting.profile import (
    CodeMap,
    PeriodValue,
    ProfileError,
    code_values,
    destination_from_mapping,
    destinations_from_document,
    due_periods,
    period_end,
    period_start_of,
)

ENV = {
    "MN": "3A0000C17E0004200000B52F",
    "PW": "530719",
    "KEY": "0123456789abcdeffedcba9876543210",
    "BADMN": "煤矿01",
    "BADPW": "a;b",
}
RAW: dict[str, object] = {
    "name": "shanxi-eco",
    "host": "127.0.0.1",
    "port": 9000,
    "site": "mine-a",
    "st": "31",
    "mn_env": "MN",
    "pw_env": "PW",
    "codes": [{"source": "co2_t", "code": "a05001", "unit": "kg", "places": 1}],
}
CN = "Asia/Shanghai"


def test_a_profile_reads_its_secrets_from_the_environment() -> None:
    d = destination_from_mapping(RAW, ENV)
    assert (d.identity.mn, d.identity.pw, d.version) == (ENV["MN"], "530719", Version.HJ212_2017)
    assert (d.cns, d.overtime_s, d.recount, d.sm4_key) == (("2061", "2031"), 10.0, 3, None)
    d25 = destination_from_mapping({**RAW, "version": "2025", "sm4_key_env": "KEY"}, ENV)
    assert d25.version is Version.HJ212_2025 and d25.sm4_key == bytes.fromhex(ENV["KEY"])
    assert destination_from_mapping({**RAW, "version": "2025", "heartbeat_s": 60}, ENV).heartbeat_s
    assert d.heartbeat_s is None
    start = destination_from_mapping({**RAW, "start": "2025-06-01T00:00:00+08:00"}, ENV).start
    assert start == datetime(2025, 5, 31, 16, tzinfo=UTC)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"pw_env": "NOPE"}, "environment variable NOPE"),
        ({"port": 70000}, "port"),
        ({"version": "2019"}, "version"),
        ({"protocol": "energy"}, "protocol"),
        ({"cns": ["2011"]}, "cns"),
        ({"codes": []}, "codes"),
        ({"codes": [{"source": "co2", "code": "a", "unit": "kg"}]}, "source"),
        ({"codes": [{"source": "co2_t", "code": "a", "unit": "furlong"}]}, "unknown unit"),
        ({"overtime_s": 0}, "overtime_s"),
        ({"codes": [{"source": "co2_t", "code": "a", "unit": "kWh"}]}, "is a mass"),
        ({"start": "2025-06-01"}, "start"),
        ({"sm4_key_env": "PW"}, "SM4 key"),
        ({"heartbeat_s": 60}, "needs version 2025"),
        ({"st": "3"}, "st must be"),
        ({"mn_env": "BADMN"}, "MN must be"),
        ({"pw_env": "BADPW"}, "PW must be"),
        ({"version": "2025", "heartbeat_s": 0}, "heartbeat_s must be in"),
        ({"version": "2025", "heartbeat_s": "1m"}, "number of seconds"),
    ],
)
def test_a_bad_profile_is_named(change: dict[str, object], message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        destination_from_mapping({**RAW, **change}, ENV)


def test_destination_names_are_unique() -> None:
    with pytest.raises(ProfileError, match="unique"):
        destinations_from_document({"destinations": [RAW, RAW]}, ENV)
    with pytest.raises(ProfileError, match="destinations"):
        destinations_from_document([], ENV)


def test_code_values_convert_units_and_flag_quality() -> None:
    codes = [
        CodeMap("co2_t", "a05001", "kg", 1),
        CodeMap("ch4_t", "a05002", "g", 1),
        CodeMap("activity:electricity", "i33201", "kWh", 1),
    ]
    values = [
        PeriodValue("co2_t", 0.48236715, "t", "measured"),  # 0.48236715 t = 482.36715 kg → 482.4
        PeriodValue("ch4_t", 0.0120077, "t", "estimated"),  # 0.0120077 t = 12 007.7 g
    ]
    co2, ch4, power = code_values(codes, values)
    assert (co2.cou, co2.flag) == ("482.4", "N")
    assert (ch4.cou, ch4.flag) == ("12007.7", "B")
    assert (power.cou, power.flag) == (None, "B")  # nothing stored: flag B, no value
    assert power.item() == (("i33201-Flag", "B"),)


def test_periods_are_local_and_due_only_when_computed() -> None:
    t = datetime(2025, 5, 1, 3, 37, tzinfo=UTC)  # 11:37 Beijing
    assert period_start_of("hour", t, CN) == datetime(2025, 5, 1, 3, tzinfo=UTC)
    assert period_start_of("15min", t, CN) == datetime(2025, 5, 1, 3, 30, tzinfo=UTC)
    assert period_start_of("day", t, CN) == datetime(2025, 4, 30, 16, tzinfo=UTC)
    # Kathmandu is UTC+05:45: 09:22 local → the hour from 09:00 local = 03:15 UTC.
    assert period_start_of("hour", t, "Asia/Kathmandu") == datetime(2025, 5, 1, 3, 15, tzinfo=UTC)
    # Berlin's 2026-03-29 lasts 23 hours.
    berlin = datetime(2026, 3, 28, 23, tzinfo=UTC)
    assert period_end("day", berlin, "Europe/Berlin") - berlin == timedelta(hours=23)
    start = datetime(2025, 5, 1, 3, tzinfo=UTC)
    # Results through 05:59: the 03:00 and 04:00 hours are due, 05:00 is not.
    due = due_periods("hour", start, start + timedelta(hours=2, minutes=59), CN, 10)
    assert [s.hour for s, _ in due] == [3, 4]
    assert len(due_periods("hour", start, start + timedelta(days=2), CN, 5)) == 5

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
    energy_destination_from_mapping,
    energy_destinations_from_document,
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
        ({"protocol": "energy"}, "protocol must be hj212"),
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


ENERGY: dict[str, object] = {
    "name": "nm-energy",
    "protocol": "energy",
    "url": "https://energy.example.gov.cn/api/upload",
    "token_env": "PW",
    "site": "park-a",
    "unit_code": "91150600MA0000000X",
    "items": [{"source": "activity:electricity", "code": "E0101", "unit": "kWh", "places": 1}],
}


def test_an_energy_destination_is_read_beside_the_hj212_ones() -> None:
    doc = {"destinations": [RAW, ENERGY]}
    (hj212,) = destinations_from_document(doc, ENV)
    (energy,) = energy_destinations_from_document(doc, ENV)
    assert hj212.name == "shanxi-eco"
    assert (energy.name, energy.site_id, energy.token) == ("nm-energy", "park-a", "530719")
    assert energy.profile.unit_code == "91150600MA0000000X"
    assert energy.profile.items[0].code == "E0101" and energy.grains[0] == "15min"
    with pytest.raises(ProfileError, match="unique"):
        twice = {"destinations": [RAW, {**ENERGY, "name": RAW["name"]}]}
        energy_destinations_from_document(twice, ENV)
    with pytest.raises(ProfileError, match="protocol must be one of"):
        destinations_from_document({"destinations": [{**RAW, "protocol": "mqtt"}]}, ENV)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"url": "ftp://x"}, "http\\(s\\) URL"),
        ({"url": "http://energy.example.gov.cn/x"}, "must be https"),
        ({"grains": ["hour"]}, "grains"),
        ({"items": []}, "items must be"),
        ({"token_env": "UNSET"}, "UNSET"),
        ({"tz": "Mars/Olympus"}, "time zone"),
        ({"unit_code": ""}, "unit_code"),
    ],
)
def test_a_bad_energy_destination_is_named(change: dict[str, object], message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        energy_destination_from_mapping({**ENERGY, **change}, ENV)
    assert energy_destination_from_mapping(
        {**ENERGY, "url": "http://127.0.0.1:9/x", "allow_http": True}, ENV
    ).url.startswith("http://")


def test_a_month_period_follows_the_local_calendar() -> None:
    feb = datetime(2024, 2, 10, tzinfo=UTC)
    start = period_start_of("month", feb, CN)
    assert start == datetime(2024, 1, 31, 16, tzinfo=UTC)  # 1 February 00:00 Beijing
    assert period_end("month", start, CN) == datetime(2024, 2, 29, 16, tzinfo=UTC)  # leap year

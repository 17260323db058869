"""Grafana's PostgreSQL macro and template-variable expansion, on hand-written examples taken
from Grafana's documentation and its macros_test.go (plain PostgreSQL, not TimescaleDB)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from carbonflow.grafana.macros import (
    MacroError,
    VariableValue,
    expand,
    format_interval,
    parse_interval,
    used_variables,
)

FROM = datetime(2018, 4, 12, 18, 0, tzinfo=UTC)
TO = datetime(2018, 4, 12, 18, 5, 30, 500000, tzinfo=UTC)


def _x(sql: str, interval: timedelta = timedelta(minutes=5), **variables: VariableValue) -> str:
    return expand(sql, FROM, TO, interval, variables)


def test_time_filter_is_between_the_range_in_utc_rfc3339() -> None:
    # RFC3339Nano drops trailing zeros: 30.500000 s → 30.5
    assert _x("WHERE $__timeFilter(ts)") == (
        "WHERE ts BETWEEN '2018-04-12T18:00:00Z' AND '2018-04-12T18:05:30.5Z'"
    )
    # 02:00 in Shanghai (UTC+8) is 18:00Z the day before
    shanghai = datetime(2018, 4, 13, 2, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    assert expand("$__timeFrom()", shanghai, TO, timedelta(minutes=1)) == "'2018-04-12T18:00:00Z'"


def test_time_group_is_epoch_floor_of_the_interval_in_seconds() -> None:
    # 5m = 300 s; 1h = 3600 s; $__interval is replaced first (15m → 900 s)
    assert _x("$__timeGroup(ts, '5m')") == "floor(extract(epoch from ts)/300)*300"
    assert _x("$__timeGroupAlias(ts, 1h)") == 'floor(extract(epoch from ts)/3600)*3600 AS "time"'
    assert (
        _x("$__timeGroupAlias(r.ts, $__interval)", timedelta(minutes=15))
        == 'floor(extract(epoch from r.ts)/900)*900 AS "time"'
    )
    # a fill mode only changes Grafana's post-processing
    assert _x("$__timeGroup(ts, 5m, NULL)") == "floor(extract(epoch from ts)/300)*300"


def test_unix_epoch_macros_and_plain_replacements() -> None:
    # 2018-04-12T18:00:00Z = 1523556000 s; 18:05:30.5 truncates to 1523556330
    assert _x("$__unixEpochFilter(t)") == "t >= 1523556000 AND t <= 1523556330"
    assert _x("$__unixEpochFrom() $__unixEpochTo()") == "1523556000 1523556330"
    assert _x("$__unixEpochGroupAlias(t, 10m)") == 'floor((t)/600)*600 AS "time"'
    assert _x("$__interval_ms $__interval", timedelta(seconds=90)) == "90000 1m"
    assert _x("$__time(ts), $__timeEpoch(ts)") == ('ts AS "time", extract(epoch from ts) as "time"')


def test_intervals_parse_and_format_like_grafana() -> None:
    assert parse_interval("'5m'") == timedelta(minutes=5)
    assert parse_interval("100ms") == timedelta(milliseconds=100)
    assert [format_interval(timedelta(seconds=s)) for s in (0.2, 30, 90, 7200, 172800)] == [
        "200ms", "30s", "1m", "2h", "2d",
    ]  # fmt: skip


def test_single_and_multi_value_variables_are_formatted_as_grafana_sql_sources_do() -> None:
    site = VariableValue(["o'brien-park"])
    sites = VariableValue(["a", "b'c"], multi=True)
    # single value: written as is, quotes doubled (the query quotes it)
    assert _x("site_id = '$site'", site=site) == "site_id = 'o''brien-park'"
    assert _x("site_id = '${site}' OR '[[site]]'", site=site) == (
        "site_id = 'o''brien-park' OR 'o''brien-park'"
    )
    # multi value / All: a list of quoted literals
    assert _x("site_id IN ($site)", site=sites) == "site_id IN ('a','b''c')"
    assert used_variables("'$site' $__interval ${org} [[period]] $__timeFilter(x)") == {
        "site", "org", "period",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("$__nope(ts)", "unknown macro"),
        ("$__timeGroup(ts)", "needs 2"),
        ("$__timeGroup(ts, soon)", "invalid interval"),
        ("site = '$site'", "not defined"),
    ],
)
def test_what_grafana_would_refuse_is_an_error(sql: str, message: str) -> None:
    with pytest.raises(MacroError, match=message):
        _x(sql)

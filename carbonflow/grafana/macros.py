"""Grafana's PostgreSQL query expansion, as the data source does it, for testing queries here.

Order (Grafana 10.4 – 11): the frontend replaces template variables (``$site``, ``${site}``,
``[[site]]``); the backend then replaces ``$__interval``, ``$__interval_ms``,
``$__unixEpochFrom()``, ``$__unixEpochTo()`` (``sqleng.Interpolate``) and the macros
``$__name(args)`` (``grafana-postgresql-datasource/macros.go``). Time grouping is the plain
PostgreSQL form (``floor(extract(epoch from col)/s)*s``), the form Grafana uses unless the data
source is set to TimescaleDB (``time_bucket``). Fill modes (``$__timeGroup(col, 1h, NULL)``) only
change Grafana's post-processing, so the SQL ignores them as Grafana does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

# Grafana's template-variable syntaxes (public/app/features/variables/utils.ts variableRegex).
VARIABLE_RE = re.compile(
    r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^\}]+))?(?::([^\}]+))?\}"
)
MACRO_RE = re.compile(r"\$__([_a-zA-Z0-9]+)\(([^\)]*)\)")
# Variables Grafana defines itself; left to the later steps (or the data source).
BUILTIN_VARIABLES = frozenset(
    {
        "__interval", "__interval_ms", "__rate_interval", "__range", "__range_s", "__range_ms",
        "__from", "__to", "__dashboard", "__user", "__org", "__timezone", "__name",
    }
)  # fmt: skip
_UNITS_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


class MacroError(ValueError):
    """A query Grafana would refuse (unknown macro, missing argument, undefined variable)."""


@dataclass(frozen=True, slots=True)
class VariableValue:
    """The current value of a template variable: one value, or several (multi / All)."""

    values: Sequence[str]
    multi: bool = False  # multi-value or include-All variable: written as a quoted list


def parse_interval(text: str) -> timedelta:
    """``5m``, ``1h``, ``900s``, ``100ms`` → a duration (Grafana's gtime.ParseInterval)."""
    match = re.fullmatch(r"\s*'?(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)'?\s*", text)
    if not match:
        raise MacroError(f"invalid interval {text!r}")
    return timedelta(seconds=float(match[1]) * _UNITS_S[match[2]])


def format_interval(interval: timedelta) -> str:
    """Grafana's gtime.FormatInterval: the largest whole unit (``15m``, ``1h``, ``1d``)."""
    ms = int(interval / timedelta(milliseconds=1))
    for unit, seconds in (("y", 31536000), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if ms >= seconds * 1000:
            return f"{ms // (seconds * 1000)}{unit}"
    return f"{max(ms, 1)}ms"


def _go_number(seconds: float) -> str:
    # Go's %v of a float64: no exponent below 1e21, no trailing ".0".
    return str(int(seconds)) if seconds == int(seconds) else repr(seconds)


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def substitute_variables(sql: str, variables: Mapping[str, VariableValue]) -> str:
    """Replace template variables as Grafana's SQL data sources format them.

    A single-value variable is written as is (quotes doubled; the query quotes it), a
    multi-value or include-All one as a comma-separated list of quoted literals.
    """

    def replace(match: re.Match[str]) -> str:
        name = match[1] or match[2] or match[4]
        if name in BUILTIN_VARIABLES or name.startswith("__"):
            return match[0]
        if name not in variables:
            raise MacroError(f"template variable ${name} is not defined")
        value = variables[name]
        if value.multi:
            return ",".join(_quote(v) for v in value.values)
        return value.values[0].replace("'", "''")

    return VARIABLE_RE.sub(replace, sql)


def used_variables(sql: str) -> set[str]:
    """Names of the user template variables a query refers to."""
    names = {m[1] or m[2] or m[4] for m in VARIABLE_RE.finditer(sql)}
    return {n for n in names if not n.startswith("__")}


def expand(  # noqa: C901 — one branch per Grafana macro, as Grafana's table lists them
    sql: str,
    time_from: datetime,
    time_to: datetime,
    interval: timedelta,
    variables: Mapping[str, VariableValue] | None = None,
) -> str:
    """The SQL Grafana's PostgreSQL data source sends to the database for this query."""
    text = substitute_variables(sql, variables or {})
    # sqleng.Interpolate: plain replacements, longest name first.
    text = text.replace("$__interval_ms", str(int(interval / timedelta(milliseconds=1))))
    text = text.replace("$__interval", format_interval(interval))
    text = text.replace("$__unixEpochFrom()", str(int(time_from.timestamp())))
    text = text.replace("$__unixEpochTo()", str(int(time_to.timestamp())))

    def iso(ts: datetime) -> str:
        # Go's time.RFC3339Nano in UTC: fractional seconds without trailing zeros.
        text = ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f").rstrip("0").rstrip(".")
        return text + "Z"

    def macro(match: re.Match[str]) -> str:  # noqa: C901, PLR0911 — one answer per Grafana macro
        name = match[1]
        args = [a.strip() for a in match[2].split(",")] if match[2].strip() else []

        def need(count: int) -> None:
            if len(args) < count:
                raise MacroError(f"macro $__{name} needs {count} argument(s), got {args}")

        if name == "time":
            need(1)
            return f'{args[0]} AS "time"'
        if name == "timeEpoch":
            need(1)
            return f'extract(epoch from {args[0]}) as "time"'
        if name == "timeFilter":
            need(1)
            return f"{args[0]} BETWEEN '{iso(time_from)}' AND '{iso(time_to)}'"
        if name == "timeFrom":
            return f"'{iso(time_from)}'"
        if name == "timeTo":
            return f"'{iso(time_to)}'"
        if name in ("timeGroup", "timeGroupAlias"):
            need(2)
            s = _go_number(parse_interval(args[1]).total_seconds())
            group = f"floor(extract(epoch from {args[0]})/{s})*{s}"
            return group + (' AS "time"' if name == "timeGroupAlias" else "")
        if name == "unixEpochFilter":
            need(1)
            lo, hi = int(time_from.timestamp()), int(time_to.timestamp())
            return f"{args[0]} >= {lo} AND {args[0]} <= {hi}"
        if name == "unixEpochNanoFilter":
            need(1)
            lo, hi = int(time_from.timestamp()) * 10**9, int(time_to.timestamp()) * 10**9
            return f"{args[0]} >= {lo} AND {args[0]} <= {hi}"
        if name == "unixEpochNanoFrom":
            return str(int(time_from.timestamp()) * 10**9)
        if name == "unixEpochNanoTo":
            return str(int(time_to.timestamp()) * 10**9)
        if name in ("unixEpochGroup", "unixEpochGroupAlias"):
            need(2)
            s = _go_number(parse_interval(args[1]).total_seconds())
            group = f"floor(({args[0]})/{s})*{s}"
            return group + (' AS "time"' if name == "unixEpochGroupAlias" else "")
        raise MacroError(f"unknown macro $__{name}")

    text = MACRO_RE.sub(macro, text)
    if "$__" in text:
        raise MacroError(f"unexpanded macro left in query: {text[text.index('$__') :][:40]!r}")
    return text

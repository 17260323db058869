"""Rows of a history import (数据补录) → readings or rejections, with MQTT's reasons. Pure.

A file is a table with the header ``device, metric, time, value`` and optionally ``unit``
(columns in any order, names case-insensitive): one reading per row. ``time`` is RFC 3339 with
an offset (``2026-10-01T08:15:00+08:00``), as on MQTT; ``value`` a number in ``unit`` (or in the
metric's own unit when the column is empty). Whether a metric is a counter or an interval
quantity is the registry's, as for MQTT. Each row is checked as the MQTT contract checks a
reading (:mod:`carbonflow.domain.readings.contract`): the same reasons, the same texts where the
check is the same.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from carbonflow.domain.readings.contract import ContractError, Reason, parse_timestamp
from carbonflow.domain.readings.rules import canonical_value, window_problem

REQUIRED = ("device", "metric", "time", "value")
OPTIONAL = ("unit",)


@dataclass(frozen=True, slots=True)
class KnownMetric:
    metric_id: int
    unit: str  # the metric's canonical unit
    kind: str  # counter | interval | gauge


@dataclass(frozen=True, slots=True)
class KnownDevice:
    device_pk: int
    active: bool
    metrics: Mapping[str, KnownMetric]


@dataclass(frozen=True, slots=True)
class Reading:
    """A row that passed every check, in the metric's canonical unit."""

    line: int
    device_pk: int
    metric_id: int
    ts: datetime
    value: float


@dataclass(frozen=True, slots=True)
class RowProblem:
    line: int  # 1-based, the header is line 1
    reason: Reason
    detail: str
    device: str | None = None
    metric: str | None = None
    ts: datetime | None = None
    value: float | None = None


class HeaderError(ValueError):
    """The first row is not a header this importer understands."""


def column_positions(header: Sequence[object]) -> dict[str, int]:
    """Column name → index; raises :class:`HeaderError` naming what is missing or unknown."""
    names = [str(h).strip().lower() if h is not None else "" for h in header]
    missing = [c for c in REQUIRED if c not in names]
    unknown = [n for n in names if n and n not in REQUIRED + OPTIONAL]
    if missing or unknown:
        parts = [f"missing {', '.join(missing)}"] if missing else []
        parts += [f"unknown {', '.join(unknown)}"] if unknown else []
        raise HeaderError(
            f"the header must name device, metric, time, value (and optionally unit): "
            f"{'; '.join(parts)} / 表头应为 device, metric, time, value（可选 unit）"
        )
    return {n: i for i, n in enumerate(names) if n}


@dataclass(frozen=True, slots=True)
class Checks:
    """What a row is checked against: the site's devices, and the time window ingest accepts."""

    devices: Mapping[str, KnownDevice]
    now: datetime
    future_skew: timedelta
    retention: timedelta


def check_rows(
    rows: Iterable[Sequence[object]],
    columns: Mapping[str, int],
    checks: Checks,
    first_line: int = 2,
) -> Iterator[Reading | RowProblem]:
    """Each data row as a reading or a problem, in order."""
    for offset, row in enumerate(rows):
        yield check_row(first_line + offset, row, columns, checks)


def check_row(
    line: int, row: Sequence[object], columns: Mapping[str, int], checks: Checks
) -> Reading | RowProblem:
    cells = {name: row[i] if i < len(row) else None for name, i in columns.items()}
    device_id, metric_name = _text(cells["device"]), _text(cells["metric"])
    device = checks.devices.get(device_id)
    if device is None:
        return RowProblem(
            line,
            Reason.UNKNOWN_DEVICE,
            f"device {device_id!r} is not registered at this site",
            device_id,
        )
    if not device.active:
        return RowProblem(
            line, Reason.INACTIVE_DEVICE, f"device {device_id!r} is decommissioned", device_id
        )
    metric = device.metrics.get(metric_name)
    if metric is None:
        declared = ", ".join(sorted(device.metrics))
        return RowProblem(
            line,
            Reason.UNKNOWN_METRIC,
            f"metric {metric_name[:64]!r} is not declared for device {device_id!r} "
            f"(declared: {declared})",
            device_id,
            metric_name[:64],
        )
    where = (device_id, metric_name)
    try:
        ts = _timestamp(cells["time"])
        value = _number(cells["value"])
    except ContractError as err:
        return RowProblem(line, err.reason, err.detail, *where)
    return _in_window(line, ts, checks, where) or _converted(
        line, device, metric, ts, value, _text(cells.get("unit")) or None, where
    )


def _in_window(
    line: int, ts: datetime, checks: Checks, where: tuple[str, str]
) -> RowProblem | None:
    problem = window_problem(ts, checks.now, checks.future_skew, checks.retention)
    return None if problem is None else RowProblem(line, *problem, *where, ts)


def _converted(
    line: int,
    device: KnownDevice,
    metric: KnownMetric,
    ts: datetime,
    raw: float,
    unit: str | None,
    where: tuple[str, str],
) -> Reading | RowProblem:
    value = canonical_value(raw, unit, metric.unit, metric.kind, where[1])
    if isinstance(value, tuple):
        return RowProblem(line, *value, *where, ts, raw)
    return Reading(line, device.device_pk, metric.metric_id, ts, value)


def _text(cell: object) -> str:
    return "" if cell is None else str(cell).strip()


def _timestamp(cell: object) -> datetime:
    if isinstance(cell, datetime):
        if cell.tzinfo is None:
            raise ContractError(
                Reason.INVALID_TIMESTAMP,
                f"time {cell.isoformat()} has no UTC offset; write it as text, e.g. "
                "2026-11-21T08:00:00+08:00",
            )
        return parse_timestamp(cell.isoformat())
    return parse_timestamp(_text(cell))


def _number(cell: object) -> float:
    if isinstance(cell, bool):
        raise ContractError(Reason.INVALID_VALUE, "value must be a number, not a boolean")
    try:
        value = float(cell) if isinstance(cell, int | float) else float(_text(cell))
    except ValueError:
        raise ContractError(
            Reason.INVALID_VALUE, f"value {_text(cell)[:32]!r} is not a number"
        ) from None
    if not math.isfinite(value):
        raise ContractError(Reason.INVALID_VALUE, f"value {value} is not finite")
    return value

"""Validate parsed reading sets against the device registry and normalise units — pure.

Input: a :class:`~carbonflow.domain.readings.contract.ParsedMessage`, a registry snapshot, the time
now. Output: rows ready to store (values in each metric's canonical unit) and rejections with
reasons.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple

from carbonflow.domain.readings.contract import (
    ParsedMessage,
    RawValue,
    ReadingSet,
    Reason,
    Rejection,
)
from carbonflow.domain.readings.rules import canonical_value, window_problem
from carbonflow.storage.registry import DeviceInfo, MetricInfo, RegistrySnapshot


@dataclass(frozen=True, slots=True)
class ValidationPolicy:
    future_skew: timedelta
    retention: timedelta


class Candidate(NamedTuple):
    """A reading that passed validation; the counter guard may still reject it.

    A named tuple: one per reading on the hot path, built in C.
    """

    device: DeviceInfo
    metric: MetricInfo
    ts: datetime
    value: float  # canonical unit of the metric
    seq: int | None


@dataclass(slots=True)
class Validation:
    site: str | None
    candidates: list[Candidate] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    serials: list[tuple[int, str, datetime]] = field(default_factory=list)


def validate(
    parsed: ParsedMessage, registry: RegistrySnapshot, now: datetime, policy: ValidationPolicy
) -> Validation:
    address = parsed.address
    out = Validation(site=address.site if address else None)
    out.rejections.extend(parsed.rejections)
    if address is None or not parsed.reading_sets:
        return out
    site_known = address.site in registry.sites
    for reading_set in parsed.reading_sets:
        device = registry.devices.get((address.site, reading_set.device))
        if device is None:
            out.rejections.append(
                _unknown_device(address.site, reading_set.device, site_known, registry)
            )
            continue
        refused = _set_problem(device, reading_set, now, policy)
        if refused is not None:
            out.rejections.append(refused)
            continue
        if reading_set.serial is not None:
            out.serials.append((device.device_pk, reading_set.serial, reading_set.ts))
        for raw in reading_set.values:
            checked = _check_value(device, raw, reading_set.ts, reading_set.seq)
            if isinstance(checked, Rejection):
                out.rejections.append(checked)
            else:
                out.candidates.append(checked)
    return out


def _set_problem(
    device: DeviceInfo,
    reading_set: ReadingSet,
    now: datetime,
    policy: ValidationPolicy,
) -> Rejection | None:
    """Why a whole reading set is refused (device retired, time outside the window), or None."""
    ts = reading_set.ts
    if not device.active:
        return Rejection(
            Reason.INACTIVE_DEVICE,
            f"device {reading_set.device!r} is decommissioned",
            reading_set.device,
            ts=ts,
        )
    problem = window_problem(ts, now, policy.future_skew, policy.retention)
    if problem is not None:
        return Rejection(problem[0], problem[1], reading_set.device, ts=ts)
    return None


def _check_value(
    device: DeviceInfo, raw: RawValue, ts: datetime, seq: int | None
) -> Candidate | Rejection:
    """One value as a candidate in its metric's canonical unit, or the rule it breaks."""
    metric = _metric_of(device, raw, ts)
    if isinstance(metric, Rejection):
        return metric
    value = canonical_value(raw.value, raw.unit, metric.unit, metric.kind, metric.name)
    if isinstance(value, tuple):
        return Rejection(value[0], value[1], device.device_id, metric.name, ts, raw.value)
    return Candidate(device, metric, ts, value, seq)


def _metric_of(device: DeviceInfo, raw: RawValue, ts: datetime) -> MetricInfo | Rejection:
    if raw.metric is None:
        if len(device.metrics) == 1:
            return next(iter(device.metrics.values()))
        return Rejection(
            Reason.INVALID_SCHEMA,
            f"a bare number needs a single-metric device; {device.device_id!r} "
            f"declares {sorted(device.metrics)}",
            device.device_id,
            ts=ts,
            value=raw.value,
        )
    found = device.metrics.get(raw.metric)
    if found is None:
        return Rejection(
            Reason.UNKNOWN_METRIC,
            f"metric {raw.metric[:64]!r} is not declared for device {device.device_id!r} "
            f"(declared: {', '.join(sorted(device.metrics))})",
            device.device_id,
            raw.metric[:64],
            ts,
            raw.value,
        )
    return found


def _unknown_device(
    site: str, device: str, site_known: bool, registry: RegistrySnapshot
) -> Rejection:
    elsewhere = registry.device_sites.get(device, ())
    if elsewhere and site not in elsewhere:
        return Rejection(
            Reason.WRONG_SITE,
            f"device {device!r} belongs to site {', '.join(elsewhere)}, not {site!r}",
            device,
        )
    if not site_known:
        return Rejection(Reason.UNKNOWN_SITE, f"site {site!r} is not in the registry", device)
    return Rejection(
        Reason.UNKNOWN_DEVICE, f"device {device!r} is not registered at site {site!r}", device
    )

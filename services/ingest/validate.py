"""Validate parsed reading sets against the device registry and normalise units — pure.

Input: a :class:`~carbonflow.domain.readings.contract.ParsedMessage`, a registry snapshot, the time
now. Output: rows ready to store (values in each metric's canonical unit) and rejections with
reasons.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from carbonflow.domain import units
from carbonflow.domain.readings.contract import (
    ParsedMessage,
    Reason,
    Rejection,
    converted_value_problem,
)
from carbonflow.storage.registry import DeviceInfo, MetricInfo, RegistrySnapshot


@dataclass(frozen=True, slots=True)
class ValidationPolicy:
    future_skew: timedelta
    retention: timedelta


@dataclass(frozen=True, slots=True)
class Candidate:
    """A reading that passed validation; the counter guard may still reject it."""

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


def validate(  # noqa: C901, PLR0912 — one check per rejection reason, in the contract's order
    parsed: ParsedMessage, registry: RegistrySnapshot, now: datetime, policy: ValidationPolicy
) -> Validation:
    address = parsed.address
    out = Validation(site=address.site if address else None)
    out.rejections.extend(parsed.rejections)
    if address is None or not parsed.reading_sets:
        return out
    site_known = address.site in registry.sites
    latest_ok = now + policy.future_skew
    oldest_ok = now - policy.retention
    for reading_set in parsed.reading_sets:
        device = registry.devices.get((address.site, reading_set.device))
        if device is None:
            out.rejections.append(
                _unknown_device(address.site, reading_set.device, site_known, registry)
            )
            continue
        if not device.active:
            out.rejections.append(
                Rejection(
                    Reason.INACTIVE_DEVICE,
                    f"device {reading_set.device!r} is decommissioned",
                    reading_set.device,
                    ts=reading_set.ts,
                )
            )
            continue
        ts = reading_set.ts
        if ts > latest_ok:
            out.rejections.append(
                Rejection(
                    Reason.FUTURE_TIMESTAMP,
                    f"ts {ts.isoformat()} is {(ts - now).total_seconds():.0f} s ahead of the "
                    f"ingest clock (allowed skew {policy.future_skew.total_seconds():.0f} s)",
                    reading_set.device,
                    ts=ts,
                )
            )
            continue
        if ts < oldest_ok:
            out.rejections.append(
                Rejection(
                    Reason.TOO_OLD,
                    f"ts {ts.isoformat()} is older than the retention window "
                    f"({policy.retention.days} d)",
                    reading_set.device,
                    ts=ts,
                )
            )
            continue
        if reading_set.serial is not None:
            out.serials.append((device.device_pk, reading_set.serial, ts))
        for raw in reading_set.values:
            if raw.metric is None:
                if len(device.metrics) != 1:
                    out.rejections.append(
                        Rejection(
                            Reason.INVALID_SCHEMA,
                            f"a bare number needs a single-metric device; {device.device_id!r} "
                            f"declares {sorted(device.metrics)}",
                            device.device_id,
                            ts=ts,
                            value=raw.value,
                        )
                    )
                    continue
                metric = next(iter(device.metrics.values()))
            else:
                found = device.metrics.get(raw.metric)
                if found is None:
                    out.rejections.append(
                        Rejection(
                            Reason.UNKNOWN_METRIC,
                            f"metric {raw.metric[:64]!r} is not declared for device "
                            f"{device.device_id!r} (declared: {', '.join(sorted(device.metrics))})",
                            device.device_id,
                            raw.metric[:64],
                            ts,
                            raw.value,
                        )
                    )
                    continue
                metric = found
            value = raw.value
            if raw.unit is not None:
                try:
                    value = units.convert(value, raw.unit, units.lookup(metric.unit))
                except units.UnitError as err:
                    out.rejections.append(
                        Rejection(
                            Reason.UNIT_MISMATCH,
                            str(err),
                            device.device_id,
                            metric.name,
                            ts,
                            raw.value,
                        )
                    )
                    continue
                problem = converted_value_problem(value)
                if problem is not None:
                    out.rejections.append(
                        Rejection(
                            problem[0], problem[1], device.device_id, metric.name, ts, raw.value
                        )
                    )
                    continue
            if metric.kind == "counter" and value < 0:
                out.rejections.append(
                    Rejection(
                        Reason.NEGATIVE_COUNTER,
                        f"{metric.name} is a cumulative counter; {value:g} is below zero",
                        device.device_id,
                        metric.name,
                        ts,
                        raw.value,
                    )
                )
                continue
            out.candidates.append(Candidate(device, metric, ts, value, reading_set.seq))
    return out


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

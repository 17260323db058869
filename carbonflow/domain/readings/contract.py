"""The MQTT contract, v1: topics, payloads and the closed list of rejection reasons.

Pure: bytes and strings in, frozen values out. The ingest service parses with it and the
simulators build payloads with it, so the two cannot drift. ``docs/mqtt.md`` documents it.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, NamedTuple

import msgspec
import orjson

from carbonflow.domain import units

TOPIC_PREFIX = "carbonflow/v1"
DEVICE_TOPIC = TOPIC_PREFIX + "/{site}/{device}/telemetry"
GATEWAY_TOPIC = TOPIC_PREFIX + "/{site}/gateway/{gateway}/telemetry"
# What ingest subscribes to: every v1 device and gateway topic.
SUBSCRIPTION = TOPIC_PREFIX + "/#"

_SLUG = r"[a-z0-9][a-z0-9_-]{0,62}"
_SLUG_RE = re.compile(rf"^{_SLUG}$")
_DEVICE_TOPIC_RE = re.compile(rf"^carbonflow/v1/({_SLUG})/({_SLUG})/telemetry$")
_GATEWAY_TOPIC_RE = re.compile(rf"^carbonflow/v1/({_SLUG})/gateway/({_SLUG})/telemetry$")

# Epoch values below this are taken to be seconds sent by mistake (it is 1973 in ms).
_EPOCH_MS_MIN = 100_000_000_000
_EPOCH_MS_MAX = 10_000_000_000_000  # year 2286

# ---- range rules: what a message may carry at all, before any registry look-up ------------------
# ``seq`` is stored as a PostgreSQL bigint (signed 64-bit).
SEQ_MAX = 2**63 - 1
# The platform's time window, the same for both timestamp forms: epoch ms 10¹¹ (1973-03-03) to
# 10¹³ (2286-11-20). Outside it a timestamp is a device fault, not a reading.
TS_MIN = datetime.fromtimestamp(_EPOCH_MS_MIN / 1000, tz=UTC)
TS_MAX = datetime.fromtimestamp(_EPOCH_MS_MAX / 1000, tz=UTC)
# Largest plausible magnitude of a value, before and after unit conversion, in any unit of the
# table: 10¹⁵ kWh is 1 000 TWh, ~3 % of the world's yearly electricity; no meter reads more.
MAX_ABS_VALUE = 1e15
# Plausible magnitude of a value by dimension, in the dimension's reference unit (kWh, kW, …):
# what no meter or sensor of an industrial site reads. Energy, volume, mass and heat counters:
# 10¹² (a 1 GW plant runs 30 years to 2.6·10¹¹ kWh); power 10⁸ kW (100 GW); flows 10⁷ Nm³/min
# or t/h; percentages ±10³ (a concentration is ≤ 100 %, a few instruments read over range);
# irradiance 10⁴ W/m² (the solar constant is 1 361); wind 10³ m/s; temperature 10⁴ °C.
PLAUSIBLE_MAX_ABS: dict[units.Dimension, float] = {
    units.Dimension.ENERGY: 1e12,
    units.Dimension.POWER: 1e8,
    units.Dimension.GAS_VOLUME: 1e12,
    units.Dimension.GAS_FLOW: 1e7,
    units.Dimension.LIQUID_VOLUME: 1e12,
    units.Dimension.MASS: 1e12,
    units.Dimension.HEAT: 1e12,
    units.Dimension.FRACTION: 1e3,
    units.Dimension.IRRADIANCE: 1e4,
    units.Dimension.SPEED: 1e3,
    units.Dimension.TEMPERATURE: 1e4,
    units.Dimension.MASS_FLOW: 1e7,
}
# C0 and C1 control characters and DEL (NUL among them: PostgreSQL text cannot hold it).
_CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f]")


class Reason(StrEnum):
    """Why a message or a reading was rejected. Closed list; stored in ``rejected_reading``."""

    PAYLOAD_TOO_LARGE = "payload_too_large"
    MALFORMED_JSON = "malformed_json"
    INVALID_SCHEMA = "invalid_schema"
    INVALID_VALUE = "invalid_value"
    INVALID_TIMESTAMP = "invalid_timestamp"
    UNKNOWN_TOPIC = "unknown_topic"
    UNKNOWN_SITE = "unknown_site"
    UNKNOWN_DEVICE = "unknown_device"
    INACTIVE_DEVICE = "inactive_device"
    WRONG_SITE = "wrong_site"
    UNKNOWN_METRIC = "unknown_metric"
    UNIT_MISMATCH = "unit_mismatch"
    FUTURE_TIMESTAMP = "future_timestamp"
    TOO_OLD = "too_old"
    COUNTER_BACKWARDS = "counter_backwards"
    DUPLICATE_CONFLICT = "duplicate_conflict"
    STORE_FAILED = "store_failed"
    DUPLICATE_KEY = "duplicate_key"
    INVALID_TEXT = "invalid_text"
    SEQ_OUT_OF_RANGE = "seq_out_of_range"
    TIMESTAMP_OUT_OF_RANGE = "timestamp_out_of_range"
    VALUE_OUT_OF_RANGE = "value_out_of_range"
    NON_FINITE_AFTER_CONVERSION = "non_finite_after_conversion"
    NEGATIVE_COUNTER = "negative_counter"
    UNPROCESSABLE = "unprocessable"


@dataclass(frozen=True, slots=True)
class TopicAddress:
    site: str
    device: str | None  # None for a gateway topic
    gateway: str | None = None


class RawValue(NamedTuple):
    """One value as sent: ``metric`` None for a bare number (single-metric device).

    A named tuple, like :class:`ReadingSet`, because one is made per reading on ingest's hot
    path and a tuple is built in C (a frozen dataclass sets each field through Python).
    """

    metric: str | None
    value: float
    unit: str | None = None


class ReadingSet(NamedTuple):
    """Values one device measured at one instant."""

    device: str
    ts: datetime
    values: tuple[RawValue, ...]
    seq: int | None = None
    serial: str | None = None
    ts_from_broker: bool = False  # True only for bare numbers, which carry no timestamp


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: Reason
    detail: str
    device: str | None = None
    metric: str | None = None
    ts: datetime | None = None
    value: float | None = None


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    address: TopicAddress | None
    reading_sets: tuple[ReadingSet, ...] = ()
    rejections: tuple[Rejection, ...] = field(default_factory=tuple)


class ContractError(ValueError):
    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def is_slug(value: str) -> bool:
    return bool(_SLUG_RE.match(value))


def device_topic(site: str, device: str) -> str:
    return DEVICE_TOPIC.format(site=site, device=device)


def gateway_topic(site: str, gateway: str) -> str:
    return GATEWAY_TOPIC.format(site=site, gateway=gateway)


def parse_topic(topic: str) -> TopicAddress:
    if m := _DEVICE_TOPIC_RE.match(topic):
        if m.group(2) == "gateway":
            raise ContractError(Reason.UNKNOWN_TOPIC, f"{topic!r}: 'gateway' is reserved")
        return TopicAddress(site=m.group(1), device=m.group(2))
    if m := _GATEWAY_TOPIC_RE.match(topic):
        return TopicAddress(site=m.group(1), device=None, gateway=m.group(2))
    raise ContractError(
        Reason.UNKNOWN_TOPIC,
        f"{topic[:200]!r} is not carbonflow/v1/<site>/<device>/telemetry "
        "or carbonflow/v1/<site>/gateway/<gateway>/telemetry",
    )


def parse_timestamp(raw: object) -> datetime:
    """RFC 3339 with an explicit offset, or integer epoch milliseconds; aware UTC out."""
    if isinstance(raw, str):
        return _parse_rfc3339(raw)
    if isinstance(raw, bool):
        raise ContractError(Reason.INVALID_TIMESTAMP, "ts must be RFC 3339 text or epoch ms")
    if _huge_integer(raw):
        raise ContractError(Reason.TIMESTAMP_OUT_OF_RANGE, f"ts {raw!r} is beyond year 2286")
    if isinstance(raw, int):
        if raw < _EPOCH_MS_MIN:
            raise ContractError(
                Reason.INVALID_TIMESTAMP, f"ts {raw} looks like epoch seconds; send milliseconds"
            )
        if raw > _EPOCH_MS_MAX:
            raise ContractError(
                Reason.TIMESTAMP_OUT_OF_RANGE, f"ts {str(raw)[:32]} is beyond year 2286"
            )
        return datetime.fromtimestamp(raw / 1000.0, tz=UTC)
    raise ContractError(Reason.INVALID_TIMESTAMP, f"ts must be text or epoch ms, not {_kind(raw)}")


@functools.lru_cache(maxsize=16_384)
def _parse_rfc3339(raw: str) -> datetime:
    # Cached: a fleet reports on the same minute boundaries, so the same text arrives from
    # every device; errors are raised again each time (lru_cache keeps only results).
    text = raw.strip()
    if _long_year(text):
        raise ContractError(
            Reason.TIMESTAMP_OUT_OF_RANGE, f"ts {raw[:64]!r} is beyond the platform's window"
        )
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ContractError(Reason.INVALID_TIMESTAMP, f"ts {raw[:64]!r} is not RFC 3339") from None
    if parsed.tzinfo is None or ("T" not in text and "t" not in text):
        raise ContractError(
            Reason.INVALID_TIMESTAMP,
            f"ts {raw[:64]!r} has no UTC offset; send e.g. 2026-11-21T08:00:00+08:00",
        )
    try:
        utc = parsed.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:00-05:00 is in year 10000 in UTC
        utc = None
    if utc is None or not TS_MIN <= utc <= TS_MAX:
        raise ContractError(
            Reason.TIMESTAMP_OUT_OF_RANGE,
            f"ts {raw[:64]!r} is outside {TS_MIN:%Y-%m-%d}…{TS_MAX:%Y-%m-%d} (UTC)",
        )
    return utc


def _long_year(text: str) -> bool:
    """A year of five or more digits (optionally signed): beyond what any datetime holds."""
    digits = text[1:6] if text[:1] in ("+", "-") else text[:5]
    return len(digits) == 5 and digits.isdecimal()


def parse_message(
    topic: str, payload: bytes, received_at: datetime, max_bytes: int
) -> ParsedMessage:
    """Decode one MQTT message into reading sets and rejections; never raises."""
    try:
        address = parse_topic(topic)
    except ContractError as err:
        return ParsedMessage(None, rejections=(Rejection(err.reason, err.detail),))
    if len(payload) > max_bytes:
        detail = f"payload is {len(payload)} bytes; the limit is {max_bytes}"
        return ParsedMessage(
            address, rejections=(Rejection(Reason.PAYLOAD_TOO_LARGE, detail, address.device),)
        )
    if address.device is not None:
        fast = _fast_reading_sets(address.device, payload)
        if fast is not None:
            return ParsedMessage(address, fast)
    return _parse_general(address, payload, received_at)


def _parse_general(address: TopicAddress, payload: bytes, received_at: datetime) -> ParsedMessage:
    """Any payload: decoded as any JSON, then checked field by field, each rule with its reason."""
    try:
        document = _decode_json(payload)
    except ContractError as err:
        return ParsedMessage(
            address, rejections=(Rejection(err.reason, err.detail, address.device),)
        )

    sets: list[ReadingSet] = []
    rejections: list[Rejection] = []
    if address.device is not None:
        _collect_device_document(address.device, document, received_at, sets, rejections)
    elif not isinstance(document, dict) or not isinstance(document.get("devices"), dict):
        rejections.append(
            Rejection(Reason.INVALID_SCHEMA, 'a gateway payload is {"devices": {"<device>": …}}')
        )
    elif not document["devices"]:
        rejections.append(Rejection(Reason.INVALID_SCHEMA, "a gateway payload with no devices"))
    else:
        for device, sub in document["devices"].items():
            if not is_slug(device):
                rejections.append(
                    Rejection(Reason.INVALID_SCHEMA, f"device id {device[:64]!r} is not a slug")
                )
                continue
            _collect_device_document(device, sub, received_at, sets, rejections)
    return ParsedMessage(address, tuple(sets), tuple(rejections))


class _FastValue(msgspec.Struct, forbid_unknown_fields=True):
    value: float
    unit: str | msgspec.UnsetType = msgspec.UNSET


class _FastSet(msgspec.Struct, forbid_unknown_fields=True):
    ts: str | int
    values: dict[str, float | _FastValue]
    seq: int | msgspec.UnsetType = msgspec.UNSET
    serial: str | msgspec.UnsetType = msgspec.UNSET


_FAST_DECODER = msgspec.json.Decoder(list[_FastSet] | _FastSet)


def _fast_reading_sets(device: str, payload: bytes) -> tuple[ReadingSet, ...] | None:
    """The reading sets of a device payload that breaks no rule, or None to take the general path.

    Why two paths: nearly every message is well formed, and a typed decoder checks its shape in C
    (~20× cheaper per reading than walking a decoded tree). Anything unusual — a rule broken, an
    explicit null, a ``\\u`` escape, a duplicate key — returns None, and the general path below
    names the reason. So this path only ever accepts, and must accept exactly what the general
    path accepts unchanged (tests/domain/readings/test_contract_fast.py compares the two).
    """
    if b"\\u" in payload:
        return None
    try:
        decoded = _FAST_DECODER.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    documents = decoded if isinstance(decoded, list) else [decoded]
    if not documents:
        return None
    sets: list[ReadingSet] = []
    # Duplicate keys: the same colon count as _may_have_duplicate_keys, from the typed values.
    keys = colons = 0
    for doc in documents:
        counted = _fast_set(device, doc, sets)
        if counted is None:
            return None
        keys += counted[0]
        colons += counted[1]
    if payload.count(b":") != keys + colons:
        return None
    return tuple(sets)


def _fast_set(device: str, doc: _FastSet, sets: list[ReadingSet]) -> tuple[int, int] | None:
    """Append ``doc`` as a reading set if it breaks no rule; its (keys, colons in strings)."""
    header = _fast_header(doc)
    values = _fast_values(doc.values)
    if header is None or values is None:
        return None
    ts, seq, serial, keys, colons = header
    sets.append(ReadingSet(device, ts, values[0], seq=seq, serial=serial))
    return keys + values[1], colons + values[2]


def _fast_header(doc: _FastSet) -> tuple[datetime, int | None, str | None, int, int] | None:
    """ts, seq, serial of a reading set if each keeps its rule; with their keys and colons."""
    keys, colons = 2, 0  # "ts" and "values"
    if isinstance(doc.ts, str):
        colons += doc.ts.count(":")
    try:
        ts = parse_timestamp(doc.ts)
    except ContractError:
        return None
    seq = None if isinstance(doc.seq, msgspec.UnsetType) else doc.seq
    serial = None if isinstance(doc.serial, msgspec.UnsetType) else doc.serial
    if seq is not None:
        keys += 1
        if not 0 <= seq <= SEQ_MAX:
            return None
    if serial is not None:
        keys += 1
        colons += serial.count(":")
        if not 0 < len(serial) <= 64 or not _clean_name(serial):
            return None
    return ts, seq, serial, keys, colons


def _fast_values(
    values: dict[str, float | _FastValue],
) -> tuple[tuple[RawValue, ...], int, int] | None:
    """The values of a reading set if each keeps its rule; with their keys and colons."""
    if not values:
        return None
    keys, colons = len(values), 0
    out: list[RawValue] = []
    for metric, raw in values.items():
        unit: str | None = None
        if isinstance(raw, _FastValue):
            value = raw.value
            keys += 1
            if not isinstance(raw.unit, msgspec.UnsetType):
                unit = raw.unit
                keys += 1
                colons += unit.count(":")
        else:
            value = raw
        colons += metric.count(":")
        if not (
            _clean_name(metric)
            and (unit is None or _clean_name(unit))
            and math.isfinite(value)
            and abs(value) <= MAX_ABS_VALUE
        ):
            return None
        out.append(RawValue(metric, value, unit))
    return tuple(out), keys, colons


def _decode_json(payload: bytes) -> Any:
    try:
        document = orjson.loads(payload)
    except orjson.JSONDecodeError:
        pass
    else:
        # orjson keeps the last of duplicate keys; the contract rejects them (which one was meant?).
        if _may_have_duplicate_keys(payload, document):
            _decode_strict(payload)  # raises duplicate_key, or proves there was none
        return document
    return _decode_strict(payload)


def _may_have_duplicate_keys(payload: bytes, document: Any) -> bool:
    """False only if ``document`` (orjson's decoding of ``payload``) lost no duplicate key.

    Outside strings, every ``:`` in JSON text follows a key. Without ``\\u`` escapes, every ``:``
    inside a string of the text is a ``:`` in a decoded string, unless the string was dropped
    with a duplicate key. So the text's colons equal the decoded keys plus the colons in decoded
    strings exactly when no key was dropped.
    """
    if b"\\u" in payload:
        return True
    keys = colons = 0
    stack = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            keys += len(node)
            for key, sub in node.items():
                colons += key.count(":")
                stack.append(sub)
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, str):
            colons += node.count(":")
    return payload.count(b":") != keys + colons


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ContractError(Reason.DUPLICATE_KEY, f"key {key[:64]!r} appears twice")
            seen.add(key)
    return document


def _decode_strict(payload: bytes) -> Any:
    # orjson refuses NaN/Infinity tokens; the standard parser accepts them so that one bad
    # value rejects only itself (invalid_value), not its valid neighbours.
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ContractError(
            Reason.MALFORMED_JSON, f"payload is not UTF-8 ({err.reason} at byte {err.start})"
        ) from None
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except ContractError:
        raise
    except ValueError as err:
        if not isinstance(err, json.JSONDecodeError):  # an integer of more than 4 300 digits
            raise ContractError(Reason.MALFORMED_JSON, str(err)[:200]) from None
        detail, where = err.msg, f" at line {err.lineno} column {err.colno}"
        raise ContractError(Reason.MALFORMED_JSON, f"{detail}{where}") from None
    except RecursionError:
        raise ContractError(Reason.MALFORMED_JSON, "nesting too deep") from None


def _collect_device_document(
    device: str,
    document: Any,
    received_at: datetime,
    sets: list[ReadingSet],
    rejections: list[Rejection],
) -> None:
    if isinstance(document, list):
        if not document:
            rejections.append(Rejection(Reason.INVALID_SCHEMA, "empty batch", device))
        for item in document:
            _collect_reading_set(device, item, received_at, sets, rejections)
    elif _is_number(document) and not isinstance(document, bool):
        checked = _number(document)
        if isinstance(checked, tuple):
            rejections.append(Rejection(checked[0], checked[1], device))
            return
        value = checked
        sets.append(ReadingSet(device, received_at, (RawValue(None, value),), ts_from_broker=True))
    else:
        _collect_reading_set(device, document, received_at, sets, rejections)


def _collect_reading_set(  # noqa: C901, PLR0911, PLR0912 — each field check returns its own rejection reason
    device: str,
    item: Any,
    received_at: datetime,
    sets: list[ReadingSet],
    rejections: list[Rejection],
) -> None:
    if not isinstance(item, dict):
        rejections.append(
            Rejection(
                Reason.INVALID_SCHEMA, f"a reading set is a JSON object, not {_kind(item)}", device
            )
        )
        return
    unknown = set(item) - {"ts", "seq", "values", "serial"}
    if unknown:
        rejections.append(
            Rejection(Reason.INVALID_SCHEMA, f"unknown field(s) {sorted(unknown)[:5]}", device)
        )
        return
    if "ts" not in item:
        rejections.append(Rejection(Reason.INVALID_SCHEMA, "reading set has no ts", device))
        return
    try:
        ts = parse_timestamp(item["ts"])
    except ContractError as err:
        rejections.append(Rejection(err.reason, err.detail, device))
        return
    seq = item.get("seq")
    huge = _huge_integer(seq)  # an integer beyond 64 bits, decoded as a float
    if (
        not huge
        and seq is not None
        and (not isinstance(seq, int) or isinstance(seq, bool) or seq < 0)
    ):
        rejections.append(
            Rejection(Reason.INVALID_SCHEMA, "seq must be a non-negative integer", device, ts=ts)
        )
        return
    if huge or (seq is not None and seq > SEQ_MAX):
        rejections.append(
            Rejection(
                Reason.SEQ_OUT_OF_RANGE,
                f"seq {str(seq)[:32]}… exceeds {SEQ_MAX} (signed 64-bit)",
                device,
                ts=ts,
            )
        )
        return
    serial = item.get("serial")
    if serial is not None and (not isinstance(serial, str) or not 0 < len(serial) <= 64):
        rejections.append(
            Rejection(Reason.INVALID_SCHEMA, "serial must be text of 1–64 chars", device, ts=ts)
        )
        return
    if serial is not None and has_control_chars(serial):
        # The values are still good: keep them, quarantine only the serial.
        rejections.append(
            Rejection(
                Reason.INVALID_TEXT,
                f"serial {serial!r} holds control characters; values kept without it",
                device,
                ts=ts,
            )
        )
        serial = None
    values = item.get("values")
    if not isinstance(values, dict) or not values:
        rejections.append(
            Rejection(
                Reason.INVALID_SCHEMA,
                "values must be a non-empty object of metric: number",
                device,
                ts=ts,
            )
        )
        return
    good: list[RawValue] = []
    for metric, raw in values.items():
        parsed = _parse_value(device, ts, metric, raw)
        if isinstance(parsed, Rejection):
            rejections.append(parsed)
        else:
            good.append(parsed)
    if good:
        sets.append(ReadingSet(device, ts, tuple(good), seq=seq, serial=serial))


def _parse_value(  # noqa: PLR0911 — one return per rejection reason
    device: str, ts: datetime, metric: str, raw: Any
) -> RawValue | Rejection:
    unit: str | None = None
    if has_control_chars(metric):
        return Rejection(
            Reason.INVALID_TEXT, f"metric name {metric[:64]!r} holds control characters", device
        )
    if isinstance(raw, dict):
        if set(raw) - {"value", "unit"} or "value" not in raw:
            return Rejection(
                Reason.INVALID_SCHEMA,
                'a value object is {"value": n, "unit": "…"}',
                device,
                metric,
                ts,
            )
        unit = raw.get("unit")
        if unit is not None and not isinstance(unit, str):
            return Rejection(Reason.INVALID_SCHEMA, "unit must be text", device, metric, ts)
        if unit is not None and has_control_chars(unit):
            return Rejection(
                Reason.INVALID_TEXT,
                f"unit {unit[:64]!r} holds control characters",
                device,
                metric,
                ts,
            )
        raw = raw["value"]
    if isinstance(raw, bool) or not _is_number(raw):
        return Rejection(
            Reason.INVALID_VALUE, f"value must be a number, not {_kind(raw)}", device, metric, ts
        )
    checked = _number(raw)
    if isinstance(checked, tuple):
        return Rejection(checked[0], checked[1], device, metric, ts)
    return RawValue(metric, checked, unit)


def _number(raw: float) -> float | tuple[Reason, str]:
    """A JSON number as a float within the range rules, or why not."""
    try:
        value = float(raw)
    except OverflowError:  # an integer beyond the float range
        return Reason.VALUE_OUT_OF_RANGE, f"value {str(raw)[:32]}… is beyond ±{MAX_ABS_VALUE:g}"
    if not math.isfinite(value):
        return Reason.INVALID_VALUE, f"value {raw} is not finite"
    if abs(value) > MAX_ABS_VALUE:
        return Reason.VALUE_OUT_OF_RANGE, f"value {value:g} is beyond ±{MAX_ABS_VALUE:g}"
    return value


def converted_value_problem(value: float) -> tuple[Reason, str] | None:
    """The range rule after unit conversion (a finite 1e308 MW is infinite in kW)."""
    if not math.isfinite(value):
        return Reason.NON_FINITE_AFTER_CONVERSION, f"value is {value} after unit conversion"
    if abs(value) > MAX_ABS_VALUE:
        return (
            Reason.VALUE_OUT_OF_RANGE,
            f"value {value:g} after unit conversion is beyond ±{MAX_ABS_VALUE:g}",
        )
    return None


@functools.lru_cache(maxsize=256)
def plausible_max_abs(unit_symbol: str) -> float:
    """The largest plausible magnitude of a value in ``unit_symbol`` (a metric's canonical unit)."""
    unit = units.lookup(unit_symbol)
    # The table is in each dimension's reference unit (to_canonical = 1).
    return PLAUSIBLE_MAX_ABS[unit.dimension] / unit.to_canonical


def plausibility_problem(value: float, unit_symbol: str) -> tuple[Reason, str] | None:
    """The per-metric magnitude rule: a value beyond what any meter of the kind reads."""
    limit = plausible_max_abs(unit_symbol)
    if abs(value) > limit:
        return (
            Reason.VALUE_OUT_OF_RANGE,
            f"{value:g} {unit_symbol} is beyond the plausible ±{limit:g} {unit_symbol}",
        )
    return None


def has_control_chars(text: str) -> bool:
    """Control characters (NUL among them) have no place in names, units or serials."""
    return _CONTROL_RE.search(text) is not None


@functools.lru_cache(maxsize=4096)
def _clean_name(text: str) -> bool:
    """``not has_control_chars`` for metric names and units, which repeat in every message."""
    return not has_control_chars(text)


def _huge_integer(raw: object) -> bool:
    """An integer literal beyond 64 bits, which orjson decodes as a float (``2**64`` → 1.8e19)."""
    return isinstance(raw, float) and math.isfinite(raw) and raw.is_integer() and raw >= 2**63


def _is_number(raw: object) -> bool:
    return isinstance(raw, int | float)


def _kind(raw: object) -> str:
    return {
        dict: "an object",
        list: "an array",
        str: "text",
        bool: "a boolean",
        type(None): "null",
    }.get(type(raw), type(raw).__name__)


# ---- building payloads (simulators, tests, docs) ---------------------------------------------


def format_ts(ts: datetime) -> str:
    """RFC 3339 with offset, millisecond precision."""
    if ts.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return ts.isoformat(timespec="milliseconds")


def reading_set_document(
    ts: datetime, values: Mapping[str, object], seq: int | None = None, serial: str | None = None
) -> dict[str, Any]:
    doc: dict[str, Any] = {"ts": format_ts(ts), "values": dict(values)}
    if seq is not None:
        doc["seq"] = seq
    if serial is not None:
        doc["serial"] = serial
    return doc


def encode(document: object) -> bytes:
    return orjson.dumps(document)


def encode_batch(sets: Iterable[Mapping[str, Any]]) -> bytes:
    return orjson.dumps(list(sets))

"""Drive the real ingest pipeline steps on one payload, without broker or database.

parse → validate → convert → seal (counter guard) → the rows COPY would send, encoded by
psycopg's own binary dumpers, and the rejection and serial rows with PostgreSQL's text rule
(no NUL). :func:`drive` says what became of a payload; any exception escaping is a bug.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

from hypothesis import strategies as st
from psycopg.adapt import PyFormat, Transformer
from psycopg.pq import Format

from carbonflow.domain.readings.contract import device_topic, gateway_topic
from carbonflow.storage.readings import ReadingRow, RejectionRow
from carbonflow.storage.registry import DeviceInfo, MetricInfo, RegistrySnapshot
from services.ingest.batch import Batch
from services.ingest.counter_guard import CounterGuard
from services.ingest.messages import InboundMessage
from services.ingest.pipeline import Pipeline
from services.ingest.validate import ValidationPolicy

NOW = datetime(2026, 11, 21, 8, tzinfo=UTC)
KWH = MetricInfo(1, "energy_import_kwh", "kWh", "counter")
KW = MetricInfo(2, "power_kw", "kW", "gauge")
CH4 = MetricInfo(3, "ch4_pct", "%", "gauge")
METRICS = ("energy_import_kwh", "power_kw", "ch4_pct")
UNITS = ("kWh", "Wh", "MWh", "GWh", "kW", "W", "MW", "%", "fraction", "Nm3", "furlong")
_COPY_TYPES = ("int4", "int2", "timestamptz", "float8", "int8", "timestamptz")


def registry() -> RegistrySnapshot:
    """Sites a and b: an active counter-and-power meter, an inactive meter, a CH4 sensor, a
    meter at b (the ingest unit tests' registry too)."""
    devices = {
        ("a", "m1"): DeviceInfo(
            1,
            "a",
            "m1",
            True,
            1_000_000.0,
            MappingProxyType({"energy_import_kwh": KWH, "power_kw": KW}),
        ),
        ("a", "old"): DeviceInfo(2, "a", "old", False, None, MappingProxyType({"power_kw": KW})),
        ("a", "ch4"): DeviceInfo(3, "a", "ch4", True, None, MappingProxyType({"ch4_pct": CH4})),
        ("b", "x1"): DeviceInfo(4, "b", "x1", True, None, MappingProxyType({"power_kw": KW})),
    }
    return RegistrySnapshot(
        sites=frozenset({"a", "b"}),
        devices=MappingProxyType(devices),
        device_sites=MappingProxyType({"m1": ("a",), "old": ("a",), "ch4": ("a",), "x1": ("b",)}),
        by_pk=MappingProxyType({d.device_pk: d for d in devices.values()}),
    )


def pipeline() -> Pipeline:
    return Pipeline(
        registry=registry,
        guard=CounterGuard(lambda keys: {}),
        policy=ValidationPolicy(future_skew=timedelta(seconds=300), retention=timedelta(days=3650)),
        max_payload_bytes=256 * 1024,
        wall_clock=lambda: NOW,
    )


@dataclass(frozen=True, slots=True)
class Outcome:
    rows: list[ReadingRow]
    rejections: list[RejectionRow]
    serials: list[tuple[int, str, datetime, datetime]]


def copy_encode(rows: Sequence[ReadingRow]) -> None:
    """Encode rows exactly as ``BatchStore.store`` does for COPY (raises what it would raise)."""
    tx = Transformer()
    tx.set_dumper_types([tx.adapters.types[t].oid for t in _COPY_TYPES], Format.BINARY)
    for row in rows:
        tx.dump_sequence(row, [PyFormat.BINARY] * len(_COPY_TYPES))


def check_text(value: object, where: str) -> None:
    if isinstance(value, str) and "\x00" in value:
        raise AssertionError(f"{where} holds NUL, which PostgreSQL text refuses: {value!r}")


def drive(topic: str, payload: bytes, pipe: Pipeline | None = None) -> Outcome:
    """One message through the real steps; raises whatever would have escaped into the loop."""
    pipe = pipe or pipeline()
    batch = Batch(opened_at=0.0)
    message = InboundMessage(topic, payload, 1, 1, NOW, 1)
    pipe.add(batch, message)
    pipe.seal(batch)
    copy_encode(batch.rows)
    for r in batch.rejections:
        for f in fields(r):
            check_text(getattr(r, f.name), f"rejection {f.name}")
        r.dedup_key()
    for _pk, serial, _lo, _hi in batch.serial_rows():
        check_text(serial, "serial")
    return Outcome(list(batch.rows), list(batch.rejections), batch.serial_rows())


def assert_accounted(outcome: Outcome) -> None:
    """Every payload is stored or quarantined, and nothing stored is non-finite."""
    assert outcome.rows or outcome.rejections, "payload neither stored nor rejected"
    for row in outcome.rows:
        assert math.isfinite(row[3]), row
        assert row[4] is None or -(2**63) <= row[4] < 2**63, row


# ---- payload strategies ------------------------------------------------------------------------

_hostile_text = st.one_of(
    st.text(max_size=20),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=8),
    st.sampled_from(["\x00", "a\x00b", "\u2028", "\x1b[31m", "\ud7ff", "𝔘", "ｓｅｒｉａｌ", "\t"]),
)
_magnitudes = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e308, -1e308, 1.7976931348623157e308, 5e-324, 1e15, 1e16, -0.0]),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([2**63, 2**63 - 1, -(2**63) - 1, 10**400, -(10**400)]),
)
_timestamps = st.one_of(
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.sampled_from(
        [
            "10000-01-01T00:00:00+00:00",
            "9999-12-31T23:59:59-23:59",
            "0001-01-01T00:00:00+23:59",
            "2026-11-21T08:00:00+99:00",
            "2026-11-21T08:00:00+24:00",
            "2026-11-21T07:59:00Z",
            "2026-11-21T07:59:00\x00Z",
            "1969-12-31T23:59:59Z",
        ]
    ),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from([10**400, 2**63, 1763711940000, 1.7637e12, -1]),
    _hostile_text,
)
_value = st.one_of(
    _magnitudes,
    st.fixed_dictionaries({"value": _magnitudes}, optional={"unit": st.sampled_from(UNITS)}),
    st.fixed_dictionaries({"value": _magnitudes, "unit": _hostile_text}),
    st.none(),
    st.booleans(),
    _hostile_text,
    st.lists(st.integers(), max_size=3),
)
_metric = st.one_of(st.sampled_from(METRICS), _hostile_text)
_reading_set = st.fixed_dictionaries(
    {
        "ts": _timestamps,
        "values": st.dictionaries(_metric, _value, max_size=4),
    },
    optional={
        "seq": st.one_of(_magnitudes, _hostile_text),
        "serial": st.one_of(_hostile_text, st.text(min_size=60, max_size=70)),
        "extra": st.integers(),
    },
)
_json = st.recursive(
    st.none() | st.booleans() | _magnitudes | _hostile_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_hostile_text, inner, max_size=4),
    max_leaves=20,
)
_document = st.one_of(
    _reading_set,
    st.lists(_reading_set, max_size=4),
    st.fixed_dictionaries(
        {"devices": st.dictionaries(st.sampled_from(["m1", "ch4", "X", "ghost"]), _reading_set)}
    ),
    _json,
)


def _dumps(document: Any, duplicate: bool) -> bytes:
    text = json.dumps(document, allow_nan=True, ensure_ascii=False)
    if duplicate and text.startswith("{") and len(text) > 2:
        # repeat the first member: valid JSON text with a duplicate key
        first = json.dumps(document, allow_nan=True, ensure_ascii=False)[1:-1].split(", ")[0]
        text = "{" + first + ", " + text[1:]
    return text.encode("utf-8", errors="surrogatepass")


@st.composite
def messages(
    draw: st.DrawFn, site: str = "a", devices: tuple[str, ...] = ("m1", "ch4")
) -> tuple[str, bytes]:
    """(topic, payload) around the contract: types, magnitudes, unicode, nesting, sizes."""
    gateway = draw(st.booleans())
    topic = (
        gateway_topic(site, "gw1")
        if gateway
        else device_topic(site, draw(st.sampled_from(devices)))
    )
    document = draw(_document)
    payload = _dumps(document, draw(st.booleans()))
    mutate = draw(st.sampled_from(["none", "none", "truncate", "nest", "bytes"]))
    if mutate == "truncate":
        payload = payload[: draw(st.integers(min_value=0, max_value=len(payload)))]
    elif mutate == "nest":
        depth = draw(st.integers(min_value=1, max_value=100_000))
        payload = b"[" * depth + payload + b"]" * depth
    elif mutate == "bytes":
        payload = draw(st.binary(max_size=200))
    return topic, payload


# ---- a seeded mutation corpus, for volumes hypothesis does not generate in one example ---------

_HOSTILE_TOKENS = (
    b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e400", b"9" * 400, b"1e308", b"2e15",
    b"9223372036854775808", b"-1", b"true", b"null", b'"\\u0000"', b'"\\ud800"', b"{}", b"[]",
    b'"10000-01-01T00:00:00Z"', b'"2026-11-21T08:00:00+99:00"', b'"\xff\xfe"', b'"\x00"',
    b'{"value": 1e308, "unit": "MW"}', b'{"value": 1, "unit": "furlong"}', b"[" * 50,
)  # fmt: skip
_MUTATIONS = ("flip", "truncate", "insert", "replace_number", "duplicate", "splice")


def mutated_corpus(seed: int, size: int, templates: Sequence[bytes]) -> list[bytes]:
    """``size`` payloads made from ``templates`` by seeded byte-level mutations: flipped and
    inserted bytes, truncation, hostile tokens in place of numbers, repeated members, splices
    of two templates. Deterministic for a seed."""
    rng = random.Random(seed)
    out: list[bytes] = []
    for _ in range(size):
        payload = bytearray(rng.choice(templates))
        for _ in range(rng.randint(1, 3)):
            payload = _mutate(rng, payload, templates)
        out.append(bytes(payload[:4096]))
    return out


def _mutate(rng: random.Random, payload: bytearray, templates: Sequence[bytes]) -> bytearray:
    kind = rng.choice(_MUTATIONS)
    at = rng.randrange(len(payload) + 1)
    if kind == "flip" and payload:
        payload[min(at, len(payload) - 1)] = rng.randrange(256)
    elif kind == "truncate":
        del payload[at:]
    elif kind == "insert":
        payload[at:at] = rng.choice(_HOSTILE_TOKENS)
    elif kind == "replace_number":
        digits = [i for i, b in enumerate(payload) if 0x30 <= b <= 0x39]
        if digits:
            i = rng.choice(digits)
            j = i
            while j < len(payload) and payload[j] in b"0123456789.eE+-":
                j += 1
            payload[i:j] = rng.choice(_HOSTILE_TOKENS)
    elif kind == "duplicate" and payload.startswith(b"{"):
        end = payload.find(b",")
        if end > 1:
            payload[1:1] = payload[1 : end + 1]
    else:
        other = rng.choice(templates)
        payload[at:] = other[rng.randrange(len(other) + 1) :]
    return payload

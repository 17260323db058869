"""Pure steps of the ingest pipeline: validation, unit conversion, counter guard, flush policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from carbonflow.domain import units
from carbonflow.domain.readings.contract import (
    Reason,
    device_topic,
    encode,
    parse_message,
    reading_set_document,
)
from services.ingest.batch import Batch, FlushPolicy
from services.ingest.counter_guard import CounterGuard
from services.ingest.pipeline import payload_excerpt
from services.ingest.validate import ValidationPolicy, validate
from tests.support.ingest_fuzz import registry

NOW = datetime(2026, 11, 21, tzinfo=UTC)
POLICY = ValidationPolicy(future_skew=timedelta(seconds=300), retention=timedelta(days=365))


def check(site: str, device: str, payload: bytes):
    parsed = parse_message(device_topic(site, device), payload, NOW, 100_000)
    return validate(parsed, registry(), NOW, POLICY)


def doc(values: dict[str, object], ts: datetime = NOW - timedelta(minutes=1)) -> bytes:
    return encode(reading_set_document(ts, values))


def test_valid_reading_set_becomes_candidates_in_canonical_units() -> None:
    out = check(
        "a",
        "m1",
        encode(
            {
                "ts": NOW.isoformat(),
                "values": {
                    "energy_import_kwh": {"value": 2.5, "unit": "MWh"},
                    "power_kw": {"value": 1500, "unit": "W"},
                },
            }
        ),
    )
    assert not out.rejections
    # 2.5 MWh × 1000 kWh/MWh = 2500 kWh; 1500 W × 0.001 kW/W = 1.5 kW
    assert [(c.metric.name, c.value) for c in out.candidates] == [
        ("energy_import_kwh", 2500.0),
        ("power_kw", 1.5),
    ]


@pytest.mark.parametrize(
    ("site", "device", "payload", "reason"),
    [
        ("zz", "m9", doc({"power_kw": 1}), Reason.UNKNOWN_SITE),
        ("a", "ghost", doc({"power_kw": 1}), Reason.UNKNOWN_DEVICE),
        ("a", "x1", doc({"power_kw": 1}), Reason.WRONG_SITE),
        ("a", "old", doc({"power_kw": 1}), Reason.INACTIVE_DEVICE),
        ("a", "m1", doc({"volts_v_kw": 1}), Reason.UNKNOWN_METRIC),
        (
            "a",
            "m1",
            encode({"ts": NOW.isoformat(), "values": {"power_kw": {"value": 1, "unit": "GJ"}}}),
            Reason.UNIT_MISMATCH,
        ),
        (
            "a",
            "m1",
            encode(
                {"ts": NOW.isoformat(), "values": {"power_kw": {"value": 1, "unit": "furlong"}}}
            ),
            Reason.UNIT_MISMATCH,
        ),
        ("a", "m1", doc({"power_kw": 1}, NOW + timedelta(seconds=301)), Reason.FUTURE_TIMESTAMP),
        ("a", "m1", doc({"power_kw": 1}, NOW - timedelta(days=366)), Reason.TOO_OLD),
        ("a", "m1", b"12.5", Reason.INVALID_SCHEMA),  # bare number, two metrics
    ],
)
def test_registry_rejections(site: str, device: str, payload: bytes, reason: Reason) -> None:
    out = check(site, device, payload)
    assert [r.reason for r in out.rejections] == [reason]
    assert not out.candidates


def test_per_metric_plausible_magnitude() -> None:
    # power: 10⁸ kW is the limit; 100 000 MW = 10⁸ kW is at it, 100 001 MW beyond it
    at_limit: dict[str, object] = {"power_kw": {"value": 100_000, "unit": "MW"}}
    assert not check("a", "m1", doc(at_limit)).rejections
    out = check("a", "m1", doc({"power_kw": {"value": 100_001, "unit": "MW"}}))
    assert [(r.reason, r.metric) for r in out.rejections] == [
        (Reason.VALUE_OUT_OF_RANGE, "power_kw")
    ]
    assert "plausible ±1e+08 kW" in out.rejections[0].detail
    # energy counters may read far more than power (10¹² kWh); a CH4 share at most ±10³ %
    assert not check("a", "m1", doc({"energy_import_kwh": 5e11})).rejections
    (ch4,) = check("a", "ch4", b"1001").rejections
    assert ch4.reason is Reason.VALUE_OUT_OF_RANGE
    assert [c.value for c in check("a", "ch4", b"99.5").candidates] == [99.5]


def test_skew_boundary_and_bare_number_for_single_metric_device() -> None:
    assert not check("a", "m1", doc({"power_kw": 1}, NOW + timedelta(seconds=300))).rejections
    out = check("a", "ch4", b"0.35")
    assert [(c.metric.name, c.value, c.ts) for c in out.candidates] == [("ch4_pct", 0.35, NOW)]


def test_serials_are_collected() -> None:
    out = check("a", "m1", encode(reading_set_document(NOW, {"power_kw": 1}, serial="SN-2")))
    assert out.serials == [(1, "SN-2", NOW)]


def _cands(values: list[tuple[int, float]]):
    out = check(
        "a",
        "m1",
        encode(
            [
                reading_set_document(NOW - timedelta(minutes=100 - m), {"energy_import_kwh": v})
                for m, v in values
            ]
        ),
    )
    return out.candidates


def test_counter_guard_rejects_backwards_but_passes_reset_and_rollover() -> None:
    stored = {(1, 1): (NOW - timedelta(minutes=100), 500_000.0)}
    guard = CounterGuard(lambda keys: {k: stored[k] for k in keys if k in stored})
    cands = _cands([(1, 500_010.0), (2, 499_000.0), (3, 500_020.0)])
    accepted, rejected = guard.filter(cands)
    # 499 000 < 500 010 and above 10 % of it: a dip, not a reset
    assert [cands[i].value for i in accepted] == [500_010.0, 500_020.0]
    assert [(i, r.reason) for i, r in rejected] == [(1, Reason.COUNTER_BACKWARDS)]
    # 950 000 → 20 with modulus 1 000 000: a rollover; then 2 after 30: a reset (≤ 10 %)
    cands = _cands([(4, 950_000.0), (5, 20.0), (6, 30.0), (7, 2.0)])
    accepted, rejected = guard.filter(cands)
    assert not rejected and [cands[i].value for i in accepted] == [950_000.0, 20.0, 30.0, 2.0]


def test_counter_guard_stores_ambiguous_drops_for_calc() -> None:
    """A drop of more than 10 % that is not a reset (an unrecognised reset after a gap, or a
    replaced meter) is stored, and what follows is compared with it: nothing is thrown away."""
    stored = {(1, 1): (NOW - timedelta(minutes=100), 1000.0)}
    guard = CounterGuard(lambda keys: {k: stored[k] for k in keys if k in stored})
    # 1000 → 150: 15 % of the old value, above the 10 % reset line, far below the 90 % dip line;
    # then 160, 170 continue from 150; 168 is a 1.2 % dip after 170: rejected as noise
    cands = _cands([(1, 150.0), (2, 160.0), (3, 170.0), (4, 168.0)])
    accepted, rejected = guard.filter(cands)
    assert [cands[i].value for i in accepted] == [150.0, 160.0, 170.0]
    assert [(i, r.reason) for i, r in rejected] == [(3, Reason.COUNTER_BACKWARDS)]


def test_counter_guard_passes_out_of_order_and_seeds_from_storage_once() -> None:
    calls: list[list[tuple[int, int]]] = []

    def lookup(keys):
        calls.append(list(keys))
        return {}

    guard = CounterGuard(lookup)
    accepted, rejected = guard.filter(
        _cands([(10, 100.0), (5, 50.0)])
    )  # second is older: unchecked
    assert len(accepted) == 2 and not rejected
    guard.filter(_cands([(11, 101.0)]))
    assert calls == [[(1, 1)]]


def test_flush_policy_by_size_count_and_age() -> None:
    policy = FlushPolicy(max_readings=3, max_messages=2, max_age_s=0.25)
    batch = Batch(opened_at=10.0)
    assert not policy.due(batch, 100.0)  # empty never flushes
    assert policy.wait_s(batch, 10.0) == 0.25
    batch.messages.append(object())  # type: ignore[arg-type]
    assert not policy.due(batch, 10.1)
    assert policy.wait_s(batch, 10.1) == pytest.approx(0.15)
    assert policy.due(batch, 10.25)
    batch.rows.extend([object()] * 3)  # type: ignore[list-item]
    assert policy.due(batch, 10.0)


def test_payload_excerpt_is_safe_text() -> None:
    assert payload_excerpt(b"ok") == "ok"
    assert payload_excerpt(b"\x00\xff") == "\\x00\\xff"
    long = payload_excerpt("数".encode() * 5000)
    assert long.endswith("…") and len(long) == 1025


def test_unit_table() -> None:
    assert units.metric_unit("ch4_flow_nm3_min").symbol == "Nm3/min"
    assert units.metric_unit("energy_import_kwh").symbol == "kWh"
    # 1 GJ of heat in kWh_th: 1 / 0.0036 = 277.78 kWh_th
    assert units.convert(1.0, "GJ", units.lookup("kWh_th")) == pytest.approx(277.777, rel=1e-5)
    assert units.convert(60.0, "Nm3/h", units.lookup("Nm3/min")) == pytest.approx(1.0)
    with pytest.raises(units.UnitError, match="unit suffix"):
        units.metric_unit("power")
    with pytest.raises(units.UnitError, match="cannot convert"):
        units.convert(1.0, "kWh", units.lookup("kW"))


def test_unit_table_agrees_with_pint() -> None:
    """Every factor in the table, cross-checked with pint's own definitions."""
    import pint

    ureg: Any = pint.UnitRegistry()
    pint_names = {
        "kWh": "kWh",
        "Wh": "Wh",
        "MWh": "MWh",
        "GWh": "GWh",
        "kW": "kW",
        "W": "W",
        "MW": "MW",
        "L": "L",
        "m3": "m**3",
        "t": "t",
        "kg": "kg",
        "GJ": "GJ",
        "MJ": "MJ",
        "kWh_th": "kWh",
    }
    canonical = {u.dimension: u for u in units.UNITS.values() if u.to_canonical == 1.0}
    for symbol, name in pint_names.items():
        unit = units.lookup(symbol)
        target = pint_names[canonical[unit.dimension].symbol]
        expected = ureg.Quantity(1.0, name).to(target).magnitude
        assert unit.to_canonical == pytest.approx(expected, rel=1e-12), symbol


def test_noise_dip_rule() -> None:
    from carbonflow.domain.readings.counters import is_noise_dip

    # 1000 → 900: exactly 90 % of the previous value, the edge of read-out noise
    assert is_noise_dip(1000.0, 900.0)
    assert is_noise_dip(1000.0, 999.9)
    assert not is_noise_dip(1000.0, 899.0)  # ambiguous: stored, calc decides
    assert not is_noise_dip(1000.0, 50.0)  # reset
    assert not is_noise_dip(1000.0, 1000.0)
    assert not is_noise_dip(950_000.0, 20.0, modulus=1_000_000.0)  # rollover

"""How a ledger's numbers are printed: exact values, rounded per column. Pure.

The ledger document keeps its figures exact (to :data:`document.SIGNIFICANT_DIGITS`, the float
noise of recomputation aside) and computes every total from the exact figures of its lines. What
a person reads — the CSV, XLSX and PDF exports — shows each figure rounded to the decimals of its
column (:data:`DECIMALS`) by the rule of GB/T 8170-2008 《数值修约规则与极限数值的表示和判定》
§3.3: round half to even (四舍六入五成双). A figure is rounded as the decimal number the document
states (its shortest round-trip decimal text, ``2.345``), not as the binary float nearest to it
(2.34499999999999997…), so the rule is applied to the digits one reads. A negative figure is
rounded by its absolute value and keeps its sign (GB/T 8170 §3.4); a figure that rounds to zero
prints as zero, never ``-0.000``.

Round half to even rather than half up: over many lines the halves go up and down alike, so the
rounded lines carry no systematic bias against their total; it is also what the national standard
prescribes for reported figures. Because totals are rounded from their exact values, re-adding
the printed lines may differ from the printed total in the last digit: :data:`NOTE` says so on
every export.

Emission factors, GWPs, tce coefficients and multipliers are not rounded: they are cited values
and print with the digits of their source. Counts and text are untouched.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from carbonflow.domain.ledger.labels import Lang

RULE = "GB/T 8170-2008 round half to even (四舍六入五成双)"

_MASS_T = 4  # gas mass [t]: 0.1 kg (a month's N2O is often below a kilogram)
_CO2E_T = 3  # tCO2e: 1 kg CO2e
_TCE = 3  # tce: 1 kgce
_SHARE = 4  # a share [1]: 0.01 %
_QUANTITY = 3  # activity and register quantities in their own unit (kWh, t, m3, GJ)
_MWH = 3  # MWh: 1 kWh

# Decimals printed per column key; a key not listed prints as the document states it.
DECIMALS: Mapping[str, int] = {
    # activity and devices
    "quantity": _QUANTITY, "device_quantity": _QUANTITY, "opening_reading": _QUANTITY,
    "closing_reading": _QUANTITY, "energy_tce": _TCE,
    "completeness_share": _SHARE, "measured_share": _SHARE, "estimated_share": _SHARE,
    "missing_share": _SHARE,
    **{f"scope_{s}_tco2e_{v}": _CO2E_T for s in (1, 2) for v in ("location", "market")},
    **{f"{g}_t_{v}": _MASS_T for g in ("co2", "ch4", "n2o") for v in ("location", "market")},
    # emissions and totals
    "gas_t": _MASS_T, "tco2e": _CO2E_T, "scope_1_tco2e": _CO2E_T, "scope_2_tco2e": _CO2E_T,
    "total_tco2e": _CO2E_T, "co2_t": _MASS_T, "ch4_t": _MASS_T, "n2o_t": _MASS_T,
    # green power, production, indicators, quality
    "offered_mwh": _MWH, "applied_mwh": _MWH, "unused_mwh": _MWH, "mwh": _MWH,
    "utilised_methane_tce": _TCE,
    "output": _QUANTITY, "intensity_location_tco2e": 6,
    "target_threshold": 4,
    "surplus_export_mwh": _MWH, "surplus_heat_export_gj": _QUANTITY, "attributed_energy_tce": _TCE,
    "attributed_tco2e_location": _CO2E_T, "attributed_tco2e_market": _CO2E_T,
    # changes: before, after and delta share one row's unit, whichever it is
    "before": 6, "after": 6, "delta": 6,
}  # fmt: skip
# Sections whose ``value`` column is a figure to round (in ``factors`` it is a cited factor).
VALUE_DECIMALS: Mapping[str, int] = {"indicators": 4}

NOTE: Mapping[Lang, str] = {
    "zh": (
        "数值修约：台账数值以精确值保存和计算；导出文件按列修约到所示小数位"
        "（GB/T 8170-2008，四舍六入五成双；排放因子、GWP、折标系数和倍率按来源原值列出）。"
        "合计由精确值计算后再修约，故各行修约值相加可能与合计的末位数字不一致。"
    ),
    "en": (
        "Rounding: figures are kept and computed exact; exports round each column to the "
        "decimals shown (GB/T 8170-2008, round half to even; emission factors, GWPs, tce "
        "coefficients and multipliers as their source states them). Totals are computed from "
        "the exact figures, then rounded, so re-adding the printed lines may differ from the "
        "total in the last digit."
    ),
}


def round_half_even(value: float, decimals: int) -> Decimal:
    """``value`` (as the decimal number it reads as) rounded to ``decimals`` places, halves to
    the even digit (GB/T 8170-2008 §3.3); zero is never negative. ``decimals`` ≥ 0."""
    if not math.isfinite(value):
        raise ValueError(f"a ledger figure is not finite: {value!r}")
    if decimals < 0:
        raise ValueError(f"decimals must be ≥ 0, not {decimals}")
    out = Decimal(repr(float(value))).quantize(Decimal(1).scaleb(-decimals), ROUND_HALF_EVEN)
    return abs(out) if out.is_zero() else out


def column_decimals(section: str, key: str) -> int | None:
    """Decimals printed for ``key`` in ``section``; None: print as the document states it."""
    if key == "value":
        return VALUE_DECIMALS.get(section)
    return DECIMALS.get(key)


def presented(section: str, key: str, value: Any) -> Any:
    """``value`` as a ledger export prints it: a float of a rounded column as a
    :class:`~decimal.Decimal` with the column's decimals, anything else unchanged."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    decimals = column_decimals(section, key)
    if decimals is None:
        return value
    return round_half_even(float(value), decimals)


def note(lang: Lang) -> str:
    return NOTE[lang]


def header_entry() -> dict[str, str]:
    """The ledger header's ``rounding`` field: the rule and the note in both languages."""
    return {"rule": RULE, "zh": NOTE["zh"], "en": NOTE["en"]}

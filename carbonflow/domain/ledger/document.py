"""The monthly emission ledger (碳排放台账) of a site or one organisation, as a document. Pure.

:func:`build_ledger` turns what :func:`services.api.reads.ledger_inputs` returns (plus the
month's green-power claims and a header) into a plain JSON-able document with these sections:

============  ===================================================================================
section       rows
============  ===================================================================================
header        site (id, name), organisation (id, registered name, unified social credit code,
              industry), month, period [UTC and site-local], time zone, preparer, generated
              at, calc watermark, status (draft/closed), revision, who closed it and why, the
              rounding rule of the exports (``rounding.py``: rule, note in zh and en)
activity      one per source (category × carrier): quantity + unit, energy [tce] with the tce
              coefficient behind it (key, value, unit), completeness
factors       every factor used: key, value, unit, version, file, source, confidence, data
              year, the accounting year asked for and ``factor_year_fallback``, selection
emissions     one per scope × category × carrier × gas × basis: gas mass [t], CO2e [t], the
              GWP behind the CO2e (key ``gwp.ch4.<set>``, value [tCO2e/t]; ``co2`` = 1)
totals        location- and market-based view: scope 1, scope 2, total [tCO2e], CO2/CH4/N2O [t]
energy_totals the two comprehensive energy totals [tce], labelled (zh/en): with and without the
              coal-mine methane utilised on site, and the indicators built on each
green_power   the month's green-power claims: offered, applied, unused [MWh], accepted and why
green_claims  the register's claims applied to the month (of the organisation; a site ledger all,
              by holder): claim, batch, holder, evidence type, serial range, MWh, production
              month; the purchased-electricity activity line names them (``green_claims``)
production    products: output + unit, location-based intensity [tCO2e per unit of output]
indicators    the month's stored indicators with value, unit, target and status
quality       completeness of the month, sources by quality, surplus export [MWh], heat
              delivered off site beyond the heat bought [GJ]
changes       (revisions ≥ 2) what changed against the previous revision, per line
============  ===================================================================================

Numbers are rounded to :data:`SIGNIFICANT_DIGITS` so that recomputations that agree to float
noise (docs/calc.md: 1e-12 relative) give the same document; :func:`canonical_json` is the one
serialisation (sorted keys, no spaces, UTF-8), and :func:`content_sha256` hashes the accounting
content only (not when it was generated, nor the revision bookkeeping), so the same computation
always has the same hash. :func:`ledger_lines` flattens a document into numbered quantities with
units and :func:`diff_ledgers` compares two documents line by line (before, after, delta, unit).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from carbonflow.domain.indicators.formulas import ENERGY_TOTAL
from carbonflow.domain.inventory.energy_totals import LABELS as ENERGY_LABELS
from carbonflow.domain.inventory.energy_totals import EnergyTotal, energy_totals
from carbonflow.domain.inventory.green import GreenClaim
from carbonflow.domain.inventory.lines import InventoryLine, View, in_view, view_totals
from carbonflow.domain.ledger.devices import DeviceMeter, device_row, line_shares, meters_of
from carbonflow.domain.ledger.rounding import header_entry as rounding_entry


@dataclass(frozen=True, slots=True)
class LedgerInputs:
    site_id: str
    org_id: str | None
    period_start: datetime
    period_end: datetime
    # sources booked at the site (or at the organisation), with their factor records
    lines: tuple[InventoryLine, ...]
    attributed: Mapping[str, float]  # the organisation's attributed totals (flows), if any
    products: tuple[tuple[str, float, str, float | None], ...]  # id, output, unit, tCO2e/unit
    indicators: tuple[Mapping[str, Any], ...]
    completeness: float
    surplus_export_mwh: float  # exported beyond imports in the period (scope 2 is then 0)
    meters: tuple[DeviceMeter, ...] = ()  # the device metrics behind the lines (devices.py)
    # heat delivered off site beyond the heat bought (purchased heat is then 0) [GJ]
    surplus_heat_export_gj: float = 0.0


@dataclass(frozen=True, slots=True)
class RegisterClaim:
    """One active claim of the green-certificate register applied to the ledger's month."""

    claim_id: int
    instrument_id: str  # the batch
    org_id: str  # its holder
    kind: str  # evidence type: certificate / green_power_contract / direct_supply
    mwh: float
    production_month: date
    serial_first: int | None = None
    serial_last: int | None = None

    @property
    def entry(self) -> str:
        """The claim's entry in the month's green-power pool (``green_power.instrument_id``)."""
        return f"{self.instrument_id}/claim-{self.claim_id}"


SCHEMA = "carbonflow.ledger/1"
SIGNIFICANT_DIGITS = 10
# Two figures closer than this (relative) are the same line: float noise of recomputation.
SAME_REL = 1e-9
_QUALITY_RANK = {"measured": 0, "estimated": 1, "missing": 2}
GASES = ("CO2", "CH4", "N2O")

# The accounting sections in document order (the header and changes are bookkeeping).
CONTENT_SECTIONS = (
    "activity",
    "devices",
    "factors",
    "emissions",
    "totals",
    "energy_totals",
    "green_power",
    "green_claims",
    "production",
    "indicators",
    "quality",
)
# Header fields that identify the ledger (hashed); the others say when and by whom.
# Who reports (the registered name and credit code as submitted) is part of the identity: a
# corrected name is a new revision.
IDENTITY_FIELDS = (
    "site_id", "site_name", "org_id", "legal_name", "credit_code", "industry", "month",
    "timezone", "period_start", "period_end", "period_local_start", "period_local_end",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a section table: the document key and the unit of its values (if any)."""

    key: str
    unit: str | None = None

    @property
    def header(self) -> str:
        return f"{self.key} [{self.unit}]" if self.unit else self.key


# The tables of the list sections, for CSV and XLSX exports (units in the header cells).
COLUMNS: Mapping[str, tuple[Column, ...]] = {
    "activity": (
        Column("category"), Column("carrier"), Column("scope"), Column("devices"),
        Column("quantity"), Column("unit"), Column("energy_tce", "tce"),
        Column("completeness_share", "1"), Column("quality"), Column("measured_share", "1"),
        Column("estimated_share", "1"), Column("missing_share", "1"),
        Column("factor_key"), Column("factor_value"), Column("factor_unit"),
        Column("factor_data_year"), Column("factor_version"), Column("factor_source"),
        Column("tce_factor_key"), Column("tce_factor"), Column("tce_factor_unit"),
        Column("scope_1_tco2e_location", "tCO2e"), Column("scope_2_tco2e_location", "tCO2e"),
        Column("scope_1_tco2e_market", "tCO2e"), Column("scope_2_tco2e_market", "tCO2e"),
        Column("co2_t_location", "t"), Column("ch4_t_location", "t"),
        Column("n2o_t_location", "t"), Column("co2_t_market", "t"), Column("ch4_t_market", "t"),
        Column("n2o_t_market", "t"), Column("green_claims"),
    ),
    "devices": (
        Column("category"), Column("carrier"), Column("scope"), Column("device_id"),
        Column("role"), Column("booking"), Column("serials"), Column("metric"),
        Column("meter_kind"), Column("opening_reading"), Column("opening_at"),
        Column("closing_reading"), Column("closing_at"), Column("register_unit"),
        Column("multiplier", "1"), Column("device_quantity"), Column("readings"),
        Column("measured_share", "1"), Column("estimated_share", "1"),
        Column("missing_share", "1"),
    ),
    "factors": (
        Column("factor_key"), Column("value"), Column("unit"), Column("version"),
        Column("file"), Column("source"), Column("read_in"), Column("confidence"),
        Column("data_year"),
        Column("requested_year"), Column("factor_year_fallback"),
        Column("selection"), Column("selection_reason"),
    ),
    "emissions": (
        Column("scope"), Column("category"), Column("carrier"), Column("gas"),
        Column("basis"), Column("gas_t", "t"), Column("tco2e", "tCO2e"),
        Column("gwp_key"), Column("gwp", "tCO2e/t"),
    ),
    "totals": (
        Column("view"), Column("scope_1_tco2e", "tCO2e"), Column("scope_2_tco2e", "tCO2e"),
        Column("total_tco2e", "tCO2e"), Column("co2_t", "t"), Column("ch4_t", "t"),
        Column("n2o_t", "t"),
    ),
    "energy_totals": (
        Column("total"), Column("label_zh"), Column("label_en"), Column("energy_tce", "tce"),
        Column("utilised_methane_tce", "tce"), Column("indicators"),
    ),
    "green_claims": (
        Column("claim_ref"), Column("claim_id"), Column("batch_id"), Column("org_id"),
        Column("evidence_kind"), Column("serial_first"), Column("serial_last"),
        Column("mwh", "MWh"), Column("production_month"),
    ),
    "green_power": (
        Column("instrument_id"), Column("kind"), Column("accepted"),
        Column("offered_mwh", "MWh"), Column("applied_mwh", "MWh"), Column("unused_mwh", "MWh"),
        Column("reason"),
    ),
    "production": (
        Column("product_id"), Column("output"), Column("unit"),
        Column("intensity_location_tco2e"), Column("intensity_unit"),
    ),
    "indicators": (
        Column("org_id"), Column("indicator"), Column("value"), Column("unit"),
        Column("basis"), Column("status"), Column("target_threshold"),
        Column("target_comparator"), Column("target_unit"), Column("completeness_share", "1"),
        Column("days_with_data", "d"), Column("status_reason_zh"), Column("status_reason_en"),
    ),
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class LedgerHeader:
    site_id: str
    org_id: str | None
    month: str  # YYYY-MM, site-local
    timezone: str
    generated_at: datetime
    calc_results_through: datetime | None
    calc_last_received_at: datetime | None
    site_name: str | None = None
    # Presentation only (not part of the identity): a Chinese document names the site by it.
    site_name_zh: str | None = None
    # The reporting party: the organisation's registered name (营业执照), unified social credit
    # code and industry; for a site ledger, the site's one organisation (a mine), else None.
    legal_name: str | None = None
    credit_code: str | None = None
    industry: str | None = None
    preparer: str | None = None  # the API key that generated the draft (a revision: closed_by)


def rounded(value: float | None) -> float | None:
    """``value`` to :data:`SIGNIFICANT_DIGITS` significant digits (None and 0 stay)."""
    if value is None:
        return None
    if not math.isfinite(value):
        raise ValueError(f"a ledger figure is not finite: {value!r}")
    out = float(f"{value:.{SIGNIFICANT_DIGITS}g}")
    return 0.0 if out == 0 else out  # no -0.0 in a document


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _local(value: datetime, timezone: str) -> str:
    """``value`` in the site's time zone, with its offset (``2025-05-01T00:00:00+08:00``)."""
    return value.astimezone(ZoneInfo(timezone)).isoformat()


def _worst(qualities: Iterable[str]) -> str:
    return max(qualities, key=lambda q: _QUALITY_RANK.get(q, 3), default="missing")


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values) if values else 0.0


_CLAIMED_CATEGORIES = frozenset({"purchased_electricity", "green_electricity"})


def _activity(
    lines: Sequence[InventoryLine],
    meters: Sequence[DeviceMeter] = (),
    claims: Sequence[RegisterClaim] = (),
) -> list[dict[str, Any]]:
    """One row per source. Each gas row and each scope-2 view of a source repeats its activity:
    it is taken once (from the location/both rows), energy is summed (it sits on one row).
    With the devices behind it, the quality shares of their intervals, its principal emission
    factor and its emissions by scope, gas and view; the purchased-electricity lines name the
    register claims their market-based figures use (``green_claims``, pool entries)."""
    refs = ", ".join(sorted(c.entry for c in claims)) or None
    by_source: dict[tuple[str, str, str, str], list[InventoryLine]] = {}
    for line in lines:
        # plain strings in the document (the members equal them)
        key = (str(line.category), line.carrier, str(line.scope), line.activity_unit)
        by_source.setdefault(key, []).append(line)
    rows = []
    for (category, carrier, scope, unit), group in sorted(by_source.items()):
        viewed = in_view(group, View.LOCATION) or group
        per_gas: dict[str, float] = {}
        for ln in viewed:
            per_gas[ln.gas] = per_gas.get(ln.gas, 0.0) + ln.activity
        rows.append(
            {
                "category": category,
                "carrier": carrier,
                "scope": scope,
                "quantity": rounded(max(per_gas.values(), key=abs)),
                "unit": unit,
                "energy_tce": rounded(math.fsum(ln.energy_tce for ln in group)),
                "completeness_share": rounded(_mean([ln.completeness for ln in group])),
                "quality": str(_worst(ln.quality for ln in group)),
                **_line_meters(meters_of(meters, category, carrier)),
                **_principal_factor(viewed),
                **_tce_factor(group),
                **_line_emissions(group),
                "green_claims": refs if category in _CLAIMED_CATEGORIES else None,
            }
        )
    return rows


def _line_meters(meters: Sequence[DeviceMeter]) -> dict[str, Any]:
    shares = line_shares(meters)
    return {
        "devices": ", ".join(sorted({m.device_id for m in meters})) or None,
        "measured_share": rounded(shares[0]) if shares else None,
        "estimated_share": rounded(shares[1]) if shares else None,
        "missing_share": rounded(shares[2]) if shares else None,
    }


def _citation(source: Any) -> str | None:
    """The document a factor is taken from (its data file's ``document``), without the note of
    where it was read (``… — read in: …``, the factors section's ``read_in``)."""
    return None if source is None else str(source).split(" — read in: ")[0]


def _read_in(source: Any) -> str | None:
    parts = None if source is None else str(source).split(" — read in: ", 1)
    return parts[1] if parts and len(parts) == 2 else None


def _principal_factor(group: Sequence[InventoryLine]) -> dict[str, Any]:
    """The emission factor of a source (its lines' principal factor, location view), with the
    data year and source of its record."""
    for line in group:
        trail = line.factors
        if trail.key is None:
            continue
        record = next(
            (r for r in trail.records if str(r.get("factor_key")) == trail.key), {}
        )  # fmt: skip
        year = record.get("factor_data_year")
        return {
            "factor_key": trail.key,
            "factor_value": rounded(trail.value),
            "factor_unit": trail.unit,
            "factor_data_year": int(year) if year is not None else None,
            "factor_version": trail.version,
            "factor_source": _citation(record.get("factor_source")),
        }
    return dict.fromkeys(
        ("factor_key", "factor_value", "factor_unit", "factor_data_year", "factor_version",
         "factor_source"),
    )  # fmt: skip


def _line_emissions(group: Sequence[InventoryLine]) -> dict[str, Any]:
    """A source's CO2e by scope and its gas masses, in each view (exact sums, then rounded)."""
    out: dict[str, Any] = {}
    for view in View:
        viewed = in_view(group, view)
        for scope in ("scope_1", "scope_2"):
            out[f"{scope}_tco2e_{view.value}"] = rounded(
                math.fsum(ln.tco2e for ln in viewed if str(ln.scope) == scope)
            )
        for gas in GASES:
            out[f"{gas.lower()}_t_{view.value}"] = rounded(
                math.fsum(ln.gas_t for ln in viewed if str(ln.gas) == gas)
            )
    return out


def _devices(
    activity: Sequence[Mapping[str, Any]], meters: Sequence[DeviceMeter], org_id: str | None
) -> list[dict[str, Any]]:
    """The device metrics behind each activity line, in the lines' order."""
    return [
        device_row(m, row, org_id, rounded)
        for row in activity
        for m in meters_of(meters, row["category"], row["carrier"])
    ]


_TCE_PREFIXES = ("tce.", "derived.tce.")


def _tce_factor(group: Sequence[InventoryLine]) -> dict[str, Any]:
    """The standard-coal coefficient behind a source's ``energy_tce`` (GB/T 2589 or derived
    from an NCV), from its lines' factor records; None where no energy is counted."""
    for line in group:
        for record in line.factors.records:
            key = str(record.get("factor_key"))
            if key.startswith(_TCE_PREFIXES):
                value = record.get("factor_value")
                return {
                    "tce_factor_key": key,
                    "tce_factor": rounded(float(value)) if value is not None else None,
                    "tce_factor_unit": record.get("factor_unit"),
                }
        for used in line.factors.used:
            if used.key.startswith(_TCE_PREFIXES):
                return {
                    "tce_factor_key": used.key,
                    "tce_factor": rounded(used.value),
                    "tce_factor_unit": used.unit,
                }
    return {"tce_factor_key": None, "tce_factor": None, "tce_factor_unit": None}


def _int(value: Any) -> int | None:
    return int(value) if value is not None else None


def _factors(lines: Sequence[InventoryLine]) -> list[dict[str, Any]]:
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for line in lines:
        for record in line.factors.records:
            key = (str(record.get("factor_key")), str(record.get("factor_version")))
            if key in seen:
                continue
            value = record.get("factor_value")
            year = record.get("factor_data_year")
            seen[key] = {
                "factor_key": key[0],
                "value": rounded(float(value)) if value is not None else None,
                "unit": record.get("factor_unit"),
                "version": key[1],
                "file": record.get("factor_file"),
                "source": _citation(record.get("factor_source")),
                "read_in": _read_in(record.get("factor_source")),
                "confidence": record.get("factor_confidence"),
                "data_year": int(year) if year is not None else None,
                "requested_year": _int(record.get("requested_year")),
                "factor_year_fallback": bool(record.get("factor_year_fallback", False)),
                "selection": record.get("selection"),
                "selection_reason": record.get("selection_reason"),
            }
    return [seen[k] for k in sorted(seen)]


def _gwp(line: InventoryLine) -> tuple[str, float | None]:
    """The GWP behind a line's CO2e: ``co2`` (1) for CO2, else the ``gwp.<gas>.<set>`` factor
    among its records (``unrecorded`` when the line carries none)."""
    if line.gas == "CO2":
        return "co2", 1.0
    prefix = f"gwp.{str(line.gas).lower()}."
    for record in line.factors.records:
        key = str(record.get("factor_key"))
        if key.startswith(prefix):
            value = record.get("factor_value")
            return key, float(value) if value is not None else None
    for used in line.factors.used:
        if used.key.startswith(prefix):
            return used.key, used.value
    return "unrecorded", None


def _emissions(lines: Sequence[InventoryLine]) -> list[dict[str, Any]]:
    """One row per scope × category × carrier × gas × basis, with the GWP of its CO2e."""
    sums: dict[tuple[str, str, str, str, str, str], list[float]] = {}
    gwps: dict[str, float | None] = {}
    for line in lines:
        gwp_key, gwp = _gwp(line)
        gwps[gwp_key] = gwp
        key = (
            str(line.scope), str(line.category), line.carrier, str(line.gas), str(line.basis),
            gwp_key,
        )  # fmt: skip
        acc = sums.setdefault(key, [0.0, 0.0])
        acc[0] += line.gas_t
        acc[1] += line.tco2e
    return [
        {
            "scope": scope, "category": category, "carrier": carrier, "gas": gas,
            "basis": basis, "gas_t": rounded(gas_t), "tco2e": rounded(tco2e),
            "gwp_key": gwp_key, "gwp": rounded(gwps[gwp_key]),
        }
        for (scope, category, carrier, gas, basis, gwp_key), (gas_t, tco2e) in sorted(
            sums.items()
        )
    ]  # fmt: skip


def _totals(lines: Sequence[InventoryLine]) -> list[dict[str, Any]]:
    """Location- and market-based views: a ``both`` row counts in each (scope 1, direct supply),
    a ``location`` or ``market`` row in its own view only (ACCOUNTING §3, dual reporting)."""
    rows = []
    for view in View:
        totals = view_totals(lines, view)
        row: dict[str, Any] = {
            "view": view.value,
            "scope_1_tco2e": rounded(totals.scope1_tco2e),
            "scope_2_tco2e": rounded(totals.scope2_tco2e),
            "total_tco2e": rounded(totals.total_tco2e),
        }
        for gas in GASES:
            row[f"{gas.lower()}_t"] = rounded(totals.gas_t(gas))
        rows.append(row)
    return rows


def _energy_totals(lines: Sequence[InventoryLine]) -> list[dict[str, Any]]:
    """The two comprehensive energy totals, labelled, with the indicators built on each."""
    totals = energy_totals(lines)
    return [
        {
            "total": which.value,
            "label_zh": ENERGY_LABELS[which][0],
            "label_en": ENERGY_LABELS[which][1],
            "energy_tce": rounded(totals.of(which)),
            "utilised_methane_tce": rounded(totals.utilised_methane_tce),
            "indicators": ", ".join(sorted(i.value for i, w in ENERGY_TOTAL.items() if w is which))
            or None,
        }
        for which in EnergyTotal
    ]


def _register_claims(claims: Sequence[RegisterClaim]) -> list[dict[str, Any]]:
    """The register's claims of the month, by holder, batch and claim."""
    return [
        {
            "claim_ref": c.entry, "claim_id": c.claim_id, "batch_id": c.instrument_id,
            "org_id": c.org_id, "evidence_kind": c.kind, "serial_first": c.serial_first,
            "serial_last": c.serial_last, "mwh": rounded(c.mwh),
            "production_month": c.production_month.strftime("%Y-%m"),
        }
        for c in sorted(claims, key=lambda c: (c.org_id, c.instrument_id, c.claim_id))
    ]  # fmt: skip


def _green(claims: Sequence[GreenClaim]) -> list[dict[str, Any]]:
    return [
        {
            "instrument_id": c.instrument_id, "kind": c.kind, "accepted": c.accepted,
            "offered_mwh": rounded(c.offered_mwh), "applied_mwh": rounded(c.applied_mwh),
            "unused_mwh": rounded(c.unused_mwh), "reason": c.reason,
        }
        for c in sorted(claims, key=lambda c: c.instrument_id)
    ]  # fmt: skip


def _production(inputs: LedgerInputs) -> list[dict[str, Any]]:
    """Output and location-based intensity (flows: the carbon the product carries / output)."""
    return [
        {
            "product_id": product_id, "output": rounded(output), "unit": unit,
            "intensity_location_tco2e": rounded(intensity), "intensity_unit": f"tCO2e/{unit}",
        }
        for product_id, output, unit, intensity in sorted(inputs.products)
    ]  # fmt: skip


def _float(value: Any) -> float | None:
    return rounded(float(value)) if value is not None else None


def _indicators(inputs: LedgerInputs) -> list[dict[str, Any]]:
    """The period's stored indicators, each with its coverage (share of the expected intervals,
    days with data) and, when inconclusive, why (``storage.indicators.coverage_json``)."""
    rows = [
        {
            "org_id": str(r.get("org_id") or ""),
            "indicator": str(r["indicator"]),
            "value": _float(r.get("value")),
            "unit": r.get("unit"),
            "basis": r.get("basis"),
            "status": r.get("status"),
            "target_threshold": _float(r.get("target_threshold")),
            "target_comparator": r.get("target_comparator"),
            "target_unit": r.get("target_unit"),
            "completeness_share": _float(r.get("completeness")),
            **_coverage(r.get("coverage")),
        }
        for r in inputs.indicators
        if r.get("period_start") == inputs.period_start
    ]
    return sorted(rows, key=lambda r: (r["org_id"], r["indicator"]))


def _coverage(stored: object) -> dict[str, Any]:
    """Days with data and the status's reason of a stored indicator (None before revision 0017
    stored them)."""
    c: Mapping[str, Any] = stored if isinstance(stored, Mapping) else {}
    days = c.get("days_with_data")
    return {
        "days_with_data": days if isinstance(days, int) else None,
        "status_reason_zh": c.get("reason_zh"),
        "status_reason_en": c.get("reason_en"),
    }


def _quality(inputs: LedgerInputs) -> dict[str, Any]:
    counts = {q: 0 for q in _QUALITY_RANK}
    for line in inputs.lines:
        counts[line.quality] = counts.get(line.quality, 0) + 1
    return {
        "completeness_share": rounded(inputs.completeness),
        "lines": len(inputs.lines),
        "lines_measured": counts["measured"],
        "lines_estimated": counts["estimated"],
        "lines_missing": counts["missing"],
        "surplus_export_mwh": rounded(inputs.surplus_export_mwh),
        "surplus_heat_export_gj": rounded(inputs.surplus_heat_export_gj),
        "attributed_energy_tce": _float(inputs.attributed.get("energy_tce")),
        "attributed_tco2e_location": _float(inputs.attributed.get("tco2e_location")),
        "attributed_tco2e_market": _float(inputs.attributed.get("tco2e_market")),
    }


def build_ledger(
    inputs: LedgerInputs,
    header: LedgerHeader,
    claims: Sequence[GreenClaim] = (),
    register_claims: Sequence[RegisterClaim] = (),
) -> dict[str, Any]:
    """The draft ledger document of ``inputs`` (module doc); ``claims`` are the month's green-
    power claims and ``register_claims`` the register's claims of the month, both already
    restricted to the ledger's organisation."""
    activity = _activity(inputs.lines, inputs.meters, register_claims)
    document: dict[str, Any] = {
        "schema": SCHEMA,
        "header": {
            "site_id": header.site_id,
            "site_name": header.site_name,
            "site_name_zh": header.site_name_zh,
            "org_id": header.org_id,
            "legal_name": header.legal_name,
            "credit_code": header.credit_code,
            "industry": header.industry,
            "month": header.month,
            "timezone": header.timezone,
            "period_start": _iso(inputs.period_start),
            "period_end": _iso(inputs.period_end),
            "period_local_start": _local(inputs.period_start, header.timezone),
            "period_local_end": _local(inputs.period_end, header.timezone),
            "preparer": header.preparer,
            "generated_at": _iso(header.generated_at),
            "calc_results_through": _iso(header.calc_results_through),
            "calc_last_received_at": _iso(header.calc_last_received_at),
            "status": "draft",
            "revision": None,
            "closed_by": None,
            "reason": None,
            # How the exports print the exact figures (rounding.py); not part of the hash.
            "rounding": rounding_entry(),
        },
        "activity": activity,
        "devices": _devices(activity, inputs.meters, inputs.org_id),
        "factors": _factors(inputs.lines),
        "emissions": _emissions(inputs.lines),
        "totals": _totals(inputs.lines),
        "energy_totals": _energy_totals(inputs.lines),
        "green_power": _green(claims),
        "green_claims": _register_claims(register_claims),
        "production": _production(inputs),
        "indicators": _indicators(inputs),
        "quality": _quality(inputs),
        "changes": [],
    }
    document["content_sha256"] = content_sha256(document)
    return document


def canonical_json(document: Mapping[str, Any]) -> bytes:
    """The one serialisation of a document: sorted keys, no whitespace, UTF-8, no NaN."""
    return json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def content_sha256(document: Mapping[str, Any]) -> str:
    """SHA-256 of the accounting content: identity header fields and the content sections."""
    header = document["header"]
    content = {
        "schema": document["schema"],
        "header": {k: header[k] for k in IDENTITY_FIELDS},
        **{k: document[k] for k in CONTENT_SECTIONS},
    }
    return hashlib.sha256(canonical_json(content)).hexdigest()


def closed(
    draft: Mapping[str, Any],
    *,
    revision: int,
    closed_at: datetime,
    closed_by: str,
    reason: str | None,
    changes: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """``draft`` frozen as ``revision``: status, who, when, why and the changes recorded."""
    header = {
        **draft["header"],
        "status": "closed",
        "revision": revision,
        "closed_by": closed_by,
        "preparer": closed_by,
        "generated_at": _iso(closed_at),
        "reason": reason,
    }
    return {**draft, "header": header, "changes": [dict(c) for c in changes]}


# --------------------------------------------------------------------------------------------
# Lines and differences
# --------------------------------------------------------------------------------------------

_LINE_KEYS: Mapping[str, tuple[tuple[str, ...], tuple[tuple[str, str], ...]]] = {
    # section: (fields naming the row, (numeric field, its unit or "@field" holding it))
    "activity": (
        ("category", "carrier", "scope"),
        (("quantity", "@unit"), ("energy_tce", "tce"), ("completeness_share", "1")),
    ),
    "factors": (("factor_key", "version"), (("value", "@unit"),)),
    "emissions": (
        ("scope", "category", "carrier", "gas", "basis"),
        (("gas_t", "t"), ("tco2e", "tCO2e")),
    ),
    "totals": (
        ("view",),
        (("scope_1_tco2e", "tCO2e"), ("scope_2_tco2e", "tCO2e"), ("total_tco2e", "tCO2e"),
         ("co2_t", "t"), ("ch4_t", "t"), ("n2o_t", "t")),
    ),
    "green_power": (
        ("instrument_id",),
        (("offered_mwh", "MWh"), ("applied_mwh", "MWh"), ("unused_mwh", "MWh")),
    ),
    "energy_totals": (("total",), (("energy_tce", "tce"), ("utilised_methane_tce", "tce"))),
    "green_claims": (("claim_ref",), (("mwh", "MWh"),)),
    "production": (
        ("product_id",),
        (("output", "@unit"), ("intensity_location_tco2e", "@intensity_unit")),
    ),
    "indicators": (("org_id", "indicator"), (("value", "@unit"),)),
}  # fmt: skip
_QUALITY_UNITS = {
    "completeness_share": "1",
    "surplus_export_mwh": "MWh",
    "surplus_heat_export_gj": "GJ",
    "attributed_energy_tce": "tce",
    "attributed_tco2e_location": "tCO2e",
    "attributed_tco2e_market": "tCO2e",
}


def ledger_lines(document: Mapping[str, Any]) -> dict[str, tuple[float | None, str]]:
    """Every figure of a document by a stable line id (``section/row…/field``), with its unit."""
    out: dict[str, tuple[float | None, str]] = {}
    for section, (names, fields) in _LINE_KEYS.items():
        for row in document.get(section, ()):  # sections newer than a stored revision: none
            row_id = "/".join(str(row[n]) if row[n] != "" else "site" for n in names)
            for field, unit in fields:
                # "@name": the unit is in the row's field ``name`` (it varies from row to row).
                if unit.startswith("@"):
                    unit = str(row.get(unit[1:]) or "")  # noqa: PLW2901
                out[f"{section}/{row_id}/{field}"] = (row.get(field), unit)
    for field, unit in _QUALITY_UNITS.items():
        out[f"quality/{field}"] = (document["quality"].get(field), unit)
    return out


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=SAME_REL, abs_tol=0.0) or a == b


def diff_ledgers(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The lines whose figure differs between two documents: before, after, delta, unit.

    A line present in one document only has ``null`` on the other side (a new source, a factor
    replaced by a new version); ``delta`` is after − before when both are numbers.
    """
    old, new = ledger_lines(before), ledger_lines(after)
    changes = []
    for line in sorted(old.keys() | new.keys()):
        b, b_unit = old.get(line, (None, ""))
        a, a_unit = new.get(line, (None, ""))
        if line in old and line in new and _same(b, a):
            continue
        delta = rounded(a - b) if a is not None and b is not None else None
        changes.append(
            {
                "line": line,
                "section": line.split("/", 1)[0],
                "before": b,
                "after": a,
                "delta": delta,
                "unit": a_unit or b_unit,
            }
        )
    return changes

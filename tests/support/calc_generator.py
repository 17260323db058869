"""A small, pure generator of hand-built reading sets with a known truth, for the calc tests.

Until the simulator lands, the calc service is checked against readings generated here from a
site document: every quantity metric of every device gets a deterministic profile (a constant
rate within each 15-min interval, shaped by the device's ``sim`` hints), so the true quantity
of every interval and device is known exactly. Readings are what a meter would report: counter
registers (before the multiplier, rounded to ``RESOLUTION``, wrapping at the declared
modulus) or interval reports, every ``period`` with a per-device phase.

Faults are injected on request and recorded with what the calc service must do about them:
rollover (registers start just below their modulus), a counter reset, a meter replacement (new
serial, new register from 0), gaps (readings dropped; the intervals inside must be flagged
estimated), a backwards glitch (one reading slightly low) and late readings (``received_at``
long after ``ts``).

Its own checks are in tests/services/calc/test_generator.py, so that the calc tests rest on it.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg

from carbonflow.domain.site.model import Device, MetricKind, SiteDocument, multiplier_applies
from carbonflow.domain.units import Dimension, metric_unit
from carbonflow.sites.loader import parse_site_text
from carbonflow.storage.registry_load import load_site
from services.calc.engine import CalcEngine, CycleReport

SLOT = timedelta(minutes=15)
# Register resolution [raw unit]: truth is knowable to ± one step × the multiplier at each end.
RESOLUTION = 1e-4
RECEIVED_AFTER = timedelta(seconds=5)

Key = tuple[str, str]  # (device id, metric name)

# A small enterprise: a grid meter (import and export registers) feeding one plant, metered.
SMALL_SITE = """
site: {id: small-plant, name: Small plant, kind: enterprise, province: shanxi, grid_region: north}
organisations: [{id: plant-co, name: Plant Co}]
nodes:
  - {id: grid, name: Grid, kind: supply}
  - {id: substation, name: Substation, kind: distribution, org: plant-co}
  - {id: works, name: Works, kind: process, org: plant-co}
products: [{id: widget, name: Widgets, unit: t, node: works, org: plant-co}]
edges:
  - {source: grid, target: substation, carrier: electricity, meters: [grid-meter]}
  - {source: substation, target: works, carrier: electricity, meters: [works-meter]}
budgets: [{org: plant-co, year: 2025, energy_tce: 10, co2_t: 50}]
devices:
  - id: grid-meter
    name: Grid meter
    kind: electricity_meter
    carrier: electricity
    role: grid_import
    node: substation
    org: plant-co
    multiplier: 100
    metrics: {energy_export_kwh: counter}
    sim: {rated_kw: 1000, mean_load_pct: 50, publish_interval_s: 3600}
  - id: works-meter
    name: Works feeder
    kind: electricity_meter
    carrier: electricity
    role: consumption
    node: works
    org: plant-co
    sim: {rated_kw: 1000, mean_load_pct: 45, publish_interval_s: 3600}
  - id: widget-scale
    name: Widget scale
    kind: production_meter
    carrier: product
    role: production
    product: widget
    node: works
    org: plant-co
    sim: {rated_t_h: 10, mean_load_pct: 50, publish_interval_s: 3600}
"""


@dataclass(frozen=True)
class Faults:
    rollover: bool = True  # modulus devices start just below their modulus
    reset: tuple[str, datetime] | None = None  # (device, time): register restarts at 0
    swap: tuple[str, datetime] | None = None  # (device, time): new meter (serial), from 0
    gaps: tuple[tuple[str, datetime, datetime], ...] = ()  # (device, from, to): no readings
    glitch: tuple[str, datetime] | None = None  # (device, time): that reading 0.01 low


@dataclass
class Generated:
    start: datetime
    end: datetime
    readings: dict[Key, list[tuple[datetime, float]]] = field(default_factory=dict)
    kinds: dict[Key, str] = field(default_factory=dict)
    truth: dict[Key, dict[datetime, float]] = field(default_factory=dict)  # per 15-min slot
    serials: dict[str, list[tuple[str, datetime, datetime]]] = field(default_factory=dict)
    gap_slots: dict[Key, list[datetime]] = field(default_factory=dict)
    multipliers: dict[Key, float] = field(default_factory=dict)

    def true_total(self, key: Key, start: datetime, end: datetime) -> float:
        return math.fsum(q for s, q in self.truth[key].items() if start <= s < end)

    def resolution(self, key: Key) -> float:
        """One register step in the metric's unit after the multiplier."""
        return RESOLUTION * self.multipliers.get(key, 1.0)

    def total_readings(self) -> int:
        return sum(len(v) for v in self.readings.values())


def _unit_hash(text: str) -> float:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def _shape(profile: str | None, local: datetime) -> float:
    h = local.hour + local.minute / 60.0
    if profile in ("pv", "pv_shifting"):
        return max(0.0, math.sin(math.pi * (h - 6.0) / 12.0)) if 6.0 <= h <= 18.0 else 0.0
    if profile == "wind":
        return 0.55 + 0.45 * math.sin(2 * math.pi * (local.day + h / 24.0) / 3.7)
    if profile and ("shift" in profile or profile == "hoist_cycle"):
        return 1.0 if 6.0 <= h < 22.0 else 0.15
    if profile == "office":
        return 1.0 if 8.0 <= h < 18.0 else 0.3
    return 1.0 + 0.08 * math.sin(2 * math.pi * h / 24.0)


def hourly_rate(d: Device, metric: str, local: datetime) -> float:
    """The device's true rate in ``metric``'s unit per hour at local time ``local``."""
    sim = d.sim.model_dump(exclude_none=True) if d.sim is not None else {}
    profile = sim.get("load_profile")
    load = float(sim.get("mean_load_pct", 50.0)) / 100.0
    shape = _shape(profile, local)
    wobble = 1.0 + 0.03 * math.sin(2 * math.pi * (local.hour / 24.0 + _unit_hash(d.id)))
    h = local.hour
    if metric == "energy_import_kwh" and d.role.value == "grid_import":
        return 6_500.0 * wobble  # both grid lines import all day
    if metric == "energy_export_kwh" and d.role.value == "grid_import":
        return 300.0 if 11 <= h < 13 else 0.0  # a little PV surplus at noon, always < import
    if metric in ("energy_import_kwh", "energy_export_kwh", "output_kwh"):
        if d.role.value == "generation_pv":
            return float(sim.get("capacity_kwp", 1_000.0)) * 0.75 * _shape("pv", local)
        if d.role.value == "generation_wind" or profile == "wind":
            return float(sim.get("rated_kw", 10_000.0)) * 0.3 * _shape("wind", local)
        return float(sim.get("rated_kw", 1_000.0)) * load * shape * wobble
    if metric == "energy_charge_kwh":
        return 15_000.0 if 10 <= h < 14 else 0.0
    if metric == "energy_discharge_kwh":
        return 13_500.0 if 18 <= h < 22 else 0.0
    if metric == "heat_gj":
        return float(sim.get("rated_kw", 1_000.0)) * load * 3.6e-3 * wobble
    if metric == "steam_t":
        return 10.0 * wobble
    if metric in ("ch4_nm3",):
        flow = float(sim.get("rated_flow_nm3_min", 10.0))
        pct = float(sim.get("ch4_pct_mean", 30.0)) / 100.0
        return flow * pct * 60.0 * wobble
    if metric == "volume_nm3":
        return float(sim.get("rated_flow_nm3_min", 10.0)) * load * 60.0 * wobble
    if metric == "volume_l":
        per_day = float(sim.get("mean_l_per_day", 2_000.0))
        return per_day / 16.0 if 6 <= h < 22 else 0.0
    if metric == "lng_t":
        return float(sim.get("mean_t_per_day", 5.0)) / 16.0 if 6 <= h < 22 else 0.0
    if metric in ("output_t", "handled_t"):
        return float(sim.get("rated_t_h", 100.0)) * load * shape
    return 0.0


def _generated_metrics(d: Device) -> list[str]:
    """Quantity metrics that carry the device's flows (gas-mixture totals are left out)."""
    out = []
    for name, spec in sorted(d.metrics.items()):
        if spec.kind is MetricKind.GAUGE or name == "mixture_nm3":
            continue
        if metric_unit(name).dimension not in (
            Dimension.ENERGY, Dimension.GAS_VOLUME, Dimension.LIQUID_VOLUME, Dimension.MASS,
            Dimension.HEAT,
        ):  # fmt: skip
            continue
        out.append(name)
    return out


def generate(
    doc: SiteDocument,
    start: datetime,
    end: datetime,
    *,
    period: timedelta = timedelta(minutes=10),
    faults: Faults = Faults(),
    devices: Iterable[str] | None = None,
) -> Generated:
    """Readings of every quantity metric in [start, end) with their truth (module doc)."""
    zone = ZoneInfo(doc.site.timezone)
    wanted = set(devices) if devices is not None else None
    out = Generated(start, end)
    slots = []
    s = start
    while s < end:
        slots.append(s)
        s += SLOT
    for d in doc.devices:
        if wanted is not None and d.id not in wanted:
            continue
        scale = 1.0 / d.multiplier
        for metric in _generated_metrics(d):
            key = (d.id, metric)
            kind = d.metrics[metric].kind.value
            out.kinds[key] = kind
            applies = multiplier_applies(metric)
            per_raw = scale if applies else 1.0
            out.multipliers[key] = d.multiplier if applies else 1.0
            rates = [hourly_rate(d, metric, slot.astimezone(zone) + SLOT / 2) for slot in slots]
            truth = {slot: r * 0.25 for slot, r in zip(slots, rates, strict=True)}
            out.truth[key] = truth

            # True cumulative quantity at time t (piecewise-linear within each slot).
            def cumulative(t: datetime, rates: Sequence[float] = rates) -> float:
                k = int((t - start) // SLOT)
                k = max(0, min(k, len(rates) - 1))
                done = math.fsum(rates[:k]) * 0.25
                return done + rates[k] * ((t - (start + k * SLOT)) / timedelta(hours=1))

            phase = timedelta(seconds=int(_unit_hash(d.id + metric) * period.total_seconds()))
            monthly_raw = math.fsum(rates) * 0.25 * per_raw
            if faults.rollover and d.counter_modulus is not None and kind == "counter":
                register0 = d.counter_modulus - 0.4 * monthly_raw
            else:
                register0 = 1_000.0 + round(_unit_hash(d.id) * 50_000.0, 4)
            series: list[tuple[datetime, float]] = []
            gaps = [(a, b) for dev, a, b in faults.gaps if dev == d.id]
            offset = 0.0  # register offset after a reset or swap
            swapped = False
            t = start + phase
            previous_cum = 0.0
            last_ts: datetime | None = None
            while t < end:
                cum = cumulative(t)
                crossed = last_ts is not None and kind == "counter"
                reset = faults.reset
                if crossed and reset and reset[0] == d.id and last_ts <= reset[1] < t:  # type: ignore[operator]
                    offset = -(register0 + previous_cum * per_raw)  # restarts at 0 right after
                swap = faults.swap
                if crossed and swap and swap[0] == d.id and last_ts <= swap[1] < t and not swapped:  # type: ignore[operator]
                    swapped = True
                    offset = -(register0 + previous_cum * per_raw)  # new register from 0
                    out.serials[d.id] = [
                        ("OLD-" + d.id, start + phase, last_ts),  # type: ignore[list-item]
                        ("NEW-" + d.id, t, end),
                    ]
                if not any(a <= t < b for a, b in gaps):
                    if kind == "counter":
                        raw = register0 + cum * per_raw + offset
                        if d.counter_modulus is not None:
                            raw = raw % d.counter_modulus
                        value = round(raw, 4)
                        glitch = faults.glitch
                        near = glitch is not None and abs(t - glitch[1]) < period / 2
                        if near and glitch is not None and glitch[0] == d.id and series:
                            value = round(series[-1][1] - 0.01, 4)
                    else:
                        since = series[-1][0] if series else t - period
                        value = round((cum - cumulative(since)) * per_raw, 6)
                    series.append((t, value))
                    last_ts = t
                    previous_cum = cum
                t += period
            out.readings[key] = series
            out.gap_slots[key] = [
                slot for slot in slots for a, b in gaps if a + period <= slot and slot + SLOT <= b
            ]
    return out


def store_readings(
    database_url: str,
    site_id: str,
    data: Generated,
    *,
    received_after: timedelta = RECEIVED_AFTER,
    received_at: datetime | None = None,
    only: Iterable[tuple[Key, datetime]] | None = None,
    skip: Iterable[tuple[Key, datetime]] = (),
) -> int:
    """Write readings as ingest does (``reading`` + ``dirty_hour`` + ``meter_serial``).

    ``received_at`` (fixed) or ``ts + received_after`` is stored as the arrival time; ``only``
    restricts to given (key, ts) readings, ``skip`` leaves some out (to deliver them late).
    """
    ids = registry_ids(database_url, site_id)
    wanted = set(only) if only is not None else None
    skipped = set(skip)
    rows = []
    for key, series in data.readings.items():
        pk, mid = ids[key]
        for ts, value in series:
            if (wanted is not None and (key, ts) not in wanted) or (key, ts) in skipped:
                continue
            rows.append((pk, mid, ts, value, None, received_at or ts + received_after))
    with psycopg.connect(database_url) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY reading (device_pk, metric_id, ts, value, seq, received_at) FROM STDIN"
        ) as copy:
            for row in rows:
                copy.write_row(row)
        cur.execute(
            "INSERT INTO dirty_hour (device_pk, hour_start) "
            "SELECT DISTINCT device_pk, date_trunc('hour', ts, 'UTC') FROM unnest("
            "%s::int[], %s::timestamptz[]) AS r(device_pk, ts) "
            "ON CONFLICT (device_pk, hour_start) DO UPDATE SET marked_at = clock_timestamp()",
            ([r[0] for r in rows], [r[2] for r in rows]),
        )
        for device_id, spans in data.serials.items():
            pk = next(ids[k][0] for k in ids if k[0] == device_id)
            for serial, first, last in spans:
                cur.execute(
                    "INSERT INTO meter_serial (device_pk, serial, first_ts, last_ts) "
                    "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    (pk, serial, first, last),
                )
    return len(rows)


def registry_ids(database_url: str, site_id: str) -> dict[Key, tuple[int, int]]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT d.device_id, m.name, d.device_pk, m.metric_id FROM device d "
            "JOIN device_metric dm ON dm.device_pk = d.device_pk "
            "JOIN metric m ON m.metric_id = dm.metric_id WHERE d.site_id = %s",
            (site_id,),
        ).fetchall()
    return {(str(a), str(b)): (int(c), int(e)) for a, b, c, e in rows}


def month_start(year: int, month: int, tz: str = "Asia/Shanghai") -> datetime:
    return datetime(year, month, 1, tzinfo=ZoneInfo(tz)).astimezone(UTC)


def totals_by_key(data: Generated, start: datetime, end: datetime) -> Mapping[Key, float]:
    return {key: data.true_total(key, start, end) for key in data.truth}


def run_calc(url: str) -> list[CycleReport]:
    """The calc engine over everything stored: factor files synced, cycles until idle, no site
    failing and nothing left pending."""
    engine = CalcEngine(url)
    try:
        engine.sync_reference()
        reports = engine.run_until_idle()
        assert all(r.site_errors == 0 for r in reports)
        assert engine.pending() == 0
        return reports
    finally:
        engine.close()


def computed_small_site(url: str, days: int = 3) -> tuple[SiteDocument, datetime, datetime]:
    """``SMALL_SITE`` loaded, ``days`` of 10-min readings from May 2025 stored and computed."""
    doc = parse_site_text(SMALL_SITE, "small.yaml")
    load_site(url, doc)
    start = month_start(2025, 5)
    end = start + timedelta(days=days)
    store_readings(url, doc.site.id, generate(doc, start, end, period=timedelta(minutes=10)))
    run_calc(url)
    return doc, start, end

"""The ground-truth oracle: what really happened, beside the stream (``carbonflow-sim-oracle/1``).

A JSON Lines file (gzip-compressed when the name ends in ``.gz``), one JSON object per line,
each with a ``record`` field. In order:

1. ``header`` — format, site, document hash, seed, start, planned end, step, interval, fault
   spec, devices, assumptions version;
2. ``device`` — one per published device: kind, role, carrier, node, product, multiplier,
   modulus, serial, and each metric's kind and unit;
3. ``interval`` — one per 15-minute interval ``[start, end)`` once the stream has passed its end:
   the true quantity of every counter and interval metric of every device, **after** the
   multiplier, in the metric's unit (``quantities[device][metric]``), and every product's output
   in the product's unit (``products[product]``);
4. ``event`` — register changes that are not quantities (``reset``, ``replacement``,
   ``rollover``), with the registers as published before and after (raw, before the multiplier);
5. ``summary`` — at the end: what was published, the faults injected, and what ingest should
   have stored (``expected.stored_readings``) and rejected (``expected.rejections``, by reason);
6. ``ledger`` — at the end: the expected energy and carbon of the period and of each local
   calendar month, by the documented method (:mod:`simulators.ledger`).

Faults change the readings, never the truth: the quantities are the physical flows, whatever
was lost, duplicated, delayed or reset on the way.

:class:`OracleBuilder` is pure (truth in, records out); :class:`OracleWriter` and
:func:`read_oracle` are the file I/O.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self
from zoneinfo import ZoneInfo

import numpy as np
import orjson

from carbonflow.domain import units
from carbonflow.domain.site.model import Device, MetricKind, SiteDocument
from simulators.plant import ChunkTruth

FORMAT = "carbonflow-sim-oracle/1"
INTERVAL_S = 900  # the accounting grain: 15 min


def _iso(epoch_seconds: float, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(epoch_seconds, tz=tz).isoformat()


def quantity_metrics(device: Device) -> list[str]:
    return [m for m, s in device.metrics.items() if s.kind is not MetricKind.GAUGE]


def device_record(device: Device) -> dict[str, Any]:
    return {
        "record": "device",
        "device": device.id,
        "kind": device.kind.value,
        "role": device.role.value,
        "carrier": device.carrier.value,
        "node": device.node,
        "org": device.org,
        "product": device.product,
        "multiplier": device.multiplier,
        "counter_modulus": device.counter_modulus,
        "serial": device.serial,
        "metrics": {
            m: {"kind": s.kind.value, "unit": units.metric_unit(m).symbol}
            for m, s in device.metrics.items()
        },
    }


Totals = dict[str, dict[str, float]]  # device → metric → quantity


@dataclass
class PeriodTotals:
    """Sums of the interval records of one period."""

    start_s: float
    end_s: float
    quantities: Totals = field(default_factory=dict)
    products: dict[str, float] = field(default_factory=dict)
    intervals: int = 0

    def add(self, start_s: float, quantities: Totals, products: Mapping[str, float]) -> None:
        self.start_s = min(self.start_s, start_s)
        self.end_s = max(self.end_s, start_s + INTERVAL_S)
        self.intervals += 1
        for device, metrics in quantities.items():
            bucket = self.quantities.setdefault(device, {})
            for metric, q in metrics.items():
                bucket[metric] = bucket.get(metric, 0.0) + q
        for product, q in products.items():
            self.products[product] = self.products.get(product, 0.0) + q


class OracleBuilder:
    """Accumulates the truth per interval and hands out interval records in time order."""

    def __init__(self, doc: SiteDocument, devices: Iterable[str], tz: ZoneInfo) -> None:
        self.doc = doc
        self.tz = tz
        by_id = {d.id: d for d in doc.devices}
        self.devices = [by_id[d] for d in devices]
        self._metrics = {d.id: quantity_metrics(d) for d in self.devices}
        units_of = {p.id: units.lookup(p.unit) for p in doc.products}
        self._products: dict[str, list[tuple[str, str, float]]] = {}
        for d in self.devices:
            target = units_of.get(d.product or "")
            if target is None:
                continue
            for m in self._metrics[d.id]:
                unit = units.metric_unit(m)
                if unit.dimension is target.dimension:
                    factor = units.convert(1.0, unit.symbol, target)
                    self._products.setdefault(d.product or "", []).append((d.id, m, factor))
                    break
        self._pending: dict[float, Totals] = {}
        self.period: PeriodTotals | None = None
        self.months: dict[str, PeriodTotals] = {}

    def add_chunk(self, start_s: float, step_s: float, truth: ChunkTruth) -> None:
        """The truth of steps starting at ``start_s`` (the chunk covers whole intervals)."""
        per = round(INTERVAL_S / step_s)
        for d in self.devices:
            t = truth.get(d.id)
            if t is None:
                continue
            for m in self._metrics[d.id]:
                q = t.quantities.get(m)
                if q is None:
                    continue
                sums = np.asarray(q, dtype=np.float64).reshape(-1, per).sum(axis=1).tolist()
                for k, value in enumerate(sums):
                    key = start_s + k * INTERVAL_S
                    self._pending.setdefault(key, {}).setdefault(d.id, {})[m] = value

    def ready(self, until_s: float) -> list[dict[str, Any]]:
        """Interval records of intervals that end at or before ``until_s``, oldest first."""
        out: list[dict[str, Any]] = []
        for start in sorted(k for k in self._pending if k + INTERVAL_S <= until_s):
            quantities = self._pending.pop(start)
            products = {
                p: sum(quantities.get(d, {}).get(m, 0.0) * f for d, m, f in parts)
                for p, parts in self._products.items()
            }
            self._account(start, quantities, products)
            out.append(
                {
                    "record": "interval",
                    "start": _iso(start, self.tz),
                    "end": _iso(start + INTERVAL_S, self.tz),
                    "quantities": quantities,
                    "products": products,
                }
            )
        return out

    def _account(self, start: float, quantities: Totals, products: Mapping[str, float]) -> None:
        if self.period is None:
            self.period = PeriodTotals(start, start + INTERVAL_S)
        self.period.add(start, quantities, products)
        month = datetime.fromtimestamp(start, tz=self.tz).strftime("%Y-%m")
        bucket = self.months.get(month)
        if bucket is None:
            bucket = self.months[month] = PeriodTotals(start, start + INTERVAL_S)
        bucket.add(start, quantities, products)


def dumps(record: Mapping[str, Any]) -> bytes:
    return orjson.dumps(record, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n"


class _Sink(Protocol):
    def write(self, data: bytes, /) -> int: ...
    def close(self) -> None: ...


class OracleWriter:
    """Writes oracle records to a JSON Lines file (gzip when the name ends in ``.gz``)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # The writer is a long-lived handle closed by close() / the context manager.
        self._fh: _Sink
        if self.path.suffix == ".gz":
            self._fh = gzip.GzipFile(self.path, "wb", compresslevel=5)
        else:
            self._fh = self.path.open("wb")
        self.records = 0

    def write(self, record: Mapping[str, Any]) -> None:
        self._fh.write(dumps(record))
        self.records += 1

    def write_all(self, records: Iterable[Mapping[str, Any]]) -> None:
        for r in records:
            self.write(r)

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.close()


@dataclass(frozen=True)
class IntervalTruth:
    start: datetime
    end: datetime
    quantities: Mapping[str, Mapping[str, float]]
    products: Mapping[str, float]


@dataclass(frozen=True)
class OracleFile:
    """An oracle file, read back."""

    header: Mapping[str, Any]
    devices: Mapping[str, Mapping[str, Any]]
    intervals: tuple[IntervalTruth, ...]
    events: tuple[Mapping[str, Any], ...]
    summary: Mapping[str, Any] | None
    ledgers: tuple[Mapping[str, Any], ...]

    def total(self, device: str, metric: str) -> float:
        """Sum of a device metric's interval quantities over the file."""
        return sum(i.quantities.get(device, {}).get(metric, 0.0) for i in self.intervals)

    def product_total(self, product: str) -> float:
        return sum(i.products.get(product, 0.0) for i in self.intervals)


def iter_records(path: str | Path) -> Iterator[dict[str, Any]]:
    """The raw records of an oracle file, one by one (streaming)."""
    p = Path(path)
    opener = gzip.open if p.suffix == ".gz" else open
    with opener(p, "rb") as fh:
        for line in fh:
            if line.strip():
                record = orjson.loads(line)
                if not isinstance(record, dict) or "record" not in record:
                    raise ValueError(f"{p.name}: a line without a 'record' field")
                yield record


def read_oracle(path: str | Path) -> OracleFile:
    """Read a whole oracle file; checks the format of its header."""
    header: dict[str, Any] | None = None
    devices: dict[str, Mapping[str, Any]] = {}
    intervals: list[IntervalTruth] = []
    events: list[Mapping[str, Any]] = []
    ledgers: list[Mapping[str, Any]] = []
    summary: Mapping[str, Any] | None = None
    for record in iter_records(path):
        kind = record["record"]
        if header is None:
            if kind != "header" or record.get("format") != FORMAT:
                raise ValueError(f"{Path(path).name}: not a {FORMAT} file")
            header = record
        elif kind == "device":
            devices[record["device"]] = record
        elif kind == "interval":
            intervals.append(
                IntervalTruth(
                    datetime.fromisoformat(record["start"]),
                    datetime.fromisoformat(record["end"]),
                    record["quantities"],
                    record["products"],
                )
            )
        elif kind == "event":
            events.append(record)
        elif kind == "summary":
            summary = record
        elif kind == "ledger":
            ledgers.append(record)
        else:
            raise ValueError(f"{Path(path).name}: unknown record {kind!r}")
    if header is None:
        raise ValueError(f"{Path(path).name}: empty oracle file")
    return OracleFile(header, devices, tuple(intervals), tuple(events), summary, tuple(ledgers))

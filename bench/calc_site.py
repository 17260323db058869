"""The benchmark site: a park-like site of ``devices`` counters in two organisations, and a year
of their 15-min readings written straight into ``reading``.

Organisation ``co2`` holds exactly 500 consumption meters (the ledger benchmark's "organisation
with 500 devices"); ``co`` holds the grid, PV and diesel meters and the other consumers.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg

from carbonflow.domain.site.model import SiteDocument

SITE = "bench-calc"
GRID_METERS = 10
PV_METERS = 20
DIESEL = 10
LEDGER_ORG = "co2"
LEDGER_ORG_DEVICES = 500
WORKSHOPS = 10


def site_document(devices: int, *, publish_interval_s: float) -> SiteDocument:
    """A park-like site: grid meters, PV, diesel dispensers and the rest consumption feeders."""
    consumers = devices - GRID_METERS - PV_METERS - DIESEL
    nodes: list[dict[str, Any]] = [
        {"id": "grid", "name": "Grid", "kind": "supply"},
        {"id": "fuel", "name": "Fuel", "kind": "supply"},
        {"id": "sub", "name": "Substation", "kind": "distribution", "org": "co"},
        {"id": "pv", "name": "PV", "kind": "generation", "org": "co"},
        {"id": "yard", "name": "Yard", "kind": "transport", "org": "co"},
    ]
    # Workshops w0–w4 belong to the ledger organisation, w5–w9 to ``co``.
    half = WORKSHOPS // 2
    nodes += [
        {"id": f"w{i}", "name": f"Workshop {i}", "kind": "process",
         "org": LEDGER_ORG if i < half else "co"}
        for i in range(WORKSHOPS)
    ]  # fmt: skip
    sim = {"publish_interval_s": publish_interval_s}
    devs: list[dict[str, Any]] = []
    for i in range(GRID_METERS):
        devs.append({"id": f"g{i}", "name": f"g{i}", "kind": "electricity_meter",
                     "carrier": "electricity", "role": "grid_import", "node": "sub", "org": "co",
                     "multiplier": 1000, "sim": sim})  # fmt: skip
    for i in range(PV_METERS):
        devs.append({"id": f"p{i}", "name": f"p{i}", "kind": "pv_inverter",
                     "carrier": "electricity", "role": "generation_pv", "node": "pv", "org": "co",
                     "sim": sim})  # fmt: skip
    for i in range(DIESEL):
        devs.append({"id": f"d{i}", "name": f"d{i}", "kind": "fuel_dispenser", "carrier": "diesel",
                     "role": "fuel_supply", "node": "yard", "org": "co", "sim": sim})  # fmt: skip
    workshop = [_workshop(i, consumers) for i in range(consumers)]
    for i in range(consumers):
        org = LEDGER_ORG if workshop[i] < half else "co"
        devs.append({"id": f"m{i}", "name": f"m{i}", "kind": "electricity_meter",
                     "carrier": "electricity", "role": "consumption", "node": f"w{workshop[i]}",
                     "org": org, "sim": sim})  # fmt: skip
    edges = [
        {"source": "grid", "target": "sub", "carrier": "electricity",
         "meters": [f"g{i}" for i in range(GRID_METERS)]},
        {"source": "pv", "target": "sub", "carrier": "electricity",
         "meters": [f"p{i}" for i in range(PV_METERS)]},
        {"source": "fuel", "target": "yard", "carrier": "diesel",
         "meters": [f"d{i}" for i in range(DIESEL)]},
    ] + [
        {"source": "sub", "target": f"w{i}", "carrier": "electricity",
         "meters": [f"m{j}" for j in range(consumers) if workshop[j] == i]}
        for i in range(WORKSHOPS)
    ]  # fmt: skip
    return SiteDocument.model_validate(
        {
            "site": {
                "id": SITE,
                "name": "Calc bench",
                "kind": "park",
                "province": "shanxi",
                "grid_region": "north",
            },
            "organisations": [{"id": "co", "name": "Co"}, {"id": LEDGER_ORG, "name": "Co 2"}],
            "nodes": nodes,
            "edges": edges,
            "budgets": [
                {"org": "co", "year": 2025, "energy_tce": 1e6, "co2_t": 1e7},
                {"org": LEDGER_ORG, "year": 2025, "energy_tce": 1e6, "co2_t": 1e7},
            ],
            "devices": devs,
        }
    )


def _workshop(consumer: int, consumers: int) -> int:
    """The first ``LEDGER_ORG_DEVICES`` consumers (¾ of them in a small run) go to workshops 0–4."""
    in_ledger_org = min(LEDGER_ORG_DEVICES, consumers * 3 // 4)
    half = WORKSHOPS // 2
    if consumer < in_ledger_org:
        return consumer % half
    return half + consumer % half


def rate_per_hour(device_id: str) -> float:
    """Register increase per hour (raw units)."""
    kind = device_id[0]
    if kind == "g":
        return 5.0  # × 1 000 multiplier = 5 MWh/h per grid line
    if kind == "p":
        return 300.0
    if kind == "d":
        return 50.0
    return 100.0 + sum(map(ord, device_id)) % 50


def metric_of(device_id: str) -> str:
    return {"p": "energy_export_kwh", "d": "volume_l"}.get(device_id[0], "energy_import_kwh")


def seed_year(url: str, doc: SiteDocument, start: datetime, days: int, period: timedelta) -> int:
    """Counter readings straight into ``reading`` (COPY), without dirty hours."""
    with psycopg.connect(url) as conn:
        ids = {
            (str(a), str(b)): (int(c), int(d))
            for a, b, c, d in conn.execute(
                "SELECT dv.device_id, m.name, dv.device_pk, m.metric_id FROM device dv "
                "JOIN device_metric dm ON dm.device_pk = dv.device_pk "
                "JOIN metric m ON m.metric_id = dm.metric_id WHERE dv.site_id = %s",
                (SITE,),
            )
        }
    steps = int(timedelta(days=days) / period)
    hours = period / timedelta(hours=1)
    written = 0
    with (
        psycopg.connect(url) as conn,
        conn.cursor() as cur,
        cur.copy(
            "COPY reading (device_pk, metric_id, ts, value, seq, received_at) FROM STDIN "
            "(FORMAT BINARY)"
        ) as copy,
    ):
        copy.set_types(["int4", "int2", "timestamptz", "float8", "int8", "timestamptz"])
        for d in doc.devices:
            pk, mid = ids[(d.id, metric_of(d.id))]
            rate = rate_per_hour(d.id) * hours
            value = 1_000.0
            for k in range(steps + 1):
                ts = start + k * period
                copy.write_row((pk, mid, ts, value, None, ts))
                value += rate
                written += 1
    return written

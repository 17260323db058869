"""Seed a minimal registry straight into the tables, for ingest tests that need no site file."""

from __future__ import annotations

from collections.abc import Mapping

import psycopg

from carbonflow.domain.units import metric_unit

DEFAULT_METRICS: Mapping[str, str] = {"energy_import_kwh": "counter", "power_kw": "gauge"}


def seed_site(
    database_url: str,
    site: str = "t1",
    devices: int = 10,
    metrics: Mapping[str, str] = DEFAULT_METRICS,
    *,
    kind: str = "mine",
    modulus: float | None = None,
    prefix: str = "m",
) -> list[str]:
    """Register ``devices`` meters ``<prefix>0…`` at ``site``; returns their ids."""
    ids = [f"{prefix}{i}" for i in range(devices)]
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO site (site_id, name, kind, province, grid_region, document,"
            " document_sha256)"
            " VALUES (%s, %s, %s, 'shanxi', 'north', '{}', 'seed') ON CONFLICT DO NOTHING",
            (site, site, kind),
        )
        for name in metrics:
            conn.execute(
                "INSERT INTO metric (name, unit) SELECT %s, %s"
                " WHERE NOT EXISTS (SELECT 1 FROM metric WHERE name = %s)",
                (name, metric_unit(name).symbol, name),
            )
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO device (site_id, device_id, name, kind, carrier, role,"
                " counter_modulus)"
                " VALUES (%s, %s, %s, 'electricity_meter', 'electricity', 'consumption', %s)",
                [(site, d, d, modulus) for d in ids],
            )
        for name, kind_ in metrics.items():
            conn.execute(
                "INSERT INTO device_metric (device_pk, metric_id, kind)"
                " SELECT d.device_pk, m.metric_id, %s FROM device d, metric m"
                " WHERE d.site_id = %s AND m.name = %s",
                (kind_, site, name),
            )
    return ids

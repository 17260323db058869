"""Plain PostgreSQL and TimescaleDB give the same numbers (carbonflow/storage/timescale.py).

The same simulated month of the Shanxi mine, with faults (rollovers, a register reset, a meter
swap, gaps, a glitch), goes through two databases on the same server: one migrated with
``--no-timescaledb`` (B-trees and BRIN), one with TimescaleDB (hypertables, compression). The
stored readings, every calc result table, the carbon sums and the content hashes of the
month's ledgers (site and each organisation) must be identical — not close: identical. Needs a
server with TimescaleDB (``make test-timescaledb``).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import sql

from carbonflow.domain.site.model import SiteDocument
from carbonflow.embedded.postgres import PostgresServer
from carbonflow.sites.loader import load_site_file
from carbonflow.storage.db import make_engine
from carbonflow.storage.migrate import upgrade
from carbonflow.storage.registry_load import load_site
from services.api.routers.ledgers import draft_document
from tests.storage.test_timescale import result_digests
from tests.support.calc_generator import Faults, generate, month_start, run_calc, store_readings
from tests.support.timescale import uses_timescaledb

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MINE = "carbonflow/sites/examples/shanxi-mine.yaml"
MONTH = "2025-03"
START = month_start(2025, 3)
END = month_start(2025, 4)
MARGIN = timedelta(hours=2)
DAY = timedelta(days=1)
FAULTS = Faults(
    rollover=True,
    reset=("diesel-dispenser-1", START + 9 * DAY + timedelta(hours=4, minutes=3)),
    swap=("main-hoist", START + 14 * DAY + timedelta(hours=1, minutes=7)),
    gaps=(
        ("fan-north", START + 4 * DAY + timedelta(hours=2), START + 4 * DAY + timedelta(hours=8)),
        ("drainage-low", START + 20 * DAY, START + 20 * DAY + timedelta(hours=3)),
    ),
    glitch=("longwall-feeder", START + 6 * DAY + timedelta(hours=4)),
)
GENERATED_AT = datetime(2025, 4, 2, tzinfo=UTC)


@pytest.fixture
def plain_url(pg_server: PostgresServer) -> Iterator[str]:
    """A database on the same server with the plain PostgreSQL layout."""
    name = "cf_plain_layout"
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = pg_server.url_for(name)
    try:
        upgrade(url, use_timescaledb=False)
        yield url
    finally:
        with psycopg.connect(pg_server.url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _month(url: str, doc: SiteDocument) -> None:
    load_site(url, doc)
    store_readings(url, doc.site.id, generate(doc, START - MARGIN, END + MARGIN, faults=FAULTS))
    run_calc(url)


def _readings(url: str) -> tuple[int, str]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*), md5(string_agg(concat_ws(',', d.device_id, m.name, r.ts, r.value, "
            "r.seq, r.received_at), '|' ORDER BY d.device_id, m.name, r.ts)) FROM reading r "
            "JOIN device d USING (device_pk) JOIN metric m USING (metric_id)"
        ).fetchone()
    assert row is not None
    return int(row[0]), str(row[1])


def _carbon_sums(url: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            # Summed in time order: a float sum depends on the order of its terms, and the
            # physical row order is what the two layouts may differ in.
            # (one row per start_ts in each group: the key is the primary key's).
            "SELECT org_id, node_id, carrier, category, basis, gas, "
            "sum(tco2e ORDER BY start_ts), sum(energy_tce ORDER BY start_ts), "
            "sum(gas_t ORDER BY start_ts), count(*) "
            "FROM calc_carbon GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6"
        ).fetchall()


def _ledger_hashes(url: str, doc: SiteDocument) -> dict[str | None, str]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return {
                org: str(
                    draft_document(conn, doc.site.id, org, MONTH, GENERATED_AT)["content_sha256"]
                )
                for org in (None, *(o.id for o in doc.organisations))
            }
    finally:
        engine.dispose()


def test_a_month_through_plain_postgresql_and_timescaledb_is_identical(
    timescaledb_url: str, plain_url: str
) -> None:
    assert uses_timescaledb(timescaledb_url) and not uses_timescaledb(plain_url)
    doc = load_site_file(MINE)
    for url in (plain_url, timescaledb_url):
        _month(url, doc)

    readings = _readings(plain_url)
    assert readings[0] > 100_000
    assert _readings(timescaledb_url) == readings
    results = result_digests(plain_url)
    assert results["calc_carbon"][0] > 0
    assert result_digests(timescaledb_url) == results
    sums = _carbon_sums(plain_url)
    assert _carbon_sums(timescaledb_url) == sums
    hashes = _ledger_hashes(plain_url, doc)
    assert len(set(hashes.values())) == len(hashes)
    assert _ledger_hashes(timescaledb_url, doc) == hashes

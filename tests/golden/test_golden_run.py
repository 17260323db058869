"""The golden run: a deterministic end-to-end run whose outputs were recorded before a refactor.

Both example sites are simulated with heavy faults over fixed dates (the whole of September
2026, site-local, with a margin either side), published through the real Mosquitto by one
publisher and stored by one ingest worker (so arrival order is the simulator's), computed by the
calc engine, and read back through the HTTP API. What comes out is hashed and compared with
``golden.json``; a mismatch names the keys that differ.

``CARBONFLOW_UPDATE_GOLDEN=1`` writes ``golden.json`` from this run instead of comparing.

Determinism. The simulator is seeded; the calc engine and the API get a pinned wall clock
(``NOW``, injected through their documented ``wall_clock`` parameters), so ``computed_at``,
``raised_at``, ``generated_at`` and the events' order do not follow the real clock; the calc
engine reads every dirty hour in one cycle (``DIRTY_BATCH`` says why). What is
still wall-clock dependent is ingest's ``received_at`` (the time the adapter got a message):
it only reaches the outputs as the ledger header's ``calc_last_received_at``, removed below.
(It also decides calc_interval's ``late`` flag, ``received_at − ts > late_after``: every
reading of 2026 received now is late, which is the same every run.)

Removed before hashing, each because it is wall-clock dependent:

- ledger ``header.generated_at``: when the draft was rendered (the app's clock; pinned here,
  but it says when, not what — the builder's own ``content_sha256`` leaves it out too);
- ledger ``header.calc_last_received_at``: ingest's real receipt time of the newest reading;
  in the CSV export its value is replaced by a placeholder (it is a header row of the table);
- flows ``computed_at``: when the graph was computed (the app's clock, pinned here).

Database rows are read with their values only (``computed_at`` columns are the database's
``now()`` or the engine's clock) and device_pk/metric_id replaced by device and metric names.
Numbers are hashed as Python ``repr`` of the float (exact), sums with ``math.fsum`` in a sorted
order, so no summation order of the database enters a hash.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from fastapi.testclient import TestClient

# Project modules (renamed by the refactor): kept together here.
from carbonflow.domain.ledger.labels import field_label, section_label
from carbonflow.embedded.broker import EmbeddedMosquitto
from carbonflow.sites.loader import EXAMPLES, load_site_file
from services.calc.engine import CalcEngine, EngineConfig
from simulators.engine import SimConfig
from simulators.faultspec import FaultSpec
from simulators.runner import SimulationReport, register_fleet, run_simulation
from tests.support.api_support import ADMIN_KEY, make_app
from tests.support.ingest_harness import count, reason_counts, running_ingest
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GOLDEN = Path(__file__).with_name("golden.json")
UPDATE_ENV = "CARBONFLOW_UPDATE_GOLDEN"
TZ = ZoneInfo("Asia/Shanghai")
MONTH = "2026-09"
MONTH_START = datetime(2026, 9, 1, tzinfo=TZ)
MONTH_END = datetime(2026, 10, 1, tzinfo=TZ)
DAY = datetime(2026, 9, 15, tzinfo=TZ)  # the day of the 15-min series
# The pinned wall clock of the calc engine and the API: after the simulated period.
NOW = datetime(2026, 11, 23, 6, 15, tzinfo=UTC)
# (site file, seed, first simulated instant, simulated days): September and two days around it.
RUNS = (
    ("shanxi-mine", 2026_09_01, datetime(2026, 8, 30, tzinfo=TZ), 34),
    ("inner-mongolia-park", 2026_09_02, datetime(2026, 8, 30, tzinfo=TZ), 34),
)
FAULTS = "heavy,malformed=0"
# Dirty device-hours the calc engine reads per cycle: all of the run's (≈ 80 000) at once. With
# the default (20 000) the backlog is worked through in several cycles, taking the hours in the
# heap order of ``dirty_hour`` (no ORDER BY, on purpose), and that order follows ingest's
# time-based batch boundaries: measured, two runs then differed in the last bits of a few
# interval quantities (another window boundary) and in the value and message of events raised
# by an intermediate cycle over a half-computed month. The final results were equal. One cycle
# over every dirty hour leaves no intermediate state and no window boundary to depend on.
DIRTY_BATCH = 1_000_000
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
# Wall-clock placeholder in the CSV export (see the module doc).
WALL = "<wall-clock>"


# --------------------------------------------------------------------------------------------
# Hashing
# --------------------------------------------------------------------------------------------


def canonical(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def sha(value: Any) -> str:
    data = value if isinstance(value, bytes) else canonical(value)
    return hashlib.sha256(data).hexdigest()


def without(document: Mapping[str, Any], *paths: str) -> dict[str, Any]:
    """A copy of ``document`` without the fields at ``paths`` (``a.b`` is a nested field)."""
    out = json.loads(json.dumps(document))
    for path in paths:
        *parents, leaf = path.split(".")
        node = out
        for p in parents:
            node = node[p]
        assert leaf in node, path  # a field that disappeared must be noticed, not ignored
        del node[leaf]
    return dict(out)


def _num(value: Any) -> Any:
    """A database value as a JSON value: floats exact (repr), times ISO in UTC."""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def rows_digest(rows: Iterable[tuple[Any, ...]]) -> dict[str, Any]:
    """Count and SHA-256 of rows, sorted (the database's row order does not enter)."""
    table = sorted(tuple(_num(v) for v in row) for row in rows)
    return {"rows": len(table), "sha256": sha([list(r) for r in table])}


def fsum(values: Iterable[float | None]) -> float:
    return math.fsum(sorted(v for v in values if v is not None))


def diff(recorded: Mapping[str, Any], got: Mapping[str, Any], prefix: str = "") -> list[str]:
    """The keys whose values differ, as ``a/b/c: recorded → got`` lines."""
    out = []
    for key in sorted(recorded.keys() | got.keys()):
        name = f"{prefix}{key}"
        a, b = recorded.get(key, "<missing>"), got.get(key, "<missing>")
        if isinstance(a, dict) and isinstance(b, dict):
            out.extend(diff(a, b, name + "/"))
        elif a != b:
            out.append(f"{name}: {a!r} → {b!r}")
    return out


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


def _configs() -> list[SimConfig]:
    return [
        SimConfig(
            load_site_file(EXAMPLES / f"{name}.yaml"),
            start=start,
            duration=timedelta(days=days),
            step=timedelta(minutes=15),
            speed=math.inf,
            seed=seed,
            faults=FaultSpec.parse(FAULTS),
            batch_size=50,
        )
        for name, seed, start, days in RUNS
    ]


def _simulate(database_url: str, mqtt_url: str) -> list[SimulationReport]:
    configs = _configs()
    for config in configs:
        register_fleet(database_url, config)
    reports = []
    # One ingest worker, one publisher connection, one site after the other: the broker keeps
    # one connection's order, so readings arrive (and the counter guard decides) as published.
    with running_ingest(database_url, mqtt_url):
        for i, config in enumerate(configs):
            reports.append(run_simulation(config, mqtt_url, client_id=f"golden-{i}"))
        stored = sum(r.tally.stored_readings for r in reports)
        rejected = sum(sum(r.tally.rejections.values()) for r in reports)
        wait_until(
            lambda: count(database_url, "SELECT count(*) FROM reading") >= stored,
            600,
            interval_s=0.5,
            message="readings stored",
        )
        wait_until(
            lambda: count(database_url, "SELECT count(*) FROM rejected_reading") >= rejected,
            120,
            interval_s=0.5,
            message="rejections stored",
        )
    expected: dict[str, int] = {}
    for r in reports:
        for reason, n in r.tally.rejections.items():
            expected[reason] = expected.get(reason, 0) + n
    assert count(database_url, "SELECT count(*) FROM reading") == stored
    assert reason_counts(database_url) == expected
    return reports


def _calc(database_url: str) -> None:
    engine = CalcEngine(database_url, EngineConfig(dirty_batch=DIRTY_BATCH), wall_clock=lambda: NOW)
    try:
        engine.sync_reference()
        reports = engine.run_until_idle()
        assert all(r.site_errors == 0 for r in reports)
        # every dirty hour was read by the first cycle (see DIRTY_BATCH)
        assert 0 < reports[0].dirty_hours_read < DIRTY_BATCH
        assert all(r.dirty_hours_read == 0 for r in reports[1:])
        assert engine.pending() == 0
    finally:
        engine.close()


# --------------------------------------------------------------------------------------------
# What is recorded: the database
# --------------------------------------------------------------------------------------------


def _database(url: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with psycopg.connect(url) as conn:

        def q(sql: str) -> list[tuple[Any, ...]]:
            return conn.execute(sql).fetchall()

        readings = q(
            "SELECT d.site_id, d.device_id, m.name, r.ts, r.value FROM reading r "
            "JOIN device d USING (device_pk) JOIN metric m USING (metric_id)"
        )
        by_site: dict[str, int] = {}
        for row in readings:
            by_site[row[0]] = by_site.get(row[0], 0) + 1
        out["reading"] = {**rows_digest(readings), "by_site": dict(sorted(by_site.items()))}
        out["rejected_reading"] = {
            "by_reason": dict(sorted(reason_counts(url).items())),
            # received_at, last_seen_at and the detail (which may quote times) are left out
            **rows_digest(
                q(
                    "SELECT reason, coalesce(site_id, ''), coalesce(device_id, ''), "
                    "coalesce(metric, ''), reading_ts, value, payload_bytes "
                    "FROM rejected_reading"
                )
            ),
        }

        intervals = q(
            "SELECT d.site_id, d.device_id, m.name, c.start_ts, c.quantity, c.quality, "
            "c.completeness, c.late FROM calc_interval c "
            "JOIN device d USING (device_pk) JOIN metric m USING (metric_id)"
        )
        out["calc_interval"] = {
            **rows_digest(intervals),
            "rows_by_site_quality": _counts(f"{r[0]}/{r[5]}" for r in intervals),
            "quantity_by_site_metric": _sums(
                ((f"{r[0]}/{r[2]}", r[4]) for r in intervals), digits=10
            ),
        }
        out["calc_interval_rollup"] = rows_digest(
            q(
                "SELECT d.site_id, d.device_id, m.name, c.grain, c.period_start, c.quantity, "
                "c.quality, c.completeness, c.late, c.intervals FROM calc_interval_rollup c "
                "JOIN device d USING (device_pk) JOIN metric m USING (metric_id)"
            )
        )
        carbon_cols = (
            "site_id, org_id, node_id, carrier, category, basis, gas, scope, activity, "
            "activity_unit, energy_tce, zero_carbon_tce, gas_t, tco2e, factor_key, "
            "factor_version, factor_value, factor_unit, quality, completeness"
        )
        out["calc_carbon"] = rows_digest(q(f"SELECT start_ts, {carbon_cols} FROM calc_carbon"))
        rollup = q(f"SELECT grain, period_start, {carbon_cols} FROM calc_carbon_rollup")
        out["calc_carbon_rollup"] = {
            **rows_digest(rollup),
            # month grain, by site / organisation / view (location: basis ≠ market)
            "tco2e_month": _sums(
                (
                    (f"{r[2]}/{r[3] or '-'}/{view}", r[15])
                    for r in rollup
                    if r[0] == "month"
                    for view in ("location", "market")
                    if r[7] != ("market" if view == "location" else "location")
                ),
                digits=10,
            ),
            "energy_tce_month": _sums(
                ((f"{r[2]}/{r[3] or '-'}", r[12]) for r in rollup if r[0] == "month"), digits=10
            ),
        }
        indicators = q(
            "SELECT site_id, org_id, grain, period_start, indicator, period_end, value, unit, "
            "numerator, denominator, undefined_reason, basis, target_threshold, "
            "target_comparator, target_unit, target_basis, target_source, status, explanation, "
            "completeness FROM calc_indicator"
        )
        out["calc_indicator"] = {
            **rows_digest(indicators),
            "month_values": {
                f"{r[0]}/{r[1] or '-'}/{r[4]}": (None if r[6] is None else float(f"{r[6]:.10g}"))
                for r in sorted(indicators, key=lambda r: (r[0], r[1], r[4]))
                if r[2] == "month" and r[3] == MONTH_START
            },
            "status_counts": _counts(f"{r[2]}/{r[17]}" for r in indicators),
        }
        out["calc_budget"] = rows_digest(
            q(
                "SELECT site_id, org_id, year, quantity, unit, budget, consumed, remaining, "
                "elapsed_fraction, used_fraction, projected_total, projected_overrun, "
                "projected_exhaustion, status, explanation, as_of FROM calc_budget"
            )
        )
        events = q(
            "SELECT site_id, org_id, kind, subject, grain, period_start, status, "
            "previous_status, value, threshold, message, dedup_key FROM calc_event"
        )
        out["calc_event"] = {
            **rows_digest(events),
            "by_kind_status": _counts(f"{r[0]}/{r[2]}/{r[6]}" for r in events),
        }
        out["calc_green_claim"] = rows_digest(
            q(
                "SELECT site_id, month_start, instrument_id, kind, accepted, offered_mwh, "
                "applied_mwh FROM calc_green_claim"
            )
        )
    return out


def _sums(pairs: Iterable[tuple[str, float]], *, digits: int) -> dict[str, float]:
    groups: dict[str, list[float]] = {}
    for key, value in pairs:
        groups.setdefault(key, []).append(value)
    return {k: float(f"{fsum(v):.{digits}g}") for k, v in sorted(groups.items())}


def _counts(keys: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for k in keys:
        out[k] = out.get(k, 0) + 1
    return dict(sorted(out.items()))


# --------------------------------------------------------------------------------------------
# What is recorded: the API
# --------------------------------------------------------------------------------------------


class Reader:
    def __init__(self, client: TestClient) -> None:
        self.client = client

    def get(self, path: str, **params: Any) -> Any:
        response = self.client.get(path, params=params, headers=AUTH)
        assert response.status_code == 200, (path, params, response.text)
        return response

    def json(self, path: str, **params: Any) -> Any:
        return self.get(path, **params).json()

    def paged(self, path: str, **params: Any) -> list[Any]:
        items: list[Any] = []
        while True:
            page = self.json(path, limit=1000, offset=len(items), **params)
            items.extend(page["items"])
            if page["links"]["next"] is None:
                return items


def _ledger(reader: Reader, base: str) -> dict[str, Any]:
    """A month's draft ledger: the builder's content hash, the whole document's hash without
    its wall-clock fields, the CSV export's hash with them replaced, and a few totals."""
    document = reader.json(f"{base}/ledgers/{MONTH}/draft")
    wall = document["header"]["calc_last_received_at"]
    csv_bytes = reader.get(f"{base}/ledgers/{MONTH}/draft", format="csv").content
    csv_rows = list(csv.reader(io.StringIO(csv_bytes.decode("utf-8-sig"))))
    header = section_label("header", "en")
    for field in ("generated_at", "calc_last_received_at"):
        value = document["header"][field]
        hits = [r for r in csv_rows if header in r and field_label(field, "en") in r]
        assert len(hits) == 1 and (value is None or value in hits[0]), field
    normalised_csv = csv_bytes
    for value in (document["header"]["generated_at"], wall):
        if value:
            normalised_csv = normalised_csv.replace(value.encode("utf-8"), WALL.encode("utf-8"))
    totals = {row["view"]: row for row in document["totals"]}
    return {
        "content_sha256": document["content_sha256"],
        "document_sha256": sha(
            without(document, "header.generated_at", "header.calc_last_received_at")
        ),
        "csv_sha256": sha(normalised_csv),
        "csv_rows": len(csv_rows),
        "total_tco2e_location": totals["location"]["total_tco2e"],
        "total_tco2e_market": totals["market"]["total_tco2e"],
        "calc_results_through": document["header"]["calc_results_through"],
        "lines": len(document["emissions"]),
    }


def _owners_add_up(got: Mapping[str, Any]) -> None:
    """The attribution invariant of a simulated month (issue 15): the site's ledger total is
    the sum of its organisations' (common account included), in each view. Ledgers round to
    10 significant digits, so the sum agrees to that."""
    for view in ("location", "market"):
        site = got["ledger"][f"total_tco2e_{view}"]
        owners = math.fsum(
            ledger[f"total_tco2e_{view}"] for ledger in got["organisation_ledgers"].values()
        )
        assert owners == pytest.approx(site, rel=1e-9, abs=1e-9), view


def _api(url: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    local = MONTH_START.isoformat()
    month_end = MONTH_END.isoformat()
    day, day_end = DAY.isoformat(), (DAY + timedelta(days=1)).isoformat()
    app = make_app(url, wall_clock=lambda: NOW)
    with TestClient(app, raise_server_exceptions=True) as client:
        r = Reader(client)
        sites = sorted(s["site_id"] for s in r.paged("/api/v1/sites"))
        assert len(sites) == 2
        for site in sites:
            s = f"/api/v1/sites/{site}"
            got: dict[str, Any] = {}
            flows = r.json(f"{s}/flows", period=MONTH)
            got["flows_month"] = {
                "sha256": sha(without(flows, "computed_at")),
                "totals": flows["totals"],
                "links": len(flows["links"]),
            }
            series: dict[str, dict[str, str]] = {
                "carbon_day_15min": {"grain": "15min", "start": day, "end": day_end},
                "carbon_month_by_day": {"grain": "day", "start": local, "end": month_end},
                "carbon_month_by_day_market": {
                    "grain": "day",
                    "start": local,
                    "end": month_end,
                    "basis": "market",
                },
                "carbon_month": {"grain": "month", "start": local, "end": month_end},
            }
            for name, params in series.items():
                body = r.json(f"{s}/carbon/series", **params)
                got[name] = {
                    "sha256": sha(body),
                    "points": len(body["points"]),
                    "tco2e": body["totals"]["tco2e"],
                }
            indicators: dict[str, dict[str, Any]] = {
                "indicators_month": {"grain": "month", "period": "2026-09-15"},
                "indicators_day": {"grain": "day", "period": "2026-09-15"},
                "indicators_year": {"grain": "year", "period": "2026-09-15", "trend": 0},
            }
            for name, params in indicators.items():
                body = r.json(f"{s}/indicators", **params)
                got[name] = {"sha256": sha(body), "items": len(body["items"])}
            body = r.json(f"{s}/indicators/range", start=local, end=DAY.isoformat())
            got["indicators_range"] = {"sha256": sha(body), "items": len(body["items"])}
            body = r.json(f"{s}/budgets", year=2026, burn_down="true")
            got["budgets"] = {"sha256": sha(body)}
            events = r.paged(f"{s}/events")
            got["events"] = {"sha256": sha(events), "items": len(events)}
            got["ledger"] = _ledger(r, s)
            orgs = sorted(o["org_id"] for o in r.paged(f"{s}/organisations"))
            got["organisation_ledgers"] = {
                org: _ledger(r, f"{s}/organisations/{org}") for org in orgs
            }
            _owners_add_up(got)
            out[site] = got
        aggregates: dict[str, Any] = {}
        for name, path, params in (
            ("totals", "totals", {"start": "2026-09-01", "end": "2026-10-01"}),
            ("compliance", "compliance", {"grain": "month", "period": "2026-09-15"}),
            ("completeness", "completeness", {"start": "2026-09-01", "end": "2026-10-01"}),
        ):
            aggregates[name] = sha(r.json(f"/api/v1/aggregates/{path}", **params))
        out["aggregates"] = aggregates
    return out


# --------------------------------------------------------------------------------------------
# The test
# --------------------------------------------------------------------------------------------


def test_golden_run(database_url: str, mosquitto: EmbeddedMosquitto) -> None:
    started = time.monotonic()
    reports = _simulate(database_url, mosquitto.url)
    for kind in ("reset", "replacement", "rollover", "gap", "late"):
        assert sum(r.injected.get(kind, 0) for r in reports) > 0, kind
    _calc(database_url)
    got = {
        "run": {
            "month": MONTH,
            "faults": FAULTS,
            "sites": [
                {"file": name, "seed": seed, "start": start.isoformat(), "days": days}
                for name, seed, start, days in RUNS
            ],
            "published": {
                r.site: {"messages": r.tally.messages, "readings": r.tally.readings}
                for r in reports
            },
        },
        "database": _database(database_url),
        "api": _api(database_url),
    }
    elapsed = time.monotonic() - started
    if os.environ.get(UPDATE_ENV) == "1":
        GOLDEN.write_text(json.dumps(got, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
        print(f"golden run: {elapsed:.0f} s, written to {GOLDEN}")
        return
    assert GOLDEN.exists(), f"no {GOLDEN.name}: run with {UPDATE_ENV}=1 to record it"
    recorded = json.loads(GOLDEN.read_text())
    differences = diff(recorded, json.loads(json.dumps(got)))
    assert not differences, "the golden run differs:\n" + "\n".join(differences)

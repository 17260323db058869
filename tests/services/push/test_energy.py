"""Energy online monitoring (能耗在线监测) against a real PostgreSQL (calc results computed by the
real engine) and a simulated provincial platform over HTTPS (self-signed certificate given to
the sender as its CA): it answers 503 twice, refuses one batch with 400 and is down for a
while. A day without data is held by the completeness rule and goes out only when a reviewer
releases it through the API; every request and answer is audited. The push worker runs as the
service's database role.

Done when (issue 19): a send with failing quality is held for review with the reason, not
silently sent; every due batch reaches the platform at least once, in period order; nothing
accepted is sent again.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from carbonflow.domain.reporting.energy import EnergyDestination, EnergyProfile, Grain, ItemMap
from carbonflow.storage import energy_outbox as energy_db
from carbonflow.storage import push as push_db
from carbonflow.storage.carbon import SeriesFilter, activity_series
from carbonflow.storage.db import make_engine
from services.push.energy import EnergySender
from services.push.metrics import PushMetrics
from services.push.worker import PushWorker, WorkerConfig, utc_now
from simulators.energy_platform import EnergyFaults, EnergyPlatform
from tests.support.api_support import grant_keys, make_app
from tests.support.calc_generator import computed_small_site
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

TOKEN = "province-token-for-the-test"
ITEMS = (ItemMap("activity:electricity", "E0101", "kWh", 1), ItemMap("energy_tce", "Z0001", "t", 4))
REFUSED = ":15min:2025-05-01T12:00:00+08:00:"  # the platform refuses this batch's content


def _destination(platform: EnergyPlatform, start: datetime) -> EnergyDestination:
    return EnergyDestination(
        name="province",
        site_id="small-plant",
        url=platform.url,
        token=TOKEN,
        profile=EnergyProfile("91140700MA0000000X", ITEMS),
        grains=(Grain.QUARTER_HOUR, Grain.DAY),
        start=start,
        timeout_s=5.0,
        ca_file=str(platform.ca_file),
    )


class Running:
    def __init__(self, engine: sa.Engine, destination: EnergyDestination) -> None:
        metrics = PushMetrics()
        self.sender = EnergySender(
            engine, [destination], periods_per_cycle=500, backoff_start_s=0.05,
            backoff_max_s=0.4, clock=utc_now, metrics=metrics,
        )  # fmt: skip
        config = WorkerConfig(interval_s=0.05)
        self.worker = PushWorker(engine, [], config, metrics=metrics, energy=self.sender)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.worker.run, args=(self.stop,), daemon=True)
        self.thread.start()

    def halt(self) -> None:
        self.stop.set()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()

    def failures(self) -> float:
        value = self.worker.metrics.registry.get_sample_value(
            "carbonflow_push_link_failures_total", {"destination": "province"}
        )
        return value or 0.0


def _states(engine: sa.Engine) -> Counter[str]:
    with engine.connect() as conn:
        rows = energy_db.batches(conn, None, state=None, limit=10_000)
    return Counter(r.state for r in rows)


def test_batches_are_checked_held_reviewed_sent_and_audited(
    database_url: str, app_role_url: str
) -> None:
    _, start, end = computed_small_site(database_url, days=2)
    day_before = start - timedelta(days=1)  # no data: its daily batch fails completeness
    faults = EnergyFaults(unavailable_at=frozenset({5, 6}), refuse=(REFUSED,))
    platform = EnergyPlatform(TOKEN, faults)
    platform.start()
    engine = make_engine(app_role_url)
    destination = _destination(platform, day_before)
    # 3 local days of 15-min batches and 3 daily batches; the first day is held.
    expected = 3 * 96 + 3
    try:
        run = Running(engine, destination)
        wait_until(lambda: len(platform.receipts()) >= 40, 60, message="first batches")
        platform.stop()  # down: connections refused
        before = run.failures()
        wait_until(lambda: run.failures() >= before + 3, 60, message="refused while down")
        platform.start()
        wait_until(
            lambda: _states(engine) == Counter(sent=expected - 2, held=1, refused=1),
            120,
            message="every batch sent but the held and the refused one",
        )
        # The held day has not been sent; the refused batch went once and is kept.
        held_key = f"province:day:{(day_before + timedelta(hours=8)).date()}T00:00:00+08:00:v1"
        assert held_key not in {r.batch_id for r in platform.receipts()}

        keys = grant_keys(
            app_role_url,
            {
                "admin": ("admin", [], None),
                "operator": ("operator", ["small-plant"], None),
                "regulator": ("regulator", ["small-plant"], None),
                "enterprise": ("enterprise", ["small-plant"], "plant-co"),
            },
        )
        app = make_app(app_role_url, settings={"CARBONFLOW_API_KEY_CACHE_S": 0})
        base = "/api/v1/sites/small-plant/push/energy-batches"
        with TestClient(app, raise_server_exceptions=True) as client:

            def auth(who: str) -> dict[str, str]:
                return {"Authorization": f"Bearer {keys[who].token}"}

            held = client.get(f"{base}?state=held", headers=auth("regulator")).json()["items"]
            (batch,) = held
            assert (batch["grain"], batch["state"]) == ("day", "held")
            assert any("0 of 96" in r and "数据完整率" in r for r in batch["reasons"])
            failed = [c for c in batch["checks"] if not c["passed"]]
            assert {(c["rule"], c["value"], c["limit"], c["unit"]) for c in failed} == {
                ("completeness", 0.0, 0.9, "1")
            } and len(failed) == 2  # electricity and energy_tce, both empty
            refused = client.get(f"{base}?state=refused", headers=auth("operator")).json()
            (r,) = refused["items"]
            assert r["http_status"] == 400 and r["attempts"] == 1 and "400" in r["last_error"]

            note = {"note": "the plant was not yet connected that day / 当日尚未接入"}
            release = f"{base}/{batch['batch_id']}/release"
            assert client.post(release, json=note, headers=auth("regulator")).status_code == 403
            assert client.post(release, json=note, headers=auth("enterprise")).status_code == 403
            assert client.get(base, headers=auth("enterprise")).status_code == 403
            answer = client.post(release, json=note, headers=auth("operator"))
            assert answer.status_code == 200, answer.text
            assert answer.json()["state"] == "pending"
            assert answer.json()["reviewed_by"] == keys["operator"].key_id
            assert client.post(release, json=note, headers=auth("operator")).status_code == 409
            withdraw = f"{base}/{r['batch_id']}/withdraw"
            assert client.post(withdraw, json=note, headers=auth("admin")).json()["state"] == (
                "withdrawn"
            )
            wait_until(
                lambda: _states(engine) == Counter(sent=expected - 1, withdrawn=1),
                60,
                message="the released day sent",
            )
            status = client.get("/api/v1/push/status", headers=auth("regulator")).json()
        run.halt()
        with engine.connect() as conn:
            rows = energy_db.batches(conn, None, state=None, limit=10_000)
            audit = push_db.audit_rows(conn, "province", 100_000)
            days = activity_series(
                conn, "small-plant", "day", start, end, where=SeriesFilter(carrier="electricity")
            )
            reviews = conn.execute(
                sa.text(
                    "SELECT count(*) FROM api_audit WHERE path LIKE '%/energy-batches/%' "
                    "AND status = 200"
                )
            ).scalar_one()
    finally:
        platform.close()
        engine.dispose()

    (energy,) = status["energy"]
    assert energy["batches"]["sent"] == expected - 1 and energy["batches"]["withdrawn"] == 1
    receipts = platform.receipts()
    assert all(r.authorized for r in receipts)
    accepted = [r for r in receipts if r.status == 200]
    # Every batch accepted; twice at most the one in flight when the platform went down (its
    # answer lost: at least once, the Idempotency-Key lets the platform tell).
    assert len({r.batch_id for r in accepted}) == expected - 1
    assert len(accepted) - (expected - 1) <= 1
    assert sum(r.status == 503 for r in receipts) == 2
    # In period order per grain (first arrivals).
    quarters = [r.body["periodStart"] for r in accepted if r.body and r.body["grain"] == "15min"]
    assert quarters == sorted(quarters) and len(set(quarters)) == 3 * 96 - 1
    # The daily values are the stored results, in kWh, one decimal.
    by_start = {
        r.body["periodStart"]: r.body for r in accepted if r.body and r.body["grain"] == "day"
    }
    for d in days:
        label = (d.period_start + timedelta(hours=8)).strftime("%Y-%m-%dT00:00:00+08:00")
        (row,) = [x for x in by_start[label]["data"] if x["code"] == "E0101"]
        assert Decimal(row["value"]) == Decimal(f"{d.activity * 1000:.1f}")  # MWh → kWh
    # Each POST and each answer is audited with the raw bytes; attempts add up.
    unanswered = [a for a in audit if a.outcome.startswith("no answer")]
    assert len(unanswered) >= 3  # while down
    assert sum(a.direction == "sent" for a in audit) == len(receipts) + len(unanswered)
    assert sum(r.attempts for r in rows) == len(receipts) + len(unanswered)
    assert sum(a.direction == "received" for a in audit) == len(receipts)
    sent_bodies = {a.raw for a in audit if a.direction == "sent"}
    assert {r.body for r in rows if r.state == "sent"} <= sent_bodies
    assert json.loads(next(iter(sent_bodies)))["unitCode"] == "91140700MA0000000X"
    assert reviews == 2  # the release and the withdrawal

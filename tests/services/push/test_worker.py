"""The push worker against a real PostgreSQL (calc results computed by the real engine) and a
fake HJ 212 platform on a local TCP port that drops 20 % of its answers, corrupts two, closes
the connection twice and goes down for a while; the worker is also restarted midway.

Done when (issue 19): every due packet is received at least once, in order per CN, none lost;
duplicates carry the same QN; nothing acked is sent again.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from carbonflow.domain.reporting.hj212 import Version, frame, parse, parse_wire_time
from carbonflow.domain.reporting.hj212_flow import Identity
from carbonflow.domain.reporting.profile import CodeMap, Destination
from carbonflow.sites.loader import parse_site_text
from carbonflow.storage import push as push_db
from carbonflow.storage.carbon import SeriesFilter, activity_series, carbon_series
from carbonflow.storage.db import make_engine
from carbonflow.storage.registry_load import load_site
from services.push.worker import PushWorker, WorkerConfig
from simulators.authority import AuthorityPlatform, Faults
from tests.support.api_support import grant_keys, make_app
from tests.support.calc_generator import (
    SMALL_SITE,
    computed_small_site,
    generate,
    month_start,
    run_calc,
    store_readings,
)
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

FAST = WorkerConfig(interval_s=0.05, backoff_start_s=0.05, backoff_max_s=0.4)
CODES = (
    CodeMap("co2_t", "a05001", "kg", 1),
    CodeMap("activity:electricity", "i33201", "kWh", 1),
)


def _destination(port: int, start: datetime) -> Destination:
    return Destination(
        name="test-platform",
        site_id="small-plant",
        host="127.0.0.1",
        port=port,
        identity=Identity(st="31", pw="530719", mn="3A0000C17E0004200000B52F"),
        codes=CODES,
        cns=("2061", "2031"),
        overtime_s=0.3,
        recount=2,
        start=start,
    )


def _settled(engine: sa.Engine, acked: int) -> bool:
    """Whether the outbox holds ``acked`` answered packets and nothing pending."""
    with engine.connect() as conn:
        status = push_db.push_status(conn)
    return bool(status) and status[0].pending == 0 and status[0].acked >= acked


class Running:
    """A worker in a thread, stoppable (a restart is a new worker on the same database)."""

    def __init__(self, engine: sa.Engine, destination: Destination) -> None:
        self.worker = PushWorker(engine, [destination], FAST)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.worker.run, args=(self.stop,), daemon=True)
        self.thread.start()

    def halt(self) -> None:
        self.stop.set()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()

    def failures(self) -> float:
        value = self.worker.metrics.registry.get_sample_value(
            "carbonflow_push_link_failures_total", {"destination": "test-platform"}
        )
        return value or 0.0


def test_nothing_is_lost_through_drops_disconnects_an_outage_and_a_restart(
    database_url: str,
) -> None:
    _, start, _ = computed_small_site(database_url, days=1)
    platform = AuthorityPlatform(
        Faults(
            drop_share=0.2,
            seed=19,
            disconnect_at=frozenset({5, 14}),
            down_at=20,
            corrupt_at=frozenset({3, 9}),
        )
    )
    platform.start()
    engine = make_engine(database_url)
    destination = _destination(platform.port, start)
    try:
        run = Running(engine, destination)
        wait_until(lambda: platform.count() >= 8, 60, message="first packets")
        run.halt()  # restart: a new worker must neither lose nor re-send acked packets
        run = Running(engine, destination)
        wait_until(platform.went_down.is_set, 60, message="the outage")
        before = run.failures()
        wait_until(lambda: run.failures() >= before + 3, 60, message="refused while down")
        platform.start()
        wait_until(lambda: _settled(engine, 25), 120, message="backlog sent after the outage")
        run.halt()
        with engine.connect() as conn:
            (status,) = push_db.push_status(conn)
            outbox = conn.execute(
                sa.text("SELECT cn, data_time, qn, packet, attempts FROM push_outbox")
            ).all()
            audit = push_db.audit_rows(conn, destination.name, 10_000)
            through = push_db.results_through(conn, "small-plant")
            assert through is not None
            hours = carbon_series(
                conn, "small-plant", "hour", start, through, basis="location",
                where=SeriesFilter(),
            )  # fmt: skip
            energy = activity_series(
                conn, "small-plant", "hour", start, through, where=SeriesFilter()
            )
    finally:
        platform.stop()
        engine.dispose()

    # One day of results: 24 hourly packets (2061) and one daily packet (2031), all acked.
    assert through is not None and through >= start.replace(hour=16)
    assert sorted(cn for cn, *_ in outbox).count("2061") == 24
    assert sorted(cn for cn, *_ in outbox).count("2031") == 1
    assert status.pending == 0 and status.acked == 25

    uploads = platform.uploads()
    # Every due packet was received at least once …
    by_key = defaultdict(list)
    for r in uploads:
        assert r.packet is not None
        by_key[(r.packet.cn, r.packet.value("DataTime"))].append(r)
    assert len(by_key) == 25
    # … duplicates carry the same QN and the same bytes …
    for receipts in by_key.values():
        assert len({r.raw for r in receipts}) == 1
    # … first arrivals are in DataTime order per CN …
    firsts: dict[str, list[datetime]] = defaultdict(list)
    seen: set[bytes] = set()
    for r in uploads:
        if r.raw not in seen and r.packet is not None:
            seen.add(r.raw)
            firsts[r.packet.cn].append(parse_wire_time(r.packet.value("DataTime") or ""))
    assert firsts["2061"] == sorted(firsts["2061"]) and len(firsts["2061"]) == 24
    # … and nothing the platform answered was sent again.
    answered_at = {}
    for r in uploads:
        if r.raw in answered_at:
            raise AssertionError(f"packet {r.packet and r.packet.qn} re-sent after its answer")
        if r.answered:
            answered_at[r.raw] = r.number
    # The drops, the disconnects and the outage caused resends: more sends than packets.
    assert len(uploads) > 25
    assert sum(row.attempts for row in outbox) == len(uploads)
    assert platform.connections >= 4  # first, after each disconnect, after the restart/outage

    # The audit has every send and every answer, raw.
    sent = [a for a in audit if a.direction == "sent"]
    answers = [a for a in audit if a.direction == "received" and a.outcome == "answer"]
    assert len(sent) == len(uploads)
    assert len(answers) == 25
    # The corrupted answers were audited as such and their packets sent again.
    assert sum(a.outcome == "crc_mismatch" for a in audit) >= 1
    assert {a.raw for a in sent} == {bytes(p) for *_, p, _ in outbox}

    # The values are the stored results: CO2 in kg and electricity in kWh, one decimal.
    first_hour = min(h.period_start for h in hours)
    packet = next(parse(bytes(p)) for cn, t, _, p, _ in outbox if cn == "2061" and t == first_hour)
    co2 = next(h.co2_t for h in hours if h.period_start == first_hour)
    mwh = next(e.activity for e in energy if e.period_start == first_hour)
    assert packet.value("a05001-Cou") == f"{co2 * 1000:.1f}"  # t → kg
    assert packet.value("i33201-Cou") == f"{mwh * 1000:.1f}"  # MWh → kWh
    assert packet.value("a05001-Flag") in {"N", "B"}
    assert packet.flag == 5  # HJ 212-2017, answer requested
    assert first_hour == datetime(2025, 4, 30, 16, tzinfo=UTC)  # 2025-05-01 00:00 Beijing


def test_a_history_request_is_answered_from_the_stored_results(
    database_url: str, app_role_url: str
) -> None:
    """Also: the worker needs no more than the application role's grants, and the API shows
    the destination to the keys of its site."""
    _, start, _ = computed_small_site(database_url, days=1)
    platform = AuthorityPlatform()
    platform.start()
    engine = make_engine(app_role_url)
    destination = _destination(platform.port, start)
    run = Running(engine, destination)
    try:
        wait_until(lambda: _settled(engine, 25), 60, message="day pushed")
        # Like E4: hourly data for 02:00–03:00 Beijing on 2025-05-01: the hours lying within,
        # i.e. the one labelled 02:00 (as E4 is answered by E6a/E6b, both DataTime 02:00).
        segment = (
            "QN=20250615091500020;ST=31;CN=2061;PW=530719;MN=3A0000C17E0004200000B52F;Flag=5;"
            "CP=&&BeginTime=20250501020000;EndTime=20250501030000&&"
        )
        platform.send(frame(segment))
        wait_until(lambda: any(p.cn == "9012" for p in platform.replies), 30, message="9012")
        # A request we cannot read (month 13) is refused with QnRtn 2; the worker goes on.
        bad = segment.replace("20250501020000", "20251301020000").replace("020;", "021;")
        platform.send(frame(bad))
        wait_until(lambda: len(platform.replies) >= 4, 30, message="the refusal")
        assert run.thread.is_alive()
    finally:
        run.halt()
        platform.stop()
        engine.dispose()
    answer, *data, result, refusal = platform.replies
    assert (refusal.cn, refusal.qn, refusal.value("QnRtn")) == ("9011", "20250615091500021", "2")
    assert (answer.cn, answer.qn, answer.value("QnRtn")) == ("9011", "20250615091500020", "1")
    assert (result.cn, result.qn, result.value("ExeRtn")) == ("9012", "20250615091500020", "1")
    assert [p.value("DataTime") for p in data] == ["20250501020000"]
    # The data packets carry new QNs, and the same values as the pushed hour.
    uploads = {r.packet.value("DataTime"): r.packet for r in platform.uploads() if r.packet}
    for p in data:
        assert p.cn == "2061" and p.qn != uploads[p.value("DataTime")].qn
        assert p.cp == uploads[p.value("DataTime")].cp

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
    with TestClient(app, raise_server_exceptions=True) as client:

        def status(who: str) -> Any:
            auth = {"Authorization": f"Bearer {keys[who].token}"}
            return client.get("/api/v1/push/status", headers=auth)

        (item,) = status("operator").json()["items"]
        assert status("admin").json()["items"] == [item]
        assert status("regulator").json()["items"] == [item]
        assert status("enterprise").status_code == 403
    assert (item["destination"], item["site_id"]) == ("test-platform", "small-plant")
    # A key bound to other sites sees no destination of this one.
    engine = make_engine(app_role_url)
    try:
        with engine.connect() as conn:
            assert push_db.push_status(conn, frozenset({"another-site"})) == []
    finally:
        engine.dispose()
    assert (item["pending_packets"], item["acked_packets"]) == (0, 25)
    assert item["oldest_pending_data_time"] is None and item["last_error"] is None
    # 2025-05-02 00:00 Beijing: the next day and the next hour after the pushed day.
    assert item["next_period_start"] == {
        "2031": "2025-05-01T16:00:00Z",
        "2061": "2025-05-01T16:00:00Z",
    }


def test_a_2025_destination_encrypts_data_and_beats(database_url: str) -> None:
    """The reported HJ 212-2025 differences end to end (each to be checked, docs/push.md):
    Flag version 2, ST 44, a platform-assigned MN, SM4 of the CP area, 9015 heartbeats."""
    _, start, _ = computed_small_site(database_url, days=1)
    key = bytes.fromhex("0123456789abcdeffedcba9876543210")
    platform = AuthorityPlatform(sm4_key=key)
    platform.start()
    engine = make_engine(database_url)
    destination = Destination(
        name="test-2025",
        site_id="small-plant",
        host="127.0.0.1",
        port=platform.port,
        identity=Identity(st="44", pw="530719", mn="14010520260001", version=Version.HJ212_2025),
        codes=CODES,
        cns=("2031",),
        overtime_s=1.0,
        recount=1,
        sm4_key=key,
        start=start,
        heartbeat_s=0.2,
    )
    worker = PushWorker(engine, [destination], FAST)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_until(lambda: _settled(engine, 1), 60, message="the day pushed")
        wait_until(
            lambda: any(r.packet and r.packet.cn == "9015" for r in platform.received),
            30,
            message="a heartbeat",
        )
    finally:
        stop.set()
        thread.join(timeout=30)
        platform.stop()
        engine.dispose()
    (upload,) = platform.uploads()
    assert upload.packet is not None
    assert b"DataTime" not in upload.raw  # the CP area travels encrypted
    assert (upload.packet.st, upload.packet.mn, upload.packet.flag) == ("44", "14010520260001", 9)
    assert upload.packet.value("DataTime") == "20250501000000"
    beat = next(r.packet for r in platform.received if r.packet and r.packet.cn == "9015")
    assert beat.flag == 8 and beat.cp == ()


def test_a_unit_the_stored_value_cannot_take_queues_nothing(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    _, start, _ = computed_small_site(database_url, days=1)
    engine = make_engine(database_url)
    # Electricity is stored in MWh: a profile sending it in kg is wrong, not a reason to crash.
    wrong = replace(
        _destination(9, start), codes=(CodeMap("activity:electricity", "i33201", "kg", 1),)
    )
    worker = PushWorker(engine, [wrong], FAST)
    try:
        assert worker.queue_due(wrong) == 0
        assert worker.queue_due(wrong) == 0
        with engine.connect() as conn:
            assert push_db.next_start(conn, wrong.name, "2061") is None
            assert push_db.push_status(conn) == []
    finally:
        engine.dispose()
    errors = [r for r in caplog.records if "nothing queued until corrected" in r.getMessage()]
    assert len(errors) == 1  # logged once, not every cycle


def test_late_data_queues_a_new_version_of_the_periods_it_changes(database_url: str) -> None:
    """REPORTING.md §5 item 3: a re-aggregation after late data is a new version, recorded.
    Three hours of the grid meter arrive after the day was pushed; calc recomputes them; the
    hours whose values they changed go out again as version 2 with new QNs, the others not."""
    doc = parse_site_text(SMALL_SITE, "small.yaml")
    load_site(database_url, doc)
    start = month_start(2025, 5)
    data = generate(doc, start, start + timedelta(days=1, hours=1))
    gap = (start + timedelta(hours=2), start + timedelta(hours=5))
    late = [
        (key, ts)
        for key, series in data.readings.items()
        for ts, _ in series
        if key[0] == "grid-meter" and gap[0] < ts < gap[1]
    ]
    store_readings(database_url, doc.site.id, data, skip=late)
    run_calc(database_url)
    platform = AuthorityPlatform()
    platform.start()
    engine = make_engine(database_url)
    run = Running(engine, _destination(platform.port, start))
    try:
        wait_until(lambda: _settled(engine, 25), 60, message="the day pushed")
        store_readings(database_url, doc.site.id, data, only=late)
        run_calc(database_url)
        wait_until(
            lambda: _versions(engine).get(2, 0) >= 2 and _settled(engine, 27),
            60,
            message="new versions queued and answered",
        )
        settled = _versions(engine)
        time.sleep(0.5)  # ten more cycles of the worker …
        assert _versions(engine) == settled  # … queue nothing more: the values are the same
        with engine.connect() as conn:
            revised = conn.execute(
                sa.text(
                    "SELECT cn, data_time, qn, values_digest FROM push_outbox WHERE version = 2"
                    " ORDER BY cn, data_time"
                )
            ).all()
            day_checked = conn.execute(
                sa.text("SELECT checked_at IS NOT NULL FROM push_outbox WHERE cn = '2031'")
            ).scalar_one()
            originals = {
                (cn, t): digest
                for cn, t, digest in conn.execute(
                    sa.text(
                        "SELECT cn, data_time, values_digest FROM push_outbox WHERE version = 1"
                    )
                )
            }
    finally:
        run.halt()
        platform.stop()
        engine.dispose()
    hours = sorted(t for cn, t, *_ in revised if cn == "2061")
    # The grid meter's hours 02:00–05:00 UTC were estimated over the gap; the measured readings
    # change them (and the day's total): never an hour outside the gap's reach.
    assert hours and all(gap[0] - timedelta(hours=1) <= t <= gap[1] for t in hours)
    # A counter's total over the gap was known before the readings came: the day's value is
    # the same, so the day was compared (checked_at) and not sent again.
    assert "2031" not in {cn for cn, *_ in revised} and day_checked
    for cn, t, _, digest in revised:
        assert digest != originals[(cn, t)]
    # the platform got both versions: different QNs and different values for the same DataTime
    received = [r.packet for r in platform.uploads() if r.packet is not None]
    first_hour = hours[0].astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y%m%d%H%M%S")
    both = [p for p in received if p.cn == "2061" and p.value("DataTime") == first_hour]
    assert len({p.qn for p in both}) == 2 and (both[0].qn or "") < (both[1].qn or "")
    assert both[0].value("i33201-Cou") != both[1].value("i33201-Cou") or (
        both[0].value("i33201-Flag") != both[1].value("i33201-Flag")
    )


def _versions(engine: sa.Engine) -> dict[int, int]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT version, count(*) FROM push_outbox GROUP BY 1")).all()
    return {int(v): int(n) for v, n in rows}

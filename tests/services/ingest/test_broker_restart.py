"""A broker restart while devices keep publishing QoS 1 loses nothing and duplicates nothing.

Issue 14, point 2. The stream is published in four phases around a restart (graceful, and
``kill -9``) of the embedded Mosquitto, whose configuration is the shipped one (persistence,
``autosave_interval``, a large ``max_queued_messages``):

- *before*: while ingest is consuming;
- *during*: while the broker is down (the publisher keeps them in flight and resends them);
- *first after*: by a device that connects the moment the broker is back, before ingest has
  reconnected (the window the issue reports: a shared subscription is not restored, so these had
  no subscriber and were dropped);
- *after*: once ingest is subscribed again.

Every reading must be stored exactly once (the readings table's key makes a redelivered copy a
no-op; ``count(*)`` equal to the number published proves none is missing and none doubled).
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from carbonflow.domain.readings.contract import device_topic, encode, reading_set_document
from carbonflow.embedded.broker import EmbeddedMosquitto
from services.ingest.service import IngestService
from simulators.publisher import Publisher, StreamPublisher
from tests.support.ingest_harness import count, running_ingest
from tests.support.seed import seed_site
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

BASE = (datetime.now(UTC) - timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
DEVICES = 10
PHASE_MINUTES = (300, 100, 100, 100)  # minutes of readings per device in each phase
READINGS_PER_SET = 2


def _phase(
    devices: list[str], start: int, minutes: int, site: str = "t1"
) -> list[tuple[str, bytes]]:
    return [
        (
            device_topic(site, d),
            encode(
                reading_set_document(
                    BASE + timedelta(minutes=m),
                    {"energy_import_kwh": 1000.0 + m, "power_kw": 60.0},
                    seq=m,
                )
            ),
        )
        for m in range(start, start + minutes)
        for d in devices
    ]


def _rows(url: str) -> int:
    return count(url, "SELECT count(*) FROM reading")


SHIPPED_CONF = Path(__file__).resolve().parents[3] / "deploy" / "mosquitto" / "mosquitto.conf"
_BROKER_OPTIONS = (
    "persistence",
    "autosave_interval",
    "max_queued_messages",
    "max_queued_bytes",
    "max_inflight_messages",
    "persistent_client_expiration",
)


def deploy_broker_options() -> str:
    """The session, persistence and queue settings of ``deploy/mosquitto/mosquitto.conf``
    (its listener, authentication and paths are the deployment's own)."""
    lines = [line.strip() for line in SHIPPED_CONF.read_text().splitlines()]
    chosen = [line for line in lines if line.split(" ", 1)[0] in _BROKER_OPTIONS]
    assert {line.split(" ", 1)[0] for line in chosen} == set(_BROKER_OPTIONS), chosen
    return "\n".join(chosen)


def _saved(broker: EmbeddedMosquitto, after: float) -> bool:
    db = Path(broker.data_dir) / "mosquitto.db"
    return db.is_file() and db.stat().st_mtime_ns > after


@pytest.fixture(params=["embedded", "deploy"])
def shipped_broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EmbeddedMosquitto]:
    """Mosquitto with the embedded broker's configuration, or with deploy/'s settings."""
    extra = deploy_broker_options() if request.param == "deploy" else ""
    broker = EmbeddedMosquitto(tmp_path / "mosquitto", extra_config=extra)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.mark.parametrize("how", ["graceful", "kill"])
def test_broker_restart_while_devices_publish_loses_nothing(
    database_url: str, shipped_broker: EmbeddedMosquitto, how: str
) -> None:
    devices = {"t1": seed_site(database_url, devices=DEVICES)}
    # Ingest with its default settings: the subscription it ships with.
    with running_ingest(database_url, shipped_broker.url) as service:
        _restart_mid_stream(database_url, shipped_broker, how, devices, [service])


@pytest.mark.parametrize("how", ["graceful", "kill"])
def test_site_slices_survive_a_broker_restart(database_url: str, tmp_path: Path, how: str) -> None:
    """Two workers, each with plain subscriptions: one takes site t2, the other every other site
    (docs/mqtt.md, 'Several workers'). Unlike a shared subscription, Mosquitto restores both."""
    broker = EmbeddedMosquitto(tmp_path / "mosquitto", extra_config=deploy_broker_options())
    broker.start()
    devices = {
        "t1": seed_site(database_url, devices=DEVICES // 2),
        "t2": seed_site(database_url, site="t2", devices=DEVICES // 2, prefix="n"),
    }
    try:
        with (
            running_ingest(
                database_url,
                broker.url,
                CARBONFLOW_INGEST_CLIENT_ID="slice-t2",
                CARBONFLOW_INGEST_SITES="t2",
            ) as t2_worker,
            running_ingest(
                database_url,
                broker.url,
                CARBONFLOW_INGEST_CLIENT_ID="slice-rest",
                CARBONFLOW_INGEST_EXCLUDE_SITES="t2",
            ) as rest_worker,
        ):
            _restart_mid_stream(database_url, broker, how, devices, [t2_worker, rest_worker])
            skipped = rest_worker.metrics.messages.labels("skipped")._value.get()
            assert skipped > 0  # it received t2's messages too, and left them to t2's worker
    finally:
        broker.stop()


def _restart_mid_stream(
    database_url: str,
    broker: EmbeddedMosquitto,
    how: str,
    devices: dict[str, list[str]],
    workers: list[IngestService],
) -> None:
    phases = [
        [m for site, ids in devices.items() for m in _phase(ids, start, minutes, site)]
        for start, minutes in zip(
            itertools.accumulate((0, *PHASE_MINUTES[:-1])), PHASE_MINUTES, strict=True
        )
    ]
    before, during, first_after, after = phases
    total = sum(len(p) for p in phases) * READINGS_PER_SET
    with StreamPublisher(broker.url, "restart-device") as device:
        for topic, payload in before:
            device.send(topic, payload)
        device.flush()
        wait_until(lambda: _rows(database_url) > 0, 60, message="ingest under way")
        # A kill loses what changed since the last autosave. In a broker that has been up
        # longer than autosave_interval the sessions and subscriptions are on disk: have it
        # save now (SIGUSR1, what the autosave does) instead of waiting for the interval.
        asked = time.time_ns()
        broker.save_now()
        wait_until(lambda: _saved(broker, asked), 30, message="persistence file written")
        if how == "kill":
            broker.kill()
        else:
            broker.stop()
        wait_until(
            lambda: not any(w.health()["broker_connected"] for w in workers), 30, message="seen"
        )
        for topic, payload in during:  # held by the publisher, sent after its reconnect
            device.send(topic, payload)
        broker.start()
        # A device that connects at once, before ingest's reconnect.
        with Publisher(broker.url, "first-device-back") as early:
            early.publish_many(first_after)
        wait_until(lambda: all(w.health()["subscribed"] for w in workers), 60, message="back")
        for topic, payload in after:
            device.send(topic, payload)
        device.flush()
    with contextlib.suppress(AssertionError):  # the assertion below says by how much
        wait_until(lambda: _rows(database_url) >= total, 60, message="every reading stored")
    # Nothing more arrives late: what is stored is exactly what was published.
    wait_until(
        lambda: all(w.health()["pending_messages"] == 0 for w in workers), 30, message="drained"
    )
    stored = _rows(database_url)
    assert stored == total, f"{total - stored} of {total} readings lost ({how} restart)"

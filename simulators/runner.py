"""The simulator's shell: pace the stream, publish it, write the oracle, report the rates.

``run_simulation(config, mqtt_url, stop_event)`` is the in-process API (``carbonflow demo``
can run it in a thread; :class:`SimulationRunner` wraps it as a service with ``run()`` and
``request_stop()``); ``carbonflow simulate`` is the command line (``cli/
simulate.py``).

Pacing: a message is due at ``wall_start + (t − start) / speed`` and never before its own time
``t`` on the wall clock, so a run that reaches the present continues in real time and ingest
never sees a reading from the future. ``speed = inf`` publishes as fast as the broker takes it.

Scale: ``connections`` MQTT connections per process (a device always uses the same one, so its
messages stay in order) and ``workers`` processes, each simulating its share of the fleet's
replicas. The oracle needs a single worker.
"""

from __future__ import annotations

import gc
import logging
import math
import multiprocessing
import queue
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from carbonflow.domain.site.model import Device, SiteDocument
from carbonflow.storage.registry_load import LoadReport
from simulators.engine import OracleRecord, SimConfig, Simulation
from simulators.faults import Tally
from simulators.oracle import OracleWriter
from simulators.publisher import StreamPublisher

log = logging.getLogger(__name__)

RETIRED_DEVICE_ID = "sim-retired-meter"
# After a registry change, how long a running ingest may still use its previous snapshot: it
# reloads on an unknown device at most every 2 s (services/ingest/service.py). Publishing
# waits this long after --register changed the registry, so no first reading is rejected.
REGISTRY_SETTLE_S = 2.5
_MAX_SLEEP_S = 1.0  # pacing sleeps in slices so a stop request is honoured promptly
# A dedicated simulator process allocates millions of short-lived reading dicts; the default
# collector thresholds make it rescan them constantly (half the run time at 5,000 devices).
_RELAXED_GC_THRESHOLDS = (100_000, 50, 100)


@contextmanager
def relaxed_gc() -> Iterator[None]:
    """Collect garbage rarely for the duration (for processes that only simulate)."""
    old = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(*_RELAXED_GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*old)
        gc.unfreeze()


@dataclass
class SimulationReport:
    """What a run published, how fast, and what ingest should now hold."""

    site: str
    devices: int
    start: str
    reached: str  # simulated time the run got to
    stopped: bool  # stopped before the planned end
    tally: Tally
    injected: dict[str, int]
    wall_seconds: float  # from the start of the stream to the last acknowledgement
    oracle: str | None = None
    workers: int = 1
    connections: int = 1

    @property
    def msgs_per_s(self) -> float:
        return self.tally.messages / self.wall_seconds if self.wall_seconds > 0 else 0.0

    @property
    def readings_per_s(self) -> float:
        return self.tally.readings / self.wall_seconds if self.wall_seconds > 0 else 0.0

    @property
    def reading_sets_per_s(self) -> float:
        return self.tally.reading_sets / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def record(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "devices": self.devices,
            "start": self.start,
            "reached": self.reached,
            "stopped": self.stopped,
            "published": self.tally.record(),
            "injected": self.injected,
            "expected": {
                "stored_readings": self.tally.stored_readings,
                "rejections": dict(sorted(self.tally.rejections.items())),
            },
            "wall_seconds": self.wall_seconds,
            "msgs_per_s": self.msgs_per_s,
            "readings_per_s": self.readings_per_s,
            "reading_sets_per_s": self.reading_sets_per_s,
            "oracle": self.oracle,
            "workers": self.workers,
            "connections": self.connections,
        }

    def summary(self) -> str:
        t = self.tally
        rejected = ", ".join(f"{r} {n}" for r, n in sorted(t.rejections.items())) or "none"
        return (
            f"{self.site}: {self.devices} devices, {self.start} → {self.reached}"
            f"{' (stopped)' if self.stopped else ''}\n"
            f"  published {t.messages:,} messages, {t.reading_sets:,} reading sets, "
            f"{t.readings:,} readings, {t.bytes / 1e6:,.1f} MB in {self.wall_seconds:,.1f} s\n"
            f"  rate      {self.msgs_per_s:,.0f} msgs/s, {self.readings_per_s:,.0f} readings/s "
            f"({self.workers} process(es) × {self.connections} connection(s))\n"
            f"  expected  {t.stored_readings:,} readings stored; rejections: {rejected}"
        )


@contextmanager
def _unchanged() -> Iterator[None]:
    yield


@dataclass
class _Pacer:
    """When a message of simulated time ``t`` may go out (see the module doc).

    A run whose start is less than a step before the wall clock (``now`` floored to the step)
    is anchored on its start, so live readings go out on their own time, not up to a step late.
    """

    start_s: float
    speed: float
    step_s: float
    wall: Callable[[], float]
    wall_start: float = field(init=False)

    def __post_init__(self) -> None:
        now = self.wall()
        self.wall_start = self.start_s if 0 <= now - self.start_s < self.step_s else now

    def due(self, t_s: float) -> float:
        paced = (
            self.wall_start + (t_s - self.start_s) / self.speed
            if math.isfinite(self.speed)
            else -math.inf
        )
        return max(paced, t_s)


def _connection_of(device: str, connections: int) -> int:
    return zlib.crc32(device.encode("utf-8")) % connections


def _run_share(
    config: SimConfig,
    mqtt_url: str,
    stop: threading.Event | Any,
    *,
    replicas: Sequence[int] | None,
    connections: int,
    oracle_path: Path | None,
    client_id: str,
    wall: Callable[[], float] = time.time,
) -> tuple[Tally, dict[str, int], float, str, bool, int]:
    """One process's share: (tally, injected, wall seconds, reached, stopped, devices)."""
    sim = Simulation(config, replicas=replicas, oracle=oracle_path is not None)
    tally = Tally()
    writer = OracleWriter(oracle_path) if oracle_path is not None else None
    publishers = [
        StreamPublisher(mqtt_url, f"{client_id}-{i}" if client_id else "")
        for i in range(connections)
    ]
    route: dict[str, StreamPublisher] = {}
    stopped = False
    first = last = 0.0
    try:
        for p in publishers:
            p.connect()
        if writer is not None:
            writer.write_all(sim.header_records())
        pacer = _Pacer(config.start.timestamp(), config.speed, config.step_s, wall)
        stream = sim.stream()
        first = time.perf_counter()  # the rate includes generating the stream
        for item in stream:
            if isinstance(item, OracleRecord):
                if writer is not None:
                    writer.write(item.record)
                continue
            if stop.is_set():
                stopped = True
                break
            wait = pacer.due(item.release_s) - wall()
            while wait > 0:
                if stop.wait(min(wait, _MAX_SLEEP_S)):
                    break
                wait = pacer.due(item.release_s) - wall()
            if stop.is_set():
                stopped = True
                break
            publisher = route.get(item.device)
            if publisher is None:
                publisher = publishers[_connection_of(item.device, connections)]
                route[item.device] = publisher
            publisher.send(item.topic, item.payload)
            tally.add(item)
        stream.close()
        for p in publishers:
            p.flush()
        last = time.perf_counter()
        if writer is not None:
            writer.write_all(sim.final_records(tally))
    finally:
        for p in publishers:
            try:
                p.close()
            except Exception:  # closing is best effort after a failure
                log.debug("closing a publisher failed", exc_info=True)
        if writer is not None:
            writer.close()
    injected: dict[str, int] = dict(sim.delivery.injected)
    for e in sim.events:
        injected[e.kind] = injected.get(e.kind, 0) + 1
    reached = datetime.fromtimestamp(sim.reached_s, tz=sim.tz).isoformat()
    seconds = (last - first) if first and last else 0.0
    return tally, injected, seconds, reached, stopped, len(sim.published)


@dataclass(frozen=True)
class _Share:
    """One worker process's part of a run (picklable)."""

    config: SimConfig
    mqtt_url: str
    replicas: list[int]
    connections: int
    client_id: str


def _worker_main(share: _Share, stop: Any, results: Any) -> None:
    try:
        with relaxed_gc():
            outcome = _run_share(
                share.config,
                share.mqtt_url,
                stop,
                replicas=share.replicas,
                connections=share.connections,
                oracle_path=None,
                client_id=share.client_id,
            )
        results.put(("ok", outcome))
    except Exception as exc:  # reported to the parent, which raises
        results.put(("error", f"{type(exc).__name__}: {exc}"))


def run_simulation(
    config: SimConfig,
    mqtt_url: str,
    stop_event: threading.Event | None = None,
    *,
    oracle_path: str | Path | None = None,
    workers: int = 1,
    connections: int = 1,
    client_id: str = "carbonflow-sim",
    wall: Callable[[], float] = time.time,
    dedicated_process: bool = False,
) -> SimulationReport:
    """Run ``config`` against the broker at ``mqtt_url`` until its end or ``stop_event``.

    ``dedicated_process``: the process does nothing else (the command line, a benchmark), so
    the garbage collector may be relaxed for the run (:func:`relaxed_gc`).
    """
    stop = stop_event or threading.Event()
    if workers < 1 or connections < 1:
        raise ValueError("workers and connections must be at least 1")
    path = Path(oracle_path) if oracle_path is not None else None
    if path is not None and workers > 1:
        raise ValueError("the oracle needs a single worker (--workers 1)")
    site = config.site.site.id
    if workers == 1:
        with relaxed_gc() if dedicated_process else _unchanged():
            tally, injected, seconds, reached, stopped, devices = _run_share(
                config, mqtt_url, stop, replicas=None, connections=connections,
                oracle_path=path, client_id=client_id, wall=wall,
            )  # fmt: skip
        return SimulationReport(
            site, devices, config.start.isoformat(), reached, stopped, tally, injected,
            seconds, str(path) if path else None, 1, connections,
        )  # fmt: skip
    return _run_processes(
        config, mqtt_url, stop, workers=workers, connections=connections, client_id=client_id
    )


def _run_processes(
    config: SimConfig,
    mqtt_url: str,
    stop: threading.Event,
    *,
    workers: int,
    connections: int,
    client_id: str,
) -> SimulationReport:
    from simulators.scaling import fleet

    replicas = fleet(config.site, config.devices).replicas
    shares = [[r for r in range(replicas) if r % workers == w] for w in range(workers)]
    shares = [s for s in shares if s]
    ctx = multiprocessing.get_context("spawn")
    mp_stop = ctx.Event()
    results = ctx.Queue()
    procs = [
        ctx.Process(
            target=_worker_main,
            args=(
                _Share(config, mqtt_url, share, connections, f"{client_id}-w{i}"),
                mp_stop,
                results,
            ),
            daemon=True,
        )
        for i, share in enumerate(shares)
    ]
    for p in procs:
        p.start()
    outcomes: list[tuple[str, Any]] = []
    try:
        while len(outcomes) < len(procs):
            if stop.is_set():
                mp_stop.set()
            try:
                outcomes.append(results.get(timeout=0.5))
            except queue.Empty:
                if not any(p.is_alive() for p in procs) and results.empty():
                    break
    finally:
        mp_stop.set()
        for p in procs:
            p.join(timeout=60)
    errors = [detail for status, detail in outcomes if status == "error"]
    if errors or len(outcomes) < len(procs):
        raise RuntimeError(f"simulator worker failed: {errors or 'exited without a result'}")
    tally, injected = Tally(), Counter[str]()
    seconds, reached, stopped, devices = 0.0, "", False, 0
    for _status, (t, inj, secs, got, was_stopped, n) in outcomes:
        tally.merge(t)
        injected.update(inj)
        seconds = max(seconds, secs)
        reached = max(reached, got)
        stopped = stopped or was_stopped
        devices += n
    return SimulationReport(
        config.site.site.id, devices, config.start.isoformat(), reached, stopped, tally,
        dict(injected), seconds, None, len(procs), connections,
    )  # fmt: skip


class SimulationRunner:
    """``run_simulation`` as a service: ``run() -> exit code`` in a thread, ``request_stop()``."""

    def __init__(self, config: SimConfig, mqtt_url: str, **options: Any) -> None:
        self.config = config
        self.mqtt_url = mqtt_url
        self.options = options
        self._stop = threading.Event()
        self.report: SimulationReport | None = None

    def run(self) -> int:
        try:
            self.report = run_simulation(self.config, self.mqtt_url, self._stop, **self.options)
        except Exception:
            log.exception("simulator failed")
            return 1
        log.info("simulator finished: %s", self.report.summary().replace("\n", ";"))
        return 0

    def request_stop(self) -> None:
        self._stop.set()


def realtime_config(site: SiteDocument, *, now: datetime, **overrides: Any) -> SimConfig:
    """A live run from the current minute on, as ``carbonflow demo`` wants it."""
    start = now.replace(second=0, microsecond=0)
    return SimConfig(site, start, **overrides)


def retired_device(doc: SiteDocument) -> Device:
    """A decommissioned meter for ``inactive_device``: registered, then removed from the site."""
    return Device.model_validate(
        {
            "id": RETIRED_DEVICE_ID,
            "name": "Decommissioned meter (simulator)",
            "kind": "electricity_meter",
            "carrier": "electricity",
            "role": "consumption",
            "org": doc.organisations[0].id if doc.organisations else None,
        }
    )


def register_fleet(
    database_url: str, config: SimConfig, *, retired: bool = False
) -> list[LoadReport]:
    """Load the (scaled) site into the registry; with ``retired``, first with a retired meter
    that the second load deactivates (for ``inactive_device`` faults)."""
    from carbonflow.storage.registry_load import load_site
    from simulators.scaling import fleet

    doc = fleet(config.site, config.devices).doc
    reports: list[LoadReport] = []
    if retired:
        data = doc.model_dump(mode="python")
        data["devices"].append(retired_device(doc).model_dump(mode="python"))
        reports.append(load_site(database_url, SiteDocument.model_validate(data)))
    reports.append(load_site(database_url, doc))
    return reports

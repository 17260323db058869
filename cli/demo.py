"""``carbonflow demo``: the whole platform on one machine, with no root, Docker or system services.

When ``DATABASE_URL`` is unset it starts a private PostgreSQL under the data directory; when
``MQTT_URL`` is unset, a private broker (Mosquitto when installed, else a pure-Python one). It
migrates, loads the example sites, starts the services that exist, prints where to look, and
stops everything cleanly on Ctrl-C or SIGTERM.

A restart picks up where the last run stopped: the data directory is kept, the ports and the
admin key chosen at the first start are kept in ``demo-state.json`` (mode 0600) and reused, an
example site already in the registry is not loaded again (devices added or retired since stay
as they are), and the simulators back-fill only the span after the newest stored reading,
going on from the stored counter registers. ``--reset`` starts over.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import secrets
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

from carbonflow.domain.reporting.profile import ProfileError
from carbonflow.domain.site.model import SiteDocument
from carbonflow.embedded.broker import start_embedded_broker
from carbonflow.embedded.net import free_port, port_accepts, wait_for
from carbonflow.embedded.postgres import EmbeddedPostgres
from carbonflow.settings import DatabaseSettings, MqttSettings
from carbonflow.sites.loader import EXAMPLES, load_site_file
from carbonflow.storage.db import make_engine
from carbonflow.storage.migrate import upgrade
from carbonflow.storage.reading_frontier import SiteFrontier, site_frontier
from carbonflow.storage.registry_load import load_sites, stored_documents
from carbonflow.storage.site_revisions import Authorship

log = logging.getLogger(__name__)

READY_LINE = "carbonflow demo ready"
_READY_TIMEOUT_S = 120.0
# Reading sets per message while the simulators back-fill the recent past.
_BACKFILL_BATCH = 30
STATE_FILE = "demo-state.json"
# Default ports of the embedded database and broker (CARBONFLOW_DEMO_POSTGRES_PORT,
# CARBONFLOW_DEMO_MQTT_PORT override them); a port taken at the first start is replaced by a
# free one, which is then kept.
DEFAULT_POSTGRES_PORT = 55432
DEFAULT_MQTT_PORT = 51883
# The local HJ 212 platform the demo pushes to (CARBONFLOW_DEMO_PUSH_PORT overrides it).
DEFAULT_PUSH_PORT = 59212
# An open HTTP connection (a live event stream) gets this long to finish on Ctrl-C [s].
_GRACEFUL_SHUTDOWN_S = 2
# What --reset removes from the data directory (nothing else is touched).
_OWNED = ("postgres", "mqtt", STATE_FILE, "push-destinations.yaml", "push-received.jsonl")


def default_data_dir() -> Path:
    """Where the demo keeps its database and broker files (``CARBONFLOW_DATA_DIR``)."""
    configured = os.environ.get("CARBONFLOW_DATA_DIR")
    if configured:
        return Path(configured)
    # The system temporary directory: reachable by the unprivileged user PostgreSQL runs as
    # when the demo is started as root, unlike a home directory such as /root.
    return Path(tempfile.gettempdir()) / f"carbonflow-demo-{os.getuid()}"


def port_free(host: str, port: int) -> bool:
    return port != 0 and not port_accepts(host, port)


@dataclass
class DemoState:
    """What a restart reuses: ports and the admin key (``demo-state.json``, mode 0600)."""

    postgres_port: int | None = None
    mqtt_port: int | None = None
    api_port: int | None = None
    admin_key: str | None = None
    push_port: int | None = None

    @classmethod
    def read(cls, path: Path) -> DemoState:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return cls()
        if not isinstance(raw, dict):
            return cls()
        ports = {k: raw.get(k) for k in ("postgres_port", "mqtt_port", "api_port", "push_port")}
        key = raw.get("admin_key")
        return cls(
            **{k: v if isinstance(v, int) else None for k, v in ports.items()},
            admin_key=key if isinstance(key, str) and key else None,
        )

    def write(self, path: Path) -> None:
        """Written with mode 0600 (it holds the admin key), replacing the file atomically."""
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), 0o600)
            json.dump(self.__dict__, handle, indent=2)
        tmp.replace(path)


def choose_port(env_name: str, saved: int | None, default: int, host: str = "127.0.0.1") -> int:
    """The port from ``env_name`` when set, else the one of the last run, else ``default`` —
    each only when nothing listens there yet — else a free one."""
    configured = os.environ.get(env_name)
    if configured:
        return int(configured)
    for candidate in (saved, default):
        if candidate is not None and port_free(host, candidate):
            return candidate
    return free_port(host)


def reset_data_dir(data_dir: Path) -> list[Path]:
    """Remove what the demo keeps in ``data_dir`` (and only that); returns what was removed."""
    removed = []
    for name in _OWNED:
        path = data_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        else:
            continue
        removed.append(path)
    return removed


def backfill_start(
    now: datetime, backfill: timedelta, frontier: SiteFrontier, step: timedelta
) -> datetime:
    """Where the simulator of a site starts: ``backfill`` before ``now`` on the first run, one
    step after the newest stored reading on a restart (never before ``now - backfill``, never
    after ``now + step``: the simulator publishes no reading before its time), on a ``step``
    boundary."""
    step_s = step.total_seconds()
    earliest = now - backfill
    if frontier.last_ts is None:
        start = earliest
    else:
        start = min(now + step, max(earliest, frontier.last_ts + step))
    return datetime.fromtimestamp(math.floor(start.timestamp() / step_s) * step_s, tz=UTC)


@dataclass
class DemoStack:
    database_url: str
    mqtt_url: str
    data_dir: Path
    endpoints: dict[str, str] = field(default_factory=dict)


@dataclass
class _Service:
    name: str
    run: Callable[[], int]
    stop: Callable[[], None]
    ready: Callable[[], bool]
    thread: threading.Thread | None = None
    exit_code: int | None = None


def run_demo(
    stop: threading.Event, *, data_dir: Path | None = None, print_fn: Callable[[str], None] = print
) -> int:
    """Run until ``stop`` is set; returns the exit code."""
    data_dir = data_dir or default_data_dir()
    data_dir.mkdir(parents=True, exist_ok=True)
    state_path = data_dir / STATE_FILE
    state = DemoState.read(state_path)
    with ExitStack() as stack:
        database_url = DatabaseSettings().database_url
        if database_url is None:
            state.postgres_port = choose_port(
                "CARBONFLOW_DEMO_POSTGRES_PORT", state.postgres_port, DEFAULT_POSTGRES_PORT
            )
            postgres = stack.enter_context(
                EmbeddedPostgres(data_dir / "postgres", port=state.postgres_port, durable=True)
            )
            database_url = postgres.url
        mqtt_url = MqttSettings().mqtt_url
        if mqtt_url is None:
            state.mqtt_port = choose_port(
                "CARBONFLOW_DEMO_MQTT_PORT", state.mqtt_port, DEFAULT_MQTT_PORT
            )
            broker = start_embedded_broker(data_dir / "mqtt", state.mqtt_port)
            stack.callback(broker.stop)
            mqtt_url = broker.url
        demo = DemoStack(database_url, mqtt_url, data_dir)
        report = upgrade(database_url)
        log.info("database schema at revision %s (%s)", report.after, report.storage_detail)
        docs = _register_sites(database_url)
        frontiers = _frontiers(database_url, docs)

        services = _services(demo, docs, frontiers, state)
        state.write(state_path)
        stack.callback(_stop_services, services)
        for service in services:
            service.thread = threading.Thread(
                target=lambda s=service: setattr(s, "exit_code", s.run()),
                name=service.name,
                daemon=True,
            )
            service.thread.start()
        wait_for(
            lambda: all(s.ready() for s in services) or stop.is_set(),
            timeout_s=_READY_TIMEOUT_S,
            what="the demo services to be ready",
        )

        print_fn(f"{READY_LINE}")
        print_fn(f"  database   {database_url}")
        print_fn(f"  broker     {mqtt_url}  (publish to carbonflow/v1/<site>/<device>/telemetry)")
        for name, url in demo.endpoints.items():
            print_fn(f"  {name:<10} {url}")
        print_fn(f"  sites      {', '.join(d.site.id for d in docs)}")
        print_fn(f"  state      {state_path}  (ports and key kept; --reset starts over)")
        print_fn("press Ctrl-C to stop")
        while not stop.wait(0.5):
            failed = [s for s in services if s.thread is not None and not s.thread.is_alive()]
            if failed:
                log.error(
                    "service %s stopped unexpectedly (exit %s)", failed[0].name, failed[0].exit_code
                )
                return 1
        log.info("stopping")
    return 0


def _register_sites(database_url: str) -> list[SiteDocument]:
    """Load the example sites the registry does not have yet; keep those it has as they are
    (devices added, replaced or retired since the first start stay so). The documents to
    simulate: the registry's own where it has one that validates."""
    from carbonflow.domain.site.plan import parse_document

    stored = stored_documents(database_url)
    examples = [load_site_file(path) for path in sorted(EXAMPLES.glob("*.yaml"))]
    new = [doc for doc in examples if doc.site.id not in stored]
    if new:
        by = Authorship("carbonflow demo", "example site loaded at the demo's first start", "demo")
        for result in load_sites(database_url, new, by):
            log.info("%s", result.summary())
    docs: list[SiteDocument] = []
    for example in examples:
        doc, problem = parse_document(stored.get(example.site.id))
        if doc is None and example.site.id in stored:
            log.warning("%s: simulating the example file: %s", example.site.id, problem)
        docs.append(doc or example)
    return docs


def _frontiers(database_url: str, docs: list[SiteDocument]) -> dict[str, SiteFrontier]:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return {doc.site.id: site_frontier(conn, doc.site.id) for doc in docs}
    finally:
        engine.dispose()


def _services(
    demo: DemoStack,
    docs: list[SiteDocument],
    frontiers: dict[str, SiteFrontier],
    state: DemoState,
) -> list[_Service]:
    return [
        _ingest(demo),
        _calc(demo),
        _api(demo, state),
        _push(demo, frontiers, state),
        *(_simulator(demo, doc, frontiers[doc.site.id]) for doc in docs),
    ]


def _calc(demo: DemoStack) -> _Service:
    from services.calc.service import CalcService
    from services.calc.settings import CalcSettings

    service = CalcService(CalcSettings(DATABASE_URL=demo.database_url))
    if service.http is not None:
        demo.endpoints["calc"] = f"http://{service.settings.http_host}:{service.http.port}/metrics"
    return _Service("calc", service.run, service.request_stop, lambda: True)


def _simulator(demo: DemoStack, doc: SiteDocument, frontier: SiteFrontier) -> _Service:
    """Drive the example site's devices: the recent past with no data yet, then live."""
    from simulators.engine import SimConfig
    from simulators.runner import SimulationRunner

    now = datetime.now(UTC).replace(second=0, microsecond=0)
    backfill = timedelta(hours=float(os.environ.get("CARBONFLOW_DEMO_BACKFILL_HOURS", "24")))
    step = timedelta(minutes=1)
    start = backfill_start(now, backfill, frontier, step)
    log.info(
        "%s: back-fill from %s (%s)",
        doc.site.id,
        start.isoformat(),
        "first run" if frontier.last_ts is None else f"stored up to {frontier.last_ts.isoformat()}",
    )
    config = SimConfig(
        doc,
        start=start,
        step=step,
        speed=math.inf,
        live_from=now,
        batch_size=_BACKFILL_BATCH,
        resume_registers=frontier.registers,
    )
    runner = SimulationRunner(config, demo.mqtt_url, client_id=f"carbonflow-demo-sim-{doc.site.id}")
    return _Service(f"simulator {doc.site.id}", runner.run, runner.request_stop, lambda: True)


def _push(demo: DemoStack, frontiers: dict[str, SiteFrontier], state: DemoState) -> _Service:
    """The mine's hourly and daily results over HJ 212 to a local platform (cli/demo_push.py),
    from the first back-filled hour on."""
    from cli import demo_push

    state.push_port = choose_port("CARBONFLOW_DEMO_PUSH_PORT", state.push_port, DEFAULT_PUSH_PORT)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    backfill = timedelta(hours=float(os.environ.get("CARBONFLOW_DEMO_BACKFILL_HOURS", "24")))
    frontier = frontiers.get(demo_push.DEMO_SITE)
    first = (frontier.last_ts if frontier and frontier.last_ts else now - backfill).replace(
        minute=0, second=0, microsecond=0
    )
    try:
        push = demo_push.start(demo.database_url, demo.data_dir, state.push_port, first)
    except ProfileError as error:  # a destinations file given but unusable: misconfiguration
        raise SystemExit(f"push: {error}") from None
    demo.endpoints["push"] = push.described
    return _Service("push", push.run, push.halt, lambda: True)


def _ingest(demo: DemoStack) -> _Service:
    from services.ingest.service import IngestService
    from services.ingest.settings import IngestSettings

    ingest_settings = IngestSettings(
        DATABASE_URL=demo.database_url,
        MQTT_URL=demo.mqtt_url,
        CARBONFLOW_INGEST_CLIENT_ID=os.environ.get(
            "CARBONFLOW_INGEST_CLIENT_ID", "carbonflow-demo-ingest"
        ),
    )
    ingest = IngestService(ingest_settings)
    if ingest.http is not None:
        demo.endpoints["ingest"] = f"http://{ingest_settings.http_host}:{ingest.http.port}/metrics"
    return _Service(
        "ingest", ingest.run, ingest.request_stop, lambda: bool(ingest.health()["subscribed"])
    )


def _api(demo: DemoStack, state: DemoState) -> _Service:
    import uvicorn

    from services.api.app import create_app
    from services.api.settings import ApiSettings

    admin_key = os.environ.get("CARBONFLOW_API_ADMIN_KEY")
    if not admin_key:
        state.admin_key = state.admin_key or secrets.token_urlsafe(32)
        admin_key = state.admin_key
    settings = ApiSettings(DATABASE_URL=demo.database_url, CARBONFLOW_API_ADMIN_KEY=admin_key)
    port = choose_port("CARBONFLOW_API_PORT", state.api_port, settings.port, settings.host)
    state.api_port = port
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=port,
        log_config=None,
        access_log=False,
        # an open live stream must not hold Ctrl-C up
        timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN_S,
    )
    server = uvicorn.Server(config)
    demo.endpoints["api"] = f"http://{settings.host}:{port}/docs"
    demo.endpoints["api key"] = f"{admin_key}  (admin; Authorization: Bearer <key>)"

    def run() -> int:
        server.run()
        return 0

    def stop() -> None:
        server.should_exit = True

    return _Service("api", run, stop, lambda: bool(server.started))


def _stop_services(services: list[_Service]) -> None:
    """Ask every service to stop at once (simulators first), then wait for each: they wind
    down in parallel, so Ctrl-C takes as long as the slowest, not the sum."""
    started = [s for s in reversed(services) if s.thread is not None]
    for service in started:
        service.stop()
    for service in started:
        assert service.thread is not None
        service.thread.join(timeout=60)
        if service.thread.is_alive():
            log.error("%s did not stop within 60 s", service.name)


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "demo", help="run everything locally (embedded database and broker unless configured)"
    )
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="default: $CARBONFLOW_DATA_DIR or a temp dir"
    )
    parser.add_argument(
        "--reset",
        action="store_true",
        help="start over: remove the database, broker files, ports and key of earlier runs",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    stop = threading.Event()

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    if args.reset:
        for path in reset_data_dir(args.data_dir or default_data_dir()):
            print(f"removed {path}", flush=True)
    return run_demo(stop, data_dir=args.data_dir, print_fn=lambda line: print(line, flush=True))

"""``carbonflow demo``: the whole platform on one machine, with no root, Docker or system services.

When ``DATABASE_URL`` is unset it starts a private PostgreSQL under the data directory; when
``MQTT_URL`` is unset, a private broker (Mosquitto when installed, else a pure-Python one). It
migrates, loads the example sites, starts the services that exist, prints where to look, and
stops everything cleanly on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
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

from carbonflow.domain.site.model import SiteDocument
from carbonflow.embedded.broker import start_embedded_broker
from carbonflow.embedded.net import free_port, port_accepts, wait_for
from carbonflow.embedded.postgres import EmbeddedPostgres
from carbonflow.settings import DatabaseSettings, MqttSettings
from carbonflow.sites.loader import EXAMPLES, load_site_file
from carbonflow.storage.migrate import upgrade
from carbonflow.storage.registry_load import load_sites

log = logging.getLogger(__name__)

READY_LINE = "carbonflow demo ready"
_READY_TIMEOUT_S = 120.0
# Reading sets per message while the simulators back-fill the recent past.
_BACKFILL_BATCH = 30


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
class DemoStack:
    database_url: str
    mqtt_url: str
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
    with ExitStack() as stack:
        database_url = DatabaseSettings().database_url
        if database_url is None:
            postgres = stack.enter_context(EmbeddedPostgres(data_dir / "postgres", durable=True))
            database_url = postgres.url
        mqtt_url = MqttSettings().mqtt_url
        if mqtt_url is None:
            broker = start_embedded_broker(data_dir / "mqtt")
            stack.callback(broker.stop)
            mqtt_url = broker.url
        demo = DemoStack(database_url, mqtt_url)
        report = upgrade(database_url)
        log.info("database schema at revision %s (%s)", report.after, report.storage_detail)
        docs = [load_site_file(path) for path in sorted(EXAMPLES.glob("*.yaml"))]
        for result in load_sites(database_url, docs):
            log.info("%s", result.summary())

        services = _services(demo, docs)
        for service in services:
            service.thread = threading.Thread(
                target=lambda s=service: setattr(s, "exit_code", s.run()),
                name=service.name,
                daemon=True,
            )
            service.thread.start()
            stack.callback(_stop_service, service)
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


def _services(demo: DemoStack, docs: list[SiteDocument]) -> list[_Service]:
    return [_ingest(demo), _calc(demo), _api(demo), *(_simulator(demo, doc) for doc in docs)]


def _calc(demo: DemoStack) -> _Service:
    from services.calc.service import CalcService
    from services.calc.settings import CalcSettings

    service = CalcService(CalcSettings(DATABASE_URL=demo.database_url))
    if service.http is not None:
        demo.endpoints["calc"] = f"http://{service.settings.http_host}:{service.http.port}/metrics"
    return _Service("calc", service.run, service.request_stop, lambda: True)


def _simulator(demo: DemoStack, doc: SiteDocument) -> _Service:
    """Drive the example site's devices: a back-filled recent past, then live, in real time."""
    import math

    from simulators.engine import SimConfig
    from simulators.runner import SimulationRunner

    now = datetime.now(UTC).replace(second=0, microsecond=0)
    backfill = timedelta(hours=float(os.environ.get("CARBONFLOW_DEMO_BACKFILL_HOURS", "24")))
    config = SimConfig(
        doc, start=now - backfill, speed=math.inf, live_from=now, batch_size=_BACKFILL_BATCH
    )
    runner = SimulationRunner(config, demo.mqtt_url, client_id=f"carbonflow-demo-sim-{doc.site.id}")
    return _Service(f"simulator {doc.site.id}", runner.run, runner.request_stop, lambda: True)


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


def _api(demo: DemoStack) -> _Service:
    import uvicorn

    from services.api.app import create_app
    from services.api.settings import ApiSettings

    admin_key = os.environ.get("CARBONFLOW_API_ADMIN_KEY") or secrets.token_urlsafe(32)
    settings = ApiSettings(DATABASE_URL=demo.database_url, CARBONFLOW_API_ADMIN_KEY=admin_key)
    port = settings.port if port_free(settings.host, settings.port) else free_port(settings.host)
    config = uvicorn.Config(
        create_app(settings), host=settings.host, port=port, log_config=None, access_log=False
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


def _stop_service(service: _Service) -> None:
    service.stop()
    if service.thread is not None:
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
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    stop = threading.Event()

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    return run_demo(stop, data_dir=args.data_dir, print_fn=lambda line: print(line, flush=True))

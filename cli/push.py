"""``carbonflow push``: the push service to the authorities' platforms (docs/push.md).

- ``carbonflow push [--migrate] [--once]`` — queue and send until SIGTERM/SIGINT (one cycle
  with ``--once``); without ``CARBONFLOW_PUSH_DESTINATIONS`` it idles (a log line, ``/healthz``
  says so), so a deployment may ship it before any destination is agreed; a file that is
  given but unreadable or invalid is fatal (exit 2);
- ``carbonflow push check`` — read the destinations file and the secrets it names, print them;
- ``carbonflow push status`` — backlog, answers and last error per destination.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, NamedTuple

import yaml

from carbonflow.domain.reporting.energy import EnergyDestination
from carbonflow.domain.reporting.profile import (
    Destination,
    ProfileError,
    destinations_from_document,
    energy_destinations_from_document,
)
from cli.options import add_migrate, migrate_if_asked

if TYPE_CHECKING:
    import sqlalchemy as sa

    from services.push.settings import PushSettings
    from services.push.worker import PushWorker, WorkerConfig

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "push", help="push HJ 212 data to the authorities / 向主管部门推送 HJ 212 数据"
    )
    add_migrate(parser)
    parser.add_argument("--once", action="store_true", help="one cycle, then exit")
    sub = parser.add_subparsers(dest="push_command", metavar="ACTION")
    sub.add_parser("check", help="validate the destinations file and its secrets")
    sub.add_parser("status", help="backlog, answers and last error per destination")
    parser.set_defaults(handler=run)


class Profiles(NamedTuple):
    """The destinations of a file: HJ 212 over TCP, and energy online monitoring over HTTPS."""

    hj212: list[Destination]
    energy: list[EnergyDestination]

    def describe(self) -> str:
        return ", ".join(
            [f"{d.name} {d.host}:{d.port}" for d in self.hj212]
            + [f"{e.name} {e.url}" for e in self.energy]
        )


def load_destinations(path: Path | None) -> Profiles:
    """The destinations of ``path`` with their secrets from the environment."""
    if path is None:
        raise ProfileError("set CARBONFLOW_PUSH_DESTINATIONS to the destinations file")
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise ProfileError(f"{path}: {error}") from None
    return Profiles(
        destinations_from_document(document, os.environ),
        energy_destinations_from_document(document, os.environ),
    )


def make_worker(engine: sa.Engine, settings: PushSettings, profiles: Profiles) -> PushWorker:
    """The push worker of ``profiles``: HJ 212 destinations, and an energy sender if any."""
    from services.push.energy import EnergySender
    from services.push.metrics import PushMetrics
    from services.push.worker import PushWorker, utc_now

    metrics = PushMetrics()
    energy = None
    if profiles.energy:
        energy = EnergySender(
            engine,
            profiles.energy,
            periods_per_cycle=settings.periods_per_cycle,
            backoff_start_s=settings.backoff_start_s,
            backoff_max_s=settings.backoff_max_s,
            clock=utc_now,
            metrics=metrics,
        )
    return PushWorker(
        engine, profiles.hj212, worker_config(settings), metrics=metrics, energy=energy
    )


def run(args: argparse.Namespace) -> int:
    from services.push.settings import PushSettings

    settings = PushSettings()
    command = getattr(args, "push_command", None)
    try:
        if settings.destinations_file is None and command is None:
            log.warning(
                "push: no destinations file (CARBONFLOW_PUSH_DESTINATIONS): idling, nothing "
                "is sent / 未配置推送目的地，空闲运行"
            )
            profiles = Profiles([], [])
        else:
            profiles = load_destinations(settings.destinations_file)
    except ProfileError as error:
        print(f"push: {error}", file=sys.stderr)
        return 2
    if command == "check":
        for d in profiles.hj212:
            print(
                f"{d.name}: {d.version.name} to {d.host}:{d.port}, "
                f"site {d.site_id}, ST {d.identity.st}, CN {','.join(d.cns)}, "
                f"codes {','.join(c.code for c in d.codes)}"
            )
        for e in profiles.energy:
            print(
                f"{e.name}: energy online monitoring to {e.url}, site {e.site_id}, "
                f"unit {e.profile.unit_code}, grains {','.join(e.grains)}, "
                f"items {','.join(i.code for i in e.profile.items)}"
            )
        return 0
    if settings.database_url is None:
        print("set DATABASE_URL (or use `carbonflow demo`)", file=sys.stderr)
        return 2
    migrate_if_asked(args, settings)
    if command == "status":
        return _status(settings.database_url)
    return _serve(settings, profiles, once=args.once)


def _serve(settings: Any, profiles: Profiles, *, once: bool) -> int:
    from carbonflow.health_http import health_server
    from carbonflow.storage.db import make_engine

    engine = make_engine(settings.database_url)
    worker = make_worker(engine, settings, profiles)
    stop = threading.Event()

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    http = None
    try:
        if once:
            worker.cycle()
            worker.close()
        else:
            http = health_server(
                settings.http_host, settings.http_port, worker.metrics.registry, worker.health,
                name="push-http",
            )  # fmt: skip
            if http is not None:
                http.start()
            worker.run(stop)
    finally:
        if http is not None:
            http.stop()
        engine.dispose()
    return 0


def worker_config(settings: PushSettings) -> WorkerConfig:
    from services.push.worker import WorkerConfig

    return WorkerConfig(
        interval_s=settings.interval_s,
        backoff_start_s=settings.backoff_start_s,
        backoff_max_s=settings.backoff_max_s,
        connect_timeout_s=settings.connect_timeout_s,
        periods_per_cycle=settings.periods_per_cycle,
        revise_days=settings.revise_days,
    )


def _status(database_url: str) -> int:
    from carbonflow.storage.db import make_engine
    from carbonflow.storage.push import push_status

    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = push_status(conn)
    finally:
        engine.dispose()
    print("destination\tpending\tacked\toldest pending\tlast acked\tlast error")
    for r in rows:
        print(
            f"{r.destination}\t{r.pending}\t{r.acked}\t{r.oldest_pending or '-'}\t"
            f"{r.last_acked_at or '-'}\t{r.last_error or '-'}"
        )
    return 0

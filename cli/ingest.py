"""``carbonflow ingest``: run one ingest worker until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType
from typing import Any

from cli.options import add_migrate, migrate_if_asked


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "ingest", help="MQTT → database ingest worker (settings from the environment)"
    )
    add_migrate(parser)
    parser.add_argument(
        "--retire",
        action="store_true",
        help="scale-down: store what this client id's session holds, end the session, exit",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from services.ingest.service import IngestService
    from services.ingest.settings import IngestSettings

    settings = IngestSettings()
    if settings.database_url is None or settings.mqtt_url is None:
        print("set DATABASE_URL and MQTT_URL (or use `carbonflow demo`)", file=sys.stderr)
        return 2
    migrate_if_asked(args, settings)
    service = IngestService(settings, retire=args.retire)

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        service.request_stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    return service.run()

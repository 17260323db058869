"""``carbonflow notify [--migrate] [--once]``: the notify service — alarm sources → alarms →
e-mail, WeCom, DingTalk and webhook notifications (settings from the environment,
docs/alarms.md)."""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType
from typing import Any

from cli.options import add_migrate, migrate_if_asked


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "notify", help="alarms and notifications (settings from the environment)"
    )
    add_migrate(parser)
    parser.add_argument("--once", action="store_true", help="run one cycle and exit")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from services.notify.service import NotifyService
    from services.notify.settings import NotifySettings

    settings = NotifySettings()
    if settings.database_url is None:
        print("set DATABASE_URL (or use `carbonflow demo`)", file=sys.stderr)
        return 2
    migrate_if_asked(args, settings)
    service = NotifyService(settings)
    if args.once:
        print(service.notifier.run_once())
        service.engine.dispose()
        return 0

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        service.request_stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    return service.run()

"""``carbonflow calc``: the calc service, and forced recomputation.

- ``carbonflow calc [--migrate]`` — run the service until SIGTERM/SIGINT;
- ``carbonflow calc recompute --site S --from 2025-03-01 --to 2025-03-31 [--run]`` — recompute a
  site's days (inclusive, site-local): queued for the running service, or done now with ``--run``;
- ``carbonflow calc sync-factors`` — store the reference data files (idempotent);
- ``carbonflow calc status`` — pending work and watermarks per site.
"""

from __future__ import annotations

import argparse
import signal
import sys
from datetime import date, datetime, timedelta
from types import FrameType
from typing import Any
from zoneinfo import ZoneInfo

from cli.options import add_migrate, migrate_if_asked


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "calc", help="readings → energy, carbon, indicators (settings from the environment)"
    )
    add_migrate(parser)
    sub = parser.add_subparsers(dest="calc_command", metavar="ACTION")
    recompute = sub.add_parser("recompute", help="recompute a site's days (and all above them)")
    recompute.add_argument("--site", required=True, help="site id")
    recompute.add_argument("--from", dest="date_from", required=True, type=date.fromisoformat)
    recompute.add_argument("--to", dest="date_to", required=True, type=date.fromisoformat)
    recompute.add_argument(
        "--run", action="store_true", help="process it now instead of leaving it to the service"
    )
    sub.add_parser("sync-factors", help="store the reference data files (factors, targets)")
    sub.add_parser("status", help="pending work and watermarks per site")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from services.calc.settings import CalcSettings

    settings = CalcSettings()
    if settings.database_url is None:
        print("set DATABASE_URL (or use `carbonflow demo`)", file=sys.stderr)
        return 2
    migrate_if_asked(args, settings)
    command = getattr(args, "calc_command", None)
    if command == "recompute":
        return _recompute(settings, args)
    if command == "sync-factors":
        return _sync(settings)
    if command == "status":
        return _status(settings)
    return _serve(settings)


def _serve(settings: Any) -> int:
    from services.calc.service import CalcService

    service = CalcService(settings)

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        service.request_stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    return service.run()


def _recompute(settings: Any, args: argparse.Namespace) -> int:
    import psycopg

    from carbonflow.storage import registry
    from services.calc.engine import CalcEngine

    if args.date_to < args.date_from:
        print("--to is before --from", file=sys.stderr)
        return 2
    engine = CalcEngine(settings.database_url, settings.engine_config())
    try:
        with psycopg.connect(settings.database_url) as conn:
            sites = registry.plan_sites(conn, args.site)
        if not sites:
            print(f"no site {args.site!r}", file=sys.stderr)
            return 2
        zone = ZoneInfo(sites[0].timezone)
        start = datetime.combine(args.date_from, datetime.min.time(), zone)
        end = datetime.combine(args.date_to + timedelta(days=1), datetime.min.time(), zone)
        request = engine.request_recompute(args.site, start, end, "carbonflow calc recompute")
        print(f"recomputation {request} of {args.site} {args.date_from}..{args.date_to} queued")
        if args.run:
            engine.sync_reference()
            reports = engine.run_until_idle()
            written = sum(r.intervals_written for r in reports)
            carbon = sum(r.carbon_rows_written for r in reports)
            print(f"done in {len(reports)} cycles: {written} intervals, {carbon} carbon rows")
            if any(r.site_errors for r in reports):
                return 1
        return 0
    finally:
        engine.close()


def _sync(settings: Any) -> int:
    from services.calc.engine import CalcEngine

    engine = CalcEngine(settings.database_url, settings.engine_config())
    try:
        for f in engine.sync_reference():
            print(f"{f.file_name} {f.version}: {f.status}")
        return 0
    finally:
        engine.close()


def _status(settings: Any) -> int:
    import psycopg

    from carbonflow.storage import calc_queue

    with psycopg.connect(settings.database_url) as conn:
        dirty, sites = calc_queue.queue_status(conn)
    print(f"dirty device-hours: {dirty}")
    for s in sites:
        print(
            f"{s.site_id}: results through {s.results_through}, readings received up to "
            f"{s.last_received_at}, {s.open_requests} open requests"
        )
    return 0

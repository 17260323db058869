"""``carbonflow migrate``: bring the database to the newest schema."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from carbonflow.settings import DatabaseSettings
from carbonflow.storage.migrate import upgrade


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "migrate", help="create or upgrade the schema (idempotent)"
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--timescaledb",
        dest="timescaledb",
        action="store_true",
        default=None,
        help="require TimescaleDB (fail when the extension is missing)",
    )
    group.add_argument(
        "--no-timescaledb",
        dest="timescaledb",
        action="store_false",
        help="plain PostgreSQL layout even if TimescaleDB is available",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = DatabaseSettings()
    if settings.database_url is None:
        print(
            "DATABASE_URL is not set (or use `carbonflow demo`, which starts its own)",
            file=sys.stderr,
        )
        return 2
    try:
        report = upgrade(
            settings.database_url,
            use_timescaledb=args.timescaledb,
            retention_days=settings.readings_retention_days,
            compress_after_days=settings.readings_compress_after_days,
        )
    except RuntimeError as err:
        print(f"migration failed: {err}", file=sys.stderr)
        return 1
    state = "migrated" if report.changed else "already at"
    print(f"{state} revision {report.after}; {report.storage_detail}")
    return 0

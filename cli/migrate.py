"""``carbonflow migrate``: bring the database to the newest schema, as the owner role.

The migrations run on ``CARBONFLOW_MIGRATE_DATABASE_URL`` (the owner role, which owns every
table), else on ``DATABASE_URL``. ``--app-role NAME`` then creates or updates the services'
LOGIN role NAME (password from ``CARBONFLOW_APP_DB_PASSWORD``, never from an argument) as a
member of ``carbonflow_app``: docs/operations.md, "Database roles".
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import psycopg
from pydantic import ValidationError

from carbonflow.settings import MigrateSettings
from carbonflow.storage.migrate import APP_ROLE, ensure_app_login, upgrade
from cli.options import storage_policy


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
    parser.add_argument(
        "--app-role",
        metavar="NAME",
        help=f"after migrating, create or update the LOGIN role NAME of the services as a "
        f"member of {APP_ROLE} (password from CARBONFLOW_APP_DB_PASSWORD)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        settings = MigrateSettings()
    except ValidationError as exc:
        print(f"migrate: invalid settings: {exc}", file=sys.stderr)
        return 2
    owner_url = settings.owner_url
    if owner_url is None:
        print(
            "neither CARBONFLOW_MIGRATE_DATABASE_URL nor DATABASE_URL is set "
            "(or use `carbonflow demo`, which starts its own)",
            file=sys.stderr,
        )
        return 2
    password = settings.app_db_password
    if args.app_role and (password is None or not password.get_secret_value()):
        print("--app-role needs CARBONFLOW_APP_DB_PASSWORD in the environment", file=sys.stderr)
        return 2
    try:
        report = upgrade(
            owner_url, use_timescaledb=args.timescaledb, policy=storage_policy(settings)
        )
    except RuntimeError as err:
        print(f"migration failed: {err}", file=sys.stderr)
        return 1
    state = "migrated" if report.changed else "already at"
    print(f"{state} revision {report.after}; {report.storage_detail}")
    if args.app_role and password is not None:
        try:
            created = ensure_app_login(owner_url, args.app_role, password.get_secret_value())
        except (ValueError, psycopg.Error) as err:
            print(f"app role {args.app_role}: {err}", file=sys.stderr)
            return 1
        done = "created" if created else "updated"
        print(f"{done} login role {args.app_role} (member of {APP_ROLE})")
    return 0

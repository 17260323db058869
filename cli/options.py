"""Options the service commands share: ``--migrate`` before starting."""

from __future__ import annotations

import argparse
from typing import Protocol

from carbonflow.storage.timescale import StoragePolicy


class _DatabaseSettings(Protocol):
    @property
    def database_url(self) -> str | None: ...
    @property
    def readings_retention_days(self) -> int: ...
    @property
    def readings_compress_after_days(self) -> int: ...
    @property
    def readings_per_s(self) -> float: ...
    @property
    def db_memory_gib(self) -> float: ...
    @property
    def results_compress_after_days(self) -> int: ...


def storage_policy(settings: _DatabaseSettings) -> StoragePolicy:
    """The TimescaleDB policies the settings ask for (docs/operations.md)."""
    return StoragePolicy(
        retention_days=settings.readings_retention_days,
        compress_after_days=settings.readings_compress_after_days,
        readings_per_s=settings.readings_per_s,
        memory_gib=settings.db_memory_gib,
        results_compress_after_days=settings.results_compress_after_days,
    )


def add_migrate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--migrate", action="store_true", help="migrate the database before starting"
    )


def migrate_if_asked(args: argparse.Namespace, settings: _DatabaseSettings) -> None:
    """``--migrate``: bring the database to the newest schema and the TimescaleDB policies to
    the service's settings, as the owner role (``CARBONFLOW_MIGRATE_DATABASE_URL``) when one
    is set: a service that connects as the application role may not create tables."""
    if not args.migrate or settings.database_url is None:
        return
    from carbonflow.settings import MigrateSettings
    from carbonflow.storage.migrate import upgrade

    upgrade(MigrateSettings().owner_url or settings.database_url, policy=storage_policy(settings))

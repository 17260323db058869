"""``carbonflow db policies``: the storage layout and the TimescaleDB policies in force.

Per hypertable: chunk interval, compression (segmented by), compress-after and drop-after ages,
chunks (compressed of all) and size, next to what the settings ask for (``CARBONFLOW_READINGS_*``,
``CARBONFLOW_DB_MEMORY_GIB``, ``CARBONFLOW_RESULTS_COMPRESS_AFTER_DAYS``); ``carbonflow migrate``
applies the settings. docs/operations.md, "TimescaleDB compression and
retention".
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError

from carbonflow.settings import DatabaseSettings
from carbonflow.storage.db import make_engine
from carbonflow.storage.timescale import (
    READING,
    RESULTS,
    PolicyState,
    StoragePolicy,
    describe_s,
    policy_states,
)
from cli.options import storage_policy


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "db", help="database layout: `db policies` shows the TimescaleDB policies (DATABASE_URL)"
    )
    actions = parser.add_subparsers(dest="db_action", required=True, metavar="ACTION")
    policies = actions.add_parser(
        "policies",
        help="chunk intervals, compression and retention in force / 分块、压缩与保留策略",
    )
    policies.set_defaults(handler=run_policies)


def _row(state: PolicyState) -> str:
    size_mib = state.total_bytes / 2**20
    return (
        f"{state.table:<14} {state.chunk_interval:<16} "
        f"{(state.segment_by if state.compression else 'off'):<22} "
        f"{state.compress_after or '-':<15} {state.drop_after or '-':<12} "
        f"{state.compressed_chunks}/{state.chunks:<8} {size_mib:,.1f} MiB"
    )


def _wanted(policy: StoragePolicy) -> list[str]:
    lines = []
    for hypertable in (READING, *RESULTS):
        lines.append(
            f"  {hypertable.table}: {describe_s(policy.chunk_s(hypertable))} chunks, "
            f"compressed after {policy.compress_after_days_of(hypertable)} days"
        )
    lines.append(f"  reading: dropped after {policy.retention_days} days")
    return lines


def run_policies(_args: argparse.Namespace) -> int:
    try:
        settings = DatabaseSettings()
    except ValidationError as exc:
        print(f"db policies: invalid settings: {exc}", file=sys.stderr)
        return 2
    if settings.database_url is None:
        print("DATABASE_URL is not set / 未设置 DATABASE_URL", file=sys.stderr)
        return 2
    engine = make_engine(settings.database_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            detail = conn.execute(sa.text("SELECT detail FROM storage_mode")).scalar_one()
            states = policy_states(conn)
    except sa.exc.DBAPIError as exc:
        print(f"db policies: cannot read the database: {exc.orig}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    print(f"storage / 存储: {detail}")
    if not states:
        print("no TimescaleDB policies (plain PostgreSQL) / 无 TimescaleDB 策略（普通 PostgreSQL）")
        return 0
    print(
        f"{'table / 表':<14} {'chunk / 分块':<16} {'segment by / 分段':<22} "
        f"{'compress / 压缩':<15} {'drop / 删除':<12} {'compressed':<10} size / 大小"
    )
    for state in states:
        print(_row(state))
    print("settings ask for / 配置要求 (applied by `carbonflow migrate`):")
    for line in _wanted(storage_policy(settings)):
        print(line)
    return 0

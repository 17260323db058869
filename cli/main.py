"""The ``carbonflow`` command. Each subcommand lives in ``cli.<name>`` and exposes
``register(subparsers)``; this module only wires them and configures logging.

``cli`` is the composition root: it alone imports the services, the simulators and the core
together (the dependency rule in pyproject.toml's import-linter contracts)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from prometheus_client import disable_created_metrics

from carbonflow.logs import configure
from cli import (
    api,
    broker,
    calc,
    db,
    demo,
    grafana,
    hj212,
    ingest,
    keys,
    migrate,
    notify,
    push,
    readings,
    simulate,
    sites,
)

_COMMANDS = (
    migrate, db, sites, readings, ingest, demo, simulate, calc, api, keys, broker, grafana, hj212,
    push, notify,
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="carbonflow", description="Energy–carbon monitoring for zero-carbon parks and mines"
    )
    parser.add_argument(
        "--log-level",
        default=os.environ.get("CARBONFLOW_LOG_LEVEL", "INFO"),
        help="DEBUG, INFO, WARNING, ERROR (env CARBONFLOW_LOG_LEVEL)",
    )
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=os.environ.get("CARBONFLOW_LOG_FORMAT", "text"),
        help="json: one JSON object per line, for log collectors (env CARBONFLOW_LOG_FORMAT)",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _COMMANDS:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure(args.log_level, args.log_format)
    # The *_created series double every counter's cardinality and no dashboard reads them.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    handler = args.handler
    result: int = handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())

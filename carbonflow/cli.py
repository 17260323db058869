"""The ``carbonflow`` command. Each subcommand lives in ``carbonflow.commands.<name>`` and exposes
``register(subparsers)``; this module only wires them and configures logging."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

# A subcommand appears here once its service exists.
_COMMAND_MODULES = ("migrate", "sites", "ingest", "demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="carbonflow", description="Energy–carbon monitoring for zero-carbon parks and mines"
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _COMMAND_MODULES:
        module = importlib.import_module(f"carbonflow.commands.{name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    handler = args.handler
    result: int = handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())

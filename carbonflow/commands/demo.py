"""``carbonflow demo``: run the whole platform on an embedded default; Ctrl-C stops it."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "demo", help="run everything locally (embedded database and broker unless configured)"
    )
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="default: $CARBONFLOW_DATA_DIR or a temp dir"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from carbonflow.demo import run_demo

    stop = threading.Event()

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    return run_demo(stop, data_dir=args.data_dir, print_fn=lambda line: print(line, flush=True))

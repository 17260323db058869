"""``carbonflow simulate``: drive a site's devices over MQTT (``docs/simulators.md``).

    carbonflow simulate --site shanxi-mine                       # live, real time, from now
    carbonflow simulate --site inner-mongolia-park --start 2026-10-01T00:00+08:00 \\
        --duration 30d --step 1m --speed max --faults default --oracle oct.jsonl.gz --register
    carbonflow simulate --site shanxi-mine --devices 5000 --duration 1h --speed max --workers 2

``MQTT_URL`` (and ``DATABASE_URL`` for ``--register``) come from the environment. The exit code
is 0 when the run reached its end or was stopped by Ctrl-C / SIGTERM, 1 on an error, 2 on bad
arguments.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any
from zoneinfo import ZoneInfo

from carbonflow.sites.loader import EXAMPLES

_RELATIVE = re.compile(r"^now\s*(?:-\s*(.+))?$")


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "simulate",
        help="simulate a site's devices over MQTT, with faults and a ground-truth oracle",
        description="Publishes a site's simulated readings to MQTT_URL (docs/simulators.md).",
    )
    parser.add_argument(
        "--site", required=True, help="a site file, or an example: shanxi-mine, inner-mongolia-park"
    )
    parser.add_argument(
        "--start", default="now", help="ISO time with offset, 'now' or 'now-30d' (default: now)"
    )
    parser.add_argument("--duration", help="e.g. 30d, 12h (default: until stopped)")
    parser.add_argument("--step", default="1m", help="reporting period: 1m, 5m, 15m, 30s")
    parser.add_argument("--speed", default="realtime", help="realtime, max, or a factor (60)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--devices", type=int, help="scale the fleet to this many devices")
    parser.add_argument(
        "--faults", default="none", help="none, default, heavy, or key=rate,… (docs/simulators.md)"
    )
    parser.add_argument(
        "--batch", type=int, help="reading sets per message (default: 1 when paced, 50 at max)"
    )
    parser.add_argument("--oracle", type=Path, help="write the ground truth here (.jsonl[.gz])")
    parser.add_argument(
        "--register", action="store_true", help="load the (scaled) site into the registry first"
    )
    parser.add_argument(
        "--retired-device",
        help="id of a registered, decommissioned device (for inactive_device faults); "
        "--register creates one",
    )
    parser.add_argument("--workers", type=int, default=1, help="publishing processes")
    parser.add_argument("--connections", type=int, default=1, help="MQTT connections per process")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(handler=run)


def resolve_site(value: str) -> Path:
    """A site file path, an example's file name (with or without .yaml), or its site id."""
    path = Path(value)
    if path.is_file():
        return path
    for candidate in (EXAMPLES / value, EXAMPLES / f"{value}.yaml"):
        if candidate.is_file():
            return candidate
    from carbonflow.sites.loader import load_site_file

    for example in sorted(EXAMPLES.glob("*.yaml")):
        if load_site_file(example).site.id == value:
            return example
    names = ", ".join(p.stem for p in sorted(EXAMPLES.glob("*.yaml")))
    raise ValueError(f"no site file {value!r}; examples: {names}")


def parse_start(text: str, step: timedelta, now: datetime) -> datetime:
    """``now``, ``now-30d`` (floored to the step) or an ISO time with an offset."""
    from simulators.clock import parse_duration

    match = _RELATIVE.match(text.strip())
    if match:
        back = parse_duration(match.group(1)) if match.group(1) else timedelta(0)
        moment = now - back
        step_s = step.total_seconds()
        return datetime.fromtimestamp(moment.timestamp() // step_s * step_s, tz=UTC)
    start = datetime.fromisoformat(text)
    if start.tzinfo is None:
        raise ValueError(f"--start {text!r} needs an offset, e.g. 2026-10-01T00:00+08:00")
    return start


def run(args: argparse.Namespace) -> int:  # noqa: C901, PLR0912, PLR0915 — command-line options to a simulation, one branch per option
    from carbonflow.domain.readings.contract import Reason
    from carbonflow.settings import DatabaseSettings, MqttSettings
    from carbonflow.sites.loader import SiteFileError, load_site_file
    from simulators.clock import parse_duration
    from simulators.engine import SimConfig, parse_speed
    from simulators.faultspec import FaultSpec
    from simulators.runner import (
        REGISTRY_SETTLE_S,
        RETIRED_DEVICE_ID,
        register_fleet,
        run_simulation,
    )

    mqtt_url = MqttSettings().mqtt_url
    if not mqtt_url:
        print("MQTT_URL is not set (e.g. mqtt://127.0.0.1:1883)", file=sys.stderr)
        return 2
    try:
        doc = load_site_file(resolve_site(args.site))
        step = parse_duration(args.step)
        speed = parse_speed(args.speed)
        start = parse_start(args.start, step, datetime.now(UTC))
        tz_start = start.astimezone(ZoneInfo(doc.site.timezone))
        duration = parse_duration(args.duration) if args.duration else None
        faults = FaultSpec.parse(args.faults)
        batch = args.batch or (50 if math.isinf(speed) else 1)
        database = DatabaseSettings()
        retention = database.readings_retention_days
        if start < datetime.now(UTC) - timedelta(days=retention):
            raise ValueError(
                f"--start is older than the {retention}-day retention: ingest would reject it"
            )
        wants_retired = (
            args.register and faults.malformed > 0 and Reason.INACTIVE_DEVICE in faults.reasons
        )
        retired = args.retired_device or (RETIRED_DEVICE_ID if wants_retired else None)
        config = SimConfig(
            doc,
            tz_start,
            duration,
            step,
            speed,
            args.seed,
            devices=args.devices,
            faults=faults,
            batch_size=batch,
            retired_device=retired,
            max_payload_bytes=int(os.environ.get("CARBONFLOW_INGEST_MAX_PAYLOAD_BYTES", "262144")),
            retention_days=retention,
            # once the run reaches the present it publishes every step as it comes
            live_from=datetime.now(UTC),
        )
        if args.oracle is not None:
            config.check_oracle()
    except (ValueError, SiteFileError) as exc:
        print(f"carbonflow simulate: {exc}", file=sys.stderr)
        return 2
    if args.register:
        if database.database_url is None:
            print("--register needs DATABASE_URL", file=sys.stderr)
            return 2
        fresh_retired = config.retired_device == RETIRED_DEVICE_ID and not args.retired_device
        loads = register_fleet(database.database_url, config, retired=fresh_retired)
        for load in loads:
            print(load.summary(), flush=True)

    stop = threading.Event()
    if args.register and any(load.status != "unchanged" for load in loads):
        stop.wait(REGISTRY_SETTLE_S)  # let a running ingest pick the new devices up

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        report = run_simulation(
            config,
            mqtt_url,
            stop,
            oracle_path=args.oracle,
            workers=args.workers,
            connections=args.connections,
            dedicated_process=True,
        )
    except Exception as exc:  # the command reports any failure in one line
        print(f"carbonflow simulate failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if args.json:
        print(json.dumps(report.record(), indent=2))
    else:
        print(report.summary())
    return 0

"""``python -m bench [--quick] [scenario …]``: run the benchmarks, write bench/results.json."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import platform
import time
from datetime import UTC, datetime

from bench.common import cpu_count, merge_results

# ``sizes`` measures TimescaleDB only where the kit is (it says so and skips otherwise), and the
# plain year only when calc or api built it in the same run.
SCENARIOS = ("ingest", "sim", "calc", "api", "sizes")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument(
        "--quick", action="store_true", help="smaller runs (smoke test of the harness)"
    )
    parser.add_argument("scenarios", nargs="*", default=list(SCENARIOS))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    results: dict[str, object] = {
        "run_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": cpu_count(), "python": platform.python_version()},
        "quick": args.quick,
    }
    for name in args.scenarios:
        started = time.monotonic()
        module = importlib.import_module(f"bench.{name}")
        results.update(module.run(quick=args.quick))
        results[f"{name}_bench_seconds"] = round(time.monotonic() - started, 1)
    merged = merge_results(results)
    _print_table(results)
    print(f"\nwritten: bench/results.json ({len(merged)} keys)")
    return 0


def _print_table(results: dict[str, object]) -> None:
    width = max(len(k) for k in results)
    for key, value in results.items():
        if isinstance(value, dict):
            print(f"{key}:")
            for k, v in value.items():
                print(f"  {k:<{width}} {json.dumps(v) if isinstance(v, dict) else _fmt(v)}")
        else:
            print(f"{key:<{width}} {_fmt(value)}")


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.0f}"
    return str(value)


if __name__ == "__main__":
    raise SystemExit(main())

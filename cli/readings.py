"""``carbonflow readings``: history and manual import of readings (数据补录).

    carbonflow readings import SITE FILE --reason "old SCADA export, Oct 2026" [--dry-run]
    carbonflow readings import SITE FILE --reason "read by hand" --source manual

FILE is a CSV (UTF-8) or XLSX table with the header ``device, metric, time, value[, unit]``
(docs/ingest.md "History import"). Rows are checked as MQTT readings are, with the same
reasons; ``--dry-run`` stores nothing and says what would be stored, rejected and recomputed.
Importing the same file again changes nothing. The same is in the API
(``POST /api/v1/sites/{site_id}/imports``). Exit code 0 when the file was read (even with
rejected rows), 1 when it could not be, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from carbonflow.settings import DatabaseSettings
from carbonflow.storage.imports import (
    ImportFileError,
    ImportReport,
    ImportRequest,
    Policy,
    run_import,
)

# Readings more than this far ahead of now are refused, as ingest refuses them [s].
FUTURE_SKEW_S = 300.0


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "readings", help="import readings from a CSV or XLSX file (history, manual entries)"
    )
    actions = parser.add_subparsers(dest="readings_action", required=True, metavar="ACTION")
    imp = actions.add_parser("import", help="check and store a file of readings (DATABASE_URL)")
    imp.add_argument("site_id", metavar="SITE")
    imp.add_argument("file", type=Path, metavar="FILE", help=".csv (UTF-8) or .xlsx")
    imp.add_argument("--reason", required=True, help="why these readings are entered (kept)")
    imp.add_argument("--source", choices=("import", "manual"), default="import")
    imp.add_argument("--dry-run", action="store_true", help="store nothing; report what would be")
    imp.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = DatabaseSettings()
    if settings.database_url is None:
        print("DATABASE_URL is not set", file=sys.stderr)
        return 2
    if len(args.reason.strip()) < 3:
        print("readings import: --reason needs at least 3 characters", file=sys.stderr)
        return 2
    try:
        data = args.file.read_bytes()
    except OSError as exc:
        print(f"readings import: cannot read {args.file}: {exc}", file=sys.stderr)
        return 1
    request = ImportRequest(
        args.site_id,
        args.file.name,
        data,
        f"{getpass.getuser()} (carbonflow readings import)",
        args.reason.strip(),
        args.source,
        args.dry_run,
    )
    now = datetime.now(UTC)
    policy = Policy(
        now, timedelta(seconds=FUTURE_SKEW_S), timedelta(days=settings.readings_retention_days)
    )
    started = time.monotonic()
    try:
        report = run_import(
            settings.database_url,
            request,
            policy,
            progress=lambda rows: print(f"  {rows} rows read", file=sys.stderr, flush=True),
        )
    except ImportFileError as exc:
        print(f"readings import: {exc}", file=sys.stderr)
        return 1
    print(summary(report, time.monotonic() - started))
    return 0


def summary(report: ImportReport, elapsed_s: float) -> str:
    """What the import did (or would do), one fact per line."""
    verb = "would store" if report.dry_run else "stored"
    lines = [
        f"{report.filename} → {report.site_id}"
        + (f" (import {report.import_id})" if report.import_id is not None else " (dry run)"),
    ]
    if report.already_imported:
        lines.append("already imported: nothing changed / 此文件已导入，未作更改")
        return "\n".join(lines)
    rate = report.rows_read / elapsed_s if elapsed_s > 0 else 0.0
    lines += [
        f"rows read        {report.rows_read} ({rate:.0f} rows/s)",
        f"{verb:<16} {report.stored}",
        f"unchanged        {report.unchanged} (stored before with the same value)",
        f"conflicts        {report.conflicts} (stored before with another value: "
        "duplicate_conflict, the stored value kept)",
        f"hours to recompute {report.hours_to_recompute}",
    ]
    lines += [f"rejected         {n} {reason}" for reason, n in sorted(report.rejected.items())]
    lines += [f"  line {p.line}: {p.reason.value}: {p.detail}" for p in report.problems[:20]]
    lines += [
        f"closed ledger {c.org_id or '(site)'} {c.month:%Y-%m} (revision {c.revision}) will differ "
        "once recomputed: revise it (docs/api.md Ledgers)"
        for c in report.closed_ledgers
    ]
    return "\n".join(lines)

"""Storage per table for the bench's year (1 000 devices × 365 days of 15-min readings,
recomputed by calc) on TimescaleDB, before and after compression; on plain PostgreSQL too when
that year is already built in this process (``python -m bench calc api sizes``).

TimescaleDB comes from the kit (``CARBONFLOW_TIMESCALEDB_KIT``, else
``../shared/tools/timescaledb`` or ``/work/shared/tools/timescaledb``; built into
``$TIMESCALEDB_PREFIX``, else ``~/.cache/timescaledb-pg15``) or from ``CARBONFLOW_PG_BIN`` when
that directory's PostgreSQL has TimescaleDB. Without either the scenario says so and records
nothing. The whole year is in the past, so every chunk the configured compression policies
select (``reading`` after 7 days, results after 45) is compressed now, chunk by chunk, as the
policy job would.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from bench.year import YearDatabase, built_year, year_database
from carbonflow.embedded.postgres import PG_BIN_ENV, grant_server_reach
from carbonflow.storage import timescale
from carbonflow.storage.db import make_engine

KIT_ENV = "CARBONFLOW_TIMESCALEDB_KIT"
KIT_CANDIDATES = (
    Path(__file__).resolve().parents[1] / "../shared/tools/timescaledb",
    Path("/work/shared/tools/timescaledb"),
)
PG_MAJOR = 15

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TableRow:
    """One table's rows and bytes before and after compression (the same when not compressed)."""

    table: str
    hypertable: bool
    rows: int
    before: timescale.TableSize
    after: timescale.TableSize

    def as_json(self) -> dict[str, object]:
        return {
            "hypertable": self.hypertable,
            "rows": self.rows,
            "before": _bytes(self.before),
            "after": _bytes(self.after),
            "bytes_per_row_before": per_row(self.before.total_bytes, self.rows),
            "bytes_per_row_after": per_row(self.after.total_bytes, self.rows),
            "compression_ratio": ratio(self.before.total_bytes, self.after.total_bytes),
        }


def _bytes(size: timescale.TableSize) -> dict[str, int]:
    return {
        "heap": size.heap_bytes,
        "index": size.index_bytes,
        "toast": size.toast_bytes,
        "total": size.total_bytes,
    }


def per_row(total_bytes: int, rows: int) -> float | None:
    return round(total_bytes / rows, 1) if rows else None


def ratio(before: int, after: int) -> float | None:
    return round(before / after, 2) if after else None


def table_rows(
    before: list[timescale.TableSize], after: list[timescale.TableSize], rows: dict[str, int]
) -> list[TableRow]:
    """Tables with rows, largest after compression first, then by name."""
    after_of = {s.table: s for s in after}
    joined = [
        TableRow(s.table, s.hypertable, rows.get(s.table, 0), s, after_of.get(s.table, s))
        for s in before
        if rows.get(s.table, 0) > 0
    ]
    return sorted(joined, key=lambda r: (-r.after.total_bytes, r.table))


def totals(rows: list[TableRow]) -> dict[str, object]:
    before, after = _sums(rows)
    return {"before": before, "after": after, "compression_ratio": ratio(before, after)}


def _sums(rows: list[TableRow]) -> tuple[int, int]:
    return sum(r.before.total_bytes for r in rows), sum(r.after.total_bytes for r in rows)


def format_table(title: str, rows: list[TableRow]) -> str:
    """A fixed-width table: rows, MB before/after, bytes per row, ratio, share of the total."""
    total_before, total_after = _sums(rows)
    lines = [
        title,
        f"  {'table':<24} {'rows':>12} {'MB before':>10} {'MB after':>9} "
        f"{'B/row before':>12} {'B/row after':>11} {'ratio':>6} {'share':>6}",
    ]
    for r in rows:
        row_ratio = ratio(r.before.total_bytes, r.after.total_bytes)
        lines.append(
            f"  {r.table + (' *' if r.hypertable else ''):<24} {r.rows:>12,} "
            f"{r.before.total_bytes / 1e6:>10.1f} {r.after.total_bytes / 1e6:>9.1f} "
            f"{per_row(r.before.total_bytes, r.rows) or 0:>12.1f} "
            f"{per_row(r.after.total_bytes, r.rows) or 0:>11.1f} "
            f"{row_ratio or 0:>6.1f} {r.after.total_bytes / (total_after or 1):>6.1%}"
        )
    lines.append(
        f"  {'total':<24} {sum(r.rows for r in rows):>12,} {total_before / 1e6:>10.1f} "
        f"{total_after / 1e6:>9.1f} {'':>12} {'':>11} "
        f"{ratio(total_before, total_after) or 0:>6.1f}"
    )
    lines.append("  (* hypertable)")
    return "\n".join(lines)


def timescaledb_bin() -> tuple[Path | None, str]:
    """The bin directory of a PostgreSQL 15 with TimescaleDB, or None and why not."""
    env_bin = os.environ.get(PG_BIN_ENV)
    if env_bin and _has_timescaledb(Path(env_bin)):
        grant_server_reach(Path(env_bin))
        return Path(env_bin), f"{PG_BIN_ENV}={env_bin}"
    named = os.environ.get(KIT_ENV)
    candidates = [Path(named)] if named else list(KIT_CANDIDATES)
    kit = next((c for c in candidates if (c / "build.sh").exists()), None)
    if kit is None:
        return None, f"no TimescaleDB kit ({KIT_ENV}, ../shared/tools/timescaledb)"
    prefix = Path(
        os.environ.get("TIMESCALEDB_PREFIX", Path.home() / f".cache/timescaledb-pg{PG_MAJOR}")
    )
    # A second build with the same sources is a no-op (the kit's stamp).
    built = subprocess.run([str(kit / "build.sh"), str(prefix)], check=False)
    bin_dir = prefix / f"lib/postgresql/{PG_MAJOR}/bin"
    if built.returncode != 0 or not _has_timescaledb(bin_dir):
        return None, f"the kit {kit} did not build into {prefix}"
    grant_server_reach(bin_dir)
    return bin_dir, f"kit {kit.resolve()} → {prefix}"


def _has_timescaledb(bin_dir: Path) -> bool:
    prefix = bin_dir.parent
    return (bin_dir / "postgres").exists() and any(
        (lib / "timescaledb.so").exists() for lib in (prefix / "lib", prefix / "lib/postgresql")
    )


def measure(year: YearDatabase, *, compress: bool) -> tuple[list[TableRow], dict[str, int]]:
    """Rows and sizes of every table of ``year``'s database, before and after compressing
    what the policies would compress (``compress``); chunks compressed per hypertable."""
    engine = make_engine(year.stack.database_url)
    try:
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(sa.text("VACUUM ANALYZE"))
        with engine.connect() as conn:
            early = sum(s.compressed_chunks for s in timescale.policy_states(conn))
            if early:
                # A policy job ran during the build: "before" is partly compressed.
                log.warning("%d chunks were compressed before the first measurement", early)
            before = timescale.table_sizes(conn)
            rows = timescale.row_counts(conn, [s.table for s in before])
            conn.commit()
            compressed = timescale.compress_due(conn) if compress else {}
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(sa.text("VACUUM ANALYZE"))
        with engine.connect() as conn:
            after = timescale.table_sizes(conn)
    finally:
        engine.dispose()
    return table_rows(before, after, rows), compressed


def run(quick: bool = False) -> dict[str, object]:
    results: dict[str, object] = {}
    plain = built_year(quick)
    if plain is not None:
        rows, _ = measure(plain, compress=False)
        print(format_table("table sizes, plain PostgreSQL (the calc/api year):", rows))
        results["table_sizes_plain"] = {r.table: r.as_json() for r in rows}
        results["table_sizes_plain_total"] = totals(rows)
    bin_dir, source = timescaledb_bin()
    if bin_dir is None:
        print(f"sizes: TimescaleDB part skipped: {source}")
        results["table_sizes_timescaledb_skipped"] = source
        return results
    started = time.monotonic()
    year = year_database(quick, bin_dir)
    build_s = time.monotonic() - started
    started = time.monotonic()
    rows, compressed = measure(year, compress=True)
    measure_s = time.monotonic() - started
    print(format_table(f"table sizes, TimescaleDB ({source}), compressed:", rows))
    results["table_sizes_timescaledb"] = {r.table: r.as_json() for r in rows}
    results["table_sizes_timescaledb_total"] = {
        **totals(rows),
        "devices": year.stats["devices"],
        "days": year.stats["days"],
        "chunks_compressed": compressed,
        "year_build_s": round(build_s, 1),
        "measure_and_compress_s": round(measure_s, 1),
    }
    return results

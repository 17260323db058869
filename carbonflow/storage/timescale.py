"""TimescaleDB when present, plain PostgreSQL when not — with identical query results.

With the extension: ``reading``, ``calc_interval`` and ``calc_carbon`` are hypertables whose
chunk intervals follow from the expected reading rate and the database's memory
(:func:`chunk_interval_s`); each is compressed some days after its chunks close, and ``reading``
is dropped after the retention period. No hypertable gets TimescaleDB's default time index
(``create_default_indexes => false``): every primary key ends in the time column, chunk
exclusion serves site-wide time ranges, and the migrated schema must equal
``carbonflow/storage/schema.py`` on both layouts. The settings are applied to the policies again
after every migration (:func:`apply_policies`), so changing them takes effect on the next
``carbonflow migrate`` (or service start with ``--migrate``).

Without it: the same tables with their primary-key B-trees plus a BRIN index on ``reading.ts``
for site-wide time ranges (cheap because rows arrive roughly in time order). Either way every
query reads the same rows; only their physical layout differs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import sqlalchemy as sa

log = logging.getLogger(__name__)

HOUR_S = 3600
DAY_S = 86_400
# Timescale's sizing advice: the recent chunks of all active hypertables, indexes included,
# fit in 25 % of the database server's main memory.
CHUNK_MEMORY_FRACTION = 0.25
# Measured bytes per row, indexes included (docs/operations.md, "Sizing").
READING_BYTES = 101.0
INTERVAL_BYTES = 129.0


# A recompute rewrites whole periods, compressed ones too: TimescaleDB refuses a transaction
# that decompresses more than 100 000 rows by default (a month of one large site's intervals is
# more). The calc session lifts the limit; on plain PostgreSQL the SET only defines an unused
# placeholder setting.
UNLIMITED_DECOMPRESSION = "SET timescaledb.max_tuples_decompressed_per_dml_transaction = 0"


class TimescaleNotPreloadedError(RuntimeError):
    """The extension is installed on the server but not in ``shared_preload_libraries``."""


@dataclass(frozen=True, slots=True)
class Hypertable:
    """One hypertable: its time column, compression layout and share of the chunk budget."""

    table: str
    time_column: str
    segment_by: str
    order_by: str
    budget_share: float  # of CHUNK_MEMORY_FRACTION × memory
    bytes_per_row: float  # [B], indexes included
    min_chunk_s: int
    max_chunk_s: int


READING = Hypertable(
    "reading", "ts", "device_pk, metric_id", "ts", 0.5, READING_BYTES, HOUR_S, 7 * DAY_S
)
# Result rows per second are at most the reading rate (one 15-min interval per counter reading
# at 15-min readings, fewer at faster ones); calc_carbon has far fewer rows (per site and
# source), so the interval rate bounds both.
RESULTS = (
    Hypertable(
        "calc_interval",
        "start_ts",
        "device_pk, metric_id",
        "start_ts",
        0.25,
        INTERVAL_BYTES,
        DAY_S,
        30 * DAY_S,
    ),
    Hypertable(
        "calc_carbon",
        "start_ts",
        "site_id",
        "start_ts, org_id, node_id, carrier, category, basis, gas",
        0.25,
        INTERVAL_BYTES,
        DAY_S,
        30 * DAY_S,
    ),
)
HYPERTABLES = tuple(h.table for h in RESULTS)


@dataclass(frozen=True, slots=True)
class StoragePolicy:
    """The configured sizes and ages the TimescaleDB policies follow (docs/operations.md)."""

    retention_days: int = 3650
    compress_after_days: int = 7
    readings_per_s: float = 1.0  # expected mean rate of stored readings [1/s]
    memory_gib: float = 4.0  # main memory of the database server [GiB]
    results_compress_after_days: int = 45

    def chunk_s(self, hypertable: Hypertable) -> int:
        return chunk_interval_s(
            rows_per_s=self.readings_per_s,
            bytes_per_row=hypertable.bytes_per_row,
            budget_bytes=self.memory_gib * 2**30 * CHUNK_MEMORY_FRACTION * hypertable.budget_share,
            min_s=hypertable.min_chunk_s,
            max_s=hypertable.max_chunk_s,
        )

    def compress_after_days_of(self, hypertable: Hypertable) -> int:
        return (
            self.compress_after_days if hypertable is READING else self.results_compress_after_days
        )


def chunk_interval_s(
    *, rows_per_s: float, bytes_per_row: float, budget_bytes: float, min_s: int, max_s: int
) -> int:
    """The chunk interval [s] whose chunk holds ``budget_bytes``, within bounds.

    ``budget_bytes / (rows_per_s × bytes_per_row)`` is how long it takes to write that much;
    rounded down to whole days (whole hours below a day) and clamped to ``[min_s, max_s]``.
    A rate of 0 means an unknown data volume: the largest interval.
    """
    if rows_per_s <= 0 or bytes_per_row <= 0:
        return max_s
    seconds = budget_bytes / (rows_per_s * bytes_per_row)
    unit = DAY_S if seconds >= DAY_S else HOUR_S
    return max(min_s, min(max_s, int(seconds // unit) * unit))


def describe_s(seconds: int) -> str:
    """``seconds`` as TimescaleDB shows an interval in our units: ``7 days``, ``4 hours``."""
    if seconds % DAY_S == 0:
        days = seconds // DAY_S
        return f"{days} day" if days == 1 else f"{days} days"
    hours = seconds // HOUR_S
    return f"{hours} hour" if hours == 1 else f"{hours} hours"


def available_version(conn: sa.Connection) -> str | None:
    """The installable TimescaleDB version on this server, or None."""
    row = conn.execute(
        sa.text("SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'")
    ).first()
    return None if row is None else str(row[0])


def installed_version(conn: sa.Connection) -> str | None:
    row = conn.execute(
        sa.text("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")
    ).first()
    return None if row is None else str(row[0])


def preloaded(conn: sa.Connection) -> bool:
    """Whether the server loads TimescaleDB at start (without it no policy job ever runs)."""
    libraries = conn.execute(sa.text("SELECT current_setting('shared_preload_libraries')"))
    names = {name.strip() for name in str(libraries.scalar_one()).split(",")}
    return "timescaledb" in names


def check_preload(conn: sa.Connection, *, use_timescaledb: bool | None) -> None:
    """Raise :class:`TimescaleNotPreloadedError` before anything is migrated when the layout
    would be TimescaleDB's but the server cannot create the extension (``CREATE EXTENSION``
    then fails with a FATAL error that closes the connection)."""
    if use_timescaledb is False or installed_version(conn) is not None:
        return
    if available_version(conn) is None or preloaded(conn):
        return
    raise TimescaleNotPreloadedError(
        "TimescaleDB is installed on this PostgreSQL server but not preloaded: add "
        "shared_preload_libraries = 'timescaledb' to postgresql.conf and restart the server, "
        "or migrate with --no-timescaledb for the plain PostgreSQL layout. Nothing was migrated."
        " / 服务器已安装 TimescaleDB 但未预加载：请在 postgresql.conf 中设置 "
        "shared_preload_libraries = 'timescaledb' 并重启，或使用 --no-timescaledb。未做任何迁移。"
    )


def setup_readings(conn: sa.Connection, *, use_timescaledb: bool | None = None) -> str:
    """Set up the physical layout of ``reading`` (revision 0001); returns a one-line description.

    ``use_timescaledb=None`` means: use it when the server can install it. The policies are
    not set here but by :func:`apply_policies` after every migration.
    """
    wanted = use_timescaledb
    version = installed_version(conn)
    if version is None and wanted is not False and available_version(conn) is not None:
        # Not preloaded was refused before migrating (check_preload); what is left here is
        # e.g. a role that may not create extensions: fall back and say so.
        try:
            with conn.begin_nested():
                conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS timescaledb"))
            version = installed_version(conn)
        except sa.exc.DBAPIError as exc:
            log.warning("TimescaleDB is available but could not be created: %s", exc.orig)
    if wanted is True and version is None:
        raise RuntimeError("TimescaleDB was required but the extension is not installable here")

    if version is not None and wanted is not False:
        _create_hypertable(conn, READING, StoragePolicy().chunk_s(READING))
        enable_compression(conn, READING)
        detail = f"TimescaleDB {version}: reading is a hypertable"
        mode = True
    else:
        conn.execute(sa.text("CREATE INDEX reading_ts_brin ON reading USING brin (ts)"))
        detail = "plain PostgreSQL: reading with primary-key B-tree and BRIN(ts); no compression"
        mode = False
    _record_mode(conn, mode=mode, version=version if mode else None, detail=detail)
    return detail


def _record_mode(conn: sa.Connection, *, mode: bool, version: str | None, detail: str) -> None:
    conn.execute(
        sa.text(
            "INSERT INTO storage_mode (singleton, timescaledb, timescaledb_version, detail) "
            "VALUES (true, :mode, :version, :detail) "
            "ON CONFLICT (singleton) DO UPDATE SET timescaledb = excluded.timescaledb, "
            "timescaledb_version = excluded.timescaledb_version, detail = excluded.detail, "
            "updated_at = now()"
        ),
        {"mode": mode, "version": version, "detail": detail},
    )


def _create_hypertable(conn: sa.Connection, hypertable: Hypertable, chunk_s: int) -> None:
    conn.execute(
        sa.text(
            f"SELECT create_hypertable('{hypertable.table}', '{hypertable.time_column}', "
            f"chunk_time_interval => INTERVAL '{chunk_s} seconds', "
            "create_default_indexes => false, migrate_data => true)"
        )
    )


def enable_compression(conn: sa.Connection, hypertable: Hypertable) -> None:
    """Compression layout of one hypertable (segments per device and metric, or per site)."""
    conn.execute(
        sa.text(
            f"ALTER TABLE {hypertable.table} SET (timescaledb.compress, "
            f"timescaledb.compress_segmentby = '{hypertable.segment_by}', "
            f"timescaledb.compress_orderby = '{hypertable.order_by}')"
        )
    )


# Result tables: 30-day chunks keep a month of 15-min rows in one chunk (revision 0002; the
# policies set the interval from the configured rate afterwards).
RESULT_CHUNK_INTERVAL_S = 30 * DAY_S


def timescaledb_in_use(conn: sa.Connection) -> bool:
    """Whether revision 0001 set up ``reading`` as a hypertable on this database."""
    row = conn.execute(sa.text("SELECT timescaledb FROM storage_mode")).first()
    return bool(row[0]) if row is not None else False


def setup_results(conn: sa.Connection) -> str:
    """Make the big result tables hypertables when TimescaleDB is in use; describe the layout."""
    if not timescaledb_in_use(conn):
        return "plain PostgreSQL: calc result tables with primary-key B-trees"
    for hypertable in RESULTS:
        _create_hypertable(conn, hypertable, RESULT_CHUNK_INTERVAL_S)
    detail = f"TimescaleDB: {', '.join(HYPERTABLES)} are hypertables"
    log.info("%s", detail)
    return detail


@dataclass(frozen=True, slots=True)
class PolicyState:
    """What one hypertable's policies are, as the server reports them."""

    table: str
    chunk_interval: str
    compression: bool
    segment_by: str
    compress_after: str | None
    drop_after: str | None
    chunks: int
    compressed_chunks: int
    total_bytes: int


def _job_config(conn: sa.Connection, table: str, proc: str, key: str) -> str | None:
    row = conn.execute(
        sa.text(
            "SELECT config->>:key FROM timescaledb_information.jobs "
            "WHERE hypertable_schema = 'public' AND hypertable_name = :table "
            "AND proc_name = :proc"
        ),
        {"table": table, "proc": proc, "key": key},
    ).first()
    return None if row is None else str(row[0])


def _interval_equals(conn: sa.Connection, text: str | None, days: int) -> bool:
    if text is None:
        return False
    same = conn.execute(
        sa.text("SELECT CAST(:text AS interval) = make_interval(days => :days)"),
        {"text": text, "days": days},
    ).scalar_one()
    return bool(same)


def _ensure_policy(conn: sa.Connection, table: str, kind: str, days: int) -> None:
    """Compression (``kind='compression'``) or retention policy of ``table`` after ``days``;
    replaced only when its age differs, so a second migration keeps the job and its history."""
    proc, key = (
        ("policy_compression", "compress_after")
        if kind == "compression"
        else ("policy_retention", "drop_after")
    )
    if _interval_equals(conn, _job_config(conn, table, proc, key), days):
        return
    conn.execute(sa.text(f"SELECT remove_{kind}_policy('{table}', if_exists => true)"))
    conn.execute(sa.text(f"SELECT add_{kind}_policy('{table}', make_interval(days => {days}))"))


def _compression_enabled(conn: sa.Connection, table: str) -> bool:
    row = conn.execute(
        sa.text(
            "SELECT compression_enabled FROM timescaledb_information.hypertables "
            "WHERE hypertable_schema = 'public' AND hypertable_name = :table"
        ),
        {"table": table},
    ).first()
    return bool(row[0]) if row is not None else False


def apply_policies(conn: sa.Connection, policy: StoragePolicy) -> str:
    """Bring chunk intervals, compression and retention to ``policy``; describe the result.

    On plain PostgreSQL there is nothing to apply. New chunk intervals take effect for chunks
    created from now on (existing chunks keep their bounds).
    """
    if not timescaledb_in_use(conn):
        return str(conn.execute(sa.text("SELECT detail FROM storage_mode")).scalar_one())
    if not preloaded(conn):
        log.warning("TimescaleDB is not preloaded on this server: no policy job will run")
    parts = []
    for hypertable in (READING, *RESULTS):
        chunk_s = policy.chunk_s(hypertable)
        conn.execute(
            sa.text(
                f"SELECT set_chunk_time_interval('{hypertable.table}', "
                f"INTERVAL '{chunk_s} seconds')"
            )
        )
        if not _compression_enabled(conn, hypertable.table):
            enable_compression(conn, hypertable)
        after = policy.compress_after_days_of(hypertable)
        _ensure_policy(conn, hypertable.table, "compression", after)
        parts.append(f"{hypertable.table} {describe_s(chunk_s)} chunks, compressed after {after} d")
    _ensure_policy(conn, READING.table, "retention", policy.retention_days)
    version = installed_version(conn)
    detail = (
        f"TimescaleDB {version}: {'; '.join(parts)}; reading retained {policy.retention_days} d"
    )
    _record_mode(conn, mode=True, version=version, detail=detail)
    return detail


def policy_states(conn: sa.Connection) -> list[PolicyState]:
    """Every hypertable with its chunk interval, compression, policies and size (empty on
    plain PostgreSQL)."""
    if not timescaledb_in_use(conn):
        return []
    states = []
    for hypertable in (READING, *RESULTS):
        table = hypertable.table
        row = conn.execute(
            sa.text(
                "SELECT d.time_interval::text, h.compression_enabled, "
                "coalesce((SELECT string_agg(attname, ', ' ORDER BY segmentby_column_index) "
                "  FROM timescaledb_information.compression_settings s "
                "  WHERE s.hypertable_schema = 'public' AND s.hypertable_name = :t "
                "  AND segmentby_column_index IS NOT NULL), ''), "
                "(SELECT count(*) FROM timescaledb_information.chunks c "
                "  WHERE c.hypertable_schema = 'public' AND c.hypertable_name = :t), "
                "(SELECT count(*) FROM timescaledb_information.chunks c "
                "  WHERE c.hypertable_schema = 'public' AND c.hypertable_name = :t "
                "  AND c.is_compressed), "
                "coalesce(hypertable_size(CAST(:t AS regclass)), 0) "
                "FROM timescaledb_information.hypertables h "
                "JOIN timescaledb_information.dimensions d USING (hypertable_schema, "
                "hypertable_name) WHERE h.hypertable_schema = 'public' AND h.hypertable_name = :t"
            ),
            {"t": table},
        ).first()
        if row is None:
            continue
        states.append(
            PolicyState(
                table=table,
                chunk_interval=str(row[0]),
                compression=bool(row[1]),
                segment_by=str(row[2]),
                compress_after=_job_config(conn, table, "policy_compression", "compress_after"),
                drop_after=_job_config(conn, table, "policy_retention", "drop_after"),
                chunks=int(row[3]),
                compressed_chunks=int(row[4]),
                total_bytes=int(row[5]),
            )
        )
    return states


@dataclass(frozen=True, slots=True)
class TableSize:
    """On-disk bytes of one table, its chunks included on TimescaleDB (``*_detailed_size``)."""

    table: str
    hypertable: bool
    heap_bytes: int
    index_bytes: int
    toast_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.heap_bytes + self.index_bytes + self.toast_bytes


def table_sizes(conn: sa.Connection) -> list[TableSize]:
    """Every table of the public schema with its heap, index and TOAST bytes.

    Hypertables are measured with ``hypertable_detailed_size`` (their chunks, compressed ones
    included; the parent itself is empty); plain tables with ``pg_table_size`` /
    ``pg_indexes_size`` and their TOAST table's total. Heap counts free-space and
    visibility maps, as ``pg_table_size`` does.
    """
    hypertables = set(_hypertable_names(conn))
    sizes = []
    rows = conn.execute(
        sa.text(
            "SELECT c.relname, pg_table_size(c.oid) - coalesce(pg_total_relation_size("
            "NULLIF(c.reltoastrelid, 0)), 0), pg_indexes_size(c.oid), "
            "coalesce(pg_total_relation_size(NULLIF(c.reltoastrelid, 0)), 0) "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY c.relname"
        )
    ).all()
    for name, *plain in rows:
        parts = plain
        if name in hypertables:
            parts = list(
                conn.execute(
                    sa.text(
                        "SELECT coalesce(sum(table_bytes), 0), coalesce(sum(index_bytes), 0), "
                        "coalesce(sum(toast_bytes), 0) "
                        "FROM hypertable_detailed_size(CAST(:t AS regclass))"
                    ),
                    {"t": name},
                ).one()
            )
        heap, index, toast = (int(p) for p in parts)
        sizes.append(TableSize(str(name), name in hypertables, heap, index, toast))
    return sizes


def _hypertable_names(conn: sa.Connection) -> list[str]:
    if installed_version(conn) is None:
        return []
    return [
        str(name)
        for (name,) in conn.execute(
            sa.text(
                "SELECT hypertable_name FROM timescaledb_information.hypertables "
                "WHERE hypertable_schema = 'public'"
            )
        )
    ]


def compress_due(conn: sa.Connection) -> dict[str, int]:
    """Compress now every chunk the configured compression policies would compress (chunks
    older than each policy's ``compress_after``, not yet compressed); chunks compressed per
    table. Each chunk is its own transaction, as in the policy job: commit per chunk."""
    done: dict[str, int] = {}
    for table in _hypertable_names(conn):
        after = _job_config(conn, table, "policy_compression", "compress_after")
        if after is None:
            continue
        chunks = conn.execute(
            sa.text(
                "SELECT c::text FROM show_chunks(CAST(:t AS regclass), "
                "older_than => CAST(:after AS interval)) c "
                "JOIN timescaledb_information.chunks i "
                "ON format('%I.%I', i.chunk_schema, i.chunk_name)::regclass = c "
                "WHERE NOT i.is_compressed"
            ),
            {"t": table, "after": after},
        ).all()
        conn.commit()
        for (chunk,) in chunks:
            conn.execute(
                sa.text("SELECT compress_chunk(CAST(:c AS regclass), if_not_compressed => true)"),
                {"c": chunk},
            )
            conn.commit()
        done[table] = len(chunks)
    return done


def row_counts(conn: sa.Connection, tables: list[str]) -> dict[str, int]:
    """Exact ``count(*)`` of each table (decompresses compressed chunks: count before)."""
    preparer = conn.dialect.identifier_preparer
    return {
        table: int(
            conn.execute(sa.text(f"SELECT count(*) FROM {preparer.quote(table)}")).scalar_one()
        )
        for table in tables
    }

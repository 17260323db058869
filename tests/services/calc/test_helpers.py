"""Small pieces of the calc shell: ranges, local period tiles, metric choice, and the rule that
results never depend on TimescaleDB-only SQL."""

from __future__ import annotations

import ast
import itertools
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from carbonflow.domain.calendar import merge_ranges
from carbonflow.domain.site.plan import flow_metric, plan_from_document, reverse_metric
from carbonflow.sites.loader import load_site_file
from carbonflow.storage.rollup import local_tiles, tile_runs
from tests.support import ROOT

T = datetime(2025, 3, 1, tzinfo=UTC)
H = timedelta(hours=1)


def test_merge_ranges() -> None:
    assert merge_ranges([(T + 3 * H, T + 4 * H), (T, T + H), (T + H, T + 2 * H)]) == [
        (T, T + 2 * H),
        (T + 3 * H, T + 4 * H),
    ]
    assert merge_ranges([]) == []


def test_local_tiles_use_whole_months_days_and_hours_of_the_site_zone() -> None:
    # Shanghai is UTC+8: local midnight 1 March = 28 Feb 16:00 UTC.
    start = datetime(2025, 2, 28, 15, 45, tzinfo=UTC)
    end = datetime(2025, 4, 1, 17, 15, tzinfo=UTC)
    tiles = local_tiles(start, end, "Asia/Shanghai")
    assert [g for g, _a, _b in tiles] == ["slot", "month", "day", "hour", "slot"]
    assert tiles[1][1:] == (
        datetime(2025, 2, 28, 16, tzinfo=UTC),
        datetime(2025, 3, 31, 16, tzinfo=UTC),
    )
    assert tiles[0][1] == start and tiles[-1][2] == end
    # The tiles cover [start, end) without gap or overlap.
    assert all(a[2] == b[1] for a, b in itertools.pairwise(tiles))


def test_tile_runs_join_consecutive_tiles_of_a_grain() -> None:
    # 1 Mar 22:30 → 4 Mar 02:15 Shanghai: slots, hours, days, hours, slots.
    start = datetime(2025, 3, 1, 14, 30, tzinfo=UTC)
    end = datetime(2025, 3, 3, 18, 15, tzinfo=UTC)
    tiles = local_tiles(start, end, "Asia/Shanghai")
    runs = tile_runs(tiles)
    hour = timedelta(hours=1)
    assert runs["hour"] == [
        (datetime(2025, 3, 1, 15, tzinfo=UTC), datetime(2025, 3, 1, 16, tzinfo=UTC)),
        (datetime(2025, 3, 3, 16, tzinfo=UTC), datetime(2025, 3, 3, 16, tzinfo=UTC) + 2 * hour),
    ]
    assert runs["day"] == [
        (datetime(2025, 3, 1, 16, tzinfo=UTC), datetime(2025, 3, 3, 16, tzinfo=UTC))
    ]
    assert runs["slot"] == [
        (start, datetime(2025, 3, 1, 15, tzinfo=UTC)),
        (datetime(2025, 3, 3, 18, tzinfo=UTC), end),
    ]
    # Each run covers exactly its tiles.
    covered = sum((hi - lo for runs_ in runs.values() for lo, hi in runs_), timedelta())
    assert covered == end - start


def test_which_register_carries_a_devices_flow() -> None:
    plan = plan_from_document(load_site_file("carbonflow/sites/examples/inner-mongolia-park.yaml"))
    by_id = {d.device_id: d for d in plan.devices}

    def name(device_id: str, reverse: bool = False) -> str | None:
        d = by_id[device_id]
        m = reverse_metric(d) if reverse else flow_metric(d)
        return None if m is None else m.name

    assert name("grid-line-1") == "energy_import_kwh"
    assert name("grid-line-1", reverse=True) == "energy_export_kwh"
    assert name("pv-block-1") == "energy_export_kwh"
    assert name("bess-1") == "energy_discharge_kwh"
    assert name("bess-1", reverse=True) == "energy_charge_kwh"
    assert name("gas-gate-meter") == "volume_nm3"
    assert name("lng-dispenser") == "lng_t"
    assert name("diesel-dispenser") == "volume_l"
    assert name("weighbridge") == "handled_t"
    assert name("dc-it-energy") == "output_kwh"
    assert name("steam-boiler-output") == "heat_gj"
    assert name("pv-weather") is None  # gauges only


_TIMESCALE_ONLY = re.compile(
    r"(?<![.\w])(time_bucket|time_bucket_gapfill|locf|interpolate|first|last|histogram|"
    r"approximate_row_count|add_continuous_aggregate_policy)\s*\(",
    re.IGNORECASE,
)


def _code_and_sql(path: Path) -> str:
    """The module's text without its docstrings and comments (prose may say "newest first (")."""
    lines = path.read_text(encoding="utf-8").split("\n")
    for node in ast.walk(ast.parse("\n".join(lines))):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            doc = body[0]
            if isinstance(doc.value, ast.Constant) and isinstance(doc.value.value, str):
                for i in range(doc.lineno - 1, doc.end_lineno or doc.lineno):
                    lines[i] = ""
    return "\n".join(re.sub(r"#.*", "", line) for line in lines)


def test_result_queries_use_no_timescaledb_only_function() -> None:
    """Identical results on plain PostgreSQL and TimescaleDB: the SQL is core PostgreSQL."""
    root = ROOT
    for path in sorted((root / "carbonflow/storage").glob("*.py")):
        if path.name == "timescale.py":
            continue
        assert not _TIMESCALE_ONLY.search(_code_and_sql(path)), path.name
    layout = (root / "carbonflow/storage/timescale.py").read_text(encoding="utf-8")
    # The layout module may create hypertables, and only that.
    assert "create_hypertable" in layout and "time_bucket(" not in layout

"""The pure parts of the storage-size scenario (bench/sizes.py): joining sizes before and after
compression with row counts, and the printed table."""

from __future__ import annotations

from bench.sizes import format_table, per_row, ratio, table_rows, totals
from carbonflow.storage.timescale import TableSize


def test_table_rows_join_before_after_and_rows() -> None:
    before = [
        TableSize("reading", True, 700, 300, 0),
        TableSize("calc_interval_rollup", False, 60, 20, 0),
        TableSize("empty", False, 8192, 8192, 0),
    ]
    after = [
        TableSize("reading", True, 60, 5, 35),
        TableSize("calc_interval_rollup", False, 60, 20, 0),
    ]
    rows = table_rows(before, after, {"reading": 10, "calc_interval_rollup": 4})
    # Tables without rows are left out; largest after compression first.
    assert [r.table for r in rows] == ["reading", "calc_interval_rollup"]
    reading = rows[0].as_json()
    assert reading["before"] == {"heap": 700, "index": 300, "toast": 0, "total": 1000}
    assert reading["after"] == {"heap": 60, "index": 5, "toast": 35, "total": 100}
    assert reading["bytes_per_row_before"] == 100.0
    assert reading["bytes_per_row_after"] == 10.0
    assert reading["compression_ratio"] == 10.0
    assert rows[1].as_json()["compression_ratio"] == 1.0
    assert totals(rows) == {"before": 1080, "after": 180, "compression_ratio": 6.0}


def test_ratios_of_nothing_are_undefined() -> None:
    assert per_row(100, 0) is None
    assert ratio(100, 0) is None
    assert per_row(100, 3) == 33.3


def test_format_table_shows_every_table_and_the_total() -> None:
    rows = table_rows(
        [TableSize("reading", True, 2_000_000, 1_000_000, 0)],
        [TableSize("reading", True, 200_000, 0, 100_000)],
        {"reading": 30_000},
    )
    text = format_table("sizes:", rows).splitlines()
    assert text[0] == "sizes:"
    assert text[2].split() == [
        "reading",
        "*",
        "30,000",
        "3.0",
        "0.3",
        "100.0",
        "10.0",
        "10.0",
        "100.0%",
    ]
    assert text[3].split() == ["total", "30,000", "3.0", "0.3", "10.0"]

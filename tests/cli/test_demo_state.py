"""The demo's restart rules without starting anything: where the back-fill starts, what the
state file keeps, what ``--reset`` removes, which port is chosen."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from carbonflow.storage.reading_frontier import SiteFrontier
from cli.demo import DemoState, backfill_start, choose_port, reset_data_dir

NOW = datetime(2026, 12, 6, 4, 30, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
DAY = timedelta(hours=24)


def test_first_run_back_fills_the_whole_span() -> None:
    # no stored reading: 24 h before 04:30 → 2026-12-05 04:30
    assert backfill_start(NOW, DAY, SiteFrontier(None), MINUTE) == NOW - DAY


def test_restart_resumes_one_step_after_the_newest_stored_reading() -> None:
    last = NOW - timedelta(minutes=42)  # stopped at 03:48 → resume at 03:49
    assert backfill_start(NOW, DAY, SiteFrontier(last), MINUTE) == datetime(
        2026, 12, 6, 3, 49, tzinfo=UTC
    )


def test_restart_after_a_long_pause_back_fills_at_most_the_configured_span() -> None:
    last = NOW - timedelta(days=10)
    assert backfill_start(NOW, DAY, SiteFrontier(last), MINUTE) == NOW - DAY


def test_restart_with_a_reading_of_this_minute_starts_with_the_next() -> None:
    # stored up to 04:30 (now): the simulator's first reading is 04:31, published when due
    assert backfill_start(NOW, DAY, SiteFrontier(NOW), MINUTE) == NOW + MINUTE


def test_a_reading_in_the_future_never_moves_the_start_past_the_next_step() -> None:
    later = NOW + timedelta(minutes=5)  # a device clock ahead
    assert backfill_start(NOW, DAY, SiteFrontier(later), MINUTE) == NOW + MINUTE


def test_start_is_floored_to_the_step() -> None:
    last = datetime(2026, 12, 6, 4, 0, 37, tzinfo=UTC)  # + 1 min = 04:01:37 → 04:01
    assert backfill_start(NOW, DAY, SiteFrontier(last), MINUTE) == datetime(
        2026, 12, 6, 4, 1, tzinfo=UTC
    )


def test_state_round_trips_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "demo-state.json"
    DemoState(55432, 51883, 8000, "k" * 43).write(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert DemoState.read(path) == DemoState(55432, 51883, 8000, "k" * 43)


@pytest.mark.parametrize("text", ["", "not json", "[1, 2]", '{"postgres_port": "x"}'])
def test_unreadable_state_starts_afresh(tmp_path: Path, text: str) -> None:
    path = tmp_path / "demo-state.json"
    path.write_text(text)
    assert DemoState.read(path) == DemoState()


def test_missing_state_starts_afresh(tmp_path: Path) -> None:
    assert DemoState.read(tmp_path / "absent.json") == DemoState()


def test_reset_removes_only_what_the_demo_keeps(tmp_path: Path) -> None:
    (tmp_path / "postgres").mkdir()
    (tmp_path / "postgres" / "PG_VERSION").write_text("16")
    (tmp_path / "mqtt").mkdir()
    (tmp_path / "demo-state.json").write_text("{}")
    (tmp_path / "notes.txt").write_text("mine")
    removed = reset_data_dir(tmp_path)
    assert sorted(p.name for p in removed) == ["demo-state.json", "mqtt", "postgres"]
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
    assert reset_data_dir(tmp_path) == []


def test_port_from_the_environment_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARBONFLOW_TEST_PORT", "6001")
    assert choose_port("CARBONFLOW_TEST_PORT", 6002, 6003) == 6001


def test_saved_port_is_kept_and_a_taken_one_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CARBONFLOW_TEST_PORT", raising=False)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            idle = probe.getsockname()[1]
        # the saved port is free: kept
        assert choose_port("CARBONFLOW_TEST_PORT", idle, busy) == idle
        # saved and default both taken: a free one
        chosen = choose_port("CARBONFLOW_TEST_PORT", busy, busy)
        assert chosen not in (busy, 0)

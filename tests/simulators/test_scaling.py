"""Scaling a site's fleet: clones as a valid site document the registry and simulator share."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from carbonflow.sites.loader import EXAMPLES, load_site_file
from cli.simulate import parse_start, resolve_site
from simulators.engine import base_device_id, parse_speed, published_ids
from simulators.scaling import fleet, scale_site


def test_a_fleet_of_exactly_n_devices() -> None:
    doc = load_site_file(EXAMPLES / "shanxi-mine.yaml")  # 44 devices
    scaled = fleet(doc, 5000)
    assert scaled.replicas == 114  # ⌈5000 / 44⌉
    ids = [d.id for d in scaled.doc.devices]
    assert len(ids) == len(set(ids)) == 5000 and tuple(ids) == scaled.devices
    assert ids[:44] == [d.id for d in doc.devices]  # replica 0 is the site as written
    assert ids[44] == "grid-line-1-r1" and ids[-1] == "drainage-pumps-r113"
    grid_edge = next(e for e in scaled.doc.edges if e.source == "grid-110kv")
    assert len(grid_edge.meters) == 2 * 114  # both lines of every replica
    last_fed = next(e for e in scaled.doc.edges if "ev-charging" in e.meters)
    assert "ev-charging-r113" not in last_fed.meters  # trimmed devices leave the edges too
    line = next(d for d in scaled.doc.devices if d.id == "grid-line-1-r7")
    assert line.serial == "3310012345678-r7" and line.multiplier == 132_000
    assert published_ids(doc, 5000) == ids
    assert base_device_id("grid-line-1-r7", doc) == "grid-line-1"


def test_scale_site_clones_every_device_and_one_is_the_site() -> None:
    doc = load_site_file(EXAMPLES / "inner-mongolia-park.yaml")
    assert fleet(doc).doc is doc
    tripled = scale_site(doc, 3)
    assert len(tripled.devices) == 3 * len(doc.devices)
    assert {d.product for d in tripled.devices if d.role.value == "production"} == {
        "cathode-material", "it-energy", "goods-handled"
    }  # fmt: skip
    with pytest.raises(ValueError, match="at least 1"):
        scale_site(doc, 0)


def test_command_line_helpers() -> None:
    assert resolve_site("shanxi-mine").name == "shanxi-mine.yaml"
    assert resolve_site("inner-mongolia-ordos-park").name == "inner-mongolia-park.yaml"
    with pytest.raises(ValueError, match="examples"):
        resolve_site("no-such-site")
    now = datetime(2026, 11, 21, 10, 7, 31, tzinfo=UTC)
    assert parse_start("now", timedelta(minutes=15), now) == datetime(
        2026, 11, 21, 10, 0, tzinfo=UTC
    )
    assert parse_start("now-30d", timedelta(minutes=1), now) == datetime(
        2026, 10, 22, 10, 7, tzinfo=UTC
    )
    with pytest.raises(ValueError, match="offset"):
        parse_start("2026-10-01T00:00", timedelta(minutes=1), now)
    assert parse_speed("realtime") == 1.0 and parse_speed("60x") == 60.0
    assert parse_speed("max") == float("inf")
    with pytest.raises(ValueError, match="speed"):
        parse_speed("fast")


def test_pacing_never_runs_ahead_of_the_clock() -> None:
    from simulators.runner import _Pacer

    now = 1_000_000.0  # epoch seconds of the (injected) wall clock
    # as fast as possible: due at its own time, so only the past goes out at once
    fast = _Pacer(now - 3600, math.inf, 60.0, lambda: now)
    assert fast.due(now - 60) == now - 60 and fast.due(now + 60) == now + 60
    # 60×: an hour of simulated time per wall minute from the moment it started
    replay = _Pacer(now - 86400, 60.0, 60.0, lambda: now)
    assert replay.due(now - 86400 + 3600) == now + 60
    # a live run started "now" (floored to the minute) keeps readings on their minute
    live = _Pacer(now - 20, 1.0, 60.0, lambda: now)
    assert live.due(now + 40) == now + 40

"""What one site's cycle is to do: reading windows from dirty hours and request chunks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from carbonflow.domain.site.plan import SitePlan, plan_from_document
from carbonflow.sites.loader import EXAMPLES, load_site_file
from carbonflow.storage.calc_queue import DirtyHour, Request
from services.calc.site_cycle import Limits, site_todo

T = datetime(2025, 3, 1, tzinfo=UTC)
H = timedelta(hours=1)
DAY = timedelta(days=1)
LIMITS = Limits(request_chunk=timedelta(days=31), max_intervals=400_000, late_after=H)


def _plan() -> SitePlan:
    return plan_from_document(load_site_file(EXAMPLES / "inner-mongolia-park.yaml"))


def _request(layer: str, start: datetime, end: datetime, device_pk: int | None = None) -> Request:
    return Request(7, "site", device_pk, layer, start, end, start, "test")


def test_a_dirty_hour_is_a_window_of_every_quantity_metric_of_its_device() -> None:
    plan = _plan()
    device = next(d for d in plan.devices if len(d.quantity_metrics()) > 1)
    todo = site_todo(
        plan, [DirtyHour(device.device_pk, T, T), DirtyHour(999_999, T, T)], [], LIMITS
    )
    assert todo.windows == {
        (device.device_pk, m.metric_id): [(T, T + H)] for m in device.quantity_metrics()
    }
    assert todo.carbon == [] and todo.advanced == []


def test_a_request_advances_by_a_chunk_cut_to_the_interval_budget() -> None:
    plan = _plan()
    metrics = sum(len(d.quantity_metrics()) for d in plan.devices)
    # A budget of 10 intervals per metric is 150 minutes of the whole site.
    limits = Limits(timedelta(days=31), max_intervals=10 * metrics, late_after=H)
    todo = site_todo(plan, [], [_request("intervals", T, T + 10 * DAY)], limits)
    chunk = (T, T + timedelta(minutes=150))
    assert todo.windows == {
        (d.device_pk, m.metric_id): [chunk] for d in plan.devices for m in d.quantity_metrics()
    }
    assert todo.advanced == [(7, chunk[1], False)]


def test_a_device_request_and_a_carbon_request() -> None:
    plan = _plan()
    device = plan.devices[0]
    end = T + 2 * DAY + timedelta(minutes=7)
    todo = site_todo(
        plan,
        [],
        [
            _request("intervals", T, end, device_pk=device.device_pk),
            _request("intervals", T, end, device_pk=999_999),  # the device is gone
            _request("carbon", T + timedelta(minutes=5), end),
        ],
        LIMITS,
    )
    assert set(todo.windows) == {(device.device_pk, m.metric_id) for m in device.quantity_metrics()}
    # Carbon ranges are aligned to the 15-min grid; a request within one chunk is done.
    assert todo.carbon == [(T, T + 2 * DAY + timedelta(minutes=15))]
    assert todo.advanced == [(7, end, True)] * 3

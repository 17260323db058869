"""The diff of two site documents: paths, ids, collections."""

from __future__ import annotations

from typing import Any

from carbonflow.domain.document_diff import Change, document_diff

BEFORE: dict[str, Any] = {
    "site": {"id": "s", "name": "Mine"},
    "devices": [
        {"id": "m1", "multiplier": 1.0, "serial": "A"},
        {"id": "m2", "multiplier": 2.0},
    ],
    "edges": [{"source": "a", "target": "b"}],
}


def test_equal_documents_have_no_change() -> None:
    assert document_diff(BEFORE, dict(BEFORE)) == []


def test_devices_are_compared_by_id_and_fields_by_name() -> None:
    after = {
        "site": {"id": "s", "name": "Mine 2"},
        # m2 first now (no change), m1's serial changed, m3 added
        "devices": [
            {"id": "m2", "multiplier": 2.0},
            {"id": "m1", "multiplier": 1.0, "serial": "B"},
            {"id": "m3", "multiplier": 1.0},
        ],
        "edges": [{"source": "a", "target": "b"}],
    }
    assert document_diff(BEFORE, after) == [
        Change("site.name", "changed", "Mine", "Mine 2"),
        Change("devices[m1].serial", "changed", "A", "B"),
        Change("devices[m3]", "added", None, {"id": "m3", "multiplier": 1.0}),
    ]


def test_a_retired_device_and_a_replaced_edge() -> None:
    after = {**BEFORE, "devices": BEFORE["devices"][:1], "edges": [{"source": "a", "target": "c"}]}
    assert [(c.path, c.op) for c in document_diff(BEFORE, after)] == [
        ("devices[m2]", "removed"),
        ("edges[]", "removed"),
        ("edges[]", "added"),
    ]


def test_an_empty_list_gaining_items_and_a_removed_key() -> None:
    before = {"devices": [], "baseline": {"year": 2020}}
    after = {"devices": [{"id": "m1"}]}
    assert document_diff(before, after) == [
        Change("devices[m1]", "added", None, {"id": "m1"}),
        Change("baseline", "removed", {"year": 2020}, None),
    ]


def test_a_scalar_document() -> None:
    assert document_diff(1, 2) == [Change("<document>", "changed", 1, 2)]
    assert Change("a", "added", None, 1).record() == {
        "path": "a",
        "op": "added",
        "before": None,
        "after": 1,
    }

"""What changed between two JSON documents (site document revisions). Pure.

A change names the path of what changed, ``devices[grid-line-1].multiplier``: lists whose items
all carry an ``id`` are compared item by item by id (reordering is no change), other lists as
collections of items (an item is added or removed, ``edges[]``), mappings key by key.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Op = Literal["added", "removed", "changed"]


@dataclass(frozen=True, slots=True)
class Change:
    path: str
    op: Op
    before: Any  # None when added
    after: Any  # None when removed

    def record(self) -> dict[str, Any]:
        return {"path": self.path, "op": self.op, "before": self.before, "after": self.after}


def document_diff(before: Any, after: Any, path: str = "") -> list[Change]:
    """Every change from ``before`` to ``after``, in document order."""
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        return _mapping_diff(before, after, path)
    if _by_id(before) and _by_id(after):
        return _id_list_diff(before, after, path)
    if _is_list(before) and _is_list(after):
        return _collection_diff(before, after, path)
    if before == after:
        return []
    return [Change(path or "<document>", "changed", before, after)]


def _mapping_diff(before: Mapping[str, Any], after: Mapping[str, Any], path: str) -> list[Change]:
    changes: list[Change] = []
    for key in [*before, *(k for k in after if k not in before)]:
        where = f"{path}.{key}" if path else str(key)
        if key not in after:
            changes.append(Change(where, "removed", before[key], None))
        elif key not in before:
            changes.append(Change(where, "added", None, after[key]))
        else:
            changes.extend(document_diff(before[key], after[key], where))
    return changes


def _id_list_diff(before: Sequence[Any], after: Sequence[Any], path: str) -> list[Change]:
    old = {item["id"]: item for item in before}
    new = {item["id"]: item for item in after}
    changes: list[Change] = []
    for item_id in [*old, *(i for i in new if i not in old)]:
        where = f"{path}[{item_id}]"
        if item_id not in new:
            changes.append(Change(where, "removed", old[item_id], None))
        elif item_id not in old:
            changes.append(Change(where, "added", None, new[item_id]))
        else:
            changes.extend(document_diff(old[item_id], new[item_id], where))
    return changes


def _collection_diff(before: Sequence[Any], after: Sequence[Any], path: str) -> list[Change]:
    old = [_canonical(x) for x in before]
    new = [_canonical(x) for x in after]
    removed = [b for b, c in zip(before, old, strict=True) if c not in new]
    added = [a for a, c in zip(after, new, strict=True) if c not in old]
    return [Change(f"{path}[]", "removed", item, None) for item in removed] + [
        Change(f"{path}[]", "added", None, item) for item in added
    ]


def _is_list(value: Any) -> bool:
    return isinstance(value, list | tuple)


def _by_id(value: Any) -> bool:
    return (
        _is_list(value)
        and bool(value)
        and all(isinstance(item, Mapping) and isinstance(item.get("id"), str) for item in value)
    ) or value == []


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

"""Pages of a list: ``limit`` / ``offset`` with links to the neighbouring pages.

A store query is asked for ``limit + 1`` rows; the extra row only says that a next page exists.
Links are relative (path and query), so they stay right behind a proxy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar
from urllib.parse import urlencode

from fastapi import Request

from services.api.deps import PageParams
from services.api.schemas import Links

R = TypeVar("R")
O = TypeVar("O")  # noqa: E741 - the output type


def fetch_size(page: PageParams) -> int:
    """How many rows to ask the store for."""
    return page.limit + 1


def _link(request: Request, limit: int, offset: int) -> str:
    query = [(k, v) for k, v in request.query_params.multi_items() if k not in ("limit", "offset")]
    query += [("limit", str(limit)), ("offset", str(offset))]
    return f"{request.url.path}?{urlencode(query)}"


def page_items(
    rows: Sequence[R], page: PageParams, request: Request, to_out: Callable[[R], O]
) -> tuple[list[O], Links]:
    """The page's items (at most ``limit``) and its links."""
    has_next = len(rows) > page.limit
    items = [to_out(r) for r in rows[: page.limit]]
    links = Links.model_validate(
        {
            "self": _link(request, page.limit, page.offset),
            "next": _link(request, page.limit, page.offset + page.limit) if has_next else None,
            "prev": (
                _link(request, page.limit, max(0, page.offset - page.limit))
                if page.offset > 0
                else None
            ),
        }
    )
    return items, links

"""Relay connections over the domain's keyset pages."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

import strawberry

from domain.pagination import CursorKey, Page, cursor_for

N = TypeVar("N")
D = TypeVar("D")


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class Edge(Generic[N]):
    cursor: str
    node: N


def connection_parts(
    page: Page[D], key: Callable[[D], CursorKey], convert: Callable[[D], N]
) -> tuple[list[Edge[N]], PageInfo]:
    cursor = cursor_for(key)
    edges = [Edge(cursor=cursor(item), node=convert(item)) for item in page.items]
    info = PageInfo(
        has_next_page=page.has_next_page,
        has_previous_page=page.has_previous_page,
        start_cursor=edges[0].cursor if edges else None,
        end_cursor=edges[-1].cursor if edges else None,
    )
    return edges, info

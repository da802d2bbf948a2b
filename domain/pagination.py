"""Relay-style keyset pagination: validated page requests, opaque cursors, pages.

A cursor encodes the sort key of an item (e.g. `(created_at, id)`), never an offset, so pages stay
stable while rows are inserted and every page is an index range scan.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Generic, TypeVar

from domain.errors import BadUserInput

T = TypeVar("T")
CursorKey = tuple[str, ...]
_INDEX = re.compile(r"[0-9]{1,9}")  # str.isdigit() also takes "²", and int32 ends at 2**31 - 1


class Direction(Enum):
    FORWARD = "forward"  # first / after
    BACKWARD = "backward"  # last / before


@dataclass(frozen=True, slots=True, kw_only=True)
class PageRequest:
    """One page: `limit` items after (FORWARD) or before (BACKWARD) the optional cursor key."""

    direction: Direction
    limit: int
    cursor: CursorKey | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Page(Generic[T]):
    items: Sequence[T]
    has_next_page: bool
    has_previous_page: bool
    total_count: int


def page_request(
    *,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
    default_size: int,
    max_size: int,
) -> PageRequest:
    if first is not None and last is not None:
        raise BadUserInput("give either first or last, not both")
    if after is not None and before is not None:
        raise BadUserInput("give either after or before, not both")
    if last is not None or before is not None:
        if first is not None or after is not None:
            raise BadUserInput("last/before page backwards; do not mix them with first/after")
        return PageRequest(
            direction=Direction.BACKWARD,
            limit=_size(last, "last", default_size, max_size),
            cursor=decode_cursor(before) if before is not None else None,
        )
    return PageRequest(
        direction=Direction.FORWARD,
        limit=_size(first, "first", default_size, max_size),
        cursor=decode_cursor(after) if after is not None else None,
    )


def _size(value: int | None, name: str, default_size: int, max_size: int) -> int:
    if value is None:
        return min(default_size, max_size)
    if value < 0:
        raise BadUserInput(f"{name} must not be negative")
    if value > max_size:
        raise BadUserInput(f"{name} must be at most {max_size}")
    return value


def encode_cursor(key: CursorKey) -> str:
    raw = json.dumps(list(key), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> CursorKey:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise BadUserInput("malformed cursor") from None
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise BadUserInput("malformed cursor")
    return tuple(value)


def build_page(
    rows: Sequence[T],
    request: PageRequest,
    *,
    total_count: int,
    has_more_behind: bool,
) -> Page[T]:
    """`rows` were fetched with limit + 1 in the request's direction; `has_more_behind` says
    whether items exist on the other side of the request's cursor."""
    overflow = len(rows) > request.limit
    kept = list(rows[: request.limit])
    if request.direction is Direction.BACKWARD:
        kept.reverse()
        return Page(
            items=kept,
            has_next_page=has_more_behind,
            has_previous_page=overflow,
            total_count=total_count,
        )
    return Page(
        items=kept,
        has_next_page=overflow,
        has_previous_page=has_more_behind,
        total_count=total_count,
    )


def time_id_key(created_at: datetime, row_id: uuid.UUID) -> CursorKey:
    """The sort key of lists ordered by creation time, ties broken by id."""
    return (created_at.isoformat(), str(row_id))


def parse_time_id_key(key: CursorKey) -> tuple[datetime, uuid.UUID]:
    if len(key) != 2:
        raise BadUserInput("malformed cursor")
    try:
        at, row_id = datetime.fromisoformat(key[0]), uuid.UUID(key[1])
        # The API's own cursors carry UTC; anything else (naive, or an offset that leaves the
        # calendar once in UTC) was made by hand and names no position in the list.
        if at.tzinfo is None:
            raise ValueError("naive")
        return at.astimezone(UTC), row_id
    except (ValueError, OverflowError):
        raise BadUserInput("malformed cursor") from None


def parse_index_key(key: CursorKey) -> int:
    """The key of lists ordered by a 1-based index: ASCII digits within a 32-bit column."""
    if len(key) != 1 or not _INDEX.fullmatch(key[0]):
        raise BadUserInput("malformed cursor")
    return int(key[0])


def cursor_for(key: Callable[[T], CursorKey]) -> Callable[[T], str]:
    return lambda item: encode_cursor(key(item))

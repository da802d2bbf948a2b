"""Keyset pagination: page requests, opaque cursors, and page assembly in both directions."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime

import pytest

from domain.errors import BadUserInput
from domain.pagination import (
    Direction,
    PageRequest,
    build_page,
    cursor_for,
    decode_cursor,
    encode_cursor,
    page_request,
    parse_time_id_key,
    time_id_key,
)


def request(
    *,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
    default_size: int = 20,
    max_size: int = 100,
) -> PageRequest:
    return page_request(
        first=first,
        after=after,
        last=last,
        before=before,
        default_size=default_size,
        max_size=max_size,
    )


def raw_cursor(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


# page_request


def test_no_arguments_ask_for_the_first_page_at_the_default_size() -> None:
    assert request() == PageRequest(direction=Direction.FORWARD, limit=20, cursor=None)


def test_default_size_never_exceeds_the_maximum() -> None:
    assert request(default_size=50, max_size=10).limit == 10


def test_first_and_after_page_forwards_from_the_cursor() -> None:
    cursor = encode_cursor(("2026-01-01T00:00:00+00:00", "id-1"))

    page = request(first=5, after=cursor)

    assert page == PageRequest(
        direction=Direction.FORWARD, limit=5, cursor=("2026-01-01T00:00:00+00:00", "id-1")
    )


def test_last_and_before_page_backwards_from_the_cursor() -> None:
    cursor = encode_cursor(("k",))

    assert request(last=3, before=cursor) == PageRequest(
        direction=Direction.BACKWARD, limit=3, cursor=("k",)
    )


def test_last_alone_pages_backwards_from_the_end() -> None:
    assert request(last=7) == PageRequest(direction=Direction.BACKWARD, limit=7, cursor=None)


def test_before_alone_pages_backwards_at_the_default_size() -> None:
    assert request(before=encode_cursor(("k",))).direction is Direction.BACKWARD
    assert request(before=encode_cursor(("k",))).limit == 20


def test_zero_items_is_a_valid_page_size() -> None:
    assert request(first=0).limit == 0


def test_the_maximum_itself_is_allowed() -> None:
    assert request(first=100).limit == 100
    assert request(last=100).limit == 100


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"first": 1, "last": 1}, "either first or last"),
        ({"after": "a", "before": "b"}, "either after or before"),
        ({"first": 1, "before": "b"}, "do not mix"),
        ({"last": 1, "after": "a"}, "do not mix"),
        ({"first": -1}, "first must not be negative"),
        ({"last": -1}, "last must not be negative"),
        ({"first": 101}, "first must be at most 100"),
        ({"last": 101}, "last must be at most 100"),
        ({"after": "not a cursor!"}, "malformed cursor"),
    ],
)
def test_invalid_page_arguments_are_bad_user_input(
    arguments: dict[str, object], message: str
) -> None:
    with pytest.raises(BadUserInput, match=message):
        request(**arguments)  # type: ignore[arg-type]


# cursors


def test_cursor_round_trips_and_is_opaque_url_safe_text() -> None:
    key = ("2026-11-24T02:46:04.972240+00:00", str(uuid.uuid4()))

    cursor = encode_cursor(key)

    assert decode_cursor(cursor) == key
    assert "=" not in cursor
    assert all(ch.isalnum() or ch in "-_" for ch in cursor)


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "!!!!",
        "bm90IGpzb24",  # "not json"
        raw_cursor({"a": "b"}),
        raw_cursor([]),
        raw_cursor([1, 2]),
        raw_cursor(["ok", None]),
        raw_cursor("just a string"),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
def test_malformed_cursors_are_bad_user_input(cursor: str) -> None:
    with pytest.raises(BadUserInput, match="malformed cursor"):
        decode_cursor(cursor)


def test_time_id_key_round_trips_with_microseconds_and_utc() -> None:
    created_at = datetime(2026, 11, 24, 2, 46, 4, 972240, tzinfo=UTC)
    row_id = uuid.uuid4()

    parsed = parse_time_id_key(decode_cursor(encode_cursor(time_id_key(created_at, row_id))))

    assert parsed == (created_at, row_id)
    assert parsed[0].tzinfo is not None


@pytest.mark.parametrize(
    "key",
    [
        ("2026-01-01T00:00:00+00:00",),
        ("2026-01-01T00:00:00+00:00", str(uuid.uuid4()), "extra"),
        ("yesterday", str(uuid.uuid4())),
        ("2026-01-01T00:00:00+00:00", "not-a-uuid"),
    ],
)
def test_malformed_time_id_keys_are_bad_user_input(key: tuple[str, ...]) -> None:
    with pytest.raises(BadUserInput, match="malformed cursor"):
        parse_time_id_key(key)


def test_cursor_for_encodes_an_items_key() -> None:
    to_cursor = cursor_for(lambda item: (str(item),))
    assert decode_cursor(to_cursor(42)) == ("42",)


# build_page


def forward(limit: int) -> PageRequest:
    return PageRequest(direction=Direction.FORWARD, limit=limit, cursor=None)


def backward(limit: int) -> PageRequest:
    return PageRequest(direction=Direction.BACKWARD, limit=limit, cursor=None)


def test_forward_page_with_an_extra_row_has_a_next_page_and_drops_the_extra() -> None:
    page = build_page([1, 2, 3], forward(2), total_count=10, has_more_behind=False)

    assert list(page.items) == [1, 2]
    assert page.has_next_page is True
    assert page.has_previous_page is False
    assert page.total_count == 10


def test_forward_page_without_an_extra_row_is_the_last_page() -> None:
    page = build_page([1, 2], forward(2), total_count=5, has_more_behind=True)

    assert list(page.items) == [1, 2]
    assert page.has_next_page is False
    assert page.has_previous_page is True


def test_backward_page_is_returned_in_forward_order() -> None:
    # Fetched nearest-the-cursor first, so the rows arrive reversed.
    page = build_page([5, 4, 3], backward(2), total_count=5, has_more_behind=True)

    assert list(page.items) == [4, 5]
    assert page.has_previous_page is True  # the extra row lies further back
    assert page.has_next_page is True  # items exist after the `before` cursor


def test_backward_page_at_the_start_has_no_previous_page() -> None:
    page = build_page([2, 1], backward(5), total_count=2, has_more_behind=False)

    assert list(page.items) == [1, 2]
    assert page.has_previous_page is False
    assert page.has_next_page is False


def test_empty_page() -> None:
    page = build_page([], forward(20), total_count=0, has_more_behind=False)

    assert list(page.items) == []
    assert (page.has_next_page, page.has_previous_page, page.total_count) == (False, False, 0)

"""Pure pieces of the OpenAI client: SSE decoding, wire parsing, Retry-After, backoff."""

from __future__ import annotations

import email.utils
import random
import time

import httpx
import pytest

from domain.enums import TokenSource
from domain.llm import LLMErrorCode, TokenUsage
from infra.llm.classify import AttemptFailure, from_error_event, from_status, retry_after_seconds
from infra.llm.config import RetryPolicy
from infra.llm.retry import backoff_delay
from infra.llm.sse import MalformedSSE, SSEDecoder
from infra.llm.wire import parse_chunk, parse_completion, parse_usage

Code = LLMErrorCode


# --- SSE ------------------------------------------------------------------------------------


def test_sse_events_are_returned_once_complete_even_across_chunks() -> None:
    decoder = SSEDecoder()
    assert decoder.feed('data: {"a"') == []
    assert decoder.feed(": 1}\n") == []
    assert decoder.feed("\ndata: [DONE]\r\n\r\n") == ['{"a": 1}', "[DONE]"]


def test_sse_lines_may_end_with_a_bare_carriage_return() -> None:
    assert SSEDecoder().feed("data: a\r\rdata: b\r\r") == ["a", "b"]


def test_sse_a_crlf_split_between_chunks_ends_one_line() -> None:
    decoder = SSEDecoder()
    assert decoder.feed("data: a\r") == []
    assert decoder.feed("\n") == []  # the pair of that \r, not a blank line
    assert decoder.feed("\r") == ["a"]  # this one is the blank line
    assert decoder.feed("\ndata: b\r\n\r\n") == ["b"]


def test_sse_comments_and_ignored_fields_are_skipped() -> None:
    lines = ": keep-alive\n\nevent: message\nid: 7\nretry: 100\ndata: x\n\n"
    assert SSEDecoder().feed(lines) == ["x"]


def test_sse_multi_line_data_is_joined_with_newlines() -> None:
    assert SSEDecoder().feed("data: a\ndata:b\n\n") == ["a\nb"]


def test_sse_an_unterminated_last_event_counts_at_the_end() -> None:
    decoder = SSEDecoder()
    assert decoder.feed("data: [DONE]") == []
    assert decoder.close() == ["[DONE]"]


@pytest.mark.parametrize("line", ["<html>", "garbage", "{}", "Data: x"])
def test_sse_lines_that_are_not_sse_raise(line: str) -> None:
    with pytest.raises(MalformedSSE):
        SSEDecoder().feed(line + "\n")


# --- wire -----------------------------------------------------------------------------------


def test_usage_keeps_cached_and_reasoning_tokens() -> None:
    raw = {
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "prompt_tokens_details": {"cached_tokens": 8},
        "completion_tokens_details": {"reasoning_tokens": 3},
    }
    assert parse_usage(raw) == TokenUsage(
        prompt_tokens=10,
        completion_tokens=5,
        cached_tokens=8,
        reasoning_tokens=3,
        source=TokenSource.PROVIDER,
    )


@pytest.mark.parametrize(
    "raw",
    [
        None,
        {},
        {"prompt_tokens": "10", "completion_tokens": 1},
        {"prompt_tokens": 0, "completion_tokens": 0},
    ],
)
def test_absent_or_meaningless_usage_is_none(raw: object) -> None:
    assert parse_usage(raw) is None


def test_a_completion_with_null_content_is_empty_text() -> None:
    body = b'{"id": "c1", "choices": [{"message": {"content": null}, "finish_reason": "stop"}]}'
    completion = parse_completion(body)
    assert (completion.text, completion.finish_reason, completion.response_id) == ("", "stop", "c1")


@pytest.mark.parametrize("body", [b"<html>", b"[]", b'{"choices": []}', b'{"object": "x"}'])
def test_an_unusable_completion_is_a_bad_response(body: bytes) -> None:
    with pytest.raises(AttemptFailure) as caught:
        parse_completion(body)
    assert caught.value.code == Code.PROVIDER_BAD_RESPONSE


def test_chunks_without_content_carry_no_text() -> None:
    assert parse_chunk('{"choices": [{"delta": {"role": "assistant"}}]}').text == ""
    assert parse_chunk('{"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2}}')


def test_a_chunk_with_an_error_raises_its_classified_failure() -> None:
    with pytest.raises(AttemptFailure) as caught:
        parse_chunk('{"error": {"message": "slow down", "type": "rate_limit_exceeded"}}')
    assert caught.value.code == Code.PROVIDER_RATE_LIMITED


# --- classification -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [
        (429, Code.PROVIDER_RATE_LIMITED, True),
        (500, Code.PROVIDER_UNAVAILABLE, True),
        (502, Code.PROVIDER_UNAVAILABLE, True),
        (529, Code.PROVIDER_UNAVAILABLE, True),
        (401, Code.PROVIDER_AUTH, False),
        (403, Code.PROVIDER_AUTH, False),
        (400, Code.PROVIDER_BAD_RESPONSE, False),
        (404, Code.PROVIDER_BAD_RESPONSE, False),
        (422, Code.PROVIDER_BAD_RESPONSE, False),
        (301, Code.PROVIDER_BAD_RESPONSE, False),
    ],
)
def test_status_codes_map_to_codes_and_retry_decisions(
    status: int, code: LLMErrorCode, retryable: bool
) -> None:
    failure = from_status(status, httpx.Headers(), b'{"error": {"type": "x_y"}}')
    assert (failure.code, failure.retryable, failure.may_be_billed) == (code, retryable, False)
    assert f"HTTP {status} (x_y)" in failure.message


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_read_from_429_and_5xx(status: int) -> None:
    headers = httpx.Headers({"retry-after": "7"})
    assert from_status(status, headers, b"").retry_after == 7.0


def test_only_identifier_like_error_types_reach_the_safe_message() -> None:
    failure = from_status(500, httpx.Headers(), b'{"error": {"type": "sk-Abc123", "message": "m"}}')
    assert "sk-Abc123" not in failure.message
    assert failure.detail == "m"


@pytest.mark.parametrize(
    ("error", "code"),
    [
        ({"type": "rate_limit_error"}, Code.PROVIDER_RATE_LIMITED),
        ({"code": 429}, Code.PROVIDER_RATE_LIMITED),
        ({"type": "authentication_error"}, Code.PROVIDER_AUTH),
        ({"type": "invalid_api_key"}, Code.PROVIDER_AUTH),
        ({"type": "overloaded_error"}, Code.PROVIDER_UNAVAILABLE),
        ("a bare string", Code.PROVIDER_UNAVAILABLE),
    ],
)
def test_error_events_are_classified_by_type(error: object, code: LLMErrorCode) -> None:
    assert from_error_event(error).code == code


def test_retry_after_reads_milliseconds_seconds_and_dates() -> None:
    assert retry_after_seconds(httpx.Headers({"retry-after-ms": "250"})) == 0.25
    assert retry_after_seconds(httpx.Headers({"retry-after": "3"})) == 3.0
    date = email.utils.formatdate(time.time() + 10, usegmt=True)
    assert 8 < (retry_after_seconds(httpx.Headers({"retry-after": date})) or 0) <= 10
    assert retry_after_seconds(httpx.Headers({"retry-after": "soon"})) is None
    assert retry_after_seconds(httpx.Headers()) is None


# --- backoff --------------------------------------------------------------------------------


def test_backoff_doubles_and_is_capped() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=3.0, jitter=0)
    delays = [backoff_delay(policy, n, None, random.Random(1)) for n in range(1, 6)]
    assert delays == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_jitter_stretches_by_at_most_its_fraction() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=10.0, jitter=0.5)
    rng = random.Random(7)
    delays = {backoff_delay(policy, 1, None, rng) for _ in range(50)}
    assert all(1.0 <= d <= 1.5 for d in delays)
    assert len(delays) > 1


def test_retry_after_wins_when_longer_but_stays_capped() -> None:
    policy = RetryPolicy(base_delay=0.1, max_delay=5.0, jitter=0)
    assert backoff_delay(policy, 1, 2.0, random.Random()) == 2.0
    assert backoff_delay(policy, 1, 60.0, random.Random()) == 5.0

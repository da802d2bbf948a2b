"""The OpenAI-compatible client over a real socket when things go wrong: every fault ends as the
right classified error within the deadline, attempts are reported, the pool is released, a
cancelled stream closes its connection, and the API key never leaks."""

from __future__ import annotations

import asyncio
import logging
import socket
import time

import pytest

from domain.llm import (
    NO_USAGE,
    LLMCallError,
    LLMErrorCode,
    TextDelta,
    estimate_tokens,
    estimate_usage,
)
from tests.fakes.openai_script import FakeResponse, Fault, RecordedRequest
from tests.fakes.openai_server import FakeOpenAIServer
from tests.integration.llm_helpers import (
    API_KEY,
    MESSAGES,
    answer,
    collect,
    make_client,
    make_request,
)

Code = LLMErrorCode


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        ("malformed_sse", Code.PROVIDER_BAD_RESPONSE),
        ("not_sse", Code.PROVIDER_BAD_RESPONSE),
        ("cut", Code.PROVIDER_UNAVAILABLE),
        ("error_event", Code.PROVIDER_UNAVAILABLE),
    ],
)
async def test_a_fault_after_text_fails_without_retry_and_keeps_the_partial_text(
    fake_openai: FakeOpenAIServer, fault: Fault, code: LLMErrorCode
) -> None:
    fake_openai.script("m", FakeResponse(content="one two three four", fault=fault, fault_after=2))
    async with make_client(fake_openai) as client:
        with pytest.raises(LLMCallError) as caught:
            await collect(client.stream(make_request()))
    error = caught.value
    assert error.code == code
    assert error.partial_text == "one two "
    (attempt,) = error.attempts
    assert (attempt.reached_provider, attempt.may_be_billed, attempt.succeeded) == (
        True,
        True,
        False,
    )
    assert attempt.usage == estimate_usage(MESSAGES, "one two ")
    assert len(fake_openai.requests()) == 1  # text was shown: never retried


async def test_an_error_event_is_classified_by_its_type(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.script(
        "m",
        FakeResponse(fault="error_event", fault_after=1, error_event={"type": "rate_limit_error"}),
    )
    async with make_client(fake_openai) as client:
        with pytest.raises(LLMCallError) as caught:
            await collect(client.stream(make_request()))
    assert caught.value.code == Code.PROVIDER_RATE_LIMITED


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_200_that_is_not_json_is_a_bad_response(
    fake_openai: FakeOpenAIServer, streamed: bool
) -> None:
    fake_openai.script("m", FakeResponse(fault="not_json"))
    async with make_client(fake_openai) as client:
        with pytest.raises(LLMCallError) as caught:
            await answer(client, make_request(), streamed=streamed)
    assert caught.value.code == Code.PROVIDER_BAD_RESPONSE
    assert caught.value.attempts[0].may_be_billed
    assert len(fake_openai.requests()) == 1


async def test_a_body_cut_mid_way_in_a_plain_answer_is_retried(
    fake_openai: FakeOpenAIServer,
) -> None:
    fake_openai.script("m", FakeResponse(fault="cut"), FakeResponse(content="whole"))
    async with make_client(fake_openai) as client:
        result = await client.complete(make_request())
    assert result.text == "whole"
    assert result.attempts[0].error_code == Code.PROVIDER_UNAVAILABLE


async def test_a_hang_before_the_headers_times_out_retries_and_stops_at_the_deadline(
    fake_openai: FakeOpenAIServer,
) -> None:
    fake_openai.set_default(FakeResponse(hang=5), model="m")
    started = time.monotonic()
    async with make_client(
        fake_openai, timeouts={"read": 0.2, "total": 1.0}, retry={"max_attempts": 3}
    ) as client:
        with pytest.raises(LLMCallError) as caught:
            await client.complete(make_request())
    assert time.monotonic() - started < 1.3
    error = caught.value
    assert error.code == Code.PROVIDER_TIMEOUT
    assert [a.error_code for a in error.attempts] == [Code.PROVIDER_TIMEOUT] * 3
    assert all(a.may_be_billed and a.reached_provider for a in error.attempts)


@pytest.mark.parametrize("read_timeout", [1.0, 0.2])  # longer and shorter than the deadline
async def test_the_total_deadline_cuts_a_call_whose_reads_are_never_slow_enough_to_time_out(
    fake_openai: FakeOpenAIServer, read_timeout: float
) -> None:
    # A keep-alive every 50 ms keeps the read timeout from ever firing; only the deadline can.
    slow = FakeResponse(chunks=("x ",) * 100, token_delay=0.05, keepalive=True)
    fake_openai.script("m", slow)
    started = time.monotonic()
    timeouts = {"read": read_timeout, "total": 0.5}
    async with make_client(fake_openai, timeouts=timeouts) as client:
        with pytest.raises(LLMCallError) as caught:
            await collect(client.stream(make_request()))
    assert 0.45 < time.monotonic() - started < 0.9
    assert caught.value.code == Code.PROVIDER_TIMEOUT
    assert caught.value.partial_text.startswith("x x ")
    assert len(fake_openai.requests()) == 1


async def test_the_deadline_also_bounds_the_wait_for_a_plain_answer(
    fake_openai: FakeOpenAIServer,
) -> None:
    fake_openai.script("m", FakeResponse(hang=5))
    started = time.monotonic()
    async with make_client(fake_openai, timeouts={"read": 5.0, "total": 0.4}) as client:
        with pytest.raises(LLMCallError) as caught:
            await client.complete(make_request())
    assert time.monotonic() - started < 0.8
    assert caught.value.code == Code.PROVIDER_TIMEOUT
    assert "deadline" in caught.value.message


async def test_a_timeout_after_the_headers_is_not_retried(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.script("m", FakeResponse(hang_after_headers=5))
    async with make_client(fake_openai, timeouts={"read": 0.2}) as client:
        with pytest.raises(LLMCallError) as caught:
            await collect(client.stream(make_request()))
    assert caught.value.code == Code.PROVIDER_TIMEOUT
    assert len(fake_openai.requests()) == 1


async def test_a_refused_connection_is_retried_and_never_counted_as_reaching_the_provider(
    fake_openai: FakeOpenAIServer,
) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nobody listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with make_client(fake_openai, base_url=f"http://127.0.0.1:{port}/v1") as client:
        with pytest.raises(LLMCallError) as caught:
            await client.complete(make_request())
    assert caught.value.code == Code.PROVIDER_UNAVAILABLE
    assert len(caught.value.attempts) == 3
    assert not any(a.reached_provider or a.may_be_billed for a in caught.value.attempts)
    assert all(a.usage == NO_USAGE for a in caught.value.attempts)


async def test_the_pool_is_released_after_every_kind_of_fault(
    fake_openai: FakeOpenAIServer,
) -> None:
    faults = [
        FakeResponse(status=500),
        FakeResponse(status=401),
        FakeResponse(status=429),
        FakeResponse(fault="cut", fault_after=1),
        FakeResponse(fault="malformed_sse", fault_after=1),
        FakeResponse(fault="not_sse", fault_after=1),
        FakeResponse(fault="not_json"),
        FakeResponse(fault="error_event", fault_after=1),
        FakeResponse(hang_after_headers=5),
        FakeResponse(hang=5),
    ]
    fake_openai.script("m", *faults)
    async with make_client(
        fake_openai,
        timeouts={"read": 0.2},
        retry={"max_attempts": 1},
        pool={"max_connections": 1, "max_keepalive": 1, "pool_timeout": 0.3},
    ) as client:
        for _ in faults:
            with pytest.raises(LLMCallError) as caught:
                await collect(client.stream(make_request()))
            assert caught.value.code != Code.PROVIDER_POOL_EXHAUSTED
        _, result = await collect(client.stream(make_request()))  # the one connection is free
    assert result.text == "not json"


async def test_an_exhausted_pool_fails_fast_without_sending_or_billing(
    fake_openai: FakeOpenAIServer,
) -> None:
    fake_openai.script("m", FakeResponse(content="a b c d e f", token_delay=0.2))
    async with make_client(fake_openai, pool={"max_connections": 1, "pool_timeout": 0.1}) as client:
        holder = client.stream(make_request())
        assert isinstance(await anext(holder), TextDelta)  # holds the only connection
        with pytest.raises(LLMCallError) as caught:
            await client.complete(make_request())
        await holder.aclose()
    assert caught.value.code == Code.PROVIDER_POOL_EXHAUSTED
    (attempt,) = caught.value.attempts
    assert (attempt.reached_provider, attempt.may_be_billed) == (False, False)
    assert attempt.usage == NO_USAGE
    assert len(fake_openai.requests()) == 1


async def test_cancelling_the_consuming_task_closes_the_connection_at_once(
    fake_openai: FakeOpenAIServer,
) -> None:
    fake_openai.script("m", FakeResponse(chunks=("tick ",) * 50, token_delay=0.1))
    async with make_client(fake_openai) as client:
        stream = client.stream(make_request())
        two_deltas = asyncio.Event()

        async def consume() -> None:
            count = 0
            async for _ in stream:
                count += 1
                if count == 2:
                    two_deltas.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(two_deltas.wait(), 5)
        cancelled_at = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        (served,) = await _wait_for_disconnect(fake_openai)
    assert served.disconnected_at is not None
    assert served.disconnected_at - cancelled_at < 0.3  # not the 4.8 s the answer had left
    (attempt,) = stream.attempts
    assert attempt.error_code == Code.PROVIDER_CANCELLED
    assert attempt.may_be_billed
    assert attempt.usage.completion_tokens >= estimate_tokens("tick tick ")


async def test_closing_a_stream_early_closes_the_connection_and_reports_the_attempt(
    fake_openai: FakeOpenAIServer,
) -> None:
    fake_openai.script("m", FakeResponse(chunks=("word ",) * 50, token_delay=0.1))
    async with make_client(fake_openai) as client:
        stream = client.stream(make_request())
        first = await anext(stream)
        await stream.aclose()
        closed_at = time.monotonic()
        (served,) = await _wait_for_disconnect(fake_openai)
    assert first == TextDelta(text="word ")
    assert served.disconnected_at is not None
    assert served.disconnected_at - closed_at < 0.3
    assert [a.error_code for a in stream.attempts] == [Code.PROVIDER_CANCELLED]


async def test_the_api_key_never_reaches_errors_or_logs(
    fake_openai: FakeOpenAIServer, caplog: pytest.LogCaptureFixture
) -> None:
    # A careless provider echoes the key in its error bodies, types and events.
    caplog.set_level(logging.DEBUG)
    fake_openai.script(
        "m",
        FakeResponse(status=401, error_type=API_KEY, error_message=f"Bad key {API_KEY}"),
        FakeResponse(status=500, error_message=f"upstream rejected {API_KEY}"),
        FakeResponse(fault="error_event", error_event={"type": API_KEY, "message": API_KEY}),
    )
    errors: list[LLMCallError] = []
    async with make_client(fake_openai, retry={"max_attempts": 1}) as client:
        for _ in range(3):
            with pytest.raises(LLMCallError) as caught:
                await collect(client.stream(make_request()))
            errors.append(caught.value)
    assert all(r.headers["authorization"] == f"Bearer {API_KEY}" for r in fake_openai.requests())
    assert [e.code for e in errors] == [
        Code.PROVIDER_AUTH,
        Code.PROVIDER_UNAVAILABLE,
        Code.PROVIDER_UNAVAILABLE,
    ]
    for error in errors:
        assert API_KEY not in f"{error} {error.message} {error!r} {error.attempts!r}"
    assert "redacted" in caplog.text  # the provider's words were logged, scrubbed
    assert API_KEY not in caplog.text


async def _wait_for_disconnect(fake: FakeOpenAIServer) -> list[RecordedRequest]:
    for _ in range(100):
        served = fake.requests()
        if served and served[-1].disconnected_at is not None:
            return served
        await asyncio.sleep(0.01)
    raise AssertionError("the fake server never saw the client hang up")

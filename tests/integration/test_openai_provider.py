"""The OpenAI-compatible client over a real socket to the fake server: the paths that work —
answers, streaming, usage, what goes on the wire, and retries that end in success."""

from __future__ import annotations

import time

import pytest

from domain.enums import CallKind, TokenSource
from domain.llm import LLMCallError, LLMErrorCode, TokenUsage, estimate_usage
from tests.fakes.openai_script import FakeResponse
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


async def test_complete_returns_the_text_provider_usage_and_request_id(
    fake_openai: FakeOpenAIServer,
) -> None:
    # given
    fake_openai.script(
        "m",
        FakeResponse(
            content="Hello team",
            prompt_tokens=21,
            completion_tokens=3,
            cached_tokens=16,
            reasoning_tokens=1,
        ),
    )
    # when
    async with make_client(fake_openai) as client:
        result = await client.complete(make_request(temperature=0.3))
    # then
    assert result.text == "Hello team"
    assert result.finish_reason == "stop"
    assert result.usage == TokenUsage(
        prompt_tokens=21,
        completion_tokens=3,
        cached_tokens=16,
        reasoning_tokens=1,
        source=TokenSource.PROVIDER,
    )
    (served,) = fake_openai.requests()
    assert result.provider_request_id == f"req-fake-{served.serial}"
    assert [(a.number, a.succeeded, a.may_be_billed) for a in result.attempts] == [(1, True, True)]
    assert (served.method, served.path) == ("POST", "/v1/chat/completions")
    assert served.headers["authorization"] == f"Bearer {API_KEY}"
    assert served.body == {
        "model": "m",
        "messages": [{"role": m.role, "content": m.content} for m in MESSAGES],
        "max_tokens": 64,
        "stream": False,
        "temperature": 0.3,
    }


async def test_unscripted_models_answer_not_json(fake_openai: FakeOpenAIServer) -> None:
    async with make_client(fake_openai) as client:
        result = await client.complete(make_request(call_kind=CallKind.MANAGER_ROUTING))
    assert result.text == "not json"


async def test_stream_yields_every_delta_then_one_result_with_usage(
    fake_openai: FakeOpenAIServer,
) -> None:
    fake_openai.script(
        "m", FakeResponse(content="The quick brown fox", cached_tokens=5, reasoning_tokens=2)
    )
    async with make_client(fake_openai) as client:
        deltas, result = await collect(client.stream(make_request()))
    assert deltas == ["The ", "quick ", "brown ", "fox"]
    assert result.text == "The quick brown fox"
    assert result.usage.source is TokenSource.PROVIDER
    assert (result.usage.completion_tokens, result.usage.cached_tokens) == (4, 5)
    assert result.usage.reasoning_tokens == 2
    (served,) = fake_openai.requests()
    assert served.body["stream"] is True
    assert served.body["stream_options"] == {"include_usage": True}
    assert served.headers["accept"] == "text/event-stream"


async def test_stream_hands_each_delta_over_as_it_arrives(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.script("m", FakeResponse(content="a b c d", token_delay=0.15))
    arrivals: list[float] = []
    async with make_client(fake_openai) as client:
        started = time.monotonic()
        async for _ in client.stream(make_request()):
            arrivals.append(time.monotonic() - started)
    # 4 deltas 0.15 s apart: buffered delivery would bunch them all at the end.
    assert arrivals[0] < 0.35
    assert arrivals[3] - arrivals[0] > 0.35


@pytest.mark.parametrize("streamed", [False, True])
async def test_connections_are_kept_alive_and_reused(
    fake_openai: FakeOpenAIServer, streamed: bool
) -> None:
    async with make_client(fake_openai) as client:
        for _ in range(3):
            await answer(client, make_request(), streamed=streamed)
    ports = {served.client_port for served in fake_openai.requests()}
    assert len(ports) == 1  # one connection: no new handshake per call


@pytest.mark.parametrize("streamed", [False, True])
async def test_missing_usage_is_estimated(fake_openai: FakeOpenAIServer, streamed: bool) -> None:
    fake_openai.script("m", FakeResponse(content="Hi there all", usage=False))
    async with make_client(fake_openai) as client:
        result = await answer(client, make_request(), streamed=streamed)
    assert result.usage == estimate_usage(MESSAGES, "Hi there all")
    assert result.usage.source is TokenSource.ESTIMATED
    assert result.attempts[0].usage == result.usage


async def test_stream_usage_off_sends_no_stream_options_and_estimates(
    fake_openai: FakeOpenAIServer,
) -> None:
    fake_openai.script("m", FakeResponse(content="ok then"))
    async with make_client(fake_openai, stream_usage=False) as client:
        _, result = await collect(client.stream(make_request()))
    (served,) = fake_openai.requests()
    assert "stream_options" not in served.body
    assert result.usage == estimate_usage(MESSAGES, "ok then")


async def test_a_server_rejecting_stream_options_fails_once_with_a_hint_until_configured(
    fake_openai: FakeOpenAIServer,
) -> None:
    fake_openai.reject_stream_options = True
    async with make_client(fake_openai) as client:
        with pytest.raises(LLMCallError) as caught:
            await collect(client.stream(make_request()))
    assert caught.value.code == Code.PROVIDER_BAD_RESPONSE
    assert "stream_usage = false" in caught.value.message
    assert len(fake_openai.requests()) == 1  # a 400 is never retried

    async with make_client(fake_openai, stream_usage=False) as client:
        _deltas, result = await collect(client.stream(make_request()))
    assert result.text == "not json"
    assert result.usage.source is TokenSource.ESTIMATED


@pytest.mark.parametrize(("enabled", "sent"), [(False, False), (True, True)])
async def test_json_output_asks_for_json_only_where_the_provider_supports_it(
    fake_openai: FakeOpenAIServer, enabled: bool, sent: bool
) -> None:
    async with make_client(fake_openai, json_response_format=enabled) as client:
        await client.complete(make_request(json_output=True))
        await client.complete(make_request(json_output=False))
    first, second = fake_openai.requests()
    assert ("response_format" in first.body) is sent
    assert "response_format" not in second.body


async def test_extra_headers_are_sent_and_no_key_means_no_authorization(
    fake_openai: FakeOpenAIServer,
) -> None:
    async with make_client(fake_openai, api_key=None, extra_headers={"X-Tenant": "blue"}) as client:
        await client.complete(make_request())
    (served,) = fake_openai.requests()
    assert served.headers["x-tenant"] == "blue"
    assert "authorization" not in served.headers


async def test_keepalive_comments_and_a_missing_done_do_not_disturb_the_answer(
    fake_openai: FakeOpenAIServer,
) -> None:
    fake_openai.script(
        "m",
        FakeResponse(content="still here", keepalive=True),
        FakeResponse(content="no done marker", fault="no_done"),
    )
    async with make_client(fake_openai) as client:
        _, first = await collect(client.stream(make_request()))
        _, second = await collect(client.stream(make_request()))
    assert first.text == "still here"
    assert second.text == "no done marker"
    assert len(second.attempts) == 1


async def test_a_server_lingering_after_done_does_not_hold_the_answer(
    fake_openai: FakeOpenAIServer,
) -> None:
    fake_openai.script("m", FakeResponse(content="done now", linger_after_done=5))
    started = time.monotonic()
    async with make_client(fake_openai) as client:
        _, result = await collect(client.stream(make_request()))
    assert result.text == "done now"
    assert time.monotonic() - started < 1.0


async def test_429_waits_for_retry_after_then_succeeds(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.script(
        "m",
        FakeResponse(status=429, error_type="rate_limit_exceeded", headers={"retry-after": "0.4"}),
        FakeResponse(content="after the wait"),
    )
    async with make_client(fake_openai, retry={"base_delay": 0.01, "max_delay": 2.0}) as client:
        result = await client.complete(make_request())
    assert result.text == "after the wait"
    first, second = fake_openai.requests()
    assert second.received_at - first.received_at >= 0.4
    limited, ok = result.attempts
    assert limited.error_code == Code.PROVIDER_RATE_LIMITED
    assert (limited.reached_provider, limited.may_be_billed, limited.succeeded) == (
        True,
        False,
        False,
    )
    assert limited.usage.prompt_tokens > 0
    assert limited.usage.source is TokenSource.ESTIMATED
    assert (ok.number, ok.succeeded) == (2, True)


async def test_retry_after_is_capped_by_max_delay(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.script("m", FakeResponse(status=429, headers={"retry-after": "30"}))
    started = time.monotonic()
    async with make_client(fake_openai, retry={"max_delay": 0.1}) as client:
        result = await client.complete(make_request())
    assert time.monotonic() - started < 2
    assert len(result.attempts) == 2


async def test_5xx_is_retried_up_to_max_attempts(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.script("m", *[FakeResponse(status=503)] * 3, FakeResponse(content="too late"))
    async with make_client(fake_openai, retry={"max_attempts": 3}) as client:
        with pytest.raises(LLMCallError) as caught:
            await client.complete(make_request())
    error = caught.value
    assert error.code == Code.PROVIDER_UNAVAILABLE
    assert "after 3 attempts" in error.message
    assert [a.error_code for a in error.attempts] == [Code.PROVIDER_UNAVAILABLE] * 3
    assert not any(a.may_be_billed for a in error.attempts)
    assert len(fake_openai.requests()) == 3


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, Code.PROVIDER_BAD_RESPONSE),
        (404, Code.PROVIDER_BAD_RESPONSE),
        (401, Code.PROVIDER_AUTH),
        (403, Code.PROVIDER_AUTH),
    ],
)
async def test_other_4xx_fail_at_once(
    fake_openai: FakeOpenAIServer, status: int, code: LLMErrorCode
) -> None:
    fake_openai.script("m", FakeResponse(status=status, error_type="invalid_request_error"))
    async with make_client(fake_openai) as client:
        with pytest.raises(LLMCallError) as caught:
            await collect(client.stream(make_request()))
    assert caught.value.code == code
    assert f"HTTP {status}" in caught.value.message
    (attempt,) = caught.value.attempts
    assert (attempt.reached_provider, attempt.may_be_billed) == (True, False)
    assert len(fake_openai.requests()) == 1


async def test_a_stream_cut_before_any_text_is_retried(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.script(
        "m", FakeResponse(fault="cut", fault_after=0), FakeResponse(content="second try")
    )
    async with make_client(fake_openai) as client:
        deltas, result = await collect(client.stream(make_request()))
    assert "".join(deltas) == "second try"
    cut, ok = result.attempts
    assert (cut.error_code, cut.may_be_billed, ok.succeeded) == (
        Code.PROVIDER_UNAVAILABLE,
        True,
        True,
    )


async def test_an_error_event_before_any_text_is_retried(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.script(
        "m",
        FakeResponse(fault="error_event", fault_after=0, error_event={"type": "overloaded"}),
        FakeResponse(content="recovered"),
    )
    async with make_client(fake_openai) as client:
        _, result = await collect(client.stream(make_request()))
    assert result.text == "recovered"
    assert [a.error_code for a in result.attempts] == [Code.PROVIDER_UNAVAILABLE, None]

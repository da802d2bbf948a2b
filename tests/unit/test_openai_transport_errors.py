"""How the OpenAI client classifies and retries transport failures, with ``httpx.MockTransport``
standing in for the network (no sockets)."""

from __future__ import annotations

import random
import time
from typing import Any

import httpx
import pytest

from domain.enums import CallKind
from domain.llm import ChatMessage, LLMCallError, LLMErrorCode, LLMRequest
from infra.llm.config import OpenAIProviderConfig
from infra.llm.openai_compatible import OpenAICompatibleClient

Code = LLMErrorCode
REQUEST = LLMRequest(
    provider="mock",
    model="m",
    messages=(ChatMessage(role="user", content="hi"),),
    max_output_tokens=8,
    call_kind=CallKind.AGENT_RESPONSE,
)


def _client(handler: Any, **overrides: Any) -> tuple[OpenAICompatibleClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)  # type: ignore[no-any-return]

    settings: dict[str, Any] = {
        "kind": "openai",
        "base_url": "http://mock/v1",
        "retry": {"max_attempts": 3, "base_delay": 0.001, "max_delay": 0.01},
    }
    settings.update(overrides)
    client = OpenAICompatibleClient(
        name="mock",
        config=OpenAIProviderConfig.model_validate(settings),
        transport=httpx.MockTransport(record),
        rng=random.Random(0),
    )
    return client, seen


def _raising(exc: type[httpx.TransportError]) -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc("simulated", request=request)

    return handler


@pytest.mark.parametrize(
    ("exc", "code", "reached", "billed", "attempts"),
    [
        (httpx.ConnectError, Code.PROVIDER_UNAVAILABLE, False, False, 3),
        (httpx.ConnectTimeout, Code.PROVIDER_TIMEOUT, False, False, 3),
        (httpx.WriteTimeout, Code.PROVIDER_TIMEOUT, True, False, 3),
        (httpx.WriteError, Code.PROVIDER_UNAVAILABLE, True, False, 3),
        (httpx.ReadTimeout, Code.PROVIDER_TIMEOUT, True, True, 3),
        (httpx.RemoteProtocolError, Code.PROVIDER_UNAVAILABLE, True, True, 3),
        (httpx.PoolTimeout, Code.PROVIDER_POOL_EXHAUSTED, False, False, 1),
        (httpx.UnsupportedProtocol, Code.PROVIDER_UNAVAILABLE, False, False, 1),
    ],
)
@pytest.mark.parametrize("streamed", [False, True])
async def test_transport_failures_are_classified_and_retried_as_documented(
    exc: type[httpx.TransportError],
    code: LLMErrorCode,
    reached: bool,
    billed: bool,
    attempts: int,
    streamed: bool,
) -> None:
    client, seen = _client(_raising(exc))
    async with client:
        with pytest.raises(LLMCallError) as caught:
            await _call(client, streamed=streamed)
    error = caught.value
    assert error.code == code
    assert len(seen) == len(error.attempts) == attempts
    assert {(a.reached_provider, a.may_be_billed) for a in error.attempts} == {(reached, billed)}
    assert [a.number for a in error.attempts] == list(range(1, attempts + 1))


async def _call(client: OpenAICompatibleClient, *, streamed: bool) -> None:
    if streamed:
        async for _ in client.stream(REQUEST):
            pass
    else:
        await client.complete(REQUEST)


async def test_no_retry_is_started_that_would_end_past_the_deadline() -> None:
    client, seen = _client(
        lambda request: httpx.Response(503),
        retry={"max_attempts": 5, "base_delay": 1.0, "max_delay": 1.0},
        timeouts={"total": 0.3},
    )
    started = time.monotonic()
    async with client:
        with pytest.raises(LLMCallError) as caught:
            await client.complete(REQUEST)
    assert time.monotonic() - started < 0.2  # did not sleep a second it did not have
    assert caught.value.code == Code.PROVIDER_UNAVAILABLE  # the real reason, not a timeout
    assert len(seen) == 1


async def test_the_request_goes_to_base_url_chat_completions() -> None:
    body = {"choices": [{"message": {"content": "ok"}, "finish_reason": "stop"}]}
    client, seen = _client(lambda request: httpx.Response(200, json=body))
    async with client:
        result = await client.complete(REQUEST)
    assert result.text == "ok"
    assert str(seen[0].url) == "http://mock/v1/chat/completions"

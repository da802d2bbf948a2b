"""Helpers shared by the LLM provider integration tests (not fixtures: plain functions)."""

from __future__ import annotations

from typing import Any

from domain.enums import CallKind
from domain.llm import ChatMessage, LLMGateway, LLMRequest, LLMResult, LLMStream, TextDelta
from infra.llm.config import OpenAIProviderConfig, parse_provider
from infra.llm.openai_compatible import OpenAICompatibleClient
from tests.fakes.openai_server import FakeOpenAIServer

API_KEY = "sk-test-Zq9SECRETvalue"
MESSAGES = (
    ChatMessage(role="system", content="You are terse."),
    ChatMessage(role="user", content="Say hello to the team, please."),
)


def make_request(model: str = "m", **overrides: Any) -> LLMRequest:
    values: dict[str, Any] = {
        "provider": "fake",
        "model": model,
        "messages": MESSAGES,
        "max_output_tokens": 64,
        "call_kind": CallKind.AGENT_RESPONSE,
    }
    values.update(overrides)
    return LLMRequest(**values)


def make_client(
    fake: FakeOpenAIServer, *, api_key: str | None = API_KEY, **overrides: Any
) -> OpenAICompatibleClient:
    config = parse_provider("fake", fake.provider_entry(**overrides), {})
    assert isinstance(config, OpenAIProviderConfig)
    return OpenAICompatibleClient(name="fake", config=config, api_key=api_key)


async def answer(gateway: LLMGateway, request: LLMRequest, *, streamed: bool) -> LLMResult:
    """The call's result, through ``stream()`` or ``complete()``."""
    if streamed:
        return (await collect(gateway.stream(request)))[1]
    return await gateway.complete(request)


async def collect(stream: LLMStream) -> tuple[list[str], LLMResult]:
    """All deltas of a stream and its result; fails if the stream breaks the contract."""
    deltas: list[str] = []
    async for item in stream:
        if isinstance(item, TextDelta):
            deltas.append(item.text)
            continue
        assert isinstance(item, LLMResult)
        leftover = [extra async for extra in stream]
        assert leftover == [], "nothing may follow the LLMResult"
        return deltas, item
    raise AssertionError("the stream ended without an LLMResult")

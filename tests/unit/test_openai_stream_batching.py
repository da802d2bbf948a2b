"""Chunks that one network read brings reach the caller as one delta; chunks that arrive apart
stay apart. ``httpx.MockTransport`` hands the body over in exactly the pieces given (no sockets),
so which chunks share a read is under the test's control."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator

import httpx
import pytest

from domain.llm import LLMCallError, LLMResult, TextDelta
from infra.llm.config import OpenAIProviderConfig
from infra.llm.openai_compatible import OpenAICompatibleClient
from tests.unit.test_openai_transport_errors import REQUEST


def event(text: str, finish: str | None = None) -> str:
    chunk = {
        "id": "c1",
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}],
    }
    return f"data: {json.dumps(chunk)}\n\n"


class Pieces(httpx.AsyncByteStream):
    def __init__(self, pieces: list[str]) -> None:
        self._pieces = pieces

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self._pieces:
            yield piece.encode()


def client_for(pieces: list[str]) -> OpenAICompatibleClient:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, headers={"content-type": "text/event-stream"}, stream=Pieces(pieces)
        )

    return OpenAICompatibleClient(
        name="mock",
        config=OpenAIProviderConfig.model_validate(
            {"kind": "openai", "base_url": "http://mock/v1", "retry": {"max_attempts": 1}}
        ),
        transport=httpx.MockTransport(handler),
        rng=random.Random(0),
    )


async def deltas_and_result(
    pieces: list[str], into: list[str] | None = None
) -> tuple[list[str], LLMResult]:
    client = client_for(pieces)
    deltas: list[str] = [] if into is None else into
    result: LLMResult | None = None
    try:
        async for item in client.stream(REQUEST):
            if isinstance(item, TextDelta):
                deltas.append(item.text)
            else:
                result = item
    finally:
        await client.aclose()
    assert result is not None
    return deltas, result


async def test_chunks_of_one_read_become_one_delta() -> None:
    pieces = [
        event("Hel") + event("lo") + event(", "),  # one read, three chunks
        event("wor"),
        event("ld", finish="stop") + "data: [DONE]\n\n",
    ]
    deltas, result = await deltas_and_result(pieces)
    assert deltas == ["Hello, ", "wor", "ld"]
    assert result.text == "Hello, world"


async def test_chunks_read_apart_stay_apart() -> None:
    pieces = [event(t) for t in ("a", "b", "c")] + [event("", finish="stop"), "data: [DONE]\n\n"]
    deltas, result = await deltas_and_result(pieces)
    assert deltas == ["a", "b", "c"]
    assert result.text == "abc"


async def test_a_bad_chunk_fails_the_call_after_the_text_read_before_it() -> None:
    error = 'data: {"error": {"message": "overloaded", "type": "server_error"}}\n\n'
    deltas: list[str] = []
    with pytest.raises(LLMCallError) as failure:
        await deltas_and_result([event("kept ") + event("too") + error], into=deltas)
    assert deltas == ["kept too"]
    assert failure.value.partial_text == "kept too"

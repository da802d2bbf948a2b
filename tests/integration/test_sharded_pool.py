"""A provider's pool in shards (infra/llm/sharded_pool.py), over real sockets to the fake
server: the configured limits are kept, requests spread over the shards, and a slot is freed
whenever a response is closed, however the call ends."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from infra.llm.sharded_pool import ShardedTransport, split
from tests.fakes.openai_script import FakeResponse
from tests.fakes.openai_server import FakeOpenAIServer

BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}


def test_shares_add_up_to_the_configured_limits() -> None:
    assert split(50, 4) == [13, 13, 12, 12]
    assert split(3, 1) == [3]
    transport = ShardedTransport(httpx.Limits(max_connections=50, max_keepalive_connections=20))
    pools = [shard._pool for shard in transport.shards]
    assert [p._max_connections for p in pools] == [13, 13, 12, 12]
    assert [p._max_keepalive_connections for p in pools] == [5, 5, 5, 5]
    small = ShardedTransport(httpx.Limits(max_connections=1, max_keepalive_connections=1))
    assert len(small.shards) == 1


async def test_concurrent_streams_spread_over_the_shards_and_free_their_slots(
    fake_openai: FakeOpenAIServer,
) -> None:
    # given: slow streams, more at once than one shard holds
    fake_openai.set_default(FakeResponse(content="a b c", token_delay=0.05))
    transport = ShardedTransport(httpx.Limits(max_connections=48, max_keepalive_connections=48))
    async with httpx.AsyncClient(transport=transport, base_url=fake_openai.base_url) as client:
        opened = asyncio.Event()
        peak: list[list[int]] = []

        async def stream() -> str:
            async with client.stream("POST", "/chat/completions", json=BODY) as response:
                if sum(transport.in_flight) == 40:
                    peak.append(list(transport.in_flight))
                    opened.set()
                return "".join([chunk async for chunk in response.aiter_text()])

        # when
        bodies = await asyncio.gather(*(stream() for _ in range(40)))

        # then: evenly spread while all were open, every slot freed after
        assert all("[DONE]" in body for body in bodies)
        assert opened.is_set()
        assert max(peak[0]) - min(peak[0]) <= 1, peak[0]
        assert transport.in_flight == [0, 0, 0]


async def test_a_failed_or_abandoned_request_frees_its_slot(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.set_default(FakeResponse(content=" ".join(["w"] * 50), token_delay=0.02))
    transport = ShardedTransport(httpx.Limits(max_connections=4))
    async with httpx.AsyncClient(transport=transport, base_url=fake_openai.base_url) as client:
        # abandoned mid-body
        async with client.stream("POST", "/chat/completions", json=BODY) as response:
            async for _ in response.aiter_text():
                break

        # cancelled mid-body
        async def read_all() -> None:
            async with client.stream("POST", "/chat/completions", json=BODY) as response:
                async for _ in response.aiter_text():
                    pass

        reading = asyncio.create_task(read_all())
        await asyncio.sleep(0.1)
        reading.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reading
        # never connected
        with pytest.raises(httpx.ConnectError):
            await client.post("http://127.0.0.1:9/v1/chat/completions", json=BODY)
        assert transport.in_flight == [0]

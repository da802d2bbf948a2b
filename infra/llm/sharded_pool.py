"""A provider's connection pool, split into shards of at most 16 connections.

httpcore's pool looks at every connection for every waiting request each time a request starts
or a response is closed, so its cost per event grows with (requests x connections): with a
hundred concurrent streams on 120 connections that scan was 60% of a loaded server's CPU in
`bench/turn_overhead.py`. Shards keep each scan small. A request goes to the shard with the
fewest requests in flight, so the shards fill evenly and one waits for a connection (up to the
pool timeout) only when all are about equally busy. The limits of the configured pool are kept:
the shards' connections and keep-alive connections add up to them exactly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx

SHARD_CONNECTIONS = 16


def split(total: int, parts: int) -> list[int]:
    """`total` in `parts` shares that differ by at most one and add up to it."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


class ShardedTransport(httpx.AsyncBaseTransport):
    def __init__(self, limits: httpx.Limits, *, shard_connections: int = SHARD_CONNECTIONS) -> None:
        total = limits.max_connections or shard_connections
        count = max(1, -(-total // shard_connections))  # ceiling division
        keepalive = limits.max_keepalive_connections
        keepalive_shares = split(keepalive, count) if keepalive is not None else [None] * count
        self.shards = [
            httpx.AsyncHTTPTransport(
                limits=httpx.Limits(
                    max_connections=connections,
                    max_keepalive_connections=kept,
                    keepalive_expiry=limits.keepalive_expiry,
                )
            )
            for connections, kept in zip(split(total, count), keepalive_shares, strict=True)
        ]
        self.in_flight = [0] * count

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        index = min(range(len(self.shards)), key=self.in_flight.__getitem__)
        self.in_flight[index] += 1
        try:
            response = await self.shards[index].handle_async_request(request)
        except BaseException:
            self.in_flight[index] -= 1
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_ReleasingStream(response.stream, lambda: self._release(index)),
            extensions=response.extensions,
        )

    def _release(self, index: int) -> None:
        self.in_flight[index] -= 1

    async def aclose(self) -> None:
        for shard in self.shards:
            await shard.aclose()


class _ReleasingStream(httpx.AsyncByteStream):
    """The shard's response body; closing it (httpx always does) frees the shard's slot."""

    def __init__(self, stream: httpx.AsyncByteStream, release: Callable[[], None]) -> None:
        self._stream = stream
        self._release: Callable[[], None] | None = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            release, self._release = self._release, None
            if release is not None:
                release()

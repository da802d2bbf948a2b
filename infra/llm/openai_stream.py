"""Reading one streamed ``/chat/completions`` response: SSE events as they arrive, within the
call's deadline, and what the attempt has received so far."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator

import httpx

from domain.llm import TokenUsage
from infra.llm.classify import bad_response, cut_short, deadline_exceeded, from_transport_error
from infra.llm.recording import CallRecorder
from infra.llm.sse import MalformedSSE, SSEDecoder
from infra.llm.wire import Completion

DONE = "[DONE]"
_DRAIN_GRACE = 0.25  # seconds we wait after [DONE] for the body's end before dropping the socket


async def read_events(
    response: httpx.Response, *, deadline: float, read_timeout: float, total: float
) -> AsyncGenerator[list[str], None]:
    """The ``data`` of the events each network read completes, one list per read (``[DONE]``
    last); raises ``AttemptFailure``. Batching by read lets the caller merge what arrived
    together: a busy process then handles fewer, larger deltas, and an idle one still sees
    each delta as soon as it is written."""
    decoder = SSEDecoder()
    chunks = response.aiter_text()
    try:
        while True:
            text = await _read(chunks, deadline, read_timeout, total)
            events = decoder.feed(text) if text is not None else decoder.close()
            if DONE in events:
                await _drain(chunks, deadline)
            if events:
                yield events
            if text is None:
                return
    except MalformedSSE as exc:
        raise bad_response(str(exc)) from None


async def _read(
    chunks: AsyncIterator[str], deadline: float, read_timeout: float, total: float
) -> str | None:
    """The next piece of the body (None at its end)."""
    remaining = deadline - asyncio.get_running_loop().time()
    if remaining <= 0:
        raise deadline_exceeded(total)
    try:
        if remaining > read_timeout:
            # httpx's read timeout ends this wait before the deadline comes: no need for a
            # timer of our own (one per read would be a third of the per-delta cost).
            return await anext(chunks, None)
        async with asyncio.timeout_at(deadline):
            return await anext(chunks, None)
    except TimeoutError:
        raise deadline_exceeded(total) from None
    except httpx.RequestError as exc:
        raise from_transport_error(exc, headers_received=True) from None


async def _drain(chunks: AsyncIterator[str], deadline: float) -> None:
    # Read on to the end of the body (normally just the chunked terminator) so the connection
    # goes back to the pool: closing a response mid-body discards its connection, and every
    # stream would then pay a new TCP (and TLS) handshake. A server that lingers is let go.
    grace = min(_DRAIN_GRACE, deadline - asyncio.get_running_loop().time())
    try:
        async with asyncio.timeout(max(grace, 0)):
            async for _ in chunks:
                pass
    except (TimeoutError, httpx.RequestError):
        pass


class StreamProgress:
    """What one streamed attempt has received so far."""

    __slots__ = ("finish_reason", "usage", "yielded")

    def __init__(self) -> None:
        self.finish_reason: str | None = None
        self.usage: TokenUsage | None = None
        self.yielded = False

    def absorb(self, chunk: Completion, recorder: CallRecorder) -> str:
        """Take in one chunk; return its text to hand to the caller."""
        recorder.set_request_id(chunk.response_id)
        recorder.set_response_model(chunk.model)
        self.finish_reason = chunk.finish_reason or self.finish_reason
        self.usage = chunk.usage or self.usage  # some servers repeat usage on every chunk
        if chunk.text:
            recorder.received(chunk.text)
            self.yielded = True
        return chunk.text

    def check_ended_cleanly(self) -> None:
        """The body ended without ``[DONE]``: fine after a finish reason, a cut otherwise."""
        if self.finish_reason is None:
            raise cut_short()

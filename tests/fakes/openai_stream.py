"""How the fake OpenAI server writes one scripted ``FakeResponse`` to the wire (raw ASGI)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from tests.fakes.openai_script import FakeResponse

Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_MID_STREAM_FAULTS = frozenset({"malformed_sse", "not_sse", "cut", "error_event"})


async def respond(
    body: dict[str, Any],
    response: FakeResponse,
    serial: int,
    send: Send,
    disconnected: asyncio.Event,
) -> None:
    """Answer ``body`` as ``response`` says; stop early when the client has gone."""
    response = _within_max_tokens(body, response)
    if await _pause(response.hang, disconnected):
        return
    if response.status != 200:
        error = {"message": response.error_message, "type": response.error_type, "code": None}
        payload = json.dumps({"error": error}).encode()
        await _whole(send, response.status, payload, response, request_serial=serial)
        return
    if response.fault == "not_json":
        page = b"<html><body>502 Bad Gateway</body></html>"
        await _whole(send, 200, page, response, "text/html", request_serial=serial)
        return
    if body.get("stream"):
        await _stream(body, response, serial, send, disconnected)
    else:
        await _complete(body, response, serial, send, disconnected)


def _within_max_tokens(body: dict[str, Any], response: FakeResponse) -> FakeResponse:
    """A real provider never generates more than the request's ``max_tokens``; neither does the
    fake: longer answers (deltas or a scripted ``completion_tokens``) stop there, "length"."""
    limit = body.get("max_tokens")
    if not isinstance(limit, int) or isinstance(limit, bool):
        return response
    deltas = response.deltas()
    completion = len(deltas) if response.completion_tokens is None else response.completion_tokens
    if completion <= limit:
        return response
    return dataclasses.replace(
        response,
        chunks=deltas[:limit],
        completion_tokens=None if response.completion_tokens is None else limit,
        finish_reason="length",
    )


async def _complete(
    body: dict[str, Any],
    response: FakeResponse,
    serial: int,
    send: Send,
    disconnected: asyncio.Event,
) -> None:
    deltas = response.deltas()
    if await _pause(response.token_delay * len(deltas), disconnected):
        return  # a non-streaming server "generates" before it answers
    message = {"role": "assistant", "content": "".join(deltas)}
    payload: dict[str, Any] = {
        "id": f"chatcmpl-fake-{serial}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model"),
        "choices": [{"index": 0, "message": message, "finish_reason": response.finish_reason}],
    }
    if response.usage:
        payload["usage"] = usage(body, response, len(deltas))
    encoded = json.dumps(payload).encode()
    if response.fault == "cut":
        headers = _headers(response, "application/json", serial)
        headers.append((b"content-length", str(len(encoded)).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": encoded[:10], "more_body": True})
        return  # returning mid-body makes uvicorn close the connection
    await _whole(send, 200, encoded, response, request_serial=serial)


async def _stream(
    body: dict[str, Any],
    response: FakeResponse,
    serial: int,
    send: Send,
    disconnected: asyncio.Event,
) -> None:
    headers = _headers(response, "text/event-stream", serial)
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    if await _pause(response.hang_after_headers, disconnected):
        return
    chunk_id, model = f"chatcmpl-fake-{serial}", body.get("model")
    await _event(send, _chunk(chunk_id, model, {"role": "assistant", "content": ""}))
    deltas = response.deltas()
    for index, delta in enumerate(deltas):
        if response.fault in _MID_STREAM_FAULTS and index == response.fault_after:
            await _fault(send, response)
            return
        if response.keepalive:
            await _raw(send, b": keep-alive\n\n")
        if await _pause(response.token_delay, disconnected) or disconnected.is_set():
            return
        await _event(send, _chunk(chunk_id, model, {"content": delta}))
    if response.fault in _MID_STREAM_FAULTS:  # fault_after >= number of deltas
        await _fault(send, response)
        return
    await _event(send, _chunk(chunk_id, model, {}, finish_reason=response.finish_reason))
    options = body.get("stream_options") or {}
    if response.usage and options.get("include_usage"):
        final: dict[str, Any] = {
            "id": chunk_id,
            "object": "chat.completion.chunk",
            "model": model,
            "choices": [],
        }
        final["usage"] = usage(body, response, len(deltas))
        await _event(send, final)
    if response.fault != "no_done":
        await _raw(send, b"data: [DONE]\n\n")
    if await _pause(response.linger_after_done, disconnected):
        return
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _fault(send: Send, response: FakeResponse) -> None:
    if response.fault == "cut":
        return  # returning mid-body makes uvicorn close the connection
    if response.fault == "malformed_sse":
        await _raw(send, b'data: {"id": "x", "choices": [{"delta": {"content": "tru\n\n')
    elif response.fault == "not_sse":
        await _raw(send, b"<html><body>upstream error</body></html>\n\n")
    elif response.fault == "error_event":
        await _event(send, {"error": dict(response.error_event)})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


def usage(body: dict[str, Any], response: FakeResponse, deltas: int) -> dict[str, Any]:
    """The usage the fake reports (deliberately not the client's estimate)."""
    messages = body.get("messages") or []
    prompt = response.prompt_tokens
    if prompt is None:
        prompt = sum(len(str(m.get("content", "")).split()) + 2 for m in messages)
    completion = deltas if response.completion_tokens is None else response.completion_tokens
    result: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if response.cached_tokens is not None:
        result["prompt_tokens_details"] = {"cached_tokens": response.cached_tokens}
    if response.reasoning_tokens is not None:
        result["completion_tokens_details"] = {"reasoning_tokens": response.reasoning_tokens}
    return result


def _chunk(
    chunk_id: str, model: Any, delta: dict[str, Any], *, finish_reason: str | None = None
) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
    return {"id": chunk_id, "object": "chat.completion.chunk", "model": model, "choices": [choice]}


async def _event(send: Send, payload: dict[str, Any]) -> None:
    await _raw(send, b"data: " + json.dumps(payload).encode() + b"\n\n")


async def _raw(send: Send, data: bytes) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": True})


async def _whole(
    send: Send,
    status: int,
    body: bytes,
    response: FakeResponse,
    content_type: str = "application/json",
    request_serial: int | None = None,
) -> None:
    headers = _headers(response, content_type, request_serial)
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _headers(
    response: FakeResponse, content_type: str, serial: int | None
) -> list[tuple[bytes, bytes]]:
    headers = [(b"content-type", content_type.encode())]
    if serial is not None:
        headers.append((b"x-request-id", f"req-fake-{serial}".encode()))
    headers += [(k.lower().encode(), v.encode()) for k, v in response.headers.items()]
    return headers


async def _pause(seconds: float, disconnected: asyncio.Event) -> bool:
    """Wait ``seconds``; True if the client disconnected meanwhile."""
    if seconds <= 0:
        return False
    try:
        await asyncio.wait_for(disconnected.wait(), seconds)
    except TimeoutError:
        return False
    return True

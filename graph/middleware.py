"""Pure ASGI middleware: request ids and the request size limit (answered as a GraphQL error)."""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from graph.errors import (
    MASKED_MESSAGE,
    RETRY_AFTER_SECONDS,
    UNAVAILABLE_CODE,
    UNAVAILABLE_MESSAGE,
    InfraFault,
    error_payload,
    no_infra_fault,
)
from graph.request_context import bind_request_id, current_request_id, reset_request_id

log = logging.getLogger("pantheon.http")


class RequestIdMiddleware:
    """Binds a request id for logs and masked errors and returns it as `X-Request-ID`.

    An exception escaping the app before the response started (e.g. the database failing while
    the GraphQL context authenticates) is logged under the request id and answered as a masked
    JSON GraphQL error, not Starlette's plain-text 500 without an id. When `infra_fault`
    recognises it (the database unreachable, its pool exhausted) nothing of the request ran:
    503 SERVICE_UNAVAILABLE with Retry-After, logged in one line."""

    def __init__(self, app: ASGIApp, *, infra_fault: InfraFault = no_infra_fault) -> None:
        self.app = app
        self.infra_fault = infra_fault

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        token = bind_request_id(_header(scope, b"x-request-id"))
        request_id = current_request_id() or ""
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as error:
            if scope["type"] != "http" or started:
                raise
            fault = self.infra_fault(error)
            if fault is not None:
                log.warning("database unavailable (request %s): %s", request_id, fault)
                payload = error_payload(UNAVAILABLE_MESSAGE, UNAVAILABLE_CODE, requestId=request_id)
                await _send_json(send_with_id, 503, payload, retry_after=RETRY_AFTER_SECONDS)
                return
            log.exception("unexpected error outside GraphQL execution (request %s)", request_id)
            payload = error_payload(MASKED_MESSAGE, "INTERNAL_SERVER_ERROR", requestId=request_id)
            await _send_json(send_with_id, 500, payload)
        finally:
            reset_request_id(token)


class BodySizeLimitMiddleware:
    """Refuses bodies over `max_bytes` with 413 and a JSON GraphQL error (REQUEST_TOO_LARGE),
    whether the size is announced by Content-Length or only discovered while reading chunks."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_bytes:
                await self._refuse(send)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(b"".join(chunks), receive), send)

    async def _refuse(self, send: Send) -> None:
        payload = error_payload(
            f"request body larger than {self.max_bytes} bytes",
            "REQUEST_TOO_LARGE",
            requestId=current_request_id(),
        )
        await _send_json(send, 413, payload)


async def _send_json(
    send: Send, status: int, payload: dict[str, object], *, retry_after: int | None = None
) -> None:
    body = json.dumps(payload).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # later messages (e.g. disconnect) pass through

    return replay


def _header(scope: Scope, name: bytes) -> Any:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None

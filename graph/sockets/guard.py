"""The ASGI layer under every WebSocket: it enforces the inbound message size whatever server
runs the app, and lets the registry close a socket from outside the GraphQL handler.

Closing from outside is done here rather than through Starlette's `WebSocket.close`: the guard
sends the close frame itself, drops whatever the handler sends afterwards, and answers the
handler's pending `receive` with a disconnect, so Strawberry shuts the socket's operations down
the same way as when the client leaves."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("pantheon.sockets")

SCOPE_KEY = "pantheon.socket"
"""Where the guard puts the connection's `GuardedSocket` in the ASGI scope."""

MESSAGE_TOO_BIG = 1009  # RFC 6455: a message too big to process
POLICY_VIOLATION = 1008  # RFC 6455 (graphql-transport-ws already uses 4429 for its own case)
FORBIDDEN = 4403  # graphql-transport-ws: Forbidden


class GuardedSocket:
    """One WebSocket connection as the guard sees it: its own receive/send for the app, and
    `close` for the registry."""

    def __init__(self, receive: Receive, send: Send, *, max_message_bytes: int) -> None:
        self.id = uuid.uuid4().hex
        self._receive = receive
        self._send = send
        self._max_message_bytes = max_message_bytes
        self._closed = asyncio.Event()
        self._close_code = 1000
        self._pending: asyncio.Future[Message] | None = None
        self._closing: asyncio.Future[Any] | None = None
        self._on_end: list[Callable[[], Awaitable[None]]] = []
        self.finished = False  # the connection is over and its `on_end` callbacks ran

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    @property
    def close_code(self) -> int | None:
        return self._close_code if self.closed else None

    def on_end(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Runs once the connection is over (the registry frees the socket's place)."""
        self._on_end.append(callback)

    async def close(self, code: int, reason: str) -> None:
        """Closes the socket with `code`; the app's later messages are dropped."""
        if self.closed:
            return
        self._closed.set()
        self._close_code = code
        try:
            await self._send({"type": "websocket.close", "code": code, "reason": reason})
        except Exception as exc:  # the client may be gone already
            log.debug("closing socket %s failed (%s)", self.id, type(exc).__name__)

    async def receive(self) -> Message:
        if self.closed:
            return self._disconnect()
        if self._pending is None:
            self._pending = asyncio.ensure_future(self._receive())
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._closed.wait())
        pending: asyncio.Future[Any] = self._pending
        await asyncio.wait({pending, self._closing}, return_when=asyncio.FIRST_COMPLETED)
        if not pending.done():  # closed while the app waited for the client
            return self._disconnect()
        message: Message = pending.result()
        self._pending = None
        if message["type"] == "websocket.receive" and self._too_big(message):
            await self.close(MESSAGE_TOO_BIG, f"message over {self._max_message_bytes} bytes")
            return self._disconnect()
        if message["type"] == "websocket.disconnect":
            self._closed.set()
        return message

    async def send(self, message: Message) -> None:
        if self.closed:
            return  # closed by the guard (or already by the app): nothing more goes out
        if message["type"] == "websocket.close":
            self._close_code = int(message.get("code", 1000))
            self._closed.set()
        await self._send(message)

    def _too_big(self, message: Message) -> bool:
        limit = self._max_message_bytes
        data = message.get("bytes")
        if data is not None:
            return len(data) > limit
        text = message.get("text") or ""
        # A character is 1-4 bytes in UTF-8: encode only when the length alone cannot tell.
        if len(text) <= limit // 4:
            return False
        return len(text) > limit or len(text.encode("utf-8")) > limit

    def _disconnect(self) -> Message:
        return {"type": "websocket.disconnect", "code": self._close_code}

    async def finish(self) -> None:
        self.finished = True
        for future in (self._pending, self._closing):
            if future is not None and not future.done():
                future.cancel()
        callbacks, self._on_end = self._on_end, []
        for callback in callbacks:
            try:
                await callback()
            except Exception:
                log.exception("socket %s: cleanup failed", self.id)


def guarded_socket(scope: Scope) -> GuardedSocket | None:
    found = scope.get(SCOPE_KEY)
    return found if isinstance(found, GuardedSocket) else None


class WebSocketGuardMiddleware:
    """Wraps every WebSocket connection in a `GuardedSocket` (HTTP passes through)."""

    def __init__(self, app: ASGIApp, *, max_message_bytes: int) -> None:
        self.app = app
        self.max_message_bytes = max_message_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        socket = GuardedSocket(receive, send, max_message_bytes=self.max_message_bytes)
        scope[SCOPE_KEY] = socket
        try:
            await self.app(scope, socket.receive, socket.send)
        finally:
            await socket.finish()

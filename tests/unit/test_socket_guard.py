"""The WebSocket guard on its own (fake ASGI receive/send): the size bound counts UTF-8 bytes
and binary frames, a close from outside ends the app's pending receive, and nothing the app
sends after it goes out. Also the uvicorn limits `pantheon serve` passes."""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn

from graph.cli import server_limits
from graph.sockets.guard import GuardedSocket
from infra.settings import Settings

LIMIT = 1_024


class FakePeer:
    """The server side of the ASGI connection: queued client messages, recorded sends."""

    def __init__(self, *incoming: dict[str, Any]) -> None:
        self.incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        for message in incoming:
            self.incoming.put_nowait(message)
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        return await self.incoming.get()

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)


def _socket(peer: FakePeer) -> GuardedSocket:
    return GuardedSocket(peer.receive, peer.send, max_message_bytes=LIMIT)


async def test_text_is_measured_in_utf8_bytes_not_characters() -> None:
    fits = "é" * (LIMIT // 2)  # 2 bytes each: exactly the limit
    too_big = "€" * (LIMIT // 3 + 1)  # 3 bytes each: fewer characters than the limit, more bytes
    peer = FakePeer(
        {"type": "websocket.receive", "text": fits},
        {"type": "websocket.receive", "text": too_big},
    )
    socket = _socket(peer)
    assert (await socket.receive())["text"] == fits
    assert (await socket.receive())["type"] == "websocket.disconnect"
    assert peer.sent == [
        {"type": "websocket.close", "code": 1009, "reason": f"message over {LIMIT} bytes"}
    ]
    await socket.finish()


async def test_binary_frames_are_bounded_too() -> None:
    peer = FakePeer({"type": "websocket.receive", "bytes": b"x" * (LIMIT + 1)})
    socket = _socket(peer)
    assert (await socket.receive())["type"] == "websocket.disconnect"
    assert socket.close_code == 1009
    await socket.finish()


async def test_a_close_from_outside_ends_the_pending_receive_and_silences_the_app() -> None:
    peer = FakePeer()
    socket = _socket(peer)
    released: list[str] = []

    async def release() -> None:
        released.append(socket.id)

    socket.on_end(release)
    await socket.send({"type": "websocket.accept"})
    pending = asyncio.create_task(socket.receive())
    await asyncio.sleep(0)
    await socket.close(4403, "token revoked")
    assert (await asyncio.wait_for(pending, 5))["type"] == "websocket.disconnect"
    await socket.send({"type": "websocket.send", "text": "late"})
    assert peer.sent == [
        {"type": "websocket.accept"},
        {"type": "websocket.close", "code": 4403, "reason": "token revoked"},
    ]
    await socket.finish()
    assert released == [socket.id]


def test_serve_passes_the_connection_limits_to_uvicorn() -> None:
    settings = Settings(
        limit_concurrency=50,
        keep_alive_seconds=7,
        ws_ping_interval_seconds=11.0,
        ws_ping_timeout_seconds=13.0,
        max_websocket_message_bytes=2_048,
    )
    config = uvicorn.Config("graph.app:create_app", **server_limits(settings))
    assert config.limit_concurrency == 50
    assert config.timeout_keep_alive == 7
    assert config.ws_ping_interval == 11.0
    assert config.ws_ping_timeout == 13.0
    assert config.ws_max_size == 2_048


def test_connection_defaults() -> None:
    defaults = Settings()
    assert defaults.max_websockets_per_user == 10
    assert defaults.max_websocket_message_bytes == 64 * 1024
    assert defaults.limit_concurrency == 1_000
    assert defaults.cors_origin_list == []

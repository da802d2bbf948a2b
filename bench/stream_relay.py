"""The bare relay: stream_latency.py's baseline, run as its own process (`--role relay`).

A minimal Starlette app under uvicorn (started the way Pantheon is: `uvicorn.Config` with port
0, its own socket, default loop and parsers). Per WebSocket client it reads one JSON message (the
model and messages), opens a streamed `POST {fake}/chat/completions` with httpx (the body Pantheon
sends: model, messages, max_tokens, stream, stream_options), and forwards each SSE `data:`
chunk's delta text as one text message `{"text": ...}`; then `{"done": true}` and a close. No
GraphQL, no database, no broker: the floor for "read a provider stream in Python and push each
delta to a WebSocket" on this machine.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

FAKE_URL_ENV = "STREAM_BENCH_FAKE_URL"  # the fake's base URL, ending in /v1
CONNECTIONS_ENV = "STREAM_BENCH_CONNECTIONS"  # the relay's provider pool size
MAX_TOKENS = 2048  # what the catalog's qwen-plus sends


def create_relay(fake_url: str, connections: int) -> Starlette:
    clients: list[httpx.AsyncClient] = []

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        async with httpx.AsyncClient(limits=limits, timeout=60) as http:
            clients.append(http)
            yield

    async def relay(ws: WebSocket) -> None:
        await ws.accept()
        try:
            request: dict[str, Any] = await ws.receive_json()
            body = {
                "model": request["model"],
                "messages": request["messages"],
                "max_tokens": MAX_TOKENS,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
            url = f"{fake_url}/chat/completions"
            async with clients[0].stream("POST", url, json=body) as response:
                response.raise_for_status()
                async for line in response.aiter_lines():
                    if not line.startswith("data: "):
                        continue
                    if line == "data: [DONE]":
                        break
                    choices = json.loads(line[6:]).get("choices")
                    if choices and (text := choices[0].get("delta", {}).get("content")):
                        await ws.send_text(json.dumps({"text": text}))
            await ws.send_text(json.dumps({"done": True}))
        except WebSocketDisconnect:
            return
        except Exception as error:  # reported to the client, which counts it as a failure
            await ws.send_text(json.dumps({"error": repr(error)[:300]}))
        await ws.close()

    return Starlette(routes=[WebSocketRoute("/relay", relay)], lifespan=lifespan)


def serve_relay() -> None:
    """Prints the port, then serves until SIGINT/SIGTERM (uvicorn's own handlers)."""
    import uvicorn

    app = create_relay(os.environ[FAKE_URL_ENV], int(os.environ.get(CONNECTIONS_ENV, "100")))
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None)
    sock = config.bind_socket()
    print(sock.getsockname()[1], flush=True)
    uvicorn.Server(config).run(sockets=[sock])

"""A fake OpenAI-compatible server: real HTTP on 127.0.0.1 (uvicorn, like vLLM), scriptable.

It serves ``POST /v1/chat/completions``, streaming (SSE, with usage when the request asks for
``stream_options.include_usage``) or not, and logs every request it receives (method, path,
headers, JSON body) so a test can assert exactly which calls were made and what they carried.

**Every model answers ``"not json"`` unless told otherwise** (``DEFAULT_CONTENT``): a manager's
routing call therefore takes the caller's fallback path by default. Script answers per model::

    fake.script("gpt-x", FakeResponse(status=429, headers={"retry-after": "1"}), FakeResponse())
    fake.set_default(FakeResponse(content='{"selected_agent_keys": ["writer"]}'), model="mgr")
    fake.reject_stream_options = True       # answer 400 to any request carrying stream_options
    fake.requests(model="gpt-x")            # the log, oldest first
    fake.reset()                            # between tests (the ``fake_openai`` fixture does it)

The server runs in a background thread with its own event loop, so sync and async tests (and
any number of event loops) can use it. Standalone::

    python -m tests.fakes.openai_server --port 8001 --content "Hello there" --token-delay 0.05
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn

from tests.fakes.openai_script import DEFAULT_CONTENT, FakeResponse, FakeScript, RecordedRequest
from tests.fakes.openai_stream import respond

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class _QuietCut(logging.Filter):
    """uvicorn reports the connections we cut on purpose as errors; they are not."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "returned without completing response" not in record.getMessage()


class FakeOpenAIServer:
    """Start with ``start()`` (or ``with FakeOpenAIServer() as fake:``); ``port=0`` picks a free
    port. Scripting methods are those of ``FakeScript``."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._script = FakeScript()
        self._socket = _listening_socket(host, port)
        self.host, self.port = self._socket.getsockname()[:2]
        config = uvicorn.Config(
            self._app,
            log_config=None,
            access_log=False,
            lifespan="off",
            interface="asgi3",
            timeout_graceful_shutdown=1,
            timeout_keep_alive=30,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._serve, name="fake-openai", daemon=True)
        self._filter = _QuietCut()

    # --- lifecycle ----------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> FakeOpenAIServer:
        logging.getLogger("uvicorn.error").addFilter(self._filter)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fake OpenAI server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        logging.getLogger("uvicorn.error").removeFilter(self._filter)

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _serve(self) -> None:
        asyncio.run(self._server.serve(sockets=[self._socket]))

    # --- scripting and the log (thread-safe) --------------------------------------------------

    def script(self, model: str, *responses: FakeResponse) -> None:
        self._script.script(model, *responses)

    def set_default(self, response: FakeResponse, *, model: str | None = None) -> None:
        self._script.set_default(response, model=model)

    def requests(self, *, model: str | None = None) -> list[RecordedRequest]:
        return self._script.requests(model=model)

    def reset(self) -> None:
        self._script.reset()

    @property
    def reject_stream_options(self) -> bool:
        return self._script.reject_stream_options

    @reject_stream_options.setter
    def reject_stream_options(self, value: bool) -> None:
        self._script.reject_stream_options = value

    def provider_entry(self, **overrides: Any) -> dict[str, Any]:
        """A catalog ``[providers.x]`` entry pointing at this server, with test-sized timeouts.

        Overrides of the nested tables (``timeouts``, ``retry``, ``pool``) are merged into them.
        """
        entry: dict[str, Any] = {
            "kind": "openai",
            "base_url": self.base_url,
            # connect: loopback, but a CPU-starved CI box once took over 1 s to accept
            "timeouts": {"connect": 3.0, "read": 2.0, "write": 1.0, "total": 5.0},
            "retry": {"max_attempts": 3, "base_delay": 0.01, "max_delay": 0.05, "jitter": 0.1},
            "pool": {"max_connections": 10, "max_keepalive": 10, "pool_timeout": 1.0},
        }
        for key, value in overrides.items():
            nested = entry.get(key)
            entry[key] = {**nested, **value} if isinstance(nested, dict) else value
        return entry

    # --- the ASGI application -----------------------------------------------------------------

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        raw = await _read_body(receive)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        port = scope["client"][1] if scope.get("client") else None
        serial = self._script.record(scope["method"], scope["path"], headers, body, port)
        if scope["method"] != "POST" or scope["path"] != "/v1/chat/completions":
            await _json(send, 404, {"error": {"message": "not found", "type": "not_found"}})
            return
        if not isinstance(body, dict):
            await _json(send, 400, _error("body is not a JSON object", "invalid_request_error"))
            return
        if self._script.reject_stream_options and "stream_options" in body:
            message = "Unrecognized request argument supplied: stream_options"
            await _json(send, 400, _error(message, "invalid_request_error"))
            return
        response = self._script.next_response(str(body.get("model", "")))
        disconnected = asyncio.Event()
        watcher = asyncio.create_task(_watch(receive, disconnected))
        try:
            await respond(body, response, serial, send, disconnected)
        finally:
            watcher.cancel()
        if disconnected.is_set():
            self._script.mark_disconnected(serial)


def _listening_socket(host: str, port: int) -> socket.socket:
    # Created with an explicit IPPROTO_TCP: asyncio only turns Nagle off (TCP_NODELAY) on
    # sockets whose proto says TCP, and with Nagle on, uvicorn's separate header and body
    # writes meet the client's delayed ACK and every plain answer takes 40 ms longer.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    return sock


async def _read_body(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += bytes(message.get("body", b""))
        if not message.get("more_body"):
            return body


async def _watch(receive: Receive, disconnected: asyncio.Event) -> None:
    # uvicorn answers "disconnect" here when the client hangs up mid-response.
    message = await receive()
    if message["type"] == "http.disconnect":
        disconnected.set()


async def _json(send: Send, status: int, payload: Any) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _error(message: str, kind: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "code": None}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake OpenAI-compatible server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001, help="0 picks a free port")
    parser.add_argument("--content", default=None, help="default answer (default: 'not json')")
    parser.add_argument("--token-delay", type=float, default=0.0)
    parser.add_argument("--no-usage", action="store_true")
    args = parser.parse_args(argv)
    server = FakeOpenAIServer(host=args.host, port=args.port)
    content = DEFAULT_CONTENT if args.content is None else args.content
    server.set_default(
        FakeResponse(content=content, token_delay=args.token_delay, usage=not args.no_usage)
    )
    with server:
        print(f"fake OpenAI server on {server.base_url}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()

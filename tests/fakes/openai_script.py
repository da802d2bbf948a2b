"""What the fake OpenAI server answers (``FakeResponse``) and what it remembers (``RequestLog``).

Both are shared between the test's thread and the server's thread, so every access to the
mutable state goes through one lock.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

DEFAULT_CONTENT = "not json"
"""What every model answers unless a test says otherwise. Manager-routing calls therefore get
unparseable output by default, so the fallback path is the one tests exercise by default."""

Fault = Literal["malformed_sse", "not_sse", "not_json", "cut", "error_event", "no_done"]


@dataclass(frozen=True, kw_only=True)
class FakeResponse:
    """One scripted answer. The defaults are a well-behaved 200 answering ``not json``.

    Faults (``fault``, after ``fault_after`` content deltas when streaming):

    - ``malformed_sse``: a ``data:`` line whose JSON is truncated;
    - ``not_sse``: a line that is not SSE at all (an HTML fragment);
    - ``not_json``: a 200 whose whole body is HTML (streaming or not);
    - ``cut``: the connection is closed mid-body (no finish, no ``[DONE]``);
    - ``error_event``: a ``data: {"error": ...}`` event, then the body ends;
    - ``no_done``: the finish chunk arrives but ``data: [DONE]`` never does.
    """

    content: str = DEFAULT_CONTENT
    chunks: tuple[str, ...] | None = None  # the stream's deltas; default: content word by word
    finish_reason: str = "stop"
    status: int = 200
    error_type: str = "server_error"
    error_message: str = "scripted failure"
    headers: Mapping[str, str] = field(default_factory=dict)  # e.g. {"retry-after": "1"}
    usage: bool = True
    prompt_tokens: int | None = None  # default: words in the prompt + 2 per message
    completion_tokens: int | None = None  # default: number of deltas
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    token_delay: float = 0.0  # seconds before each delta
    hang: float = 0.0  # seconds before the response headers (cut short by a disconnect)
    hang_after_headers: float = 0.0  # seconds between the headers and the first delta
    keepalive: bool = False  # a ": keep-alive" comment before every delta
    linger_after_done: float = 0.0  # seconds the body stays open after "data: [DONE]"
    fault: Fault | None = None
    fault_after: int = 0
    error_event: Mapping[str, Any] = field(
        default_factory=lambda: {"message": "scripted stream failure", "type": "server_error"}
    )

    def deltas(self) -> tuple[str, ...]:
        if self.chunks is not None:
            return self.chunks
        return tuple(re.findall(r"\S+\s*", self.content)) or ("",)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FakeResponse:
        """Build from a JSON object (for the CLI); ``chunks`` may be a list."""
        values = dict(data)
        if values.get("chunks") is not None:
            values["chunks"] = tuple(values["chunks"])
        return cls(**values)


@dataclass(frozen=True, kw_only=True)
class RecordedRequest:
    """One request the fake served. ``disconnected_at`` (``time.monotonic()``) is set when the
    client hung up before the response was complete. ``serial`` is unique per server."""

    serial: int
    method: str
    path: str
    headers: Mapping[str, str]
    body: Any
    received_at: float
    client_port: int | None = None  # the same port twice means a reused keep-alive connection
    disconnected_at: float | None = None

    @property
    def model(self) -> str | None:
        return self.body.get("model") if isinstance(self.body, dict) else None

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", [])) if isinstance(self.body, dict) else []

    @property
    def streamed(self) -> bool:
        return isinstance(self.body, dict) and bool(self.body.get("stream"))


class FakeScript:
    """Per-model queues of scripted answers, per-model defaults, and the request log."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[str, deque[FakeResponse]] = {}
        self._defaults: dict[str, FakeResponse] = {}
        self._default = FakeResponse()
        self._log: list[RecordedRequest] = []
        self._serials = itertools.count()
        self.reject_stream_options = False

    def reset(self) -> None:
        """Forget scripts, defaults and the log; restore the ``not json`` default."""
        with self._lock:
            self._queues.clear()
            self._defaults.clear()
            self._default = FakeResponse()
            self._log.clear()
            self.reject_stream_options = False

    def script(self, model: str, *responses: FakeResponse) -> None:
        """Queue answers for ``model``: each request takes the next; then the defaults apply."""
        with self._lock:
            self._queues.setdefault(model, deque()).extend(responses)

    def set_default(self, response: FakeResponse, *, model: str | None = None) -> None:
        """The answer once ``model``'s queue is empty (``model=None``: for every model)."""
        with self._lock:
            if model is None:
                self._default = response
            else:
                self._defaults[model] = response

    def next_response(self, model: str) -> FakeResponse:
        with self._lock:
            queue = self._queues.get(model)
            if queue:
                return queue.popleft()
            return self._defaults.get(model, self._default)

    def record(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        body: Any,
        client_port: int | None = None,
    ) -> int:
        """Log a request; returns its serial."""
        with self._lock:
            serial = next(self._serials)
            self._log.append(
                RecordedRequest(
                    serial=serial,
                    method=method,
                    path=path,
                    headers=headers,
                    body=body,
                    received_at=time.monotonic(),
                    client_port=client_port,
                )
            )
            return serial

    def mark_disconnected(self, serial: int) -> None:
        with self._lock:
            for position, entry in enumerate(self._log):  # gone if a reset came in between
                if entry.serial == serial:
                    self._log[position] = dataclasses.replace(
                        entry, disconnected_at=time.monotonic()
                    )

    def requests(self, *, model: str | None = None) -> list[RecordedRequest]:
        """Every request served so far (optionally only ``model``'s), oldest first."""
        with self._lock:
            return [r for r in self._log if model is None or r.model == model]

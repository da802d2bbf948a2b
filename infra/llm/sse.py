"""A minimal Server-Sent Events decoder for OpenAI-style streams.

It takes text chunks as they come off the socket and returns the ``data`` of every event they
complete, so the client waits (and checks its deadline) once per network read, not once per line.
Comment lines (``:`` keep-alives) and the ``event``/``id``/``retry`` fields are ignored; any other
non-blank line means the body is not an event stream and raises ``MalformedSSE``. Lines end with
``\\n``, ``\\r\\n`` or a bare ``\\r``, as the SSE specification allows (a ``\\r\\n`` split
between two chunks counts once).
"""

from __future__ import annotations

_IGNORED_FIELDS = frozenset({"event", "id", "retry"})


class MalformedSSE(ValueError):
    """The body is not a well-formed event stream."""


class SSEDecoder:
    """Incremental decoder: ``feed()`` chunks, then ``close()`` at the end of the body."""

    __slots__ = ("_after_cr", "_buffer", "_data")

    def __init__(self) -> None:
        self._buffer = ""
        self._data: list[str] = []
        self._after_cr = False  # the last chunk ended with \r: a \n starting the next is its pair

    def feed(self, text: str) -> list[str]:
        """The data of each event completed by ``text``, in order."""
        if self._after_cr and text.startswith("\n"):
            text = text[1:]
            self._after_cr = False
        if text:
            self._after_cr = text.endswith("\r")
        data = self._buffer + text
        if "\r" in data:
            data = data.replace("\r\n", "\n").replace("\r", "\n")
        lines = data.split("\n")
        self._buffer = lines.pop()  # an unfinished line waits for the next chunk
        events: list[str] = []
        for line in lines:
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    def close(self) -> list[str]:
        """End of body: an unterminated last event still counts (lenient, as browsers are not)."""
        events = self.feed("\n") if self._buffer else []
        final = self._line("")
        return [*events, final] if final is not None else events

    def _line(self, line: str) -> str | None:
        if line.startswith("data:"):
            value = line[5:]
            self._data.append(value[1:] if value.startswith(" ") else value)
            return None
        if not line:  # a blank line dispatches the event
            if not self._data:
                return None
            data = "\n".join(self._data)
            self._data = []
            return data
        if line.startswith(":"):
            return None
        if line.partition(":")[0] in _IGNORED_FIELDS:
            return None
        # The line itself stays out of the message: it could be a piece of model output.
        raise MalformedSSE("unexpected line in the event stream")

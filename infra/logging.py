"""Logging set-up: text or JSON lines on stderr, each with the request id a filter stamps on it.

Unless `content` (PANTHEON_LOG_CONTENT=true) is on, nothing the caller sent reaches the output:
records marked as carrying content (domain/logs.py) are dropped, and tracebacks keep their frames
but not their exceptions' messages, which can embed input (a database's "invalid input syntax
for type integer: <value>", a parser's echo of the document, ...).
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from datetime import UTC, datetime
from typing import TextIO

from opentelemetry import trace

from domain.logs import CONTENT_ATTRIBUTE

HIDDEN = "(message hidden: PANTHEON_LOG_CONTENT=true shows it)"

# Logs each statement with its values at DEBUG. (SQLAlchemy's own statement log stays off: its
# "sqlalchemy" logger is at WARNING unless someone sets it.)
_STATEMENT_LOGGERS = ("aiosqlite",)


class JsonFormatter(logging.Formatter):
    def __init__(self, *, content: bool = False) -> None:
        super().__init__()
        self.content = content

    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "message": record.getMessage(),
        }
        # An access-log line's fields (graph/access_log.py), each under its own key.
        access = getattr(record, "access", None)
        if isinstance(access, dict):
            payload.update(access)
        payload.update(_trace_ids())
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload)

    def formatException(self, ei: object) -> str:  # noqa: N802 (logging's name)
        return _exception_text(ei, content=self.content)


class _TextFormatter(logging.Formatter):
    def __init__(self, fmt: str, *, content: bool = False) -> None:
        super().__init__(fmt)
        self.content = content

    def format(self, record: logging.LogRecord) -> str:
        record.request_id = getattr(record, "request_id", "-")
        return super().format(record)

    def formatException(self, ei: object) -> str:  # noqa: N802 (logging's name)
        return _exception_text(ei, content=self.content)


class _DropContent(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, CONTENT_ATTRIBUTE, False)


def configure_logging(
    level: str,
    fmt: str,
    *,
    record_filter: logging.Filter | None = None,
    content: bool = False,
    stream: TextIO | None = None,
) -> None:
    """`content`: PANTHEON_LOG_CONTENT; `stream` defaults to stderr (tests pass a buffer)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if record_filter is not None:
        handler.addFilter(record_filter)
    if not content:
        handler.addFilter(_DropContent())
    if fmt == "json":
        handler.setFormatter(JsonFormatter(content=content))
    else:
        handler.setFormatter(
            _TextFormatter(
                "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s", content=content
            )
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Uvicorn's access log and httpx's per-request lines would repeat every call at INFO.
    for noisy in ("uvicorn.access", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    for verbose in _STATEMENT_LOGGERS:
        logging.getLogger(verbose).setLevel(
            logging.NOTSET if content else max(logging.INFO, root.level)
        )


def _trace_ids() -> dict[str, str]:
    """The current span's ids, as OpenTelemetry writes them; none when tracing is off (the
    API's default span has an invalid context)."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {
        "trace_id": format(context.trace_id, "032x"),
        "span_id": format(context.span_id, "016x"),
    }


def _exception_text(ei: object, *, content: bool) -> str:
    if not isinstance(ei, tuple) or len(ei) != 3 or not isinstance(ei[1], BaseException):
        return ""
    if content:
        return "".join(traceback.format_exception(*ei)).rstrip("\n")
    lines: list[str] = []
    _redacted(ei[1], lines, set())
    return "".join(lines).rstrip("\n")


def _redacted(error: BaseException, lines: list[str], seen: set[int]) -> None:
    """Python's traceback layout (chained causes first), each message replaced by HIDDEN."""
    seen.add(id(error))
    cause = error.__cause__
    context = None if error.__suppress_context__ else error.__context__
    if cause is not None and id(cause) not in seen:
        _redacted(cause, lines, seen)
        lines.append("\nThe above exception was the direct cause of the following exception:\n\n")
    elif context is not None and id(context) not in seen:
        _redacted(context, lines, seen)
        lines.append("\nDuring handling of the above exception, another exception occurred:\n\n")
    lines.append("Traceback (most recent call last):\n")
    lines.extend(traceback.format_tb(error.__traceback__))
    kind = type(error)
    lines.append(f"{kind.__module__}.{kind.__qualname__}: {HIDDEN}\n")
    if isinstance(error, BaseExceptionGroup):
        for number, inner in enumerate(error.exceptions, 1):
            nested: list[str] = []
            _redacted(inner, nested, seen)
            lines.append(f"  +-- sub-exception {number} --\n")
            lines.extend(f"  | {line}" for line in "".join(nested).splitlines(keepends=True))

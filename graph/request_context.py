"""The request id of the work in progress, for logs and masked errors."""

from __future__ import annotations

import logging
import uuid
from contextvars import ContextVar, Token

_request_id: ContextVar[str | None] = ContextVar("pantheon_request_id", default=None)


def current_request_id() -> str | None:
    return _request_id.get()


def bind_request_id(incoming: str | None) -> Token[str | None]:
    """Honours a sane incoming `X-Request-ID` (so a proxy's id threads through), else mints one."""
    usable = incoming if incoming and len(incoming) <= 64 and incoming.isprintable() else None
    return _request_id.set(usable or uuid.uuid4().hex)


def reset_request_id(token: Token[str | None]) -> None:
    _request_id.reset(token)


class RequestIdFilter(logging.Filter):
    """Stamps every log record with the current request id ("-" outside requests)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _request_id.get() or "-"
        return True

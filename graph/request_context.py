"""The request id of the work in progress, for logs and masked errors."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from contextvars import ContextVar, Token

_request_id: ContextVar[str | None] = ContextVar("pantheon_request_id", default=None)
# What a proxy's id may look like to be kept: nothing that could forge or break a log line.
_USABLE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def current_request_id() -> str | None:
    return _request_id.get()


def bind_request_id(incoming: str | None) -> Token[str | None]:
    """Keeps an incoming `X-Request-ID` of at most 64 characters of `[A-Za-z0-9._-]` (so a
    proxy's id threads through), else mints one; a refused id is never logged."""
    usable = incoming if incoming is not None and _USABLE_ID.fullmatch(incoming) else None
    return _request_id.set(usable or uuid.uuid4().hex)


def reset_request_id(token: Token[str | None]) -> None:
    _request_id.reset(token)


_commit_probe: ContextVar[Callable[[], bool] | None] = ContextVar(
    "pantheon_commit_probe", default=None
)


def bind_commit_probe(probe: Callable[[], bool]) -> None:
    """The composition root's answer to "has this request committed anything yet?"."""
    _commit_probe.set(probe)


def work_committed() -> bool:
    probe = _commit_probe.get()
    return probe is not None and probe()


class RequestIdFilter(logging.Filter):
    """Stamps every log record with the current request id ("-" outside requests)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _request_id.get() or "-"
        return True

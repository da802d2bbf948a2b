"""The request id of the work in progress, for logs and masked errors."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Iterable
from contextvars import ContextVar, Token
from dataclasses import dataclass, field

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


# --- the access log's record of the request in progress (graph/access_log.py) ---


@dataclass(slots=True)
class AccessRecord:
    """What one request (or one operation over a socket) did, filled in as it runs."""

    user_id: str | None = None
    # A WebSocket's record: its operations each log their own line (the socket's line follows).
    socket: bool = False
    operations: list[str] = field(default_factory=list)  # e.g. "mutation runTurn"
    operation_names: list[str] = field(default_factory=list)
    error_codes: list[str] = field(default_factory=list)

    def add_codes(self, codes: Iterable[str]) -> None:
        for code in codes:
            if code not in self.error_codes:
                self.error_codes.append(code)


_record: ContextVar[AccessRecord | None] = ContextVar("pantheon_access_record", default=None)


def current_access_record() -> AccessRecord | None:
    return _record.get()


def bind_access_record(record: AccessRecord | None) -> Token[AccessRecord | None]:
    return _record.set(record)


def reset_access_record(token: Token[AccessRecord | None]) -> None:
    _record.reset(token)


def note_user(user_id: object) -> None:
    """The authenticated user of the request in progress (called where authentication ran)."""
    record = _record.get()
    if record is not None and user_id is not None:
        record.user_id = str(user_id)


def note_error_code(code: str) -> None:
    """A code the request was answered with outside GraphQL execution (401, 413, 429, 503)."""
    record = _record.get()
    if record is not None:
        record.add_codes([code])

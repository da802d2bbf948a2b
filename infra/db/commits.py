"""Whether the work of the current request has committed anything to the database yet.

`track()` starts a fresh record for the current context (a request) and returns its probe; every
commit on an engine from `open_database` marks it, including commits of tasks the request spawned
(they inherit the record). An infrastructure fault after a commit is no longer "nothing ran", so
it must not invite a blind retry (graph/http_protocol.py keeps such an answer at 200).
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar

_record: ContextVar[list[bool] | None] = ContextVar("pantheon_db_commits", default=None)


def track() -> Callable[[], bool]:
    record = [False]
    _record.set(record)
    return lambda: record[0]


def note_commit() -> None:
    record = _record.get()
    if record is not None:
        record[0] = True

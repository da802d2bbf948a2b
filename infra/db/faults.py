"""Recognises the exceptions that mean "the database cannot be reached right now".

Two kinds, both worth a retry and neither the caller's fault: the connection pool had no
connection free within `PANTHEON_DB_POOL_TIMEOUT_SECONDS` (SQLAlchemy's pool `TimeoutError`), or
the server could not be reached or dropped the connection (refused, unresolvable, shut down,
too many connections). graph/errors.py turns them into SERVICE_UNAVAILABLE; the CLI into one line.

Only exceptions are inspected, never their messages (which may carry the statement's values).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from types import TracebackType

import asyncpg.exceptions as pg
from sqlalchemy import exc as sa

# Modules whose OSError / TimeoutError means the database connection failed (a bare OSError from
# elsewhere, e.g. reading a file, is not a database fault).
_DATABASE_MODULES = ("asyncpg", "sqlalchemy", "aiosqlite")
# Raised by the file system, never by a network connection.
_FILE_ERRORS = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError)
_SERVER_GONE = (
    pg.PostgresConnectionError,  # class 08: connection failure, does not exist, cannot connect
    pg.CannotConnectNowError,  # 57P03: starting up, shutting down, in recovery
    pg.AdminShutdownError,  # 57P01
    pg.CrashShutdownError,  # 57P02
    pg.TooManyConnectionsError,  # 53300: the server's max_connections
)
_SQLITE_OPEN_FAILED = "unable to open database file"
_CHAIN_LIMIT = 16


def database_unavailable(error: BaseException) -> bool:
    """True when `error` (or what caused it) says the database is unreachable or its pool is
    exhausted, i.e. the same request may well work a moment later."""
    return any(_is_fault(link) for link in exception_chain(error))


def database_fault(error: BaseException) -> str | None:
    """A safe one-line description when `error` is a database fault, else None (the shape of
    graph/errors.py's `InfraFault`)."""
    return describe(error) if database_unavailable(error) else None


def describe(error: BaseException) -> str:
    """One safe line for an operator: exception types only (messages may embed values), except
    for OSErrors, whose text is the address and the errno's meaning."""
    for link in exception_chain(error):
        if isinstance(link, sa.TimeoutError):
            return "the connection pool is exhausted (PANTHEON_DB_POOL_TIMEOUT_SECONDS passed)"
        if isinstance(link, OSError) and not isinstance(link, TimeoutError):
            return f"{type(link).__name__}: {' '.join(str(link).split())}"
    names = [type(link).__name__ for link in exception_chain(error)]
    return " <- ".join(dict.fromkeys(names))


def _is_fault(error: BaseException) -> bool:
    if isinstance(error, sa.TimeoutError):  # the pool's, not a statement timeout
        return True
    if isinstance(error, sa.DBAPIError) and error.connection_invalidated:
        return True  # the dialect recognised a disconnect
    if isinstance(error, _SERVER_GONE):
        return True
    if isinstance(error, sqlite3.OperationalError):
        return str(error) == _SQLITE_OPEN_FAILED  # a fixed text, no values in it
    if isinstance(error, OSError) and not isinstance(error, _FILE_ERRORS):
        return _raised_in_database_code(error.__traceback__)
    return False


def _raised_in_database_code(traceback: TracebackType | None) -> bool:
    while traceback is not None:
        module = str(traceback.tb_frame.f_globals.get("__name__", ""))
        if module.startswith(_DATABASE_MODULES):
            return True
        traceback = traceback.tb_next
    return False


def exception_chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen and len(seen) < _CHAIN_LIMIT:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__

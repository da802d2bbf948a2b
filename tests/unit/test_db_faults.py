"""Which exceptions count as "the database is unavailable" (infra/db/faults.py)."""

from __future__ import annotations

import sqlite3

import asyncpg.exceptions
from sqlalchemy import exc as sa

from infra.db.faults import database_fault


def raised(error: BaseException, *, cause: BaseException | None = None) -> BaseException:
    """`error` as it arrives in an except block, with its cause chained."""
    try:
        raise error from cause
    except BaseException as caught:
        return caught


def test_a_pool_timeout_is_a_fault() -> None:
    fault = database_fault(raised(sa.TimeoutError("QueuePool limit of size 1 overflow 0 reached")))

    assert fault is not None
    assert "pool is exhausted" in fault


def test_a_disconnect_the_dialect_recognised_is_a_fault_and_its_message_stays_out() -> None:
    error = sa.InterfaceError("SELECT secret", {"p": "secret"}, Exception("x"))
    error.connection_invalidated = True

    fault = database_fault(raised(error))

    assert fault is not None
    assert "secret" not in fault


def test_a_server_shutting_down_wrapped_by_sqlalchemy_is_a_fault() -> None:
    wrapped = raised(
        sa.OperationalError("SELECT 1", None, Exception("wrapper")),
        cause=asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
    )

    assert database_fault(wrapped) is not None


def test_sqlite_failing_to_open_its_file_is_a_fault() -> None:
    wrapped = raised(
        sa.OperationalError("x", None, Exception("w")),
        cause=sqlite3.OperationalError("unable to open database file"),
    )

    assert database_fault(wrapped) is not None


def test_errors_that_are_not_about_reaching_the_database_are_not_faults() -> None:
    assert database_fault(raised(RuntimeError("boom"))) is None
    assert database_fault(raised(ValueError("bad"))) is None
    assert database_fault(raised(sa.IntegrityError("INSERT", None, Exception("dup")))) is None
    assert database_fault(raised(sqlite3.OperationalError("no such table: x"))) is None
    # a connection error outside database code (e.g. an HTTP call) is someone else's business
    assert database_fault(raised(ConnectionRefusedError(111, "refused"))) is None
    assert database_fault(raised(FileNotFoundError(2, "missing"))) is None


def test_redis_unreachable_is_an_infrastructure_fault_and_other_redis_errors_are_not() -> None:
    from redis import exceptions as redis_errors

    from infra.faults import infra_fault

    refused = redis_errors.ConnectionError("Error 111 connecting to 127.0.0.1:6390.")
    assert infra_fault(raised(refused)) == "Redis is unreachable (ConnectionError)"
    assert infra_fault(raised(redis_errors.TimeoutError("Timeout reading"))) is not None
    assert infra_fault(raised(redis_errors.ResponseError("WRONGTYPE"))) is None
    assert infra_fault(raised(sa.TimeoutError("QueuePool limit"))) is not None  # the database's

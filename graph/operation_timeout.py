"""The operation timeout: a query or mutation still awaiting after N seconds ends with TIMEOUT.

It bounds the *awaits* of an operation (database calls, lock waits): asyncio can only interrupt a
task where it awaits, so CPU-bound work (resolving and serializing a huge result) runs to its end
whatever the deadline; the query cost limit (graph/cost/model.py) is the defence against heavy
queries. It wraps the execution of every query and mutation, over HTTP and WebSocket alike;
subscriptions never pass through it, and `runTurn(waitForCompletion: true)` lifts the deadline:
a turn may legitimately take minutes. `cancelTurn` moves it later by its own bounded wait for the
turn to close.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import TypeVar

from graphql import ExecutionResult, GraphQLError

TIMEOUT = "TIMEOUT"
T = TypeVar("T")


# The running operation's deadline. A context variable, not an attribute of the GraphQL context: a
# WebSocket's context is shared by all the operations of the connection, while each operation
# runs in its own task (and its resolvers in tasks copied from it).
_deadline: ContextVar[asyncio.Timeout | None] = ContextVar("operation_deadline", default=None)


async def within_timeout(seconds: float, run: Callable[[], Awaitable[T]]) -> T | None:
    """`run()`, cancelled where it awaits once `seconds` have passed; None when it was."""
    deadline = asyncio.timeout(seconds)
    token = _deadline.set(deadline)
    try:
        async with deadline:
            return await run()
    except TimeoutError:
        if not deadline.expired():
            raise
        return None
    finally:
        _deadline.reset(token)


def lift_deadline() -> None:
    """For an operation allowed to run long (runTurn waiting for its turn to finish)."""
    deadline = _deadline.get()
    if deadline is not None:
        deadline.reschedule(None)


def extend_deadline(seconds: float) -> None:
    """For an operation that waits on purpose, bounded by its own `seconds` (cancelTurn waiting
    for the turn to close): the deadline moves that much later, so the wait is not cut short."""
    deadline = _deadline.get()
    when = deadline.when() if deadline is not None else None
    if deadline is not None and when is not None:
        deadline.reschedule(when + seconds)


def timed_out(seconds: float) -> ExecutionResult:
    """The result of an operation the deadline stopped: no data, one TIMEOUT error."""
    return ExecutionResult(
        data=None,
        errors=[
            GraphQLError(
                f"the operation ran longer than {seconds:g} s and was stopped; anything it "
                "had written may or may not be committed: read it back before retrying",
                extensions={"code": TIMEOUT, "timeoutSeconds": seconds},
            )
        ],
    )

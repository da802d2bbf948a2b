"""The operation timeout: a query or mutation still awaiting after N seconds ends with TIMEOUT.

It bounds the *awaits* of an operation (database calls, lock waits): asyncio can only interrupt a
task where it awaits, so CPU-bound work (resolving and serializing a huge result) runs to its end
whatever the deadline; the query cost limit (graph/cost/model.py) is the defence against heavy
queries. Subscriptions never pass through here (Strawberry subscribes through another path), and
`runTurn(waitForCompletion: true)` lifts the deadline: a turn may legitimately take minutes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

from graphql import GraphQLError
from strawberry.types import ExecutionResult

TIMEOUT = "TIMEOUT"


@runtime_checkable
class HasDeadline(Protocol):
    operation_deadline: asyncio.Timeout | None


async def within_timeout(
    seconds: float,
    context: object,
    run: Callable[[], Awaitable[ExecutionResult]],
) -> ExecutionResult:
    """`run()`, cancelled where it awaits once `seconds` have passed (then a TIMEOUT result)."""
    deadline = asyncio.timeout(seconds)
    if isinstance(context, HasDeadline):
        context.operation_deadline = deadline  # runTurn lifts it: Context.lift_operation_timeout
    try:
        async with deadline:
            return await run()
    except TimeoutError:
        if not deadline.expired():
            raise
        return timed_out(seconds)


def timed_out(seconds: float) -> ExecutionResult:
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

"""`turnProgress` (replay, then live, until TurnFinished) and `sessionEvents` (live).

The viewer is checked inside each resolver: the HTTP multipart transport never calls
`on_ws_connect`, and another user's turn or session answers NOT_FOUND, as queries do.

Errors raised inside a subscription's generator bypass the `ErrorCodes` extension, so they are
coded here: domain errors keep their code, SLOW_CONSUMER says where to resume, anything else is
masked (and logged) like in queries."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator

import strawberry
from graphql import GraphQLError

from domain.errors import PantheonError
from domain.turns.events import SlowConsumer, TurnEvent
from graph.context import Info
from graph.errors import (
    MASKED_MESSAGE,
    UNAVAILABLE_MESSAGE,
    InfraFault,
    no_infra_fault,
    unavailable,
)
from graph.permissions import IsAuthenticated
from graph.request_context import current_request_id
from graph.sessions.api import readable_session
from graph.subscriptions.replay import merged_live, turn_events
from graph.subscriptions.types import TurnEventInterface, to_graphql
from graph.turns.api import readable_turn

log = logging.getLogger("pantheon.graphql.subscriptions")


def _coded(
    error: Exception, last_sequence: int, infra_fault: InfraFault = no_infra_fault
) -> GraphQLError:
    if isinstance(error, SlowConsumer):  # EVENTS_UNAVAILABLE too: its own code, same resume
        return GraphQLError(
            f"{error.summary}; resubscribe with afterSequence: {last_sequence}",
            extensions={"code": error.code, "lastSequence": last_sequence},
        )
    if isinstance(error, PantheonError):
        return GraphQLError(error.message, extensions={"code": error.code})
    if (fault := infra_fault(error)) is not None:
        return unavailable(GraphQLError(UNAVAILABLE_MESSAGE), fault)
    request_id = current_request_id()
    log.error("unexpected error in a subscription (request %s)", request_id, exc_info=error)
    return GraphQLError(
        MASKED_MESSAGE, extensions={"code": "INTERNAL_SERVER_ERROR", "requestId": request_id}
    )


async def _emit(
    info: Info, events: AsyncIterator[TurnEvent], *, last: int = 0
) -> AsyncGenerator[TurnEventInterface, None]:
    """Strawberry types of `events`, each with fresh loaders; errors coded; counted as open
    (`pantheon_active_subscriptions`) while they run."""
    metrics = info.context.runtime.metrics
    try:
        with metrics.subscription_open() if metrics is not None else contextlib.nullcontext():
            async for event in events:
                info.context.renew_loaders()  # objects of this event are read fresh
                last = event.sequence
                yield to_graphql(event)
    except GraphQLError:
        raise
    except Exception as error:
        raise _coded(error, last, info.context.runtime.infra_fault) from error


@strawberry.type(name="Subscription")
class Subscriptions:
    @strawberry.subscription(
        permission_classes=[IsAuthenticated],
        description="replays the turn's events after `afterSequence`, then follows live; "
        "completes after TurnFinished. SLOW_CONSUMER: resubscribe from the last sequence received",
    )
    async def turn_progress(
        self, info: Info, turn_id: strawberry.ID, after_sequence: int | None = 0
    ) -> AsyncGenerator[TurnEventInterface, None]:
        after = max(after_sequence or 0, 0)
        try:
            turn = await readable_turn(info, turn_id)
        except PantheonError as error:
            raise _coded(error, after) from error
        runtime = info.context.runtime
        events = turn_events(
            runtime.broker,
            runtime.outbox,
            turn.id,
            after=after,
            buffer=runtime.limits.subscriber_buffer,
        )
        try:
            async for event in _emit(info, events, last=after):
                yield event
        finally:
            await events.aclose()

    @strawberry.subscription(
        permission_classes=[IsAuthenticated],
        description="the session's events from now on, every turn's, in publication order",
    )
    async def session_events(
        self, info: Info, session_id: strawberry.ID
    ) -> AsyncGenerator[TurnEventInterface, None]:
        try:
            session = await readable_session(info, session_id)
        except PantheonError as error:
            raise _coded(error, 0) from error
        runtime = info.context.runtime
        live = runtime.broker.subscribe_session(session.id, buffer=runtime.limits.subscriber_buffer)
        try:
            async with contextlib.aclosing(merged_live(live)) as events:
                async for event in _emit(info, events):
                    yield event
        finally:
            await live.aclose()

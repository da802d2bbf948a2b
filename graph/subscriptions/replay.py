"""Replay, then live: the merge behind `turnProgress`.

Subscribe first, then read the outbox (durable events) and the broker's retained events (deltas
included); merge them by sequence without duplicates, emit in order, then follow the live
subscription, skipping sequences already emitted. Nothing published after the subscription began
can be missed, and nothing before it that still exists is left out.

Deltas that are there together (retained ones on replay; live ones that queued up while the
subscriber was busy) go out merged (`merge_deltas`), so a lagging subscriber catches up.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator

from domain.turns.events import (
    EventBroker,
    EventSubscription,
    OutboxReads,
    TurnEvent,
    TurnEventType,
    merge_deltas,
)


async def turn_events(
    broker: EventBroker,
    outbox: OutboxReads,
    turn_id: uuid.UUID,
    *,
    after: int,
    buffer: int,
) -> AsyncGenerator[TurnEvent, None]:
    """The turn's events after sequence `after`, in order, ending after `TurnFinished`.
    Raises `SlowConsumer` (from the live subscription) if the caller falls behind."""
    live = broker.subscribe_turn(turn_id, buffer=buffer)
    try:
        stored = await outbox.events_after(turn_id, after=0)
        finished = any(e.type is TurnEventType.TURN_FINISHED for e in stored)
        known = {e.sequence: e for e in stored if e.sequence > after}
        for event in await broker.retained(turn_id, after=after):
            known.setdefault(event.sequence, event)
        emitted = after
        for event in merge_deltas(known[sequence] for sequence in sorted(known)):
            emitted = event.sequence
            yield event
            if event.type is TurnEventType.TURN_FINISHED:
                return
        if finished:  # it ended at or before `after`
            return
        while (ready := await next_ready(live)) is not None:
            for event in merge_deltas(e for e in ready if e.sequence > emitted):
                emitted = event.sequence
                yield event
                if event.type is TurnEventType.TURN_FINISHED:
                    return
    finally:
        await live.aclose()


async def next_ready(live: EventSubscription) -> list[TurnEvent] | None:
    """What a live subscription has at its next wake-up: the event awaited and every event
    that queued up behind it, in order; None when it has ended."""
    try:
        event = await anext(live)
    except StopAsyncIteration:
        return None
    return [event, *live.take_ready()]


async def merged_live(live: EventSubscription) -> AsyncGenerator[TurnEvent, None]:
    """A live subscription's events, with the deltas that queued up merged."""
    while (ready := await next_ready(live)) is not None:
        for event in merge_deltas(ready):
            yield event

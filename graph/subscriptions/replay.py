"""Replay, then live: the merge behind `turnProgress`.

Subscribe first, then read the outbox (durable events) and the broker's retained events (deltas
included); merge them by sequence without duplicates, emit in order, then follow the live
subscription, skipping sequences already emitted. Nothing published after the subscription began
can be missed, and nothing before it that still exists is left out.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator

from domain.turns.events import EventBroker, OutboxReads, TurnEvent, TurnEventType


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
        merged = {e.sequence: e for e in stored if e.sequence > after}
        for event in await broker.retained(turn_id, after=after):
            merged.setdefault(event.sequence, event)
        emitted = after
        for sequence in sorted(merged):
            event = merged[sequence]
            emitted = sequence
            yield event
            if event.type is TurnEventType.TURN_FINISHED:
                return
        if finished:  # it ended at or before `after`
            return
        async for event in live:
            if event.sequence <= emitted:
                continue
            emitted = event.sequence
            yield event
            if event.type is TurnEventType.TURN_FINISHED:
                return
    finally:
        await live.aclose()

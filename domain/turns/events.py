"""Turn events: numbered per turn (1, 2, ...). Durable ones are outbox rows written in the unit of
work of the fact they describe and published after its commit; deltas are only published."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Protocol


class TurnEventType(StrEnum):
    TURN_STARTED = "TurnStarted"
    ROUTING_DECIDED = "RoutingDecided"
    AGENT_STARTED = "AgentStarted"
    AGENT_DELTA = "AgentDelta"
    AGENT_FINISHED = "AgentFinished"
    SUMMARY_UPDATED = "SummaryUpdated"
    BUDGET_WARNING = "BudgetWarning"  # the turn left its user near the budget; before TurnFinished
    TURN_FINISHED = "TurnFinished"

    @property
    def durable(self) -> bool:
        return self is not TurnEventType.AGENT_DELTA


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnEvent:
    turn_id: uuid.UUID
    session_id: uuid.UUID
    sequence: int
    type: TurnEventType
    at: datetime
    payload: Mapping[str, object] = field(default_factory=dict)


class EventPublisher(Protocol):
    """Fans events out to subscribers. Never raises: a broker outage is logged, and durable
    events stay replayable from the outbox."""

    async def publish(self, events: tuple[TurnEvent, ...]) -> None: ...

    async def last_sequence(self, turn_id: uuid.UUID) -> int:
        """The highest sequence this broker has seen for the turn (0 if none)."""
        ...


MERGED_DELTA_MAX_CHARS = 16_384  # one merged delta stays one modest WebSocket frame


def merge_deltas(
    events: Iterable[TurnEvent], *, max_chars: int = MERGED_DELTA_MAX_CHARS
) -> list[TurnEvent]:
    """`events` with each run of consecutive deltas of one agent in one turn merged into one
    delta: its text is theirs, joined; its sequence is the run's last (where a client resumes)
    and its payload's `first_sequence` the run's first, so the covered sequences stay visible
    and gap-free. Subscribers merge what queued up while they were busy: a subscriber that
    falls behind catches up with fewer, larger events instead of falling further behind. A run
    stops growing at `max_chars` of text (a replayed answer must not become one huge frame)."""
    merged: list[TurnEvent] = []
    run: list[TurnEvent] = []
    run_chars = 0

    def flush() -> None:
        if len(run) == 1:
            merged.append(run[0])
        elif run:
            first, last = run[0], run[-1]
            text = "".join(str(e.payload["text"]) for e in run)
            first_sequence = first.payload.get("first_sequence", first.sequence)
            payload = {**last.payload, "text": text, "first_sequence": first_sequence}
            merged.append(replace(last, payload=payload))
        run.clear()

    for event in events:
        if event.type is not TurnEventType.AGENT_DELTA:
            flush()
            run_chars = 0
            merged.append(event)
            continue
        chars = len(str(event.payload.get("text", "")))
        if run and (not _continues(run[-1], event) or run_chars + chars > max_chars):
            flush()
            run_chars = 0
        run.append(event)
        run_chars += chars
    flush()
    return merged


def _continues(previous: TurnEvent, event: TurnEvent) -> bool:
    return (
        event.turn_id == previous.turn_id
        and event.sequence == previous.sequence + 1
        and event.payload.get("position") == previous.payload.get("position")
    )


class SlowConsumer(Exception):
    """A subscriber fell further behind than its buffer allows. Its subscription ends with this
    (never a silent gap); the client resumes with `afterSequence` = the last sequence it got."""

    code = "SLOW_CONSUMER"
    summary = "subscriber too slow"

    def __init__(self, last_delivered: int) -> None:
        super().__init__(f"{self.summary}; resume after sequence {last_delivered}")
        self.last_delivered = last_delivered


class EventSubscription(Protocol):
    """Live events of one turn or one session, in publication order, from the moment of
    subscribing. Iterating raises `SlowConsumer` when the bounded buffer overflowed."""

    def __aiter__(self) -> EventSubscription: ...

    async def __anext__(self) -> TurnEvent: ...

    def take_ready(self) -> list[TurnEvent]:
        """The events already buffered, in order, without waiting; none once the subscription
        is ending (the next `__anext__` says how)."""
        ...

    async def aclose(self) -> None: ...


class RetainingPublisher(EventPublisher, Protocol):
    """A publisher that keeps what it published for a while (deltas included): recovery reads
    what a dead runner had streamed from it."""

    async def retained(self, turn_id: uuid.UUID, *, after: int) -> list[TurnEvent]:
        """The turn's events still retained (deltas included), after `after`, in order."""
        ...


class EventBroker(RetainingPublisher, Protocol):
    """Fan-out of turn events, in one process (in memory) or across processes (Redis)."""

    def subscribe_turn(self, turn_id: uuid.UUID, *, buffer: int) -> EventSubscription: ...

    def subscribe_session(self, session_id: uuid.UUID, *, buffer: int) -> EventSubscription: ...

    async def request_cancel(self, turn_id: uuid.UUID) -> None:
        """Tells every process that a turn should stop (the DB flag stays the source of truth;
        this only makes a remote runner notice at once instead of at its next heartbeat)."""
        ...

    def on_cancel_request(self, callback: Callable[[uuid.UUID], None]) -> None:
        """Registers this process's handler of cancel requests (the supervisor's)."""
        ...

    async def aclose(self) -> None: ...


class OutboxReads(Protocol):
    """Replay source of durable events: the `turn_events` outbox."""

    async def events_after(self, turn_id: uuid.UUID, *, after: int) -> list[TurnEvent]:
        """The turn's durable events with sequence > `after`, in order (one short session)."""
        ...

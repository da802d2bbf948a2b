"""The embedded default broker: one process, events kept in memory for a retention window.

Durable events are also in the outbox, so what this broker forgets (or never saw, after a
restart) is still replayable from the database; deltas are retained here for the window only.

Subscribers each get a bounded buffer: publishing only appends to it (never waits), and a
subscriber whose buffer is full is cut off — it receives what was buffered, then `SlowConsumer`
with the last sequence it was given, so it never sees a silent gap.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from domain.turns.events import SlowConsumer, TurnEvent

log = logging.getLogger("pantheon.events.memory")


@dataclass
class _TurnLog:
    events: deque[tuple[float, TurnEvent]] = field(default_factory=deque)
    last_sequence: int = 0
    touched: float = 0.0


class _Subscription:
    """One subscriber's bounded buffer; iterate it to receive events in publication order."""

    def __init__(self, broker: InMemoryEventBroker, key: uuid.UUID, buffer: int) -> None:
        if buffer < 1:
            raise ValueError("a subscription needs a buffer of at least one event")
        self._broker = broker
        self._key = key
        self._capacity = buffer
        self._queue: deque[TurnEvent] = deque()
        self._wakeup = asyncio.Event()
        self._overflowed = False
        self._closed = False
        self.last_delivered = 0

    def offer(self, event: TurnEvent) -> None:
        """Called by publish: never waits. A full buffer ends the subscription."""
        if self._closed or self._overflowed:
            return
        if len(self._queue) >= self._capacity:
            self._overflowed = True
            self._broker._forget(self._key, self)
        else:
            self._queue.append(event)
        self._wakeup.set()

    def end(self) -> None:
        self._closed = True
        self._wakeup.set()

    def __aiter__(self) -> _Subscription:
        return self

    async def __anext__(self) -> TurnEvent:
        while True:
            if self._queue:
                event = self._queue.popleft()
                self.last_delivered = event.sequence
                return event
            if self._overflowed:
                self._overflowed = False  # reported once; then the subscription has ended
                self._closed = True
                raise SlowConsumer(self.last_delivered)
            if self._closed:
                raise StopAsyncIteration
            self._wakeup.clear()
            await self._wakeup.wait()

    def take_ready(self) -> list[TurnEvent]:
        ready = list(self._queue)
        self._queue.clear()
        if ready:
            self.last_delivered = ready[-1].sequence
        return ready

    async def aclose(self) -> None:
        self._closed = True
        self._queue.clear()
        self._broker._forget(self._key, self)
        self._wakeup.set()


class InMemoryEventBroker:
    def __init__(
        self, *, retention_seconds: float = 900.0, max_events_per_turn: int = 20_000
    ) -> None:
        self.retention_seconds = retention_seconds
        self.max_events_per_turn = max_events_per_turn
        self._turns: dict[uuid.UUID, _TurnLog] = {}
        self._next_expiry = 0.0
        # Turn ids and session ids are both UUIDs, drawn independently: one map serves both.
        self._subscribers: dict[uuid.UUID, set[_Subscription]] = {}
        self._cancel_callbacks: list[Callable[[uuid.UUID], None]] = []
        self._closed = False

    # --- publishing ------------------------------------------------------------------------

    async def publish(self, events: tuple[TurnEvent, ...]) -> None:
        now = time.monotonic()
        for event in events:
            log_ = self._turns.setdefault(event.turn_id, _TurnLog())
            log_.events.append((now, event))
            log_.last_sequence = max(log_.last_sequence, event.sequence)
            log_.touched = now
            while len(log_.events) > self.max_events_per_turn:
                log_.events.popleft()
            for key in (event.turn_id, event.session_id):
                for subscription in tuple(self._subscribers.get(key, ())):
                    subscription.offer(event)
        self._expire(now)

    async def last_sequence(self, turn_id: uuid.UUID) -> int:
        log_ = self._turns.get(turn_id)
        return log_.last_sequence if log_ else 0

    async def retained(self, turn_id: uuid.UUID, *, after: int = 0) -> list[TurnEvent]:
        """Events of a turn still retained here, after sequence `after`, in order."""
        log_ = self._turns.get(turn_id)
        if log_ is None:
            return []
        horizon = time.monotonic() - self.retention_seconds
        return sorted(
            (e for at, e in log_.events if e.sequence > after and at >= horizon),
            key=lambda e: e.sequence,
        )

    # --- subscribing -----------------------------------------------------------------------

    def subscribe_turn(self, turn_id: uuid.UUID, *, buffer: int) -> _Subscription:
        return self._subscribe(turn_id, buffer)

    def subscribe_session(self, session_id: uuid.UUID, *, buffer: int) -> _Subscription:
        return self._subscribe(session_id, buffer)

    def _subscribe(self, key: uuid.UUID, buffer: int) -> _Subscription:
        subscription = _Subscription(self, key, buffer)
        if self._closed:
            subscription.end()
        else:
            self._subscribers.setdefault(key, set()).add(subscription)
        return subscription

    def _forget(self, key: uuid.UUID, subscription: _Subscription) -> None:
        subscribers = self._subscribers.get(key)
        if subscribers is None:
            return
        subscribers.discard(subscription)
        if not subscribers:
            del self._subscribers[key]

    # --- cancellation ----------------------------------------------------------------------

    async def request_cancel(self, turn_id: uuid.UUID) -> None:
        for callback in tuple(self._cancel_callbacks):
            try:
                callback(turn_id)
            except Exception:  # a broker never raises to its caller
                log.exception("cancel handler failed for turn %s", turn_id)

    def on_cancel_request(self, callback: Callable[[uuid.UUID], None]) -> None:
        self._cancel_callbacks.append(callback)

    async def aclose(self) -> None:
        self._closed = True
        for subscribers in list(self._subscribers.values()):
            for subscription in tuple(subscribers):
                subscription.end()
        self._subscribers.clear()
        self._cancel_callbacks.clear()

    def _expire(self, now: float) -> None:
        # At most once a second: scanning every retained turn on every delta would cost
        # more as traffic grows.
        if now < self._next_expiry:
            return
        self._next_expiry = now + 1.0
        horizon = now - self.retention_seconds
        for turn_id in [t for t, log_ in self._turns.items() if log_.touched < horizon]:
            del self._turns[turn_id]

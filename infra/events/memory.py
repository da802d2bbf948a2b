"""The embedded default broker: one process, events kept in memory for a retention window.

Durable events are also in the outbox, so what this broker forgets (or never saw, after a
restart) is still replayable from the database; deltas are retained here for the window only.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from dataclasses import dataclass, field

from domain.turns.events import TurnEvent


@dataclass
class _TurnLog:
    events: deque[tuple[float, TurnEvent]] = field(default_factory=deque)
    last_sequence: int = 0
    touched: float = 0.0


class InMemoryEventBroker:
    def __init__(
        self, *, retention_seconds: float = 900.0, max_events_per_turn: int = 20_000
    ) -> None:
        self.retention_seconds = retention_seconds
        self.max_events_per_turn = max_events_per_turn
        self._turns: dict[uuid.UUID, _TurnLog] = {}
        self._next_expiry = 0.0

    async def publish(self, events: tuple[TurnEvent, ...]) -> None:
        now = time.monotonic()
        for event in events:
            log = self._turns.setdefault(event.turn_id, _TurnLog())
            log.events.append((now, event))
            log.last_sequence = max(log.last_sequence, event.sequence)
            log.touched = now
            while len(log.events) > self.max_events_per_turn:
                log.events.popleft()
        self._expire(now)

    async def last_sequence(self, turn_id: uuid.UUID) -> int:
        log = self._turns.get(turn_id)
        return log.last_sequence if log else 0

    def retained(self, turn_id: uuid.UUID, *, after: int = 0) -> list[TurnEvent]:
        """Events of a turn still retained here, after sequence `after`, in order."""
        log = self._turns.get(turn_id)
        if log is None:
            return []
        return sorted((e for _, e in log.events if e.sequence > after), key=lambda e: e.sequence)

    def _expire(self, now: float) -> None:
        # At most once a second: scanning every retained turn on every delta would cost
        # more as traffic grows.
        if now < self._next_expiry:
            return
        self._next_expiry = now + 1.0
        horizon = now - self.retention_seconds
        for turn_id in [t for t, log in self._turns.items() if log.touched < horizon]:
            del self._turns[turn_id]

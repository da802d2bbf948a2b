"""Turn events: numbered per turn (1, 2, ...). Durable ones are outbox rows written in the unit of
work of the fact they describe and published after its commit; deltas are only published."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
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

"""The `TurnEvent` interface and its eight types. Objects an event names (turn, message, summary)
are read when the event is resolved, through the loaders renewed for that event, so a late
`TurnFinished { turn { status } }` is never stale."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

import strawberry

from domain.money import nano_to_usd
from domain.turns.contracts import RoutingDecision
from domain.turns.events import TurnEvent, TurnEventType
from graph.context import Info
from graph.ids import global_id
from graph.loaders import load_existing
from graph.summaries.types import SessionSummaryNode
from graph.turns.types import AgentMessageNode, RoutingDecisionType, TurnNode


@strawberry.interface(name="TurnEvent", description="numbered per turn: 1, 2, ...")
class TurnEventInterface:
    turn_id: strawberry.ID
    session_id: strawberry.ID
    sequence: int
    at: datetime
    _turn_uuid: strawberry.Private[uuid.UUID]


async def _turn(info: Info, turn_id: uuid.UUID) -> TurnNode:
    turn = await load_existing(info.context.loaders.turn, turn_id, "event turn")
    return TurnNode.from_record(turn)


@strawberry.type(name="TurnStarted")
class TurnStartedEvent(TurnEventInterface):
    @strawberry.field
    async def turn(self, info: Info) -> TurnNode:
        return await _turn(info, self._turn_uuid)


@strawberry.type(name="RoutingDecided")
class RoutingDecidedEvent(TurnEventInterface):
    routing: RoutingDecisionType


@strawberry.type(name="AgentStarted")
class AgentStartedEvent(TurnEventInterface):
    agent_key: str
    position: int


@strawberry.type(
    name="AgentDelta",
    description="a piece of an agent's answer. Deltas that queued up for a busy subscriber "
    "arrive merged: one delta covers sequences firstSequence..sequence, its text theirs joined",
)
class AgentDeltaEvent(TurnEventInterface):
    agent_key: str
    position: int
    text: str
    first_sequence: int = strawberry.field(
        description="the first sequence this delta covers (equal to `sequence` unless merged)"
    )


@strawberry.type(name="AgentFinished")
class AgentFinishedEvent(TurnEventInterface):
    _message_id: strawberry.Private[uuid.UUID]

    @strawberry.field
    async def message(self, info: Info) -> AgentMessageNode:
        message = await load_existing(
            info.context.loaders.message, self._message_id, "event message"
        )
        return AgentMessageNode.from_record(message)


@strawberry.type(name="SummaryUpdated")
class SummaryUpdatedEvent(TurnEventInterface):
    _summary_id: strawberry.Private[uuid.UUID]

    @strawberry.field
    async def summary(self, info: Info) -> SessionSummaryNode:
        summary = await load_existing(
            info.context.loaders.summary, self._summary_id, "event summary"
        )
        return SessionSummaryNode.from_record(summary)


@strawberry.type(
    name="BudgetWarning",
    description="the turn left its user at or above the budget's warning fraction "
    "(PANTHEON_BUDGET_WARNING_FRACTION); sent just before TurnFinished",
)
class BudgetWarningEvent(TurnEventInterface):
    used_fraction: float = strawberry.field(description="month spend / monthly budget")
    budget_usd: Decimal = strawberry.field(description="the user's monthly budget")
    spent_usd: Decimal = strawberry.field(description="billable cost this month, this turn's too")


@strawberry.type(name="TurnFinished")
class TurnFinishedEvent(TurnEventInterface):
    @strawberry.field
    async def turn(self, info: Info) -> TurnNode:
        return await _turn(info, self._turn_uuid)


EVENT_TYPES: tuple[type[TurnEventInterface], ...] = (
    TurnStartedEvent,
    RoutingDecidedEvent,
    AgentStartedEvent,
    AgentDeltaEvent,
    AgentFinishedEvent,
    SummaryUpdatedEvent,
    BudgetWarningEvent,
    TurnFinishedEvent,
)


def _uuid(value: object) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def to_graphql(event: TurnEvent) -> TurnEventInterface:
    """The Strawberry type of a domain event (subscriptions must yield Strawberry types)."""
    common = {
        "turn_id": strawberry.ID(global_id("Turn", event.turn_id)),
        "session_id": strawberry.ID(global_id("Session", event.session_id)),
        "sequence": event.sequence,
        "at": event.at,
        "_turn_uuid": event.turn_id,
    }
    payload = event.payload
    match event.type:
        case TurnEventType.TURN_STARTED:
            return TurnStartedEvent(**common)  # type: ignore[arg-type]
        case TurnEventType.ROUTING_DECIDED:
            decision = RoutingDecision.from_json(dict(payload))
            return RoutingDecidedEvent(
                **common,  # type: ignore[arg-type]
                routing=RoutingDecisionType.from_domain(decision),
            )
        case TurnEventType.AGENT_STARTED:
            return AgentStartedEvent(
                **common,  # type: ignore[arg-type]
                agent_key=str(payload["agent_key"]),
                position=int(str(payload["position"])),
            )
        case TurnEventType.AGENT_DELTA:
            return AgentDeltaEvent(
                **common,  # type: ignore[arg-type]
                agent_key=str(payload["agent_key"]),
                position=int(str(payload["position"])),
                text=str(payload["text"]),
                first_sequence=int(str(payload.get("first_sequence", event.sequence))),
            )
        case TurnEventType.AGENT_FINISHED:
            return AgentFinishedEvent(
                **common,  # type: ignore[arg-type]
                _message_id=_uuid(payload["message_id"]),
            )
        case TurnEventType.SUMMARY_UPDATED:
            return SummaryUpdatedEvent(
                **common,  # type: ignore[arg-type]
                _summary_id=_uuid(payload["summary_id"]),
            )
        case TurnEventType.BUDGET_WARNING:
            return BudgetWarningEvent(
                **common,  # type: ignore[arg-type]
                used_fraction=float(str(payload["used_fraction"])),
                budget_usd=nano_to_usd(int(str(payload["budget_nano"]))),
                spent_usd=nano_to_usd(int(str(payload["spent_nano"]))),
            )
        case TurnEventType.TURN_FINISHED:
            return TurnFinishedEvent(**common)  # type: ignore[arg-type]
    raise ValueError(f"unknown event type {event.type!r}")

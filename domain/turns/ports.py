"""What the turn services need from storage. infra/db implements these on the same unit of work
as the other repositories (one transaction, one commit per unit)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Protocol

from domain.enums import AgentMessageStatus, TurnMode, TurnStatus
from domain.pagination import Page, PageRequest
from domain.ports import UnitOfWork
from domain.records import Model
from domain.summaries.ports import SummaryRepository
from domain.turns.context import SessionMemory
from domain.turns.contracts import ContextAudit, RosterAgent, RoutingDecision
from domain.turns.events import TurnEvent
from domain.turns.metering import UsageEntry
from domain.turns.records import AgentMessage, Turn, Usage


class LeaseStatus(Enum):
    HELD = "held"
    CANCEL_REQUESTED = "cancel_requested"
    LOST = "lost"  # the turn finished or another process recovered it


@dataclass(frozen=True, slots=True, kw_only=True)
class NewTurn:
    session_id: uuid.UUID
    user_id: uuid.UUID
    index: int
    mode: TurnMode
    user_message: str
    idempotency_key: str | None
    request_fingerprint: str
    runner_id: str
    lease_expires_at: datetime
    reserved_nano: int
    routing: RoutingDecision | None
    started_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class NewAgentMessage:
    turn_id: uuid.UUID
    agent_id: uuid.UUID
    position: int
    status: AgentMessageStatus
    content: str
    error_code: str | None
    error_message: str | None
    model_alias: str
    started_at: datetime
    finished_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnClose:
    status: TurnStatus
    assistant_output: str
    context_audit: ContextAudit
    failure_reason: str | None
    finished_at: datetime
    summary_triggered: bool = False


class TurnRepository(Protocol):
    async def find_by_idempotency_key(self, user_id: uuid.UUID, key: str) -> Turn | None: ...
    async def get(self, turn_id: uuid.UUID) -> Turn | None: ...
    async def lock_user(self, user_id: uuid.UUID) -> None:
        """Serialises budget checks of one user (a row lock; SQLite's write lock suffices)."""
        ...

    async def running_for_user(self, user_id: uuid.UUID) -> list[Turn]: ...
    async def committed_cost_by_turn(
        self, turn_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, int]: ...
    async def month_spend(self, user_id: uuid.UUID, *, since: datetime) -> int: ...
    async def next_index(self, session_id: uuid.UUID) -> int:
        """Takes the session's next turn index (`UPDATE ... turn_count + 1 ... RETURNING`)."""
        ...

    async def add(self, turn: NewTurn) -> Turn: ...
    async def set_routing(self, turn_id: uuid.UUID, routing: RoutingDecision) -> None: ...
    async def close(self, turn_id: uuid.UUID, close: TurnClose) -> bool:
        """Closes a RUNNING turn; False when it was no longer running (recovered elsewhere)."""
        ...

    async def renew_leases(
        self, turn_ids: Sequence[uuid.UUID], runner_id: str, *, until: datetime
    ) -> dict[uuid.UUID, LeaseStatus]:
        """Extends the leases of the turns this runner still owns (one statement for all of
        them) and reports each one's state: held, cancel requested, or lost."""
        ...

    async def request_cancel(self, turn_id: uuid.UUID, *, at: datetime) -> None: ...
    async def expired_running(self, *, now: datetime, limit: int) -> list[Turn]: ...
    async def roster(self, session_id: uuid.UUID) -> list[RosterAgent]: ...
    async def models_by_alias(self, aliases: Sequence[str]) -> dict[str, Model]: ...
    async def memory(self, session_id: uuid.UUID) -> SessionMemory: ...


class AgentMessageRepository(Protocol):
    async def add(self, message: NewAgentMessage) -> AgentMessage: ...
    async def of_turn(self, turn_id: uuid.UUID) -> list[AgentMessage]:
        """The turn's stored messages, by position (recovery reads what a dead runner wrote)."""
        ...


class UsageRepository(Protocol):
    async def add(
        self,
        entries: Sequence[UsageEntry],
        *,
        user_id: uuid.UUID,
        session_id: uuid.UUID,
        turn_id: uuid.UUID,
        agent_message_id: uuid.UUID | None = None,
        summary_id: uuid.UUID | None = None,
        at: datetime,
    ) -> None: ...


class EventRepository(Protocol):
    async def add(self, events: Sequence[TurnEvent]) -> None: ...
    async def last_sequence(self, turn_id: uuid.UUID) -> int: ...
    async def of_turn(self, turn_id: uuid.UUID) -> list[TurnEvent]:
        """The turn's durable events, in sequence order."""
        ...


class TurnUnitOfWork(UnitOfWork, Protocol):
    """`commit()` publishes the events staged through `events` once the commit succeeded (the
    outbox relay): services stage events with their facts and never publish durable ones."""

    turns: TurnRepository
    messages: AgentMessageRepository
    usage: UsageRepository
    events: EventRepository
    summaries: SummaryRepository


class TurnReads(Protocol):
    """Read paths of turns for the API; each call in its own short session."""

    async def turns_by_ids(self, ids: Sequence[uuid.UUID]) -> list[Turn]: ...
    async def turns_page(self, session_id: uuid.UUID, request: PageRequest) -> Page[Turn]: ...
    async def messages_by_turn_ids(
        self, ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[AgentMessage]]: ...
    async def messages_by_ids(self, ids: Sequence[uuid.UUID]) -> list[AgentMessage]: ...
    async def usage_by_turn_ids(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[Usage]]: ...
    async def usage_by_message_ids(
        self, ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[Usage]]: ...
    async def usage_by_ids(self, ids: Sequence[uuid.UUID]) -> list[Usage]: ...

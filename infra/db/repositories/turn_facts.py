"""What a turn produces: agent messages, usage rows, outbox events. Staged, never committed."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.turns.events import TurnEvent
from domain.turns.metering import UsageEntry
from domain.turns.ports import NewAgentMessage
from domain.turns.records import AgentMessage
from infra.db import turn_mapping
from infra.db.models import AgentMessageRow, TurnEventRow, UsageRecordRow


class SqlAgentMessageRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, message: NewAgentMessage) -> AgentMessage:
        row = AgentMessageRow(
            id=uuid.uuid4(),
            turn_id=message.turn_id,
            agent_id=message.agent_id,
            position=message.position,
            status=message.status,
            content=message.content,
            error_code=message.error_code,
            error_message=message.error_message,
            model_alias=message.model_alias,
            started_at=message.started_at,
            finished_at=message.finished_at,
        )
        self._session.add(row)
        # Usage rows reference the message: send it first (no ORM relationship orders them).
        await self._session.flush()
        return turn_mapping.message(row)

    async def of_turn(self, turn_id: uuid.UUID) -> list[AgentMessage]:
        rows = await self._session.scalars(
            select(AgentMessageRow)
            .where(AgentMessageRow.turn_id == turn_id)
            .order_by(AgentMessageRow.position)
        )
        return [turn_mapping.message(row) for row in rows]


class SqlUsageRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        # What this unit staged: the unit of work reports it to metrics after its commit.
        self.staged: list[UsageEntry] = []

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
    ) -> None:
        self.staged.extend(entries)
        self._session.add_all(
            UsageRecordRow(
                id=uuid.uuid4(),
                created_at=at,
                user_id=user_id,
                session_id=session_id,
                turn_id=turn_id,
                agent_message_id=agent_message_id,
                summary_id=summary_id,
                agent_key=entry.agent_key,
                call_kind=entry.call_kind,
                billing_category=entry.billing_category,
                position=entry.position,
                attempt=entry.attempt,
                provider=entry.provider,
                model_alias=entry.model_alias,
                prompt_tokens=entry.prompt_tokens,
                completion_tokens=entry.completion_tokens,
                cached_tokens=entry.cached_tokens,
                reasoning_tokens=entry.reasoning_tokens,
                token_source=entry.token_source,
                unpriced=entry.unpriced,
                input_nano_per_mtok=entry.input_nano_per_mtok,
                output_nano_per_mtok=entry.output_nano_per_mtok,
                cost_nano=entry.cost_nano,
                latency_ms=entry.latency_ms,
                succeeded=entry.succeeded,
                error_code=entry.error_code,
                provider_request_id=entry.provider_request_id,
                provider_model=entry.provider_model,
                recovered=entry.recovered,
            )
            for entry in entries
        )


class SqlEventRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        # What this unit staged, in order: the unit of work publishes it after its commit.
        self.staged: list[TurnEvent] = []

    async def add(self, events: Sequence[TurnEvent]) -> None:
        self.staged.extend(events)
        self._session.add_all(
            TurnEventRow(
                id=uuid.uuid4(),
                turn_id=event.turn_id,
                session_id=event.session_id,
                sequence=event.sequence,
                event_type=event.type.value,
                payload=dict(event.payload),
                created_at=event.at,
            )
            for event in events
        )

    async def last_sequence(self, turn_id: uuid.UUID) -> int:
        value = await self._session.scalar(
            select(func.max(TurnEventRow.sequence)).where(TurnEventRow.turn_id == turn_id)
        )
        return int(value or 0)

    async def of_turn(self, turn_id: uuid.UUID) -> list[TurnEvent]:
        rows = await self._session.scalars(
            select(TurnEventRow)
            .where(TurnEventRow.turn_id == turn_id)
            .order_by(TurnEventRow.sequence)
        )
        return [turn_mapping.event(row) for row in rows]

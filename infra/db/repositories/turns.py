from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from domain.enums import BillingCategory, TurnStatus
from domain.records import Model
from domain.turns.context import PastTurn, SessionMemory, SummaryMemory
from domain.turns.contracts import RosterAgent, RoutingDecision
from domain.turns.ports import LeaseStatus, NewTurn, TurnClose
from domain.turns.records import Turn
from infra.db import mapping, turn_mapping
from infra.db.models import (
    AgentRow,
    ModelRow,
    SessionAgentRow,
    SessionRow,
    SessionSummaryRow,
    TurnRow,
    UsageRecordRow,
    UserRow,
)
from infra.db.spend import month_spend_query
from infra.db.types import utcnow

# Memory beyond the latest summary is bounded by the context builder's token budget; this caps
# what is read for sessions that have no summary yet.
MAX_MEMORY_TURNS = 200


class SqlTurnRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def find_by_idempotency_key(self, user_id: uuid.UUID, key: str) -> Turn | None:
        row = await self._session.scalar(
            select(TurnRow).where(TurnRow.user_id == user_id, TurnRow.idempotency_key == key)
        )
        return turn_mapping.turn(row) if row else None

    async def get(self, turn_id: uuid.UUID) -> Turn | None:
        row = await self._session.get(TurnRow, turn_id, populate_existing=True)
        return turn_mapping.turn(row) if row else None

    async def lock_user(self, user_id: uuid.UUID) -> None:
        # SQLite's write transactions already hold the database lock (BEGIN IMMEDIATE).
        if self._session.bind.dialect.name == "postgresql":
            await self._session.execute(
                select(UserRow.id).where(UserRow.id == user_id).with_for_update()
            )

    async def running_for_user(self, user_id: uuid.UUID) -> list[Turn]:
        rows = await self._session.scalars(
            select(TurnRow).where(TurnRow.user_id == user_id, TurnRow.status == TurnStatus.RUNNING)
        )
        return [turn_mapping.turn(row) for row in rows]

    async def committed_cost_by_turn(self, turn_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
        if not turn_ids:
            return {}
        rows = await self._session.execute(
            select(UsageRecordRow.turn_id, func.sum(UsageRecordRow.cost_nano))
            .where(
                UsageRecordRow.turn_id.in_(turn_ids),
                UsageRecordRow.billing_category == BillingCategory.USER_BILLABLE,
            )
            .group_by(UsageRecordRow.turn_id)
        )
        return {turn_id: int(total or 0) for turn_id, total in rows if turn_id is not None}

    async def month_spend(self, user_id: uuid.UUID, *, since: datetime) -> int:
        rows = list(await self._session.execute(month_spend_query([user_id], since=since)))
        return int(rows[0][1]) if rows else 0

    async def next_index(self, session_id: uuid.UUID) -> int:
        # One atomic statement: concurrent starters each get their own index, no retry storm.
        result = await self._session.execute(
            update(SessionRow)
            .where(SessionRow.id == session_id)
            .values(turn_count=SessionRow.turn_count + 1, updated_at=utcnow())
            .returning(SessionRow.turn_count)
        )
        return int(result.scalar_one())

    async def add(self, turn: NewTurn) -> Turn:
        row = TurnRow(
            id=uuid.uuid4(),
            session_id=turn.session_id,
            user_id=turn.user_id,
            index=turn.index,
            mode=turn.mode,
            status=TurnStatus.RUNNING,
            user_message=turn.user_message,
            assistant_output="",
            routing=turn.routing.to_json() if turn.routing else None,
            context_audit=None,
            idempotency_key=turn.idempotency_key,
            request_fingerprint=turn.request_fingerprint,
            runner_id=turn.runner_id,
            lease_expires_at=turn.lease_expires_at,
            cancel_requested_at=None,
            summary_triggered=False,
            failure_reason=None,
            reserved_nano=turn.reserved_nano,
            started_at=turn.started_at,
            finished_at=None,
        )
        self._session.add(row)
        # Events reference the turn: send it first (no ORM relationship orders the inserts).
        # This flush is where a racing turn of the session or a reused idempotency key shows
        # up, so it reports them as the unit of work's own flush would: as a Conflict (which
        # the service turns into a replay of the winner's turn, or CONFLICT).
        try:
            await self._session.flush()
        except IntegrityError as error:
            from infra.db.uow import _conflict, _is_unique_violation  # uow imports this module

            if not _is_unique_violation(error):
                raise
            raise _conflict(error) from None
        return turn_mapping.turn(row)

    async def set_routing(self, turn_id: uuid.UUID, routing: RoutingDecision) -> None:
        await self._session.execute(
            update(TurnRow).where(TurnRow.id == turn_id).values(routing=routing.to_json())
        )

    async def close(self, turn_id: uuid.UUID, close: TurnClose) -> bool:
        result = await self._session.execute(
            update(TurnRow)
            .where(TurnRow.id == turn_id, TurnRow.status == TurnStatus.RUNNING)
            .values(
                status=close.status,
                assistant_output=close.assistant_output,
                context_audit=close.context_audit.to_json(),
                failure_reason=close.failure_reason,
                finished_at=close.finished_at,
                reserved_nano=0,  # settled: the usage rows now say what it cost
                summary_triggered=close.summary_triggered,
                lease_expires_at=None,
            )
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def renew_leases(
        self, turn_ids: Sequence[uuid.UUID], runner_id: str, *, until: datetime
    ) -> dict[uuid.UUID, LeaseStatus]:
        result = await self._session.execute(
            update(TurnRow)
            .where(
                TurnRow.id.in_(turn_ids),
                TurnRow.runner_id == runner_id,
                TurnRow.status == TurnStatus.RUNNING,
            )
            .values(lease_expires_at=until)
            .returning(TurnRow.id, TurnRow.cancel_requested_at)
        )
        held = {
            turn_id: LeaseStatus.CANCEL_REQUESTED if cancel else LeaseStatus.HELD
            for turn_id, cancel in result
        }
        return {turn_id: held.get(turn_id, LeaseStatus.LOST) for turn_id in turn_ids}

    async def request_cancel(self, turn_id: uuid.UUID, *, at: datetime) -> None:
        await self._session.execute(
            update(TurnRow)
            .where(TurnRow.id == turn_id, TurnRow.status == TurnStatus.RUNNING)
            .values(cancel_requested_at=at)
        )

    async def expired_running(self, *, now: datetime, limit: int) -> list[Turn]:
        query = (
            select(TurnRow)
            .where(TurnRow.status == TurnStatus.RUNNING, TurnRow.lease_expires_at < now)
            .order_by(TurnRow.lease_expires_at)
            .limit(limit)
        )
        if self._session.bind.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)  # two sweepers never take one turn
        return [turn_mapping.turn(row) for row in await self._session.scalars(query)]

    async def roster(self, session_id: uuid.UUID) -> list[RosterAgent]:
        rows = await self._session.execute(
            select(AgentRow, ModelRow.alias)
            .join(SessionAgentRow, SessionAgentRow.agent_id == AgentRow.id)
            .join(ModelRow, ModelRow.id == AgentRow.model_id)
            .where(SessionAgentRow.session_id == session_id)
            .order_by(SessionAgentRow.position)
        )
        return [
            RosterAgent(
                id=agent.id,
                key=agent.key,
                name=agent.name,
                description=agent.description,
                system_prompt=agent.system_prompt,
                enabled=agent.enabled,
                model_alias=alias,
            )
            for agent, alias in rows
        ]

    async def models_by_alias(self, aliases: Sequence[str]) -> dict[str, Model]:
        rows = await self._session.scalars(select(ModelRow).where(ModelRow.alias.in_(aliases)))
        return {row.alias: mapping.model(row) for row in rows}

    async def memory(self, session_id: uuid.UUID) -> SessionMemory:
        summary_row = await self._session.scalar(
            select(SessionSummaryRow)
            .where(SessionSummaryRow.session_id == session_id)
            .order_by(SessionSummaryRow.covers_through_turn.desc())
            .limit(1)
        )
        after = summary_row.covers_through_turn if summary_row else 0
        rows = await self._session.execute(
            select(TurnRow.index, TurnRow.user_message, TurnRow.assistant_output)
            .where(
                TurnRow.session_id == session_id,
                TurnRow.index > after,
                TurnRow.status != TurnStatus.RUNNING,
                TurnRow.assistant_output != "",
            )
            .order_by(TurnRow.index.desc())
            .limit(MAX_MEMORY_TURNS)
        )
        turns = [PastTurn(index=i, user_message=m, assistant_output=o) for i, m, o in rows]
        finished = await self._session.scalar(
            select(func.count())
            .select_from(TurnRow)
            .where(
                TurnRow.session_id == session_id,
                TurnRow.index > after,
                TurnRow.status != TurnStatus.RUNNING,
            )
        )
        summary = (
            SummaryMemory(
                id=summary_row.id,
                text=summary_row.text,
                covers_through_turn=summary_row.covers_through_turn,
            )
            if summary_row
            else None
        )
        return SessionMemory(
            summary=summary, turns=tuple(reversed(turns)), finished_since_summary=int(finished or 0)
        )

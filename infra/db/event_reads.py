"""Outbox reads: the durable turn events a subscription replays."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain.turns.events import TurnEvent
from infra.db import turn_mapping
from infra.db.models import TurnEventRow


class SqlOutboxReads:
    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._factory = session_factory

    async def events_after(self, turn_id: uuid.UUID, *, after: int) -> list[TurnEvent]:
        query = (
            select(TurnEventRow)
            .where(TurnEventRow.turn_id == turn_id, TurnEventRow.sequence > after)
            .order_by(TurnEventRow.sequence)
        )
        async with self._factory() as session:
            rows = (await session.scalars(query)).all()
        return [turn_mapping.event(row) for row in rows]

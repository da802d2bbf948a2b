"""Read paths of turns, messages and usage for the API (dataloader batches, turn pages)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import Select, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain.pagination import Direction, Page, PageRequest, build_page, parse_index_key
from domain.turns.records import AgentMessage, Turn, Usage
from infra.db import turn_mapping
from infra.db.models import AgentMessageRow, TurnRow, UsageRecordRow

T = TypeVar("T")
K = TypeVar("K")


class SqlTurnReads:
    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._factory = session_factory

    async def turns_by_ids(self, ids: Sequence[uuid.UUID]) -> list[Turn]:
        return await self._all(select(TurnRow).where(TurnRow.id.in_(ids)), turn_mapping.turn)

    async def turns_page(self, session_id: uuid.UUID, request: PageRequest) -> Page[Turn]:
        """A session's turns, oldest first by index (the cursor is the index)."""
        base = select(TurnRow).where(TurnRow.session_id == session_id)
        forward = request.direction is Direction.FORWARD
        query = base.order_by(TurnRow.index if forward else TurnRow.index.desc())
        query = query.limit(request.limit + 1)
        cursor = _cursor_index(request)
        async with self._factory() as session:
            if cursor is not None:
                beyond = TurnRow.index > cursor if forward else TurnRow.index < cursor
                query = query.where(beyond)
            rows = [turn_mapping.turn(row) for row in await session.scalars(query)]
            total = int(
                await session.scalar(select(func.count()).select_from(base.subquery())) or 0
            )
            behind = False
            if cursor is not None:
                other = TurnRow.index <= cursor if forward else TurnRow.index >= cursor
                behind = bool(await session.scalar(select(exists(base.where(other).subquery()))))
        return build_page(rows, request, total_count=total, has_more_behind=behind)

    async def messages_by_turn_ids(
        self, ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[AgentMessage]]:
        query = (
            select(AgentMessageRow)
            .where(AgentMessageRow.turn_id.in_(ids))
            .order_by(AgentMessageRow.turn_id, AgentMessageRow.position)
        )
        return await self._grouped(query, turn_mapping.message, lambda m: m.turn_id)

    async def messages_by_ids(self, ids: Sequence[uuid.UUID]) -> list[AgentMessage]:
        query = select(AgentMessageRow).where(AgentMessageRow.id.in_(ids))
        return await self._all(query, turn_mapping.message)

    async def usage_by_turn_ids(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[Usage]]:
        query = (
            select(UsageRecordRow).where(UsageRecordRow.turn_id.in_(ids)).order_by(*_usage_order())
        )
        return await self._grouped(query, turn_mapping.usage, lambda u: u.turn_id)

    async def usage_by_message_ids(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[Usage]]:
        query = (
            select(UsageRecordRow)
            .where(UsageRecordRow.agent_message_id.in_(ids))
            .order_by(*_usage_order())
        )
        return await self._grouped(query, turn_mapping.usage, lambda u: u.agent_message_id)

    async def usage_by_ids(self, ids: Sequence[uuid.UUID]) -> list[Usage]:
        query = select(UsageRecordRow).where(UsageRecordRow.id.in_(ids))
        return await self._all(query, turn_mapping.usage)

    async def _all(self, query: Select[Any], convert: Callable[[Any], T]) -> list[T]:
        async with self._factory() as session:
            return [convert(row) for row in await session.scalars(query)]

    async def _grouped(
        self, query: Select[Any], convert: Callable[[Any], T], key: Callable[[T], K | None]
    ) -> dict[K, list[T]]:
        grouped: dict[K, list[T]] = defaultdict(list)
        for item in await self._all(query, convert):
            group = key(item)
            if group is not None:
                grouped[group].append(item)
        return grouped


def _usage_order() -> tuple[Any, ...]:
    return (UsageRecordRow.position, UsageRecordRow.call_kind, UsageRecordRow.attempt)


def _cursor_index(request: PageRequest) -> int | None:
    if request.cursor is None:
        return None
    return parse_index_key(request.cursor)

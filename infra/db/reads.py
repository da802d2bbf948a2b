"""The read store: every method runs in its own short session, so concurrently resolving
GraphQL fields never share one (see STACK-NOTES: "concurrent operations are not permitted")."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, and_, exists, func, not_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain.pagination import Direction, Page, PageRequest, build_page, parse_time_id_key
from domain.records import Agent, Model, Session, User
from infra.db import mapping
from infra.db.models import (
    AgentRow,
    ApiTokenRow,
    ModelRow,
    SessionAgentRow,
    SessionRow,
    UserRow,
)
from infra.db.spend import month_spend_query

R = TypeVar("R")
T = TypeVar("T")


class SqlReadStore:
    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._factory = session_factory

    async def user_by_token_digest(self, digest: str) -> User | None:
        query = (
            select(UserRow)
            .join(ApiTokenRow, ApiTokenRow.user_id == UserRow.id)
            .where(ApiTokenRow.token_hash == digest, ApiTokenRow.revoked_at.is_(None))
        )
        async with self._factory() as session:
            row = await session.scalar(query)
        return mapping.user(row) if row else None

    async def users_by_ids(self, ids: Sequence[uuid.UUID]) -> list[User]:
        return await self._all(select(UserRow).where(UserRow.id.in_(ids)), mapping.user)

    async def users_page(self, request: PageRequest) -> Page[User]:
        # Oldest first: the order users were created in.
        return await self._keyset_page(
            select(UserRow), UserRow.created_at, UserRow.id, request, mapping.user, newest=False
        )

    async def models_by_ids(self, ids: Sequence[uuid.UUID]) -> list[Model]:
        return await self._all(select(ModelRow).where(ModelRow.id.in_(ids)), mapping.model)

    async def all_models(self) -> list[Model]:
        return await self._all(select(ModelRow).order_by(ModelRow.alias), mapping.model)

    async def agents_by_ids(self, ids: Sequence[uuid.UUID]) -> list[Agent]:
        return await self._all(select(AgentRow).where(AgentRow.id.in_(ids)), mapping.agent)

    async def all_agents(self, *, include_disabled: bool) -> list[Agent]:
        query = select(AgentRow).order_by(AgentRow.created_at, AgentRow.key)
        if not include_disabled:
            query = query.where(AgentRow.enabled)
        return await self._all(query, mapping.agent)

    async def sessions_by_ids(self, ids: Sequence[uuid.UUID]) -> list[Session]:
        return await self._all(select(SessionRow).where(SessionRow.id.in_(ids)), mapping.session)

    async def sessions_page(self, owner_id: uuid.UUID, request: PageRequest) -> Page[Session]:
        base = select(SessionRow).where(
            SessionRow.owner_id == owner_id, SessionRow.deleted_at.is_(None)
        )
        return await self._keyset_page(
            base, SessionRow.created_at, SessionRow.id, request, mapping.session, newest=True
        )

    async def month_spend_by_user_ids(
        self, ids: Sequence[uuid.UUID], *, since: datetime
    ) -> dict[uuid.UUID, int]:
        async with self._factory() as session:
            rows = await session.execute(month_spend_query(ids, since=since))
            spent = {user_id: int(total) for user_id, total in rows}
        return {user_id: spent.get(user_id, 0) for user_id in ids}

    async def rosters_by_session_ids(
        self, ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[uuid.UUID]]:
        query = (
            select(SessionAgentRow.session_id, SessionAgentRow.agent_id)
            .where(SessionAgentRow.session_id.in_(ids))
            .order_by(SessionAgentRow.session_id, SessionAgentRow.position)
        )
        rosters: dict[uuid.UUID, list[uuid.UUID]] = {session_id: [] for session_id in ids}
        async with self._factory() as session:
            for session_id, agent_id in await session.execute(query):
                rosters[session_id].append(agent_id)
        return rosters

    async def _all(self, query: Select[tuple[R]], convert: Callable[[R], T]) -> list[T]:
        async with self._factory() as session:
            return [convert(row) for row in await session.scalars(query)]

    async def _keyset_page(
        self,
        base: Select[tuple[Any]],
        time_column: Any,
        id_column: Any,
        request: PageRequest,
        convert: Callable[[Any], T],
        *,
        newest: bool,
    ) -> Page[T]:
        """Pages `base` ordered by (time, id); newest=True sorts descending."""
        forward = request.direction is Direction.FORWARD
        descending = newest == forward  # walking a newest-first list backwards sorts ascending
        order = (time_column.desc(), id_column.desc()) if descending else (time_column, id_column)
        query = base.order_by(*order).limit(request.limit + 1)
        behind: ColumnElement[bool] | None = None
        if request.cursor is not None:
            at, row_id = parse_time_id_key(request.cursor)
            ahead = _beyond(time_column, id_column, at, row_id, descending=descending)
            behind = not_(ahead)  # the cursor's own row counts as behind the page
            query = query.where(ahead)
        count_query = select(func.count()).select_from(base.subquery())
        async with self._factory() as session:
            rows = list(await session.scalars(query))
            total = int(await session.scalar(count_query) or 0)
            has_behind = False
            if behind is not None:
                has_behind = bool(
                    await session.scalar(select(exists(base.where(behind).subquery())))
                )
        return build_page(
            [convert(row) for row in rows], request, total_count=total, has_more_behind=has_behind
        )


def _beyond(
    time_column: Any, id_column: Any, at: datetime, row_id: uuid.UUID, *, descending: bool
) -> ColumnElement[bool]:
    """Rows strictly after (at, row_id) in the given direction (inclusive-or keyset)."""
    if descending:
        return or_(time_column < at, and_(time_column == at, id_column < row_id))
    return or_(time_column > at, and_(time_column == at, id_column > row_id))

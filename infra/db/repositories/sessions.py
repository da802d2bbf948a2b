from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.enums import TurnMode, TurnStatus
from domain.records import Session
from infra.db import mapping
from infra.db.models import SessionAgentRow, SessionRow, TurnRow
from infra.db.types import utcnow


class SqlSessionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(
        self,
        *,
        owner_id: uuid.UUID,
        title: str,
        default_mode: TurnMode,
        agent_ids: Sequence[uuid.UUID],
    ) -> Session:
        now = utcnow()
        row = SessionRow(
            id=uuid.uuid4(),
            owner_id=owner_id,
            title=title,
            default_mode=default_mode,
            turn_count=0,
            created_at=now,
            updated_at=now,
        )
        self._session.add(row)
        # No ORM relationship orders these inserts, so the session row goes first explicitly.
        await self._session.flush()
        self._stage_roster(row.id, agent_ids)
        return mapping.session(row)

    async def get(self, session_id: uuid.UUID) -> Session | None:
        row = await self._session.get(SessionRow, session_id)
        return mapping.session(row) if row else None

    async def lock(self, session_id: uuid.UUID) -> Session | None:
        # SQLite's write transactions already hold the database lock (BEGIN IMMEDIATE).
        if self._session.bind.dialect.name != "postgresql":
            return await self.get(session_id)
        # populate_existing: what another unit committed while we waited for the lock is what
        # the checks after it must see, not a copy read earlier in this unit.
        row = await self._session.get(
            SessionRow, session_id, with_for_update=True, populate_existing=True
        )
        return mapping.session(row) if row else None

    async def update(
        self, session_id: uuid.UUID, *, title: str | None, default_mode: TurnMode | None
    ) -> Session:
        row = await self._session.get_one(SessionRow, session_id)
        if title is not None:
            row.title = title
        if default_mode is not None:
            row.default_mode = default_mode
        row.updated_at = utcnow()
        return mapping.session(row)

    async def set_roster(self, session_id: uuid.UUID, agent_ids: Sequence[uuid.UUID]) -> None:
        await self._session.execute(
            delete(SessionAgentRow).where(SessionAgentRow.session_id == session_id)
        )
        self._stage_roster(session_id, agent_ids)

    async def soft_delete(self, session_id: uuid.UUID, *, at: datetime) -> None:
        row = await self._session.get_one(SessionRow, session_id)
        row.deleted_at = at
        row.updated_at = at

    async def has_running_turn(self, session_id: uuid.UUID) -> bool:
        query = select(
            exists().where(TurnRow.session_id == session_id, TurnRow.status == TurnStatus.RUNNING)
        )
        return bool(await self._session.scalar(query))

    def _stage_roster(self, session_id: uuid.UUID, agent_ids: Sequence[uuid.UUID]) -> None:
        self._session.add_all(
            SessionAgentRow(session_id=session_id, position=position, agent_id=agent_id)
            for position, agent_id in enumerate(agent_ids, start=1)
        )

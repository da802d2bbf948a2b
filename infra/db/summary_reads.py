"""Read paths of session summaries for the API."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain.summaries.contracts import Summary
from infra.db.models import SessionSummaryRow
from infra.db.summary_mapping import summary


class SqlSummaryReads:
    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._factory = session_factory

    async def summaries_by_session_ids(
        self, ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[Summary]]:
        """Each session's summaries, oldest first (the last one is the latest)."""
        query = (
            select(SessionSummaryRow)
            .where(SessionSummaryRow.session_id.in_(ids))
            .order_by(SessionSummaryRow.session_id, SessionSummaryRow.covers_through_turn)
        )
        grouped: dict[uuid.UUID, list[Summary]] = defaultdict(list)
        async with self._factory() as session:
            for row in await session.scalars(query):
                grouped[row.session_id].append(summary(row))
        return grouped

    async def summaries_by_ids(self, ids: Sequence[uuid.UUID]) -> list[Summary]:
        query = select(SessionSummaryRow).where(SessionSummaryRow.id.in_(ids))
        async with self._factory() as session:
            return [summary(row) for row in await session.scalars(query)]

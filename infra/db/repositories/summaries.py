from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from domain.summaries.contracts import Summary, SummaryStructure
from infra.db.models import SessionSummaryRow
from infra.db.summary_mapping import summary


class SqlSummaryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(
        self,
        *,
        session_id: uuid.UUID,
        turn_id: uuid.UUID,
        covers_from_turn: int,
        covers_through_turn: int,
        text: str,
        structure: SummaryStructure,
        generation_used_fallback: bool,
        extraction_used_fallback: bool,
        at: datetime,
    ) -> Summary:
        row = SessionSummaryRow(
            id=uuid.uuid4(),
            session_id=session_id,
            turn_id=turn_id,
            covers_from_turn=covers_from_turn,
            covers_through_turn=covers_through_turn,
            text=text,
            structure=structure.to_json(),
            generation_used_fallback=generation_used_fallback,
            extraction_used_fallback=extraction_used_fallback,
            created_at=at,
        )
        self._session.add(row)
        # Usage rows reference the summary, and its range constraints must speak now: a summary
        # of the same range stored meanwhile is reported as the unit of work's own flush would,
        # as a Conflict.
        try:
            await self._session.flush()
        except IntegrityError as error:
            from infra.db.uow import _conflict, _is_unique_violation  # uow imports this module

            if not _is_unique_violation(error):
                raise
            raise _conflict(error) from None
        return summary(row)

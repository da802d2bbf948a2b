"""Storage the summary pipeline needs: one repository on the turn's unit of work, and reads."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from domain.summaries.contracts import Summary, SummaryStructure


class SummaryRepository(Protocol):
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
    ) -> Summary: ...


class SummaryReads(Protocol):
    async def summaries_by_session_ids(
        self, ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[Summary]]: ...
    async def summaries_by_ids(self, ids: Sequence[uuid.UUID]) -> list[Summary]: ...

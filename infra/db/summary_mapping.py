from __future__ import annotations

from domain.summaries.contracts import Summary, SummaryStructure
from infra.db.models import SessionSummaryRow


def summary(row: SessionSummaryRow) -> Summary:
    return Summary(
        id=row.id,
        session_id=row.session_id,
        turn_id=row.turn_id,
        covers_from_turn=row.covers_from_turn,
        covers_through_turn=row.covers_through_turn,
        text=row.text,
        structure=SummaryStructure.from_json(row.structure),
        generation_used_fallback=row.generation_used_fallback,
        extraction_used_fallback=row.extraction_used_fallback,
        created_at=row.created_at,
    )

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry import relay

from domain.summaries.contracts import Summary


@strawberry.type(name="SummaryStructure")
class SummaryStructureType:
    key_points: list[str]
    decisions: list[str]
    action_items: list[str]
    open_questions: list[str]


@strawberry.type(name="SessionSummary")
class SessionSummaryNode(relay.Node):
    node_id: relay.NodeID[str]
    covers_through_turn: int
    text: str
    structure: SummaryStructureType
    generation_used_fallback: bool
    extraction_used_fallback: bool
    created_at: datetime

    @classmethod
    def from_record(cls, summary: Summary) -> SessionSummaryNode:
        return cls(
            node_id=str(summary.id),
            covers_through_turn=summary.covers_through_turn,
            text=summary.text,
            structure=SummaryStructureType(
                key_points=list(summary.structure.key_points),
                decisions=list(summary.structure.decisions),
                action_items=list(summary.structure.action_items),
                open_questions=list(summary.structure.open_questions),
            ),
            generation_used_fallback=summary.generation_used_fallback,
            extraction_used_fallback=summary.extraction_used_fallback,
            created_at=summary.created_at,
        )

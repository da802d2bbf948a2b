"""What the summary stages produce. The structure's shape is a stable contract: four lists of
strings, always all four, whatever the model answered."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from domain.llm import Attempt

STRUCTURE_KEYS = ("key_points", "decisions", "action_items", "open_questions")


@dataclass(frozen=True, slots=True, kw_only=True)
class SummaryStructure:
    key_points: tuple[str, ...] = ()
    decisions: tuple[str, ...] = ()
    action_items: tuple[str, ...] = ()
    open_questions: tuple[str, ...] = ()

    def to_json(self) -> dict[str, list[str]]:
        return {key: list(getattr(self, key)) for key in STRUCTURE_KEYS}

    @classmethod
    def from_json(cls, data: object) -> SummaryStructure:
        if not isinstance(data, dict):
            return cls()
        # Only a list keeps its strings: iterating a string, a dict or None would split it into
        # characters, keys, or fail.
        values = {key: _strings(data.get(key)) for key in STRUCTURE_KEYS}
        return cls(**values)


def _strings(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(item for item in value if isinstance(item, str))


@dataclass(frozen=True, slots=True, kw_only=True)
class StageResult:
    """One stage's outcome: its value, whether the fallback was used, the call's attempts."""

    used_fallback: bool
    fallback_reason: str | None
    attempts: tuple[Attempt, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True, kw_only=True)
class GeneratedText(StageResult):
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtractedStructure(StageResult):
    structure: SummaryStructure


@dataclass(frozen=True, slots=True, kw_only=True)
class Summary:
    id: uuid.UUID
    session_id: uuid.UUID
    turn_id: uuid.UUID | None
    covers_from_turn: int
    covers_through_turn: int
    text: str
    structure: SummaryStructure
    generation_used_fallback: bool
    extraction_used_fallback: bool
    created_at: datetime

"""When a summary is due, and the two stages run one after the other.

Due when the finished turns since the last summary — this one included — reach the threshold
(`>=`: a summary that failed or was skipped is retried by the next turn). A summary covers the
turns after the previous one through the current turn, and starts from the previous summary's
text, so memory stays bounded however long the session grows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from domain.enums import CallKind
from domain.llm import Attempt, LLMGateway
from domain.records import Model
from domain.summaries import extractor, generator
from domain.summaries.contracts import ExtractedStructure, GeneratedText
from domain.turns.context import PastTurn, SessionMemory


@dataclass(frozen=True, slots=True, kw_only=True)
class SummaryPlan:
    previous_text: str | None
    turns: tuple[PastTurn, ...]
    covers_from_turn: int
    covers_through_turn: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SummaryOutcome:
    plan: SummaryPlan
    generated: GeneratedText
    extracted: ExtractedStructure


def plan_summary(memory: SessionMemory, current: PastTurn, *, threshold: int) -> SummaryPlan | None:
    if memory.finished_since_summary + 1 < threshold:
        return None
    previous = memory.summary
    turns = (*memory.turns, current) if current.assistant_output else memory.turns
    return SummaryPlan(
        previous_text=previous.text if previous else None,
        turns=turns,
        covers_from_turn=(previous.covers_through_turn + 1) if previous else 1,
        covers_through_turn=current.index,
    )


async def summarize(
    gateway: LLMGateway,
    plan: SummaryPlan,
    model: Model,
    *,
    spent: Mapping[CallKind, list[Attempt]] | None = None,
) -> SummaryOutcome:
    """`spent`: the attempts of each call (SUMMARY_GENERATION, SUMMARY_EXTRACTION) as they end."""
    spent = spent or {}
    generated = await generator.generate(
        gateway,
        plan.previous_text,
        plan.turns,
        model,
        spent=spent.get(CallKind.SUMMARY_GENERATION),
    )
    extracted = await extractor.extract(
        gateway, generated.text, model, spent=spent.get(CallKind.SUMMARY_EXTRACTION)
    )
    return SummaryOutcome(plan=plan, generated=generated, extracted=extracted)

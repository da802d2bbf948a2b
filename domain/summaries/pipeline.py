"""When a summary is due, and the two stages run one after the other.

Due when the finished turns since the last summary — this one included — reach the threshold
(`>=`: a summary that failed or was skipped is retried by the next turn). A summary covers the
turns after the previous one through the current turn, and starts from the previous summary's
text, so memory stays bounded however long the session grows.
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.llm import LLMGateway
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


async def summarize(gateway: LLMGateway, plan: SummaryPlan, model: Model) -> SummaryOutcome:
    generated = await generator.generate(gateway, plan.previous_text, plan.turns, model)
    extracted = await extractor.extract(gateway, generated.text, model)
    return SummaryOutcome(plan=plan, generated=generated, extracted=extracted)

"""Stage 2: the structure of a summary text. Missing keys default to empty lists silently;
invalid JSON, wrong types or a failed call give the empty structure, with a warning."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from domain.enums import CallKind
from domain.llm import Attempt, ChatMessage, LLMCallError, LLMGateway, LLMRequest
from domain.records import Model
from domain.structured import fallback, parse_strict
from domain.summaries.contracts import ExtractedStructure, SummaryStructure

PARSER = "summary extraction"

SYSTEM_PROMPT = (
    "Extract the structure of this conversation summary. Answer with strict JSON only: "
    '{"key_points": [], "decisions": [], "action_items": [], "open_questions": []} '
    "where each list holds short strings."
)


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    key_points: list[str] = []
    decisions: list[str] = []
    action_items: list[str] = []
    open_questions: list[str] = []


def extraction_request(text: str, model: Model) -> LLMRequest:
    return LLMRequest(
        provider=model.provider,
        model=model.provider_model,
        messages=(
            ChatMessage(role="system", content=SYSTEM_PROMPT),
            ChatMessage(role="user", content=text),
        ),
        max_output_tokens=model.max_output_tokens,
        call_kind=CallKind.SUMMARY_EXTRACTION,
        temperature=0.0,
        json_output=True,
    )


async def extract(
    gateway: LLMGateway, text: str, model: Model, *, spent: list[Attempt] | None = None
) -> ExtractedStructure:
    try:
        result = await gateway.complete(extraction_request(text, model), spent=spent)
    except LLMCallError as error:
        reason = fallback(PARSER, f"extraction call failed: {error.code}")
        return _empty(reason, error.attempts)
    parsed = parse_strict(_Answer, result.text, parser=PARSER)
    if parsed.value is None:
        return _empty(parsed.reason or "invalid output", result.attempts)
    answer = parsed.value
    return ExtractedStructure(
        structure=SummaryStructure(
            key_points=tuple(answer.key_points),
            decisions=tuple(answer.decisions),
            action_items=tuple(answer.action_items),
            open_questions=tuple(answer.open_questions),
        ),
        used_fallback=False,
        fallback_reason=None,
        attempts=result.attempts,
    )


def _empty(reason: str, attempts: tuple[Attempt, ...]) -> ExtractedStructure:
    return ExtractedStructure(
        structure=SummaryStructure(), used_fallback=True, fallback_reason=reason, attempts=attempts
    )

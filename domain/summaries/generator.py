"""Stage 1: the summary text. The model must answer `{"summary_text": "..."}`; anything else
(invalid JSON, wrong types, an empty text) and a failed call take the deterministic digest.

The request's user message is a JSON document, `{"previous_summary": str | null, "turns":
[{"index", "user", "agents"}]}`; the offline scripted provider reads it too."""

from __future__ import annotations

import json
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, field_validator

from domain.enums import CallKind
from domain.llm import Attempt, ChatMessage, LLMCallError, LLMGateway, LLMRequest
from domain.records import Model
from domain.structured import fallback, parse_strict, trim
from domain.summaries.contracts import GeneratedText
from domain.turns.context import PastTurn

PARSER = "summary generation"
DIGEST_CHARS_PER_TURN = 240
DIGEST_MAX_CHARS = 4_000  # about 1,000 tokens: the size of a summarizer's own answer

SYSTEM_PROMPT = (
    "You maintain the memory of a long multi-agent chat. Merge the previous summary (if any) with "
    "the new turns into one concise summary that keeps facts, decisions, commitments and open "
    "questions, and drops chit-chat. Answer with strict JSON only: "
    '{"summary_text": "..."}'
)


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    summary_text: str

    @field_validator("summary_text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("summary_text is empty")
        return value.strip()


def generation_request(previous: str | None, turns: Sequence[PastTurn], model: Model) -> LLMRequest:
    document = {
        "previous_summary": previous,
        "turns": [
            {"index": t.index, "user": t.user_message, "agents": t.assistant_output} for t in turns
        ],
    }
    return LLMRequest(
        provider=model.provider,
        model=model.provider_model,
        messages=(
            ChatMessage(role="system", content=SYSTEM_PROMPT),
            ChatMessage(role="user", content=json.dumps(document, ensure_ascii=False)),
        ),
        max_output_tokens=model.max_output_tokens,
        call_kind=CallKind.SUMMARY_GENERATION,
        temperature=0.0,
        json_output=True,
    )


async def generate(
    gateway: LLMGateway,
    previous: str | None,
    turns: Sequence[PastTurn],
    model: Model,
    *,
    spent: list[Attempt] | None = None,
) -> GeneratedText:
    try:
        result = await gateway.complete(generation_request(previous, turns, model), spent=spent)
    except LLMCallError as error:
        reason = fallback(PARSER, f"summary call failed: {error.code}")
        return _digest_result(previous, turns, reason, error.attempts)
    parsed = parse_strict(_Answer, result.text, parser=PARSER)
    if parsed.value is None:
        return _digest_result(previous, turns, parsed.reason, result.attempts)
    return GeneratedText(
        text=parsed.value.summary_text,
        used_fallback=False,
        fallback_reason=None,
        attempts=result.attempts,
    )


def digest(previous: str | None, turns: Sequence[PastTurn]) -> str:
    """The deterministic fallback: the previous summary, then one trimmed line per turn.

    At most `DIGEST_MAX_CHARS`, keeping the newest part: each digest starts from the previous
    summary, so without a bound a summarizer that keeps failing would grow the memory with every
    summary, and memory must stay bounded however long the session grows.
    """
    lines = [previous.strip()] if previous and previous.strip() else []
    for turn in turns:
        line = f"Turn {turn.index}: the user said {turn.user_message!r}; {turn.assistant_output}"
        lines.append(_cut(" ".join(line.split()), DIGEST_CHARS_PER_TURN))
    return _keep_end("\n".join(lines), DIGEST_MAX_CHARS)


def _digest_result(
    previous: str | None,
    turns: Sequence[PastTurn],
    reason: str | None,
    attempts: tuple[Attempt, ...],
) -> GeneratedText:
    return GeneratedText(
        text=digest(previous, turns),
        used_fallback=True,
        fallback_reason=trim(reason or "invalid output"),
        attempts=attempts,
    )


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _keep_end(text: str, limit: int) -> str:
    return text if len(text) <= limit else "…" + text[len(text) - limit + 1 :]

"""When a summary is due and what it covers (`plan_summary`), and the two stages in sequence
(`summarize`): extraction reads generation's text, fallback or not, and both keep their attempts."""

from __future__ import annotations

import json
import uuid

import pytest

from domain.enums import CallKind, TokenSource
from domain.llm import (
    Attempt,
    LLMCallError,
    LLMErrorCode,
    TokenUsage,
)
from domain.records import Model
from domain.summaries import generator
from domain.summaries.contracts import SummaryStructure
from domain.summaries.pipeline import SummaryPlan, plan_summary, summarize
from domain.turns.context import PastTurn, SessionMemory, SummaryMemory
from tests.fakes.fake_gateway import CompletionGateway

THRESHOLD = 8
SUMMARIZER = Model(
    id=uuid.uuid4(),
    alias="summarizer-mini",
    provider="fake",
    provider_model="summarizer-vendor-id",
    input_nano_per_mtok=150_000_000,
    output_nano_per_mtok=600_000_000,
    max_output_tokens=1024,
    context_window=128_000,
)


def turn(index: int, output: str | None = None) -> PastTurn:
    return PastTurn(
        index=index,
        user_message=f"message {index}",
        assistant_output=f"Qwen: reply {index}" if output is None else output,
    )


def memory(
    finished: int, *, summary: SummaryMemory | None = None, turns: tuple[PastTurn, ...] = ()
) -> SessionMemory:
    after = summary.covers_through_turn if summary else 0
    turns = turns or tuple(turn(after + n) for n in range(1, finished + 1))
    return SessionMemory(summary=summary, turns=turns, finished_since_summary=finished)


def previous(through: int, text: str = "Earlier summary.") -> SummaryMemory:
    return SummaryMemory(id=uuid.uuid4(), text=text, covers_through_turn=through)


def attempt(number: int, tokens: int) -> Attempt:
    return Attempt(
        number=number,
        reached_provider=True,
        may_be_billed=True,
        succeeded=True,
        error_code=None,
        usage=TokenUsage(prompt_tokens=tokens, completion_tokens=5, source=TokenSource.PROVIDER),
        latency_ms=4,
    )


# --- plan_summary: when -----------------------------------------------------------------------


def test_seven_finished_turns_with_the_current_one_are_not_enough() -> None:
    assert plan_summary(memory(6), turn(7), threshold=THRESHOLD) is None


def test_the_eighth_finished_turn_makes_the_first_summary_due() -> None:
    plan = plan_summary(memory(7), turn(8), threshold=THRESHOLD)

    assert plan is not None
    assert (plan.covers_from_turn, plan.covers_through_turn) == (1, 8)
    assert plan.previous_text is None
    assert [t.index for t in plan.turns] == [1, 2, 3, 4, 5, 6, 7, 8]


def test_a_summary_skipped_before_is_retried_by_the_next_turn() -> None:
    # 8 finished since the last summary: turn 8's summary failed or was skipped
    plan = plan_summary(memory(8), turn(9), threshold=THRESHOLD)

    assert plan is not None
    assert (plan.covers_from_turn, plan.covers_through_turn) == (1, 9)
    assert [t.index for t in plan.turns] == list(range(1, 10))


@pytest.mark.parametrize("finished", [0, 1, 5, 6])
def test_below_the_threshold_nothing_is_due(finished: int) -> None:
    assert plan_summary(memory(finished), turn(finished + 1), threshold=THRESHOLD) is None


@pytest.mark.parametrize("threshold", [2, 3, 8, 20])
def test_the_threshold_is_the_boundary_whatever_its_value(threshold: int) -> None:
    below = plan_summary(memory(threshold - 2), turn(threshold - 1), threshold=threshold)
    at = plan_summary(memory(threshold - 1), turn(threshold), threshold=threshold)

    assert below is None
    assert at is not None
    assert (at.covers_from_turn, at.covers_through_turn) == (1, threshold)


def test_a_threshold_of_one_summarizes_every_turn() -> None:
    plan = plan_summary(memory(0, summary=previous(4)), turn(5), threshold=1)

    assert plan is not None
    assert (plan.covers_from_turn, plan.covers_through_turn) == (5, 5)


# --- plan_summary: what it covers -----------------------------------------------------------------


def test_a_later_summary_starts_after_the_previous_one_and_from_its_text() -> None:
    prior = previous(8, "Launch May 2.")

    plan = plan_summary(memory(7, summary=prior), turn(16), threshold=THRESHOLD)

    assert plan == SummaryPlan(
        previous_text="Launch May 2.",
        turns=(*(turn(n) for n in range(9, 16)), turn(16)),
        covers_from_turn=9,
        covers_through_turn=16,
    )


def test_seven_after_a_previous_summary_are_not_enough() -> None:
    assert plan_summary(memory(6, summary=previous(8)), turn(15), threshold=THRESHOLD) is None


def test_a_current_turn_without_output_is_covered_but_not_sent() -> None:
    plan = plan_summary(memory(7), turn(8, output=""), threshold=THRESHOLD)

    assert plan is not None
    assert plan.covers_through_turn == 8
    assert [t.index for t in plan.turns] == [1, 2, 3, 4, 5, 6, 7]


def test_finished_turns_without_output_count_towards_the_threshold() -> None:
    # memory lists only turns with output; turns 3 and 5 failed but are finished
    with_output = tuple(turn(n) for n in (1, 2, 4, 6, 7))

    plan = plan_summary(memory(7, turns=with_output), turn(8), threshold=THRESHOLD)

    assert plan is not None
    assert (plan.covers_from_turn, plan.covers_through_turn) == (1, 8)
    assert [t.index for t in plan.turns] == [1, 2, 4, 6, 7, 8]


# --- summarize: the two stages --------------------------------------------------------------------

PLAN = SummaryPlan(
    previous_text="Kickoff done.",
    turns=(turn(9), turn(10)),
    covers_from_turn=9,
    covers_through_turn=10,
)


async def test_extraction_reads_the_generated_text() -> None:
    gateway = CompletionGateway(
        '{"summary_text": "Launch May 2."}',
        '{"key_points": ["launch May 2"], "decisions": ["ship"]}',
    )

    outcome = await summarize(gateway, PLAN, SUMMARIZER)

    generation, extraction = gateway.requests
    assert generation.call_kind is CallKind.SUMMARY_GENERATION
    assert extraction.call_kind is CallKind.SUMMARY_EXTRACTION
    assert json.loads(generation.messages[1].content)["previous_summary"] == "Kickoff done."
    assert extraction.messages[1].content == "Launch May 2."
    assert outcome.plan == PLAN
    assert outcome.generated.text == "Launch May 2."
    assert outcome.extracted.structure == SummaryStructure(
        key_points=("launch May 2",), decisions=("ship",)
    )
    assert (outcome.generated.used_fallback, outcome.extracted.used_fallback) == (False, False)
    # each stage keeps its own call's attempts, for its own usage rows
    assert [a.usage.prompt_tokens for a in outcome.generated.attempts] == [10]
    assert [a.usage.prompt_tokens for a in outcome.extracted.attempts] == [20]


async def test_a_generation_fallback_still_extracts_from_the_digest() -> None:
    gateway = CompletionGateway("not json", '{"open_questions": ["pricing?"]}')

    outcome = await summarize(gateway, PLAN, SUMMARIZER)

    digest = generator.digest("Kickoff done.", PLAN.turns)
    assert outcome.generated.text == digest
    assert outcome.generated.used_fallback is True
    assert gateway.requests[1].messages[1].content == digest
    assert outcome.extracted.used_fallback is False
    assert outcome.extracted.structure.open_questions == ("pricing?",)


async def test_both_stages_failing_give_the_digest_and_the_empty_structure() -> None:
    spent = attempt(1, 33)
    gateway = CompletionGateway(
        LLMCallError(LLMErrorCode.PROVIDER_UNAVAILABLE, "500", attempts=(spent, spent, spent)),
        LLMCallError(LLMErrorCode.PROVIDER_UNAVAILABLE, "500", attempts=(spent,)),
    )

    outcome = await summarize(gateway, PLAN, SUMMARIZER)

    assert outcome.generated.text == generator.digest("Kickoff done.", PLAN.turns)
    assert outcome.extracted.structure == SummaryStructure()
    assert (outcome.generated.used_fallback, outcome.extracted.used_fallback) == (True, True)
    assert len(outcome.generated.attempts) == 3
    assert len(outcome.extracted.attempts) == 1
    assert len(gateway.requests) == 2

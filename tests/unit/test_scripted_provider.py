"""The offline scripted provider: deterministic replies per call kind, streamed, with estimated
usage, and the JSON contracts the turn engine and the summarizer rely on."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from domain.enums import CallKind, TokenSource
from domain.llm import ChatMessage, LLMErrorCode, LLMRequest, LLMResult, TextDelta, estimate_usage
from infra.llm.scripted import ScriptedProvider
from infra.llm.scripted_replies import OFFLINE_MARK

ROSTER = [
    {"key": "writer", "name": "Writer", "description": "Writes stories, prose and blog posts"},
    {"key": "researcher", "name": "Researcher", "description": "Finds facts and papers"},
    {"key": "coder", "name": "Coder", "description": "Writes and reviews Python code"},
]


def _request(kind: CallKind, *messages: tuple[str, str], persona: str | None = None) -> LLMRequest:
    return LLMRequest(
        provider="scripted",
        model="offline",
        messages=tuple(ChatMessage(role=role, content=content) for role, content in messages),
        max_output_tokens=256,
        call_kind=kind,
        persona=persona,
    )


async def _answer(request: LLMRequest, *, seed: int = 0) -> str:
    return (await ScriptedProvider(seed=seed).complete(request)).text


async def _route(message: str, *, max_agents: int = 2, roster: Any = None) -> list[str]:
    prompt = {"roster": ROSTER if roster is None else roster, "message": message}
    prompt["max_agents"] = max_agents
    text = await _answer(_request(CallKind.MANAGER_ROUTING, ("user", json.dumps(prompt))))
    return list(json.loads(text)["selected_agent_keys"])


# --- agent replies ---------------------------------------------------------------------------


async def test_an_agent_reply_is_marked_offline_and_speaks_as_the_persona() -> None:
    text = await _answer(
        _request(
            CallKind.AGENT_RESPONSE,
            ("system", "You are a meticulous historian. Cite sources."),
            ("user", "Tell me about Roman aqueducts"),
            persona="Historian",
        )
    )
    assert text.startswith(OFFLINE_MARK)
    assert "Historian" in text
    assert "meticulous historian" in text
    assert "aqueducts" in text


async def test_an_agent_reply_is_about_the_last_user_message() -> None:
    text = await _answer(
        _request(
            CallKind.AGENT_RESPONSE,
            ("user", "Earlier question about penguins"),
            ("assistant", "Earlier answer"),
            ("user", "Now explain volcanoes"),
        )
    )
    assert "volcanoes" in text
    assert "penguins" not in text


async def test_replies_are_deterministic_and_the_seed_varies_the_wording() -> None:
    request = _request(CallKind.AGENT_RESPONSE, ("user", "Plan a garden"), persona="Gardener")
    assert await _answer(request) == await _answer(request)
    wordings = {await _answer(request, seed=seed) for seed in range(6)}
    assert len(wordings) > 1


async def test_a_reply_streams_in_several_deltas_then_one_result() -> None:
    request = _request(CallKind.AGENT_RESPONSE, ("user", "Describe the ocean"), persona="Poet")
    items = [item async for item in ScriptedProvider().stream(request)]
    *deltas, result = items
    assert len(deltas) > 3
    assert all(isinstance(d, TextDelta) for d in deltas)
    assert isinstance(result, LLMResult)
    assert "".join(d.text for d in deltas if isinstance(d, TextDelta)) == result.text
    assert result.text == await _answer(request)


async def test_usage_is_estimated_like_a_provider_without_usage() -> None:
    request = _request(CallKind.AGENT_RESPONSE, ("user", "Count my tokens"))
    result = await ScriptedProvider().complete(request)
    assert result.usage == estimate_usage(request.messages, result.text)
    assert result.usage.source is TokenSource.ESTIMATED
    (attempt,) = result.attempts
    assert (attempt.succeeded, attempt.reached_provider, attempt.usage) == (
        True,
        True,
        result.usage,
    )


async def test_the_stream_yields_to_other_tasks_between_deltas() -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    request = _request(CallKind.AGENT_RESPONSE, ("user", "A longer message to answer"))
    deltas = [i async for i in ScriptedProvider().stream(request) if isinstance(i, TextDelta)]
    task.cancel()
    assert ticks >= len(deltas) - 1


async def test_closing_a_stream_early_reports_a_cancelled_attempt() -> None:
    request = _request(CallKind.AGENT_RESPONSE, ("user", "Something long enough to stream"))
    stream = ScriptedProvider().stream(request)
    first = await anext(stream)
    await stream.aclose()
    (attempt,) = stream.attempts
    assert attempt.error_code == LLMErrorCode.PROVIDER_CANCELLED
    assert isinstance(first, TextDelta)
    assert attempt.usage == estimate_usage(request.messages, first.text)


# --- manager routing -------------------------------------------------------------------------


async def test_routing_puts_mentioned_agents_first_in_mention_order() -> None:
    assert await _route("@coder and @WRITER, fix the prose please", max_agents=3) == [
        "coder",
        "writer",
    ]


async def test_routing_ranks_agents_by_shared_words() -> None:
    assert await _route("Find facts and research papers on bees", max_agents=1) == ["researcher"]
    assert await _route("Write a story about Python code") == ["coder", "writer"]


async def test_routing_breaks_ties_in_roster_order() -> None:
    assert await _route("writes", max_agents=3) == ["writer", "coder"]


async def test_routing_always_picks_at_least_one_agent_and_at_most_max_agents() -> None:
    assert await _route("zzz qqq") == ["writer"]
    assert await _route("@writer @researcher @coder", max_agents=2) == ["writer", "researcher"]


async def test_routing_ignores_mentions_off_the_roster_and_email_addresses() -> None:
    assert await _route("mail bob@coder.com about facts, @nobody", max_agents=1) == ["researcher"]


@pytest.mark.parametrize(
    "content",
    ["not json", "[]", '{"roster": "nope", "message": "x"}', '{"message": "no roster"}'],
)
async def test_routing_answers_an_empty_selection_to_anything_else(content: str) -> None:
    text = await _answer(_request(CallKind.MANAGER_ROUTING, ("user", content)))
    assert json.loads(text) == {"selected_agent_keys": []}


async def test_routing_reads_the_last_user_message_only() -> None:
    prompt = json.dumps({"roster": ROSTER, "message": "@coder", "max_agents": 1})
    text = await _answer(
        _request(CallKind.MANAGER_ROUTING, ("user", prompt), ("user", "not json any more"))
    )
    assert json.loads(text) == {"selected_agent_keys": []}


# --- summaries -------------------------------------------------------------------------------

CONVERSATION = (
    "We compared PostgreSQL and SQLite for the ledger. "
    "The team decided to store money as integer nano-dollars. "
    "Should the reports group by week as well? "
    "Alice will write the migration tomorrow. "
    "PostgreSQL handles concurrent writes for the ledger better than SQLite."
)


async def test_summary_generation_is_valid_json_built_from_the_conversation() -> None:
    request = _request(
        CallKind.SUMMARY_GENERATION, ("system", "Summarize."), ("user", CONVERSATION)
    )
    payload = json.loads(await _answer(request))
    assert set(payload) == {"summary_text"}
    summary = payload["summary_text"]
    assert summary
    assert len(summary) <= len(CONVERSATION)
    assert "ledger" in summary
    assert "Summarize" not in summary  # instructions live in the system message
    assert await _answer(request) == json.dumps(payload, ensure_ascii=False)


async def test_summary_generation_of_nothing_says_so() -> None:
    payload = json.loads(await _answer(_request(CallKind.SUMMARY_GENERATION, ("user", ""))))
    assert payload["summary_text"]


async def test_extraction_sorts_sentences_into_the_four_lists() -> None:
    text = await _answer(_request(CallKind.SUMMARY_EXTRACTION, ("user", CONVERSATION)))
    assert json.loads(text) == {
        "key_points": [
            "We compared PostgreSQL and SQLite for the ledger.",
            "PostgreSQL handles concurrent writes for the ledger better than SQLite.",
        ],
        "decisions": ["The team decided to store money as integer nano-dollars."],
        "action_items": ["Alice will write the migration tomorrow."],
        "open_questions": ["Should the reports group by week as well?"],
    }


async def test_extraction_of_nothing_keeps_the_shape() -> None:
    text = await _answer(_request(CallKind.SUMMARY_EXTRACTION, ("user", "")))
    assert json.loads(text) == {
        "key_points": [],
        "decisions": [],
        "action_items": [],
        "open_questions": [],
    }


async def test_the_summarizer_reads_the_generation_document_as_a_conversation() -> None:
    # given: the document domain/summaries/generator.py sends
    from domain.summaries.generator import generation_request
    from domain.turns.context import PastTurn

    turns = [
        PastTurn(index=1, user_message="We decided to ship on May 2.", assistant_output="Qwen: ok"),
        PastTurn(index=2, user_message="Who owns QA?", assistant_output="Writer: Dana owns QA."),
    ]
    model = _summarizer_model()
    request = generation_request("Earlier: the launch is planned.", turns, model)

    # when
    result = await ScriptedProvider(seed=0).complete(request)

    # then: prose from the turns, not the JSON document's syntax
    text = json.loads(result.text)["summary_text"]
    assert "ship on May 2" in text
    assert '"turns"' not in text
    assert "{" not in text


def _summarizer_model() -> Any:
    import uuid

    from domain.records import Model

    return Model(
        id=uuid.uuid4(),
        alias="summarizer",
        provider="scripted",
        provider_model="summarizer",
        input_nano_per_mtok=None,
        output_nano_per_mtok=None,
        max_output_tokens=256,
        context_window=8000,
    )

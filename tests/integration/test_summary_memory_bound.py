"""Memory stays bounded however long a session grows: a 200-turn session (threshold 8) run turn by
turn through GraphQL `runTurn` against the fake OpenAI server (SQLite). Each agent prompt, as the
provider received it, holds the latest summary and only the turns after it, fits the model's budget,
and stops growing once the session is long.

The summarizer keeps its default `not json` answer, so every summary is the deterministic digest
fallback (the worst case: it starts from the previous summary each time)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from domain.llm import ChatMessage, estimate_prompt_tokens
from infra.db.engine import Database
from infra.db.models import SessionSummaryRow
from infra.settings import Settings
from tests.conftest import Actor, GraphQL
from tests.fakes.openai_script import FakeResponse, RecordedRequest
from tests.fakes.openai_server import FakeOpenAIServer

TURNS = 200
AGENT = "qwen-plus"
# qwen-plus in the default catalog: context_window - max_output_tokens
BUDGET = 131_072 - 2_048

CREATE = "mutation($input: CreateSessionInput!) { createSession(input: $input) { id } }"
RUN = """
mutation($input: RunTurnInput!) {
  runTurn(input: $input) { index status summaryTriggered contextAudit { historyTurnsIncluded } }
}"""


def message(n: int) -> str:
    return f"@qwen fact #{n:03d}: the value of item {n} is {n * 7}"


def reply(n: int) -> str:
    return f"Noted fact #{n:03d}."


def tokens(request: RecordedRequest) -> int:
    return estimate_prompt_tokens(
        [ChatMessage(role=m["role"], content=m["content"]) for m in request.messages]
    )


def history_of(request: RecordedRequest) -> tuple[str | None, list[str]]:
    """The summary message's text and the user messages of the history, from a logged prompt."""
    messages = request.messages
    assert messages[0]["role"] == "system"  # the persona
    summary = None
    rest = messages[1:-1]  # the last one is this turn's message
    if rest and rest[0]["role"] == "system":
        summary, rest = rest[0]["content"], rest[1:]
    assert [m["role"] for m in rest] == ["user", "assistant"] * (len(rest) // 2)
    return summary, [m["content"] for m in rest if m["role"] == "user"]


@pytest.fixture
def turn_settings(turn_settings: Settings) -> Settings:
    # 200 turns in well under a minute: above the default per-minute turn limit, which this test
    # is not about.
    return turn_settings.model_copy(update={"rate_limit_turns_per_minute": 10 * TURNS})


@pytest.mark.timeout(180)
@pytest.mark.parametrize("backend_db", ["sqlite"], indirect=True)
async def test_a_200_turn_session_keeps_each_prompt_bounded(
    turn_gql: GraphQL, alice: Actor, fake_openai: FakeOpenAIServer, database: Database
) -> None:
    # given: short scripted replies, one per turn
    fake_openai.script(AGENT, *(FakeResponse(content=reply(n)) for n in range(1, TURNS + 1)))
    created = await turn_gql(
        CREATE, {"input": {"agentKeys": ["qwen"], "defaultMode": "MANUAL"}}, as_=alice
    )
    session = created["data"]["createSession"]["id"]

    # when: 200 turns, one after the other
    triggered = []
    for n in range(1, TURNS + 1):
        body = await turn_gql(
            RUN, {"input": {"sessionId": session, "message": message(n)}}, as_=alice
        )
        assert "errors" not in body, body
        turn: dict[str, Any] = body["data"]["runTurn"]
        assert (turn["index"], turn["status"]) == (n, "COMPLETED")
        if turn["summaryTriggered"]:
            triggered.append(n)

    # then: a summary every 8 turns, each covering the 8 turns after the previous one
    assert triggered == list(range(8, TURNS + 1, 8))
    async with database.reads() as read:
        summaries = (
            await read.execute(
                select(
                    SessionSummaryRow.covers_from_turn,
                    SessionSummaryRow.covers_through_turn,
                    SessionSummaryRow.text,
                ).order_by(SessionSummaryRow.covers_through_turn)
            )
        ).all()
    assert [(f, t) for f, t, _ in summaries] == [(n - 7, n) for n in triggered]
    texts = {through: text for _, through, text in summaries}

    prompts = fake_openai.requests(model=AGENT)
    assert len(prompts) == TURNS

    # turn 200's prompt: the latest summary (through 192) and only turns 193..199 after it
    last = prompts[TURNS - 1]
    summary, history = history_of(last)
    assert summary == f"Summary of this conversation through turn 192:\n{texts[192]}"
    assert history == [message(n) for n in range(193, TURNS)]
    assert last.messages[-1] == {"role": "user", "content": message(TURNS)}
    # none of the turns the summary covers is replayed as a message of the history
    replayed = {m["content"] for m in last.messages[2:-1]}
    assert not replayed & {message(n) for n in range(1, 193)}
    assert not replayed & {reply(n) for n in range(1, 193)}

    # every prompt holds the latest summary and the turns after it, within the model's budget
    for n, request in enumerate(prompts, start=1):
        through = (n - 1) // 8 * 8
        summary, history = history_of(request)
        if through:
            assert summary is not None
            assert summary.endswith(texts[through]), n
        else:
            assert summary is None
        assert history == [message(k) for k in range(through + 1, n)], n
        assert tokens(request) <= BUDGET

    # and it is bounded: turn 200 (summary + 7 turns) is not much larger than turn 24 (the same
    # phase, early), and stopped growing: no larger than turn 104
    size = {n: tokens(prompts[n - 1]) for n in (24, 104, TURNS)}
    assert size[TURNS] <= 3 * size[24], size
    assert size[TURNS] <= size[104] * 1.05, size

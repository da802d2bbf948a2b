"""Session summaries end to end (both backends): GraphQL `runTurn` in MANUAL mode with one tag,
against the fake OpenAI server. When a summary is due and what it covers, how it is stored (the
row, its usage rows, its `SummaryUpdated` outbox event before `TurnFinished`), the fallback flags
(F51), failures that never change a turn's status, skipped summaries retried by the next turn,
chained summaries, the memory later turns are given, GraphQL visibility, and (PostgreSQL) the
guard against two summaries of the same range."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from sqlalchemy import delete, select

from domain.clock import utcnow
from domain.errors import Conflict
from domain.summaries import generator
from domain.summaries.contracts import SummaryStructure
from graph.ids import global_id, uuid_of
from infra.db.engine import Database
from infra.db.models import SessionSummaryRow, TurnEventRow, TurnRow, UsageRecordRow
from infra.db.uow import SqlUnitOfWork
from tests.conftest import Actor, GraphQL, error_codes
from tests.fakes.openai_script import FakeResponse
from tests.fakes.openai_server import FakeOpenAIServer
from tests.turns_support import eventually

AGENT = "qwen-plus"
SUMMARIZER = "summarizer-mini"

CREATE = "mutation($input: CreateSessionInput!) { createSession(input: $input) { id } }"
RUN = """
mutation($input: RunTurnInput!) {
  runTurn(input: $input) {
    id index status summaryTriggered
    contextAudit { summaryId historyTurnsIncluded }
    usage { callKind billingCategory attempt succeeded modelAlias }
  }
}"""
TURN = "query($id: ID!) { turn(id: $id) { id status summaryTriggered } }"
CANCEL = "mutation($id: ID!) { cancelTurn(id: $id) { id status } }"
SUMMARY_FIELDS = """
  id coversThroughTurn text
  structure { keyPoints decisions actionItems openQuestions }
  generationUsedFallback extractionUsedFallback createdAt
"""
SESSION_SUMMARIES = f"""
query($id: ID!) {{
  session(id: $id) {{
    latestSummary {{ {SUMMARY_FIELDS} }}
    summaries {{ {SUMMARY_FIELDS} }}
  }}
}}"""

FIRST = {
    "key_points": ["launch on May 2"],
    "decisions": ["ship the beta"],
    "action_items": ["Dana writes the QA plan"],
    "open_questions": ["pricing?"],
}
SECOND = {"key_points": ["beta shipped"], "decisions": [], "action_items": [], "open_questions": []}


# --- helpers --------------------------------------------------------------------------------------


def message(n: int) -> str:
    return f"@qwen note {n:02d}"


def reply(n: int) -> str:
    return f"Ack {n:02d}."


def answers(fake: FakeOpenAIServer, first: int, last: int) -> None:
    """Queue one short agent reply per turn, so each turn's prompt is recognisable."""
    fake.script(AGENT, *(FakeResponse(content=reply(n)) for n in range(first, last + 1)))


def summarizer_answers(fake: FakeOpenAIServer, text: str, structure: dict[str, Any]) -> None:
    """The next summary's two calls on the summarizer model: generation, then extraction."""
    fake.script(
        SUMMARIZER,
        FakeResponse(content=json.dumps({"summary_text": text})),
        FakeResponse(content=json.dumps(structure)),
    )


async def new_session(gql: GraphQL, actor: Actor) -> str:
    body = await gql(CREATE, {"input": {"agentKeys": ["qwen"], "defaultMode": "MANUAL"}}, as_=actor)
    assert "errors" not in body, body
    session_id: str = body["data"]["createSession"]["id"]
    return session_id


async def run(gql: GraphQL, actor: Actor, session: str, n: int, **extra: Any) -> dict[str, Any]:
    body = await gql(
        RUN, {"input": {"sessionId": session, "message": message(n), **extra}}, as_=actor
    )
    assert "errors" not in body, body
    turn: dict[str, Any] = body["data"]["runTurn"]
    if extra.get("waitForCompletion") is not False:
        assert turn["index"] == n
    return turn


async def run_many(
    gql: GraphQL, actor: Actor, session: str, first: int, last: int
) -> list[dict[str, Any]]:
    return [await run(gql, actor, session, n) for n in range(first, last + 1)]


async def stored_summaries(database: Database, session: str) -> list[SessionSummaryRow]:
    query = (
        select(SessionSummaryRow)
        .where(SessionSummaryRow.session_id == uuid_of(session, "Session"))
        .order_by(SessionSummaryRow.covers_through_turn)
    )
    async with database.reads() as read:
        return list(await read.scalars(query))


async def events_of(database: Database, turn_id: str) -> list[tuple[int, str, dict[str, Any]]]:
    query = (
        select(TurnEventRow.sequence, TurnEventRow.event_type, TurnEventRow.payload)
        .where(TurnEventRow.turn_id == uuid_of(turn_id, "Turn"))
        .order_by(TurnEventRow.sequence)
    )
    async with database.reads() as read:
        return [(int(s), str(t), dict(p)) for s, t, p in await read.execute(query)]


async def summary_usage(database: Database, session: str) -> list[UsageRecordRow]:
    query = (
        select(UsageRecordRow)
        .where(
            UsageRecordRow.session_id == uuid_of(session, "Session"),
            UsageRecordRow.call_kind.in_(["SUMMARY_GENERATION", "SUMMARY_EXTRACTION"]),
        )
        .order_by(UsageRecordRow.position, UsageRecordRow.attempt)
    )
    async with database.reads() as read:
        return list(await read.scalars(query))


def prompt_of(fake: FakeOpenAIServer, n: int) -> list[dict[str, Any]]:
    """The agent's prompt of turn `n` as the provider received it (one agent call per turn)."""
    return fake.requests(model=AGENT)[n - 1].messages


def history_messages(prompt: list[dict[str, Any]]) -> list[str]:
    """The user messages of past turns replayed in a prompt (between the head and the message)."""
    return [m["content"] for m in prompt[1:-1] if m["role"] == "user"]


def summary_message(prompt: list[dict[str, Any]]) -> str | None:
    system = [m["content"] for m in prompt[1:] if m["role"] == "system"]
    return system[0] if system else None


def generation_document(fake: FakeOpenAIServer, number: int) -> dict[str, Any]:
    """The JSON document of the summarizer's `number`-th generation call (0-based)."""
    calls = [r for r in fake.requests(model=SUMMARIZER) if "summary_text" in _system(r.messages)]
    document: dict[str, Any] = json.loads(calls[number].messages[1]["content"])
    return document


def _system(messages: list[dict[str, Any]]) -> str:
    return str(messages[0]["content"]) if messages else ""


# --- when a summary is made, and how it is stored -------------------------------------------------


async def test_the_eighth_turn_makes_the_first_summary_with_its_usage_and_event(
    turn_gql: GraphQL, alice: Actor, fake_openai: FakeOpenAIServer, database: Database
) -> None:
    # given
    answers(fake_openai, 1, 9)
    session = await new_session(turn_gql, alice)

    # when: 7 turns
    early = await run_many(turn_gql, alice, session, 1, 7)

    # then: nothing is due yet
    assert [t["summaryTriggered"] for t in early] == [False] * 7
    assert await stored_summaries(database, session) == []
    assert fake_openai.requests(model=SUMMARIZER) == []

    # when: the 8th and 9th
    eighth = await run(turn_gql, alice, session, 8)
    ninth = await run(turn_gql, alice, session, 9)

    # then: one summary covering 1..8, made by turn 8 only
    assert (eighth["status"], eighth["summaryTriggered"]) == ("COMPLETED", True)
    assert ninth["summaryTriggered"] is False
    [row] = await stored_summaries(database, session)
    assert (row.covers_from_turn, row.covers_through_turn) == (1, 8)
    assert row.turn_id == uuid_of(eighth["id"], "Turn")
    assert len(fake_openai.requests(model=SUMMARIZER)) == 2  # generation, then extraction

    # the default `not json`: both stages fell back, and the flags are stored (F51)
    assert (row.generation_used_fallback, row.extraction_used_fallback) == (True, True)
    assert row.structure == SummaryStructure().to_json()
    assert all(f"Turn {n}:" in row.text for n in range(1, 9))
    assert reply(8) in row.text  # the current turn is covered with its output

    # the SummaryUpdated outbox event, in the closing unit, before TurnFinished
    events = await events_of(database, eighth["id"])
    sequences = [s for s, _, _ in events]
    assert sequences == sorted(set(sequences))
    assert [t for _, t, _ in events][-3:] == ["AgentFinished", "SummaryUpdated", "TurnFinished"]
    assert events[-2][2] == {"summary_id": str(row.id)}
    assert all(t != "SummaryUpdated" for _, t, _ in await events_of(database, ninth["id"]))

    # usage: both summary calls, overhead, linked to the summary, positions 1 and 2
    usage = await summary_usage(database, session)
    assert [(u.call_kind, u.position, u.attempt) for u in usage] == [
        ("SUMMARY_GENERATION", 1, 1),
        ("SUMMARY_EXTRACTION", 2, 1),
    ]
    assert {u.billing_category for u in usage} == {"SYSTEM_OVERHEAD"}
    assert {u.summary_id for u in usage} == {row.id}
    assert {u.turn_id for u in usage} == {row.turn_id}
    assert {u.model_alias for u in usage} == {SUMMARIZER}
    assert all(u.agent_message_id is None and u.succeeded for u in usage)

    # and the turn shows them in its usage (turns without a summary do not)
    kinds = sorted((u["callKind"], u["billingCategory"]) for u in eighth["usage"])
    assert kinds == [
        ("AGENT_RESPONSE", "USER_BILLABLE"),
        ("SUMMARY_EXTRACTION", "SYSTEM_OVERHEAD"),
        ("SUMMARY_GENERATION", "SYSTEM_OVERHEAD"),
    ]
    assert [u["callKind"] for u in ninth["usage"]] == ["AGENT_RESPONSE"]


async def test_a_valid_summarizer_answer_is_stored_with_its_structure(
    turn_gql: GraphQL, alice: Actor, fake_openai: FakeOpenAIServer, database: Database
) -> None:
    answers(fake_openai, 1, 8)
    summarizer_answers(fake_openai, "  Launch on May 2; Dana owns QA.  ", FIRST)
    session = await new_session(turn_gql, alice)

    turns = await run_many(turn_gql, alice, session, 1, 8)

    assert turns[-1]["summaryTriggered"] is True
    [row] = await stored_summaries(database, session)
    assert row.text == "Launch on May 2; Dana owns QA."
    assert row.structure == FIRST
    assert (row.generation_used_fallback, row.extraction_used_fallback) == (False, False)
    # the extraction was asked about the generated text
    generation, extraction = fake_openai.requests(model=SUMMARIZER)
    assert extraction.messages[-1]["content"] == "Launch on May 2; Dana owns QA."
    document = json.loads(generation.messages[-1]["content"])
    assert document["previous_summary"] is None
    assert [t["index"] for t in document["turns"]] == list(range(1, 9))
    assert document["turns"][-1] == {"index": 8, "user": message(8), "agents": f"Qwen: {reply(8)}"}


async def test_an_extraction_missing_keys_is_not_a_fallback(
    turn_gql: GraphQL, alice: Actor, fake_openai: FakeOpenAIServer, database: Database
) -> None:
    answers(fake_openai, 1, 8)
    summarizer_answers(fake_openai, "Short.", {"decisions": ["ship"]})
    session = await new_session(turn_gql, alice)

    await run_many(turn_gql, alice, session, 1, 8)

    [row] = await stored_summaries(database, session)
    assert row.structure == {
        "key_points": [],
        "decisions": ["ship"],
        "action_items": [],
        "open_questions": [],
    }
    assert (row.generation_used_fallback, row.extraction_used_fallback) == (False, False)


# --- failures -------------------------------------------------------------------------------------


async def test_a_failing_summarizer_never_changes_the_turn_status(
    turn_gql: GraphQL, alice: Actor, fake_openai: FakeOpenAIServer, database: Database
) -> None:
    # given: every summarizer call answers 500 (each call retries: 3 attempts)
    fake_openai.set_default(FakeResponse(status=500), model=SUMMARIZER)
    answers(fake_openai, 1, 8)
    session = await new_session(turn_gql, alice)

    # when
    turns = await run_many(turn_gql, alice, session, 1, 8)

    # then: the turn completed; the summary is the fallback, and every attempt is metered
    assert (turns[-1]["status"], turns[-1]["summaryTriggered"]) == ("COMPLETED", True)
    [row] = await stored_summaries(database, session)
    assert (row.generation_used_fallback, row.extraction_used_fallback) == (True, True)
    assert row.text == generator.digest(
        None, [_past(n) for n in range(1, 9)]
    )  # the deterministic digest of turns 1..8
    usage = await summary_usage(database, session)
    calls = len(fake_openai.requests(model=SUMMARIZER))
    assert calls == 6
    assert [(u.call_kind, u.attempt, u.succeeded) for u in usage] == [
        ("SUMMARY_GENERATION", 1, False),
        ("SUMMARY_GENERATION", 2, False),
        ("SUMMARY_GENERATION", 3, False),
        ("SUMMARY_EXTRACTION", 1, False),
        ("SUMMARY_EXTRACTION", 2, False),
        ("SUMMARY_EXTRACTION", 3, False),
    ]
    assert {u.summary_id for u in usage} == {row.id}


def _past(n: int) -> Any:
    from domain.turns.context import PastTurn

    return PastTurn(index=n, user_message=message(n), assistant_output=f"Qwen: {reply(n)}")


async def test_a_summary_skipped_by_a_cancelled_turn_is_made_by_the_next(
    turn_gql: GraphQL, alice: Actor, fake_openai: FakeOpenAIServer, database: Database
) -> None:
    # given: 7 turns, then an 8th whose agent streams slowly
    answers(fake_openai, 1, 7)
    slow = FakeResponse(content=" ".join(f"w{n}" for n in range(60)), token_delay=0.05)
    fake_openai.script(AGENT, slow)
    session = await new_session(turn_gql, alice)
    await run_many(turn_gql, alice, session, 1, 7)
    started = await run(turn_gql, alice, session, 8, waitForCompletion=False)

    async def streaming() -> bool:
        return len(fake_openai.requests(model=AGENT)) == 8

    await eventually(streaming)

    # when: turn 8 is cancelled
    cancelled = await turn_gql(CANCEL, {"id": started["id"]}, as_=alice)
    assert cancelled["data"]["cancelTurn"]["status"] == "CANCELLED", cancelled

    # then: no summary for it
    turn8 = (await turn_gql(TURN, {"id": started["id"]}, as_=alice))["data"]["turn"]
    assert (turn8["status"], turn8["summaryTriggered"]) == ("CANCELLED", False)
    assert await stored_summaries(database, session) == []
    assert fake_openai.requests(model=SUMMARIZER) == []

    # when: turn 9
    answers(fake_openai, 9, 9)
    ninth = await run(turn_gql, alice, session, 9)

    # then: it makes the summary, covering 1..9 (the cancelled turn is finished, too)
    assert (ninth["status"], ninth["summaryTriggered"]) == ("COMPLETED", True)
    [row] = await stored_summaries(database, session)
    assert (row.covers_from_turn, row.covers_through_turn) == (1, 9)
    assert row.turn_id == uuid_of(ninth["id"], "Turn")


async def test_a_summary_the_closing_unit_cannot_store_is_dropped_its_calls_metered_and_retried(
    turn_gql: GraphQL, alice: Actor, fake_openai: FakeOpenAIServer, database: Database
) -> None:
    # given: 7 turns, and a stored summary whose range the 8th turn's summary will collide with
    # (covers_from_turn 1: as if another writer had stored it meanwhile)
    answers(fake_openai, 1, 9)
    session = await new_session(turn_gql, alice)
    turns = await run_many(turn_gql, alice, session, 1, 7)
    async with SqlUnitOfWork(database.writes) as uow:
        blocker = await uow.summaries.add(
            session_id=uuid_of(session, "Session"),
            turn_id=uuid_of(turns[0]["id"], "Turn"),
            covers_from_turn=1,
            covers_through_turn=0,
            text="a colliding summary",
            structure=SummaryStructure(),
            generation_used_fallback=True,
            extraction_used_fallback=True,
            at=utcnow(),
        )
        await uow.commit()

    # when
    eighth = await run(turn_gql, alice, session, 8)

    # then: the turn closed as usual, without the summary or its event; the summary's two calls
    # were served, so they stay in the ledger, pointing at no summary
    assert (eighth["status"], eighth["summaryTriggered"]) == ("COMPLETED", False)
    assert len(fake_openai.requests(model=SUMMARIZER)) == 2  # the summary was made...
    assert [r.id for r in await stored_summaries(database, session)] == [blocker.id]  # ...not kept
    unstored = await summary_usage(database, session)
    assert [(u.call_kind, u.summary_id) for u in unstored] == [
        ("SUMMARY_GENERATION", None),
        ("SUMMARY_EXTRACTION", None),
    ]
    assert [u["callKind"] for u in eighth["usage"]] == [
        "AGENT_RESPONSE",
        "SUMMARY_GENERATION",
        "SUMMARY_EXTRACTION",
    ]
    events = await events_of(database, eighth["id"])
    assert all(t != "SummaryUpdated" for _, t, _ in events)
    # numbered as if no summary had been tried: no gap where its event was dropped
    (agent_seq, agent_type, _), (last_seq, last_type, _) = events[-2:]
    assert (agent_type, last_type) == ("AgentFinished", "TurnFinished")
    assert last_seq == agent_seq + 1
    async with database.reads() as read:
        status = await read.scalar(
            select(TurnRow.status).where(TurnRow.id == uuid_of(eighth["id"], "Turn"))
        )
    assert status == "COMPLETED"

    # when: the collision is gone, the next turn retries
    async with database.writes() as write:
        await write.execute(delete(SessionSummaryRow).where(SessionSummaryRow.id == blocker.id))
        await write.commit()
    ninth = await run(turn_gql, alice, session, 9)

    # then
    assert ninth["summaryTriggered"] is True
    [row] = await stored_summaries(database, session)
    assert (row.covers_from_turn, row.covers_through_turn) == (1, 9)
    earlier = {u.id for u in unstored}
    retried = [u for u in await summary_usage(database, session) if u.id not in earlier]
    assert {u.summary_id for u in retried} == {row.id}
    assert len(retried) == 2  # the retry's own calls


# --- chained summaries and the memory of later turns ----------------------------------------------


async def test_the_next_summary_covers_the_turns_after_and_starts_from_the_previous_text(
    turn_gql: GraphQL, alice: Actor, fake_openai: FakeOpenAIServer, database: Database
) -> None:
    # given: valid summarizer answers for the summaries of turns 8 and 16
    answers(fake_openai, 1, 17)
    summarizer_answers(fake_openai, "First summary: launch on May 2.", FIRST)
    summarizer_answers(fake_openai, "Second summary: the beta shipped.", SECOND)
    session = await new_session(turn_gql, alice)

    # when
    turns = await run_many(turn_gql, alice, session, 1, 17)

    # then: a summary at 8 and at 16 only, covering 1..8 and 9..16
    assert [t["index"] for t in turns if t["summaryTriggered"]] == [8, 16]
    first, second = await stored_summaries(database, session)
    assert (first.covers_from_turn, first.covers_through_turn) == (1, 8)
    assert (second.covers_from_turn, second.covers_through_turn) == (9, 16)
    assert (second.text, second.structure) == ("Second summary: the beta shipped.", SECOND)

    # the second was made from the first's text and the turns after it only
    document = generation_document(fake_openai, 1)
    assert document["previous_summary"] == "First summary: launch on May 2."
    assert [t["index"] for t in document["turns"]] == list(range(9, 17))

    # turn 10's memory: the first summary and only turn 9 after it
    prompt = prompt_of(fake_openai, 10)
    assert summary_message(prompt) == (
        "Summary of this conversation through turn 8:\nFirst summary: launch on May 2."
    )
    assert history_messages(prompt) == [message(9)]
    assert prompt[-1] == {"role": "user", "content": message(10)}
    assert {"role": "assistant", "content": f"Qwen: {reply(9)}"} in prompt
    replayed = " ".join(str(m["content"]) for m in prompt[1:-1])
    assert all(message(n) not in replayed and reply(n) not in replayed for n in range(1, 9))
    audit = turns[9]["contextAudit"]
    assert audit == {"summaryId": global_id("SessionSummary", first.id), "historyTurnsIncluded": 1}

    # turn 8's memory had no summary and turns 1..7; turn 17's the second summary only
    assert summary_message(prompt_of(fake_openai, 8)) is None
    assert history_messages(prompt_of(fake_openai, 8)) == [message(n) for n in range(1, 8)]
    assert summary_message(prompt_of(fake_openai, 17)) == (
        "Summary of this conversation through turn 16:\nSecond summary: the beta shipped."
    )
    assert history_messages(prompt_of(fake_openai, 17)) == []


async def test_a_fallback_summary_starts_from_the_previous_text(
    turn_gql: GraphQL, alice: Actor, fake_openai: FakeOpenAIServer, database: Database
) -> None:
    answers(fake_openai, 1, 16)
    summarizer_answers(fake_openai, "First summary: launch on May 2.", FIRST)
    session = await new_session(turn_gql, alice)

    await run_many(turn_gql, alice, session, 1, 16)

    first, second = await stored_summaries(database, session)
    assert (second.generation_used_fallback, second.extraction_used_fallback) == (True, True)
    lines = second.text.splitlines()
    assert lines[0] == first.text
    assert [line.split(":")[0] for line in lines[1:]] == [f"Turn {n}" for n in range(9, 17)]


# --- GraphQL visibility ---------------------------------------------------------------------------


async def test_the_session_shows_its_latest_summary_and_every_summary_oldest_first(
    turn_gql: GraphQL, alice: Actor, fake_openai: FakeOpenAIServer, database: Database
) -> None:
    # given: a valid first summary, then a fallback one (F51: both kinds of flags visible)
    answers(fake_openai, 1, 16)
    summarizer_answers(fake_openai, "First summary.", FIRST)
    session = await new_session(turn_gql, alice)
    before = await turn_gql(SESSION_SUMMARIES, {"id": session}, as_=alice)
    assert "errors" not in before, before
    assert before["data"]["session"] == {"latestSummary": None, "summaries": []}

    # when
    await run_many(turn_gql, alice, session, 1, 16)
    body = await turn_gql(SESSION_SUMMARIES, {"id": session}, as_=alice)

    # then
    assert "errors" not in body, body
    first, second = await stored_summaries(database, session)
    shown = body["data"]["session"]
    assert [s["coversThroughTurn"] for s in shown["summaries"]] == [8, 16]
    assert shown["latestSummary"] == shown["summaries"][-1]
    valid, fell_back = shown["summaries"]
    assert valid["id"] == global_id("SessionSummary", first.id)
    assert valid["text"] == "First summary."
    assert valid["structure"] == {
        "keyPoints": FIRST["key_points"],
        "decisions": FIRST["decisions"],
        "actionItems": FIRST["action_items"],
        "openQuestions": FIRST["open_questions"],
    }
    assert (valid["generationUsedFallback"], valid["extractionUsedFallback"]) == (False, False)
    assert valid["createdAt"]
    assert fell_back["id"] == global_id("SessionSummary", second.id)
    assert fell_back["text"] == second.text
    assert fell_back["structure"] == {
        "keyPoints": [],
        "decisions": [],
        "actionItems": [],
        "openQuestions": [],
    }
    assert (fell_back["generationUsedFallback"], fell_back["extractionUsedFallback"]) == (
        True,
        True,
    )


async def test_another_user_cannot_read_the_summaries(
    turn_gql: GraphQL, alice: Actor, bob: Actor, fake_openai: FakeOpenAIServer
) -> None:
    answers(fake_openai, 1, 8)
    session = await new_session(turn_gql, alice)
    await run_many(turn_gql, alice, session, 1, 8)

    own = await turn_gql(SESSION_SUMMARIES, {"id": session}, as_=alice)
    other = await turn_gql(SESSION_SUMMARIES, {"id": session}, as_=bob)

    assert own["data"]["session"]["latestSummary"]["coversThroughTurn"] == 8, own
    assert error_codes(other) == ["NOT_FOUND"], other
    assert "Turn 1:" not in json.dumps(other)


# --- two summaries of one range can never both be stored ------------------------------------------


async def _session_with_a_turn(
    gql: GraphQL, actor: Actor, fake: FakeOpenAIServer
) -> tuple[uuid.UUID, uuid.UUID]:
    answers(fake, 1, 1)
    session = await new_session(gql, actor)
    turn = await run(gql, actor, session, 1)
    return uuid_of(session, "Session"), uuid_of(turn["id"], "Turn")


async def _add(
    database: Database, session_id: uuid.UUID, turn_id: uuid.UUID, span: tuple[int, int]
) -> uuid.UUID:
    async with SqlUnitOfWork(database.writes) as uow:
        stored = await uow.summaries.add(
            session_id=session_id,
            turn_id=turn_id,
            covers_from_turn=span[0],
            covers_through_turn=span[1],
            text=f"covers {span}",
            structure=SummaryStructure(),
            generation_used_fallback=False,
            extraction_used_fallback=False,
            at=utcnow(),
        )
        await uow.commit()
    return stored.id


# Two spans of one session that the range constraints must refuse to store together.
SAME_RANGE = [
    pytest.param(((1, 8), (1, 9)), id="same-covers-from"),
    pytest.param(((1, 8), (2, 8)), id="same-covers-through"),
]


@pytest.mark.parametrize("spans", SAME_RANGE)
async def test_a_second_summary_of_the_same_range_is_a_conflict(
    turn_gql: GraphQL,
    alice: Actor,
    fake_openai: FakeOpenAIServer,
    database: Database,
    spans: tuple[tuple[int, int], tuple[int, int]],
) -> None:
    session_id, turn_id = await _session_with_a_turn(turn_gql, alice, fake_openai)
    kept = await _add(database, session_id, turn_id, spans[0])

    with pytest.raises(Conflict):
        await _add(database, session_id, turn_id, spans[1])

    async with database.reads() as read:
        ids = list(await read.scalars(select(SessionSummaryRow.id)))
    assert ids == [kept]


@pytest.mark.postgres
@pytest.mark.parametrize("backend_db", ["postgres"], indirect=True)
@pytest.mark.parametrize("spans", SAME_RANGE)
async def test_two_concurrent_summaries_of_one_range_store_exactly_one(
    turn_gql: GraphQL,
    alice: Actor,
    fake_openai: FakeOpenAIServer,
    database: Database,
    spans: tuple[tuple[int, int], tuple[int, int]],
) -> None:
    session_id, turn_id = await _session_with_a_turn(turn_gql, alice, fake_openai)
    both_open = asyncio.Barrier(2)

    async def store(span: tuple[int, int]) -> uuid.UUID:
        async with SqlUnitOfWork(database.writes) as uow:
            # both transactions are open before either inserts: a real race
            await uow.turns.memory(session_id)
            await both_open.wait()
            stored = await uow.summaries.add(
                session_id=session_id,
                turn_id=turn_id,
                covers_from_turn=span[0],
                covers_through_turn=span[1],
                text=f"covers {span}",
                structure=SummaryStructure(),
                generation_used_fallback=False,
                extraction_used_fallback=False,
                at=utcnow(),
            )
            await uow.commit()
        return stored.id

    results = await asyncio.gather(*(store(span) for span in spans), return_exceptions=True)

    stored = [r for r in results if isinstance(r, uuid.UUID)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(stored) == 1, results
    assert len(refused) == 1
    assert isinstance(refused[0], Conflict), repr(refused[0])
    async with database.reads() as read:
        ids = list(
            await read.scalars(
                select(SessionSummaryRow.id).where(SessionSummaryRow.session_id == session_id)
            )
        )
    assert ids == stored

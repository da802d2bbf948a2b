"""Recovery's inference of a dead runner's call in flight, from what it had committed: the
manager before any routing, the started agent without a message, the summary once every agent
answered and a summary is due — and nothing when the runner stopped between calls."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime

from domain.enums import (
    AgentMessageStatus,
    BillingCategory,
    CallKind,
    TokenSource,
    TurnMode,
    TurnStatus,
)
from domain.llm import estimate_prompt_tokens, estimate_tokens
from domain.records import Model
from domain.turns import recovery
from domain.turns.context import PastTurn, SessionMemory
from domain.turns.contracts import RosterAgent, RoutingDecision
from domain.turns.events import TurnEvent, TurnEventType
from domain.turns.metering import MeteringPolicy, cost_nano
from domain.turns.records import AgentMessage, Turn
from domain.turns.settings import TurnSettings

AT = datetime(2026, 3, 2, 12, tzinfo=UTC)
SETTINGS = TurnSettings(summary_threshold=3)


def model(alias: str) -> Model:
    return Model(
        id=uuid.uuid4(),
        alias=alias,
        provider="fake",
        provider_model=f"{alias}-v1",
        input_nano_per_mtok=400_000_000,
        output_nano_per_mtok=1_200_000_000,
        max_output_tokens=1_000,
        context_window=100_000,
    )


MODELS = {m.alias: m for m in map(model, ["qwen-plus", "manager-mini", "summarizer-mini"])}
QWEN = RosterAgent(id=uuid.uuid4(), key="qwen", name="Qwen", description="d",
                   system_prompt="Be Qwen.", enabled=True, model_alias="qwen-plus")  # fmt: skip
WRITER = replace(QWEN, id=uuid.uuid4(), key="writer", name="Writer", system_prompt="Write.")


def turn(mode: TurnMode, routing: tuple[str, ...] | None) -> Turn:
    return Turn(
        id=uuid.uuid4(), session_id=uuid.uuid4(), user_id=uuid.uuid4(), index=3, mode=mode,
        status=TurnStatus.RUNNING, user_message="tell me", assistant_output="",
        routing=RoutingDecision(mode=mode, selected_agent_keys=routing) if routing else None,
        context_audit=None, idempotency_key=None, request_fingerprint=None, runner_id="dead",
        lease_expires_at=AT, cancel_requested_at=None, summary_triggered=False,
        failure_reason=None, reserved_nano=0, started_at=AT, finished_at=None,
    )  # fmt: skip


def started(t: Turn, agent: RosterAgent, position: int, sequence: int) -> TurnEvent:
    return TurnEvent(turn_id=t.id, session_id=t.session_id, sequence=sequence,
                     type=TurnEventType.AGENT_STARTED, at=AT,
                     payload={"agent_key": agent.key, "position": position})  # fmt: skip


def message(t: Turn, agent: RosterAgent, position: int, text: str) -> AgentMessage:
    return AgentMessage(id=uuid.uuid4(), turn_id=t.id, agent_id=agent.id, position=position,
                        status=AgentMessageStatus.COMPLETED, content=text, error_code=None,
                        error_message=None, model_alias=agent.model_alias, started_at=AT,
                        finished_at=AT)  # fmt: skip


def facts(
    t: Turn,
    events: list[TurnEvent],
    messages: list[AgentMessage],
    memory: SessionMemory | None = None,
) -> recovery.RecoveryFacts:
    return recovery.RecoveryFacts(
        turn=t,
        roster=[QWEN, WRITER],
        models=MODELS,
        memory=memory or SessionMemory(summary=None, turns=()),
        events=events,
        messages=messages,
    )


def test_an_orchestrator_turn_without_routing_had_the_manager_call_in_flight() -> None:
    t = turn(TurnMode.ORCHESTRATOR, None)

    [call] = recovery.calls_in_flight(facts(t, [], []), SETTINGS)
    entry = recovery.recovered_entry(call, MeteringPolicy())

    assert (call.kind, call.position, call.model.alias) == (
        CallKind.MANAGER_ROUTING,
        0,
        "manager-mini",
    )
    assert (entry.billing_category, entry.token_source) == (
        BillingCategory.UNMETERED,
        TokenSource.ESTIMATED,
    )
    assert (entry.recovered, entry.succeeded, entry.attempt) == (True, False, 1)
    assert entry.prompt_tokens == estimate_prompt_tokens(call.request.messages) > 0
    assert entry.cost_nano == cost_nano(entry.prompt_tokens, 0, call.model)
    assert entry.provider_model == "manager-mini-v1"  # fmt: skip


def test_the_started_agent_without_a_message_had_its_call_in_flight_with_the_earlier_reply() -> (
    None
):
    t = turn(TurnMode.MANUAL, ("qwen", "writer"))
    events = [started(t, QWEN, 1, 3), started(t, WRITER, 2, 5)]

    [call] = recovery.calls_in_flight(
        facts(t, events, [message(t, QWEN, 1, "Qwen said so.")]), SETTINGS
    )

    assert (call.kind, call.position, call.agent) == (CallKind.AGENT_RESPONSE, 2, WRITER)
    prompt = "\n".join(m.content for m in call.request.messages)
    assert "Qwen said so." in prompt
    assert "tell me" in prompt
    entry = recovery.recovered_entry(call, MeteringPolicy())
    assert entry.agent_key == "writer"
    assert entry.billing_category is BillingCategory.USER_BILLABLE


def test_a_runner_stopped_between_calls_had_nothing_in_flight() -> None:
    t = turn(TurnMode.MANUAL, ("qwen", "writer"))
    # qwen answered, and the runner was cancelled before writer started
    done = facts(t, [started(t, QWEN, 1, 3)], [message(t, QWEN, 1, "ok")])

    assert recovery.calls_in_flight(done, SETTINGS) == []
    assert recovery.calls_in_flight(facts(turn(TurnMode.MANUAL, None), [], []), SETTINGS) == []


def test_every_agent_answered_and_a_summary_due_means_the_summary_call_was_in_flight() -> None:
    t = turn(TurnMode.MANUAL, ("qwen",))
    answered = [message(t, QWEN, 1, "Qwen answers.")]
    history = tuple(PastTurn(index=i, user_message="u", assistant_output="a") for i in (1, 2))
    due = SessionMemory(summary=None, turns=history, finished_since_summary=2)
    not_due = replace(due, finished_since_summary=1)

    [call] = recovery.calls_in_flight(facts(t, [started(t, QWEN, 1, 3)], answered, due), SETTINGS)

    assert (call.kind, call.position, call.model.alias) == (
        CallKind.SUMMARY_GENERATION,
        1,
        "summarizer-mini",
    )
    assert "Qwen: Qwen answers." in "\n".join(m.content for m in call.request.messages)
    later = facts(t, [started(t, QWEN, 1, 3)], answered, not_due)
    assert recovery.calls_in_flight(later, SETTINGS) == []


def test_what_the_agent_in_flight_had_streamed_is_its_estimated_completion() -> None:
    t = turn(TurnMode.MANUAL, ("qwen", "writer"))
    events = [started(t, QWEN, 1, 3), started(t, WRITER, 2, 5)]

    def delta(position: int, sequence: int, text: str) -> TurnEvent:
        return TurnEvent(turn_id=t.id, session_id=t.session_id, sequence=sequence,
                         type=TurnEventType.AGENT_DELTA, at=AT,
                         payload={"position": position, "text": text})  # fmt: skip

    retained = [delta(1, 4, "Qwen said so."), delta(2, 6, "Once upon"), delta(2, 7, " a time")]
    streamed = recovery.streamed_replies(retained)
    known = replace(facts(t, events, [message(t, QWEN, 1, "Qwen said so.")]), streamed=streamed)

    [call] = recovery.calls_in_flight(known, SETTINGS)
    entry = recovery.recovered_entry(call, MeteringPolicy())

    assert streamed == {1: "Qwen said so.", 2: "Once upon a time"}
    assert call.streamed_text == "Once upon a time"
    assert entry.completion_tokens == estimate_tokens("Once upon a time") > 0
    assert entry.cost_nano == cost_nano(entry.prompt_tokens, entry.completion_tokens, call.model)

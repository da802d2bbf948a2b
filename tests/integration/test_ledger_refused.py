"""Refused = free: an attempt the provider refused (429, 5xx, 401/403, another 4xx) keeps its
usage row as the audit trail, with 0 tokens, cost 0 and `tokenSource: NONE`; it never counts in
spend, budgets or report costs, and totals count it in `calls` and `refusedCalls`. A stream cut
after the request was sent stays an estimated cost."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tests.conftest import Actor, GraphQL
from tests.fakes.openai_script import FakeResponse
from tests.fakes.openai_server import FakeOpenAIServer
from tests.turns_support import MANAGER_MODEL

CREATE = "mutation($input: CreateSessionInput!) { createSession(input: $input) { id } }"
RUN = """
mutation($input: RunTurnInput!) {
  runTurn(input: $input) {
    id status
    usage {
      callKind attempt succeeded errorCode promptTokens completionTokens tokenSource costUsd
      providerModel recovered
    }
  }
}"""
TOTALS = "calls refusedCalls promptTokens completionTokens costUsd billableCostUsd"
SESSION_USAGE = f"query($id: ID!) {{ session(id: $id) {{ usage {{ {TOTALS} }} }} }}"
MY_USAGE = f"{{ myUsage {{ {TOTALS} }} me {{ monthSpendUsd }} }}"


async def new_session(gql: GraphQL, actor: Actor) -> str:
    body = await gql(CREATE, {"input": {"agentKeys": ["qwen", "deepseek"]}}, as_=actor)
    assert "errors" not in body, body
    session_id: str = body["data"]["createSession"]["id"]
    return session_id


async def run(gql: GraphQL, actor: Actor, session: str, message: str, mode: str) -> dict[str, Any]:
    variables = {"input": {"sessionId": session, "message": message, "mode": mode}}
    body = await gql(RUN, variables, as_=actor)
    assert "errors" not in body, body
    turn: dict[str, Any] = body["data"]["runTurn"]
    return turn


async def test_an_agent_call_refused_three_times_costs_nothing_and_keeps_its_audit_rows(
    turn_gql: GraphQL, alice: Actor, fake_openai: FakeOpenAIServer
) -> None:
    # given: qwen's provider answers 429 to every attempt
    fake_openai.set_default(FakeResponse(status=429, error_type="rate_limit"), model="qwen-plus")
    session = await new_session(turn_gql, alice)

    # when
    turn = await run(turn_gql, alice, session, "@qwen hello there", "MANUAL")

    # then: three rows, the audit trail, none of them priced
    assert turn["status"] == "FAILED"
    rows = turn["usage"]
    assert [(u["attempt"], u["succeeded"], u["errorCode"]) for u in rows] == [
        (n, False, "PROVIDER_RATE_LIMITED") for n in (1, 2, 3)
    ]
    assert {(u["promptTokens"], u["completionTokens"], u["tokenSource"]) for u in rows} == {
        (0, 0, "NONE")
    }
    assert {Decimal(u["costUsd"]) for u in rows} == {Decimal(0)}
    assert {(u["providerModel"], u["recovered"]) for u in rows} == {("qwen-plus", False)}
    assert len(fake_openai.requests(model="qwen-plus")) == 3

    # and: totals count the calls as refused, and no money anywhere
    totals = (await turn_gql(SESSION_USAGE, {"id": session}, as_=alice))["data"]["session"]
    mine = await turn_gql(MY_USAGE, as_=alice)
    for usage in (totals["usage"], mine["data"]["myUsage"]):
        assert usage == {
            "calls": 3,
            "refusedCalls": 3,
            "promptTokens": 0,
            "completionTokens": 0,
            "costUsd": "0",
            "billableCostUsd": "0",
        }
    assert Decimal(mine["data"]["me"]["monthSpendUsd"]) == 0


async def test_a_refused_manager_call_is_free_and_the_agent_it_fell_back_to_is_billed(
    turn_gql: GraphQL, alice: Actor, fake_openai: FakeOpenAIServer
) -> None:
    # given: the manager's provider is down (503 every time), qwen answers
    fake_openai.set_default(FakeResponse(status=503), model=MANAGER_MODEL)
    fake_openai.set_default(FakeResponse(content="Qwen answers."), model="qwen-plus")
    session = await new_session(turn_gql, alice)

    # when
    turn = await run(turn_gql, alice, session, "hi", "ORCHESTRATOR")

    # then
    assert turn["status"] == "COMPLETED"
    manager = [u for u in turn["usage"] if u["callKind"] == "MANAGER_ROUTING"]
    agent = [u for u in turn["usage"] if u["callKind"] == "AGENT_RESPONSE"]
    assert [(u["tokenSource"], u["promptTokens"], u["costUsd"]) for u in manager] == [
        ("NONE", 0, "0")
    ] * 3
    assert [(u["tokenSource"], u["succeeded"]) for u in agent] == [("PROVIDER", True)]
    assert Decimal(agent[0]["costUsd"]) > 0
    usage = (await turn_gql(SESSION_USAGE, {"id": session}, as_=alice))["data"]["session"]
    assert (usage["usage"]["calls"], usage["usage"]["refusedCalls"]) == (4, 3)
    assert Decimal(usage["usage"]["billableCostUsd"]) == Decimal(agent[0]["costUsd"])


async def test_a_stream_cut_after_sending_stays_an_estimated_cost(
    turn_gql: GraphQL, alice: Actor, fake_openai: FakeOpenAIServer
) -> None:
    # given: qwen's stream is cut after two deltas, every attempt (the first delta was shown,
    # so the call is not retried)
    cut = FakeResponse(content="one two three four", fault="cut", fault_after=2)
    fake_openai.set_default(cut, model="qwen-plus")
    session = await new_session(turn_gql, alice)

    # when
    turn = await run(turn_gql, alice, session, "@qwen hello there", "MANUAL")

    # then
    [row] = turn["usage"]
    assert (row["succeeded"], row["tokenSource"]) == (False, "ESTIMATED")
    assert row["promptTokens"] > 0
    assert row["completionTokens"] > 0
    assert Decimal(row["costUsd"]) > 0
    usage = (await turn_gql(SESSION_USAGE, {"id": session}, as_=alice))["data"]["session"]
    assert usage["usage"]["refusedCalls"] == 0

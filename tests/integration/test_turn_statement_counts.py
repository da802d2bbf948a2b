"""Statement counts of a session's turns: a page of 1 and a page of 50 turns, each with three
agent messages, their agents and models, their usage and its user, run the same number of SQL
statements (every relation goes through a per-request dataloader: no N+1).

Turns are written straight through the repositories (one unit of work), not run against a model:
what is measured is the read path. Statements are counted on the engine of the app under test;
`BEGIN`/`PRAGMA` are transaction bookkeeping and left out (see test_statement_counts.py).
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from domain.clock import utcnow
from domain.enums import (
    AgentMessageStatus,
    BillingCategory,
    CallKind,
    TokenSource,
    TurnMode,
    TurnStatus,
)
from domain.turns.contracts import ContextAudit, RoutingDecision
from domain.turns.metering import UsageEntry
from domain.turns.ports import NewAgentMessage, NewTurn, TurnClose
from graph.ids import uuid_of
from infra.db.engine import Database
from infra.db.uow import SqlUnitOfWork
from infra.settings import Settings
from tests.conftest import Actor, GraphQL
from tests.statement_log import StatementLog, measure

BIG_PAGE = 50


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # A page of 50 turns with every message's usage costs about 20 000, over the default cost
    # limit (docs/query_cost.md); what is measured here is the statements such a page runs.
    return settings.model_copy(update={"max_query_cost": 50_000})


ROSTER = ["qwen", "deepseek", "writer"]
CREATE = "mutation($input: CreateSessionInput!) { createSession(input: $input) { id } }"
TURNS = """
query($id: ID!, $first: Int!) {
  session(id: $id) {
    turns(first: $first) {
      totalCount
      edges { node {
        index
        messages { agent { key model { alias } } usage { costUsd user { handle } } }
        usage { callKind }
      } }
    }
  }
}"""


def usage_entry(kind: CallKind, position: int, agent_key: str | None, alias: str) -> UsageEntry:
    return UsageEntry(
        call_kind=kind,
        billing_category=(
            BillingCategory.USER_BILLABLE
            if kind is CallKind.AGENT_RESPONSE
            else BillingCategory.UNMETERED
        ),
        position=position,
        attempt=1,
        agent_key=agent_key,
        provider="scripted",
        model_alias=alias,
        prompt_tokens=100 + position,
        completion_tokens=50,
        cached_tokens=0,
        reasoning_tokens=0,
        token_source=TokenSource.PROVIDER,
        unpriced=False,
        input_nano_per_mtok=400_000_000,
        output_nano_per_mtok=1_200_000_000,
        cost_nano=100_000 + position,
        latency_ms=10,
        succeeded=True,
        error_code=None,
        provider_request_id=None,
    )


async def write_turns(database: Database, actor: Actor, session_id: uuid.UUID, count: int) -> None:
    """`count` finished ORCHESTRATOR turns: a routing row, three messages with one row each."""
    async with SqlUnitOfWork(database.writes) as uow:
        roster = await uow.turns.roster(session_id)
        for number in range(count):
            now = utcnow() + timedelta(milliseconds=number)
            decision = RoutingDecision(
                mode=TurnMode.ORCHESTRATOR, selected_agent_keys=tuple(a.key for a in roster)
            )
            turn = await uow.turns.add(
                NewTurn(
                    session_id=session_id,
                    user_id=actor.uuid,
                    index=await uow.turns.next_index(session_id),
                    mode=TurnMode.ORCHESTRATOR,
                    user_message=f"message {number}",
                    idempotency_key=None,
                    request_fingerprint="f" * 64,
                    runner_id="bulk",
                    lease_expires_at=now,
                    reserved_nano=0,
                    routing=decision,
                    started_at=now,
                )
            )
            routing_row = usage_entry(CallKind.MANAGER_ROUTING, 0, None, "manager-mini")
            await uow.usage.add(
                [routing_row], user_id=actor.uuid, session_id=session_id, turn_id=turn.id, at=now
            )
            for position, agent in enumerate(roster, start=1):
                message = await uow.messages.add(
                    NewAgentMessage(
                        turn_id=turn.id,
                        agent_id=agent.id,
                        position=position,
                        status=AgentMessageStatus.COMPLETED,
                        content=f"{agent.name} says {number}",
                        error_code=None,
                        error_message=None,
                        model_alias=agent.model_alias,
                        started_at=now,
                        finished_at=now,
                    )
                )
                row = usage_entry(CallKind.AGENT_RESPONSE, position, agent.key, agent.model_alias)
                await uow.usage.add(
                    [row],
                    user_id=actor.uuid,
                    session_id=session_id,
                    turn_id=turn.id,
                    agent_message_id=message.id,
                    at=now,
                )
            await uow.turns.close(
                turn.id,
                TurnClose(
                    status=TurnStatus.COMPLETED,
                    assistant_output="...",
                    context_audit=ContextAudit(
                        model_aliases=tuple(a.model_alias for a in roster),
                        summary_id=None,
                        history_turns_included=0,
                        estimated_prompt_tokens=0,
                    ),
                    failure_reason=None,
                    finished_at=now,
                ),
            )
        await uow.commit()


async def test_a_page_of_1_and_of_50_turns_run_the_same_statements(
    gql: GraphQL, database: Database, alice: Actor, statements: StatementLog
) -> None:
    # given: 51 finished turns of three agents each
    created = await gql(CREATE, {"input": {"agentKeys": ROSTER}}, as_=alice)
    session = created["data"]["createSession"]["id"]
    await write_turns(database, alice, uuid_of(session, "Session"), BIG_PAGE + 1)
    await gql(TURNS, {"id": session, "first": 1}, as_=alice)  # warm-up

    # when
    one, one_data = await measure(gql, statements, TURNS, {"id": session, "first": 1}, alice)
    many, many_data = await measure(
        gql, statements, TURNS, {"id": session, "first": BIG_PAGE}, alice
    )

    # then
    one_edges = one_data["session"]["turns"]["edges"]
    many_edges = many_data["session"]["turns"]["edges"]
    assert len(one_edges) == 1
    assert len(many_edges) == BIG_PAGE
    assert [edge["node"]["index"] for edge in many_edges] == list(range(1, BIG_PAGE + 1))
    for edge in many_edges:
        node = edge["node"]
        assert [m["agent"]["key"] for m in node["messages"]] == ROSTER
        assert [m["agent"]["model"]["alias"] for m in node["messages"]] == [
            "qwen-plus",
            "deepseek-chat",
            "writer-large",
        ]
        assert all(m["usage"][0]["user"]["handle"] == "alice" for m in node["messages"])
        assert [u["callKind"] for u in node["usage"]] == ["MANAGER_ROUTING"] + [
            "AGENT_RESPONSE"
        ] * 3
    assert one, "the request ran no statement: the log missed it"
    assert len(many) == len(one), "\n\n".join(many)

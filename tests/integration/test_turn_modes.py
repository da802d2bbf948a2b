"""Every turn mode end to end through GraphQL against the fake OpenAI server (both backends):
MANUAL, ORCHESTRATOR (valid, legacy, messy, unparseable and failing manager), ROUNDTABLE; partial
failure (F50), the context audit (F49), roundtable billing (F45), usage rows per attempt, reading
turns back (paging, `turn`, `node`) and input validation."""

from __future__ import annotations

import logging
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
from sqlalchemy import text

from infra.db.engine import Database
from tests.conftest import Actor, GraphQL, error_codes
from tests.fakes.openai_script import FakeResponse
from tests.fakes.openai_server import FakeOpenAIServer

CREATE = """
mutation($input: CreateSessionInput!) { createSession(input: $input) { id } }"""
USAGE_FIELDS = """
  id callKind billingCategory attempt agentKey modelAlias provider promptTokens completionTokens
  tokenSource unpriced price { inputUsdPerMillionTokens outputUsdPerMillionTokens } costUsd
  succeeded errorCode
"""
TURN_FIELDS = f"""
  id index status mode userMessage assistantOutput
  routing {{ mode selectedAgentKeys ignoredTags usedFallback fallbackReason }}
  contextAudit {{ modelAliases historyTurnsIncluded estimatedPromptTokens }}
  messages {{
    id position status content modelAlias agent {{ key }} error {{ code message }}
    usage {{ id attempt callKind billingCategory }}
  }}
  usage {{ {USAGE_FIELDS} }}
"""
RUN = f"""
mutation($input: RunTurnInput!) {{ runTurn(input: $input) {{ {TURN_FIELDS} }} }}"""
TURN = f"query($id: ID!) {{ turn(id: $id) {{ {TURN_FIELDS} }} }}"
NODE = """
query($id: ID!) {
  node(id: $id) {
    __typename id
    ... on Turn { index }
    ... on AgentMessage { position content }
    ... on UsageRecord { callKind attempt }
  }
}"""
TURNS_PAGE = """
query($id: ID!, $first: Int, $after: String, $last: Int, $before: String) {
  session(id: $id) {
    turnCount
    turns(first: $first, after: $after, last: $last, before: $before) {
      totalCount
      edges { cursor node { index userMessage } }
      pageInfo { hasNextPage hasPreviousPage }
    }
  }
}"""

# Catalog prices (USD per million tokens): what each usage row must have snapshotted.
PRICES = {
    "qwen-plus": (Decimal("0.40"), Decimal("1.20")),
    "deepseek-chat": (Decimal("0.27"), Decimal("1.10")),
    "writer-large": (Decimal("2.50"), Decimal("10.00")),
    "researcher-large": (Decimal("2.50"), Decimal("10.00")),
    "manager-mini": (Decimal("0.15"), Decimal("0.60")),
}
AGENT_MODELS = {
    "qwen": "qwen-plus",
    "deepseek": "deepseek-chat",
    "writer": "writer-large",
    "researcher": "researcher-large",
}
MANAGER = "manager-mini"


# --- helpers --------------------------------------------------------------------------------------


async def new_session(
    gql: GraphQL, actor: Actor, agents: list[str] | None = None, mode: str | None = None
) -> str:
    body = await gql(CREATE, {"input": {"agentKeys": agents, "defaultMode": mode}}, as_=actor)
    assert "errors" not in body, body
    session_id: str = body["data"]["createSession"]["id"]
    return session_id


async def run(
    gql: GraphQL, actor: Actor, session: str, message: str, **extra: Any
) -> dict[str, Any]:
    body = await gql(RUN, {"input": {"sessionId": session, "message": message, **extra}}, as_=actor)
    assert "errors" not in body, body
    turn: dict[str, Any] = body["data"]["runTurn"]
    return turn


def answer(fake: FakeOpenAIServer, agent: str, content: str) -> None:
    fake.set_default(FakeResponse(content=content), model=AGENT_MODELS[agent])


def answer_all(fake: FakeOpenAIServer) -> None:
    for key in AGENT_MODELS:
        answer(fake, key, f"{key.title()} reply.")


def route_to(fake: FakeOpenAIServer, content: str) -> None:
    fake.set_default(FakeResponse(content=content), model=MANAGER)


def prompt_text(fake: FakeOpenAIServer, agent: str, number: int = 0) -> str:
    request = fake.requests(model=AGENT_MODELS[agent])[number]
    return "\n".join(str(m["content"]) for m in request.messages)


async def count(database: Database, table: str) -> int:
    async with database.engine.connect() as connection:
        return int((await connection.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())


def expected_cost(row: dict[str, Any]) -> Decimal:
    inp, out = PRICES[row["modelAlias"]]
    exact = (row["promptTokens"] * inp + row["completionTokens"] * out) / Decimal(1_000_000)
    return exact.quantize(Decimal("1e-9"), rounding=ROUND_HALF_UP).normalize()


def assert_priced(row: dict[str, Any]) -> None:
    inp, out = PRICES[row["modelAlias"]]
    assert Decimal(row["price"]["inputUsdPerMillionTokens"]) == inp
    assert Decimal(row["price"]["outputUsdPerMillionTokens"]) == out
    assert row["unpriced"] is False
    assert Decimal(row["costUsd"]) == expected_cost(row)
    assert row["provider"] == "fake"


# --- MANUAL ---------------------------------------------------------------------------------------


async def test_manual_tags_dispatch_valid_agents_in_order_and_report_the_rest(
    turn_gql: GraphQL, alice: Actor, fake_openai: FakeOpenAIServer
) -> None:
    # given: researcher is off this roster
    answer_all(fake_openai)
    session = await new_session(turn_gql, alice, ["qwen", "deepseek", "writer"])

    # when
    turn = await run(turn_gql, alice, session, "@Writer, then @qwen @writer @researcher @ghost hi")

    # then
    assert turn["status"] == "COMPLETED"
    assert turn["mode"] == "MANUAL"
    assert turn["routing"]["selectedAgentKeys"] == ["writer", "qwen"]
    assert turn["routing"]["ignoredTags"] == ["researcher", "ghost"]
    assert turn["routing"]["usedFallback"] is False
    assert [m["agent"]["key"] for m in turn["messages"]] == ["writer", "qwen"]
    assert [m["position"] for m in turn["messages"]] == [1, 2]
    assert turn["assistantOutput"] == "Writer: Writer reply.\n\nQwen: Qwen reply."
    assert fake_openai.requests(model="researcher-large") == []
    assert fake_openai.requests(model="deepseek-chat") == []
    # the agents see the message as typed, tags included, last
    last = fake_openai.requests(model="writer-large")[0].messages[-1]
    assert last == {"role": "user", "content": "@Writer, then @qwen @writer @researcher @ghost hi"}


async def test_manual_agent_keys_decide_and_tags_are_only_reported(
    turn_gql: GraphQL, alice: Actor, fake_openai: FakeOpenAIServer
) -> None:
    answer_all(fake_openai)
    session = await new_session(turn_gql, alice)

    turn = await run(
        turn_gql, alice, session, "@writer @ghost hi", agentKeys=["deepseek", "qwen"], mode="MANUAL"
    )

    assert turn["routing"]["selectedAgentKeys"] == ["deepseek", "qwen"]
    assert turn["routing"]["ignoredTags"] == ["ghost"]
    assert [m["agent"]["key"] for m in turn["messages"]] == ["deepseek", "qwen"]
    assert fake_openai.requests(model="writer-large") == []
    assert fake_openai.requests(model="qwen-plus")[0].messages[-1]["content"] == "@writer @ghost hi"


async def test_manual_without_tags_sends_the_first_enabled_roster_agent(
    turn_gql: GraphQL, alice: Actor, admin: Actor, fake_openai: FakeOpenAIServer
) -> None:
    # given: a roster whose first agent is disabled by an admin
    answer_all(fake_openai)
    session = await new_session(turn_gql, alice, ["writer", "deepseek", "qwen"])
    disable = await turn_gql(
        """mutation { upsertAgent(input: {key: "writer", name: "Writer", systemPrompt: "w",
           modelAlias: "writer-large", enabled: false}) { key enabled } }""",
        as_=admin,
    )
    assert disable["data"]["upsertAgent"]["enabled"] is False, disable

    turn = await run(turn_gql, alice, session, "no tags here, and @writer is off")

    assert turn["routing"]["selectedAgentKeys"] == ["deepseek"]
    assert turn["routing"]["ignoredTags"] == ["writer"]
    assert [m["agent"]["key"] for m in turn["messages"]] == ["deepseek"]
    assert len(fake_openai.requests()) == 1


async def test_bad_agent_keys_or_agent_keys_in_another_mode_are_bad_input_and_nothing_runs(
    turn_gql: GraphQL, alice: Actor, fake_openai: FakeOpenAIServer, database: Database
) -> None:
    session = await new_session(turn_gql, alice, ["qwen", "writer"])
    cases = [
        {"agentKeys": ["ghost"]},  # unknown
        {"agentKeys": ["researcher"]},  # off the roster
        {"agentKeys": []},
        {"agentKeys": ["qwen"], "mode": "ORCHESTRATOR"},
        {"agentKeys": ["qwen"], "mode": "ROUNDTABLE"},
    ]

    for case in cases:
        body = await turn_gql(
            RUN, {"input": {"sessionId": session, "message": "hi", **case}}, as_=alice
        )
        assert error_codes(body) == ["BAD_USER_INPUT"], case

    assert fake_openai.requests() == []
    for table in ("turns", "usage_records", "agent_messages", "turn_events"):
        assert await count(database, table) == 0, table
    page = await turn_gql(TURNS_PAGE, {"id": session, "first": 5}, as_=alice)
    assert page["data"]["session"]["turnCount"] == 0


async def test_a_session_default_mode_applies_when_the_input_names_none(
    turn_gql: GraphQL, alice: Actor, fake_openai: FakeOpenAIServer
) -> None:
    answer_all(fake_openai)
    session = await new_session(turn_gql, alice, ["deepseek", "qwen"], mode="ROUNDTABLE")

    turn = await run(turn_gql, alice, session, "@qwen only?")

    assert turn["mode"] == "ROUNDTABLE"
    assert [m["agent"]["key"] for m in turn["messages"]] == ["deepseek", "qwen"]


# --- ORCHESTRATOR ---------------------------------------------------------------------------------


async def test_orchestrator_runs_the_managers_picks_in_its_order(
    turn_gql: GraphQL, alice: Actor, fake_openai: FakeOpenAIServer
) -> None:
    # given
    answer_all(fake_openai)
    route_to(fake_openai, '{"selected_agent_keys": ["researcher", "writer"]}')
    session = await new_session(turn_gql, alice)

    # when
    turn = await run(turn_gql, alice, session, "compare A and B", mode="ORCHESTRATOR")

    # then
    assert turn["status"] == "COMPLETED"
    assert turn["routing"] == {
        "mode": "ORCHESTRATOR",
        "selectedAgentKeys": ["researcher", "writer"],
        "ignoredTags": [],
        "usedFallback": False,
        "fallbackReason": None,
    }
    assert [m["agent"]["key"] for m in turn["messages"]] == ["researcher", "writer"]
    assert turn["contextAudit"]["modelAliases"] == ["researcher-large", "writer-large"]
    assert "Researcher: Researcher reply." in prompt_text(fake_openai, "writer")
    # the routing row is in Turn.usage, first, and not billed to the user (F46)
    routing_row = turn["usage"][0]
    assert routing_row["callKind"] == "MANAGER_ROUTING"
    assert routing_row["billingCategory"] == "UNMETERED"
    assert routing_row["agentKey"] is None
    assert routing_row["modelAlias"] == MANAGER
    assert_priced(routing_row)
    assert [u["callKind"] for u in turn["usage"]] == [
        "MANAGER_ROUTING",
        "AGENT_RESPONSE",
        "AGENT_RESPONSE",
    ]
    # the manager was shown the roster and the message as a JSON document
    [manager_call] = fake_openai.requests(model=MANAGER)
    assert '"message": "compare A and B"' in manager_call.messages[-1]["content"]


async def test_orchestrator_accepts_the_legacy_single_key(
    turn_gql: GraphQL, alice: Actor, fake_openai: FakeOpenAIServer
) -> None:
    answer_all(fake_openai)
    route_to(fake_openai, '{"selected_agent_key": "deepseek"}')
    session = await new_session(turn_gql, alice)

    turn = await run(turn_gql, alice, session, "prove it", mode="ORCHESTRATOR")

    assert turn["routing"]["selectedAgentKeys"] == ["deepseek"]
    assert turn["routing"]["usedFallback"] is False
    assert [m["agent"]["key"] for m in turn["messages"]] == ["deepseek"]


async def test_orchestrator_drops_unknown_and_duplicate_keys_and_caps_the_list(
    turn_gql: GraphQL, alice: Actor, fake_openai: FakeOpenAIServer
) -> None:
    answer_all(fake_openai)
    route_to(
        fake_openai,
        '{"selected_agent_keys": ["ghost", "@Writer", "writer", "qwen", "deepseek", "researcher"]}',
    )
    session = await new_session(turn_gql, alice)

    turn = await run(turn_gql, alice, session, "go", mode="ORCHESTRATOR")

    # manager_max_agents defaults to 3
    assert turn["routing"]["selectedAgentKeys"] == ["writer", "qwen", "deepseek"]
    assert turn["routing"]["usedFallback"] is False
    assert fake_openai.requests(model="researcher-large") == []


async def test_orchestrator_falls_back_on_unparseable_output_with_a_trimmed_reason(
    turn_gql: GraphQL, alice: Actor, fake_openai: FakeOpenAIServer
) -> None:
    answer_all(fake_openai)  # the manager keeps the default "not json"
    session = await new_session(turn_gql, alice, ["deepseek", "writer"])

    turn = await run(turn_gql, alice, session, "hi", mode="ORCHESTRATOR")

    assert turn["status"] == "COMPLETED"
    assert turn["routing"]["usedFallback"] is True
    assert turn["routing"]["selectedAgentKeys"] == ["deepseek"]
    reason = turn["routing"]["fallbackReason"]
    assert reason
    assert len(reason) <= 200
    assert "not json" not in reason
    assert [u["callKind"] for u in turn["usage"]] == ["MANAGER_ROUTING", "AGENT_RESPONSE"]


@pytest.mark.parametrize(
    ("responses", "code", "attempts"),
    [
        pytest.param([FakeResponse(status=500)] * 3, "PROVIDER_UNAVAILABLE", 3, id="500s"),
        pytest.param(
            [FakeResponse(status=401, error_type="invalid_api_key")], "PROVIDER_AUTH", 1, id="401"
        ),
    ],
)
async def test_a_failing_manager_call_falls_back_and_its_attempts_are_usage_rows(
    turn_gql: GraphQL,
    alice: Actor,
    fake_openai: FakeOpenAIServer,
    responses: list[FakeResponse],
    code: str,
    attempts: int,
) -> None:
    # given
    answer_all(fake_openai)
    fake_openai.script(MANAGER, *responses)
    route_to(fake_openai, '{"selected_agent_keys": ["writer"]}')  # never reached
    session = await new_session(turn_gql, alice)

    # when
    turn = await run(turn_gql, alice, session, "hi", mode="ORCHESTRATOR")

    # then
    assert turn["status"] == "COMPLETED"
    assert turn["routing"]["usedFallback"] is True
    assert code in turn["routing"]["fallbackReason"]
    assert turn["routing"]["selectedAgentKeys"] == ["qwen"]
    manager_rows = [u for u in turn["usage"] if u["callKind"] == "MANAGER_ROUTING"]
    assert [u["attempt"] for u in manager_rows] == list(range(1, attempts + 1))
    assert all(u["succeeded"] is False and u["errorCode"] for u in manager_rows)
    assert all(u["billingCategory"] == "UNMETERED" for u in manager_rows)
    assert len(fake_openai.requests(model=MANAGER)) == attempts


# --- F50: partial failure, F49: the audit ---------------------------------------------------------


@pytest.mark.parametrize(
    ("failure", "code", "attempts"),
    [
        pytest.param([FakeResponse(status=500)] * 3, "PROVIDER_UNAVAILABLE", 3, id="500s"),
        pytest.param([FakeResponse(status=401)], "PROVIDER_AUTH", 1, id="401"),
    ],
)
async def test_a_failing_middle_agent_makes_the_turn_partial_and_the_sequence_goes_on(
    turn_gql: GraphQL,
    alice: Actor,
    fake_openai: FakeOpenAIServer,
    database: Database,
    failure: list[FakeResponse],
    code: str,
    attempts: int,
) -> None:
    # given: the manager picks three agents; the second one's calls fail
    answer_all(fake_openai)
    route_to(fake_openai, '{"selected_agent_keys": ["researcher", "writer", "qwen"]}')
    fake_openai.script("writer-large", *failure)
    session = await new_session(turn_gql, alice)

    # when
    turn = await run(turn_gql, alice, session, "write it up", mode="ORCHESTRATOR")

    # then
    assert turn["status"] == "PARTIAL"
    researcher, writer, qwen = turn["messages"]
    assert (researcher["status"], writer["status"], qwen["status"]) == (
        "COMPLETED",
        "FAILED",
        "COMPLETED",
    )
    assert writer["error"]["code"] == code
    assert writer["error"]["message"]
    assert [u["attempt"] for u in writer["usage"]] == list(range(1, attempts + 1))
    assert turn["assistantOutput"] == "Researcher: Researcher reply.\n\nQwen: Qwen reply."
    # F49: every dispatched agent's model, the failed one too
    assert turn["contextAudit"]["modelAliases"] == ["researcher-large", "writer-large", "qwen-plus"]
    # the third agent saw the first reply and nothing of the failed one
    seen = prompt_text(fake_openai, "qwen")
    assert "Researcher: Researcher reply." in seen
    assert "Writer:" not in seen
    assert len(fake_openai.requests(model="writer-large")) == attempts
    async with database.engine.connect() as connection:
        stored = (
            await connection.execute(
                text("SELECT status, error_code FROM agent_messages ORDER BY position")
            )
        ).all()
    assert [tuple(row) for row in stored] == [
        ("COMPLETED", None),
        ("FAILED", code),
        ("COMPLETED", None),
    ]


async def test_every_agent_failing_fails_the_turn_without_a_server_error(
    turn_gql: GraphQL, alice: Actor, fake_openai: FakeOpenAIServer
) -> None:
    fake_openai.set_default(FakeResponse(status=401))
    session = await new_session(turn_gql, alice, ["qwen", "deepseek"])

    turn = await run(turn_gql, alice, session, "hi", mode="ROUNDTABLE")

    assert turn["status"] == "FAILED"
    assert [m["status"] for m in turn["messages"]] == ["FAILED", "FAILED"]
    assert turn["assistantOutput"] == ""
    assert turn["contextAudit"]["modelAliases"] == ["qwen-plus", "deepseek-chat"]


async def test_user_text_and_model_output_are_never_logged_above_debug(
    turn_gql: GraphQL, alice: Actor, fake_openai: FakeOpenAIServer, caplog: pytest.LogCaptureFixture
) -> None:
    # given: a manager answering garbage, one agent answering, one failing
    caplog.set_level(logging.DEBUG)
    route_to(fake_openai, 'MODEL-SECRET-456 {"selected_agent_keys": ')
    answer(fake_openai, "qwen", "AGENT-SECRET-789")
    fake_openai.set_default(
        FakeResponse(status=400, error_message="bad: AGENT-SECRET-000"), model="deepseek-chat"
    )
    session = await new_session(turn_gql, alice, ["qwen", "deepseek"])

    # when
    first = await run(turn_gql, alice, session, "USER-SECRET-123 hi", mode="ORCHESTRATOR")
    second = await run(turn_gql, alice, session, "USER-SECRET-123 again", mode="ROUNDTABLE")

    # then
    assert first["routing"]["usedFallback"] is True
    assert second["status"] == "PARTIAL"
    loud = [r.getMessage() for r in caplog.records if r.levelno > logging.DEBUG]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("manager routing" in line for line in warnings)  # F52: the fallback is logged
    for secret in ("USER-SECRET", "MODEL-SECRET", "AGENT-SECRET"):
        assert not [line for line in loud if secret in line], secret
    parse_warnings = [
        r
        for r in caplog.records
        if r.name == "pantheon.llm.parsing" and r.levelno >= logging.WARNING
    ]
    assert len(parse_warnings) == 1
    assert len(parse_warnings[0].getMessage()) <= 250


async def test_a_later_turn_sees_the_earlier_turns_as_history(
    turn_gql: GraphQL, alice: Actor, fake_openai: FakeOpenAIServer
) -> None:
    answer_all(fake_openai)
    session = await new_session(turn_gql, alice)
    await run(turn_gql, alice, session, "@writer first question")

    second = await run(turn_gql, alice, session, "second question")

    assert second["index"] == 2
    assert second["contextAudit"]["historyTurnsIncluded"] == 1
    messages = fake_openai.requests(model="qwen-plus")[0].messages
    assert [m["content"] for m in messages[1:]] == [
        "@writer first question",
        "Writer: Writer reply.",
        "second question",
    ]
    assert [m["role"] for m in messages[1:]] == ["user", "assistant", "user"]


# --- ROUNDTABLE, F45 ------------------------------------------------------------------------------


async def test_roundtable_runs_every_enabled_agent_in_roster_order_and_bills_each_reply(
    turn_gql: GraphQL, alice: Actor, fake_openai: FakeOpenAIServer
) -> None:
    answer_all(fake_openai)
    session = await new_session(turn_gql, alice, ["writer", "qwen", "researcher", "deepseek"])

    turn = await run(turn_gql, alice, session, "@qwen thoughts?", mode="ROUNDTABLE")

    keys = ["writer", "qwen", "researcher", "deepseek"]
    assert turn["status"] == "COMPLETED"
    assert turn["routing"]["selectedAgentKeys"] == keys
    assert [m["agent"]["key"] for m in turn["messages"]] == keys
    assert turn["contextAudit"]["modelAliases"] == [AGENT_MODELS[k] for k in keys]
    # F45: each reply is one USER_BILLABLE row, priced at its own model's price
    assert [(u["agentKey"], u["billingCategory"], u["callKind"]) for u in turn["usage"]] == [
        (key, "USER_BILLABLE", "AGENT_RESPONSE") for key in keys
    ]
    for row in turn["usage"]:
        assert_priced(row)
        assert row["tokenSource"] == "PROVIDER"
        assert Decimal(row["costUsd"]) > 0
    # same-turn context propagation: the last agent read the three before it
    seen = prompt_text(fake_openai, "deepseek")
    for earlier in ("Writer: Writer reply.", "Qwen: Qwen reply.", "Researcher: Researcher reply."):
        assert earlier in seen


# --- usage rows: one per attempt that reached the provider ----------------------------------------


async def test_retried_attempts_are_each_a_usage_row_of_the_message(
    turn_gql: GraphQL, alice: Actor, fake_openai: FakeOpenAIServer, database: Database
) -> None:
    # given: qwen's first two attempts fail, the third answers
    fake_openai.script(
        "qwen-plus", FakeResponse(status=500), FakeResponse(status=502), FakeResponse(content="ok!")
    )
    session = await new_session(turn_gql, alice)

    # when
    turn = await run(turn_gql, alice, session, "hi")

    # then
    [message] = turn["messages"]
    assert message["status"] == "COMPLETED"
    assert message["content"] == "ok!"
    rows = turn["usage"]
    assert [(u["attempt"], u["succeeded"]) for u in rows] == [(1, False), (2, False), (3, True)]
    assert [u["id"] for u in message["usage"]] == [u["id"] for u in rows]
    assert rows[0]["errorCode"] == "PROVIDER_UNAVAILABLE"
    for row in rows:
        assert_priced(row)
    assert len(fake_openai.requests(model="qwen-plus")) == 3
    assert await count(database, "usage_records") == 3


async def test_a_price_change_leaves_existing_rows_at_their_snapshot(
    turn_gql: GraphQL, alice: Actor, admin: Actor, fake_openai: FakeOpenAIServer
) -> None:
    session = await new_session(turn_gql, alice)
    first = await run(turn_gql, alice, session, "hi")
    changed = await turn_gql(
        """mutation { upsertModel(input: {alias: "qwen-plus", provider: "fake",
           providerModel: "qwen-plus", inputUsdPerMillionTokens: "4",
           outputUsdPerMillionTokens: "12",
           maxOutputTokens: 2048, contextWindow: 131072}) { alias } }""",
        as_=admin,
    )
    assert "errors" not in changed, changed

    second = await run(turn_gql, alice, session, "hi again")
    before = await turn_gql(TURN, {"id": first["id"]}, as_=alice)

    old_row = before["data"]["turn"]["usage"][0]
    assert Decimal(old_row["price"]["inputUsdPerMillionTokens"]) == Decimal("0.40")
    assert Decimal(old_row["costUsd"]) == expected_cost(old_row)
    new_row = second["usage"][0]
    assert Decimal(new_row["price"]["inputUsdPerMillionTokens"]) == Decimal("4")


# --- reading turns back ---------------------------------------------------------------------------


async def test_session_turns_page_oldest_first(
    turn_gql: GraphQL, alice: Actor, fake_openai: FakeOpenAIServer
) -> None:
    session = await new_session(turn_gql, alice)
    for number in range(1, 4):
        assert (await run(turn_gql, alice, session, f"message {number}"))["index"] == number

    first_two = await turn_gql(TURNS_PAGE, {"id": session, "first": 2}, as_=alice)
    page = first_two["data"]["session"]
    after = await turn_gql(
        TURNS_PAGE,
        {"id": session, "first": 2, "after": page["turns"]["edges"][-1]["cursor"]},
        as_=alice,
    )
    last_one = await turn_gql(TURNS_PAGE, {"id": session, "last": 1}, as_=alice)
    last_two = await turn_gql(TURNS_PAGE, {"id": session, "last": 2}, as_=alice)

    assert page["turnCount"] == 3
    assert page["turns"]["totalCount"] == 3
    assert [e["node"]["index"] for e in page["turns"]["edges"]] == [1, 2]
    assert page["turns"]["pageInfo"]["hasNextPage"] is True
    rest = after["data"]["session"]["turns"]
    assert [e["node"]["index"] for e in rest["edges"]] == [3]
    assert rest["pageInfo"] == {"hasNextPage": False, "hasPreviousPage": True}
    assert [e["node"]["userMessage"] for e in rest["edges"]] == ["message 3"]
    tail = last_one["data"]["session"]["turns"]
    assert [e["node"]["index"] for e in tail["edges"]] == [3]
    assert tail["pageInfo"]["hasPreviousPage"] is True
    tail = last_two["data"]["session"]["turns"]
    assert [e["node"]["index"] for e in tail["edges"]] == [2, 3]  # backwards, still oldest first
    before = await turn_gql(
        TURNS_PAGE, {"id": session, "last": 5, "before": tail["edges"][0]["cursor"]}, as_=alice
    )
    assert [e["node"]["index"] for e in before["data"]["session"]["turns"]["edges"]] == [1]


async def test_turn_and_node_read_a_turn_its_messages_and_its_usage(
    turn_gql: GraphQL, alice: Actor, fake_openai: FakeOpenAIServer
) -> None:
    answer_all(fake_openai)
    session = await new_session(turn_gql, alice)
    ran = await run(turn_gql, alice, session, "@writer @qwen hi")

    by_id = await turn_gql(TURN, {"id": ran["id"]}, as_=alice)
    assert by_id["data"]["turn"] == ran

    turn_node = await turn_gql(NODE, {"id": ran["id"]}, as_=alice)
    assert turn_node["data"]["node"] == {"__typename": "Turn", "id": ran["id"], "index": 1}
    message = ran["messages"][1]
    message_node = await turn_gql(NODE, {"id": message["id"]}, as_=alice)
    assert message_node["data"]["node"] == {
        "__typename": "AgentMessage",
        "id": message["id"],
        "position": 2,
        "content": "Qwen reply.",
    }
    usage = ran["usage"][0]
    usage_node = await turn_gql(NODE, {"id": usage["id"]}, as_=alice)
    assert usage_node["data"]["node"] == {
        "__typename": "UsageRecord",
        "id": usage["id"],
        "callKind": "AGENT_RESPONSE",
        "attempt": 1,
    }


async def test_another_users_turn_and_its_parts_are_not_found(
    turn_gql: GraphQL, alice: Actor, bob: Actor, fake_openai: FakeOpenAIServer
) -> None:
    session = await new_session(turn_gql, alice)
    ran = await run(turn_gql, alice, session, "private")

    turn = await turn_gql(TURN, {"id": ran["id"]}, as_=bob)
    assert error_codes(turn) == ["NOT_FOUND"]
    assert turn["data"] is None or turn["data"]["turn"] is None
    for object_id in (ran["id"], ran["messages"][0]["id"], ran["usage"][0]["id"]):
        node = await turn_gql(NODE, {"id": object_id}, as_=bob)
        assert error_codes(node) == ["NOT_FOUND"], object_id
    cancel = await turn_gql(
        "mutation($id: ID!) { cancelTurn(id: $id) { status } }", {"id": ran["id"]}, as_=bob
    )
    assert error_codes(cancel) == ["NOT_FOUND"]
    run_there = await turn_gql(RUN, {"input": {"sessionId": session, "message": "x"}}, as_=bob)
    assert error_codes(run_there) == ["NOT_FOUND"]


# --- input validation -----------------------------------------------------------------------------


async def test_an_empty_or_too_long_message_is_bad_input_and_nothing_runs(
    turn_gql: GraphQL, alice: Actor, fake_openai: FakeOpenAIServer, database: Database
) -> None:
    session = await new_session(turn_gql, alice)

    for message in ("", "   \n\t ", "x" * 32_001):
        body = await turn_gql(RUN, {"input": {"sessionId": session, "message": message}}, as_=alice)
        assert error_codes(body) == ["BAD_USER_INPUT"], message[:10]

    assert fake_openai.requests() == []
    assert await count(database, "turns") == 0


async def test_the_longest_allowed_message_runs(
    turn_gql: GraphQL, alice: Actor, fake_openai: FakeOpenAIServer
) -> None:
    session = await new_session(turn_gql, alice)

    turn = await run(turn_gql, alice, session, "y" * 32_000)

    assert turn["status"] == "COMPLETED"

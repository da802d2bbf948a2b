"""`GET /metrics`: the ledger counters equal the ledger (usage_records) after real turns against
the fake OpenAI server, a refused (429) call and a cut stream included; operations, turns, LLM
calls, rate-limit refusals and the metrics token."""

from __future__ import annotations

import asyncio
from typing import Any

from gql import Client, GraphQLRequest
from pydantic import SecretStr
from sqlalchemy import text

from infra.db.engine import Database
from infra.settings import Settings
from tests.conftest import Actor, GraphQL, running_app
from tests.fakes.openai_script import FakeResponse
from tests.fakes.openai_server import FakeOpenAIServer
from tests.integration.test_ledger_refused import CREATE, new_session, run
from tests.integration.test_subscriptions import PROGRESS, start_turn, transport, ws_url
from tests.integration.test_subscriptions import new_session as subscription_session
from tests.metrics_support import Scrape
from tests.turns_support import eventually

__all__ = ["ws_url"]  # the fixture, imported for the subscription test

RUN_ID = "mutation($input: RunTurnInput!) { runTurn(input: $input) { id } }"
LEDGER = text(
    "SELECT model_alias, call_kind, billing_category, token_source,"
    " prompt_tokens, completion_tokens, cost_nano FROM usage_records"
)


async def scrape(gql: GraphQL, token: str | None = None) -> Scrape:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await gql.client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return Scrape(response.text)


async def ledger_rows(database: Database) -> list[Any]:
    async with database.reads() as session:
        return list(await session.execute(LEDGER))


async def test_token_and_cost_counters_equal_the_ledger_a_refused_call_and_a_cut_stream_included(
    turn_gql: GraphQL, alice: Actor, fake_openai: FakeOpenAIServer, database: Database
) -> None:
    # given: qwen's provider refuses every attempt (429), writer's stream is cut after two
    # deltas, deepseek answers
    fake_openai.set_default(FakeResponse(status=429, error_type="rate_limit"), model="qwen-plus")
    cut = FakeResponse(content="one two three four", fault="cut", fault_after=2)
    fake_openai.set_default(cut, model="writer-large")
    fake_openai.set_default(FakeResponse(content="DeepSeek answers."), model="deepseek-chat")
    created = await turn_gql(
        CREATE, {"input": {"agentKeys": ["qwen", "writer", "deepseek"]}}, as_=alice
    )
    session = created["data"]["createSession"]["id"]

    # when: three turns
    refused = await run(turn_gql, alice, session, "@qwen hello", "MANUAL")
    cut_turn = await run(turn_gql, alice, session, "@writer hello", "MANUAL")
    answered = await run(turn_gql, alice, session, "@deepseek hello", "MANUAL")
    metrics = await scrape(turn_gql)

    # then: the ledger holds the refused rows (free) and the cut one (estimated, priced)...
    rows = await ledger_rows(database)
    assert {row.token_source for row in rows if row.model_alias == "qwen-plus"} == {"NONE"}
    assert any(row.token_source == "ESTIMATED" and row.cost_nano > 0 for row in rows)
    assert (refused["status"], cut_turn["status"], answered["status"]) == (
        "FAILED",
        "FAILED",
        "COMPLETED",
    )
    # ...and the counters equal its sums, label set by label set
    expected_tokens: dict[tuple[str, ...], float] = {}
    expected_cost: dict[tuple[str, ...], float] = {}
    for row in rows:
        key = (row.model_alias, row.call_kind, row.billing_category)
        for kind, value in (("prompt", row.prompt_tokens), ("completion", row.completion_tokens)):
            expected_tokens[(*key, kind)] = expected_tokens.get((*key, kind), 0) + value
        expected_cost[key] = expected_cost.get(key, 0) + row.cost_nano
    tokens = metrics.by(
        "pantheon_llm_tokens_total", "model", "call_kind", "billing_category", "type"
    )
    cost = metrics.by("pantheon_llm_cost_nano_usd_total", "model", "call_kind", "billing_category")
    assert tokens == expected_tokens
    assert cost == expected_cost
    assert tokens[("qwen-plus", "AGENT_RESPONSE", "USER_BILLABLE", "prompt")] == 0
    assert sum(cost.values()) == sum(row.cost_nano for row in rows) > 0

    # and: turns, LLM calls and gauges tell the same story
    assert metrics.total("pantheon_turns_total", mode="MANUAL", status="FAILED") == 2
    assert metrics.total("pantheon_turns_total", mode="MANUAL", status="COMPLETED") == 1
    assert metrics.total("pantheon_turn_duration_seconds_count", mode="MANUAL") == 3
    duration = "pantheon_llm_call_duration_seconds_count"
    assert metrics.total(duration, model="qwen-plus", outcome="PROVIDER_RATE_LIMITED") == 1
    assert metrics.total(duration, model="writer-large", outcome="PROVIDER_UNAVAILABLE") == 1
    assert metrics.total(duration, model="deepseek-chat", call_kind="AGENT_RESPONSE") == 1
    assert metrics.total(duration, model="deepseek-chat", outcome="ok") == 1
    assert metrics.total("pantheon_llm_time_to_first_token_seconds_count", model="deepseek-chat")
    assert metrics.total("pantheon_running_turns") == 0
    assert metrics.total("pantheon_event_publish_lag_seconds_count") > 0
    assert metrics.total("pantheon_db_pool_connections_in_use") >= 0
    assert (
        metrics.total(
            "pantheon_graphql_operations_total",
            operation_type="mutation",
            root_field="runTurn",
            outcome="ok",
        )
        == 3
    )


async def test_operations_are_counted_by_outcome_and_unknown_root_fields_make_no_label(
    gql: GraphQL, alice: Actor
) -> None:
    # when: one operation that works, one that fails with a code, one naming no schema field
    assert "errors" not in await gql("{ me { handle } }", as_=alice)
    missing = await gql('{ session(id: "not-an-id") { id } }', as_=alice)
    unknown = await gql("{ noSuchField }", as_=alice)
    metrics = await scrape(gql)

    # then
    operations = metrics.by(
        "pantheon_graphql_operations_total", "operation_type", "root_field", "outcome"
    )
    assert operations[("query", "me", "ok")] == 1
    assert unknown["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert operations[("query", "unknown", "GRAPHQL_VALIDATION_FAILED")] == 1
    assert "noSuchField" not in metrics.label_values(
        "pantheon_graphql_operations_total", "root_field"
    )
    code = missing["errors"][0]["extensions"]["code"]
    assert operations[("query", "session", code)] == 1


async def test_rate_limited_requests_are_counted_by_limit(settings: Settings, alice: Actor) -> None:
    limited = settings.model_copy(update={"rate_limit_requests_per_minute": 2})
    async with running_app(limited) as (_, gql):
        for _ in range(2):
            assert "errors" not in await gql("{ me { handle } }", as_=alice)
        refused = await gql.client.post(
            "/graphql",
            json={"query": "{ me { handle } }"},
            headers={"Authorization": f"Bearer {alice.token}"},
        )
        assert refused.status_code == 429
        metrics = await scrape(gql)
    assert metrics.by("pantheon_rate_limited_total", "limit") == {("requests",): 1}


async def test_the_metrics_token_is_required_when_set(settings: Settings) -> None:
    guarded = settings.model_copy(update={"metrics_token": SecretStr("scrape-me")})
    async with running_app(guarded) as (_, gql):
        anonymous = await gql.client.get("/metrics")
        wrong = await gql.client.get("/metrics", headers={"Authorization": "Bearer nope"})
        metrics = await scrape(gql, token="scrape-me")
    assert (anonymous.status_code, wrong.status_code) == (401, 401)
    assert "pantheon_graphql_operations" in metrics.families


async def test_gauges_follow_an_open_subscription_and_a_running_turn(
    turn_gql: GraphQL, alice: Actor, fake_openai: FakeOpenAIServer, ws_url: str
) -> None:
    # given: a turn whose agents answer slowly (about 10 s each), and a subscription to it
    slow = FakeResponse(content=" ".join(["word"] * 40), token_delay=0.25)
    for model in ("qwen-plus", "deepseek-chat", "writer-large"):
        fake_openai.set_default(slow, model=model)
    session = await subscription_session(turn_gql, alice)
    turn_id = await start_turn(turn_gql, alice, session)
    opened = asyncio.Event()
    release = asyncio.Event()

    async def follow() -> None:
        async with Client(transport=transport(ws_url, alice.token)) as client:
            request = GraphQLRequest(PROGRESS, variable_values={"id": turn_id, "after": 0})
            async for _ in client.subscribe(request):
                opened.set()
                await release.wait()
                break

    follower = asyncio.create_task(follow())
    try:
        async with asyncio.timeout(20):
            await opened.wait()

        # when: scraped while both are under way
        during = await scrape(turn_gql)
    finally:
        release.set()
        await follower
    cancel = "mutation($id: ID!) { cancelTurn(id: $id) { id } }"
    assert "errors" not in await turn_gql(cancel, {"id": turn_id}, as_=alice)

    # then
    assert during.total("pantheon_active_subscriptions") == 1
    assert during.total("pantheon_running_turns") == 1

    async def settled() -> Scrape | None:
        after = await scrape(turn_gql)
        idle = (
            after.total("pantheon_active_subscriptions") == 0
            and after.total("pantheon_running_turns") == 0
        )
        return after if idle else None

    after = await eventually(settled)
    assert after.total("pantheon_turns_total", mode="ROUNDTABLE", status="CANCELLED") == 1
    assert (
        after.total(
            "pantheon_graphql_operations_total",
            operation_type="subscription",
            root_field="turnProgress",
        )
        == 1
    )


async def test_a_turn_refused_at_admission_is_counted_under_its_limit(
    turn_settings: Settings, alice: Actor, fake_openai: FakeOpenAIServer
) -> None:
    # given: one turn per minute
    fake_openai.set_default(FakeResponse(content="Qwen answers."), model="qwen-plus")
    limited = turn_settings.model_copy(update={"rate_limit_turns_per_minute": 1})
    async with running_app(limited) as (_, gql):
        session = await new_session(gql, alice)
        await run(gql, alice, session, "@qwen first", "MANUAL")

        # when: the second turn of the minute
        variables = {"input": {"sessionId": session, "message": "@qwen again", "mode": "MANUAL"}}
        refused = await gql(
            "mutation($input: RunTurnInput!) { runTurn(input: $input) { id } }",
            variables,
            as_=alice,
        )
        metrics = await scrape(gql)

    # then: refused in the operation, counted once under `turns`, and as the operation's outcome
    assert refused["errors"][0]["extensions"]["limit"] == "turns"
    assert metrics.by("pantheon_rate_limited_total", "limit") == {("turns",): 1}
    outcome = {"operation_type": "mutation", "root_field": "runTurn", "outcome": "RATE_LIMITED"}
    assert metrics.total("pantheon_graphql_operations_total", **outcome) == 1

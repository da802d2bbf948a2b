"""Anonymous callers get a 401 and nothing else; suggestions are for admins; the operation
timeout ends operations stuck awaiting, except runTurn waiting for its turn and subscriptions."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest
from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportQueryError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from domain.records import Agent
from infra.db.reads import SqlReadStore
from infra.settings import Settings
from tests import db as testdb
from tests.conftest import Actor, GraphQL, error_codes, running_app
from tests.fakes.openai_script import FakeResponse
from tests.fakes.openai_server import FakeOpenAIServer
from tests.integration.test_authorization_matrix import QUIET_SECONDS, subscribe_over_http
from tests.integration.test_subscriptions import _serve as serve
from tests.integration.test_subscriptions import transport

GRAPHQL_RESPONSE = "application/graphql-response+json"


# --- anonymous lockdown ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "{ me { id } }",
        "{ __typename }",
        "{ __schema { queryType { name } } }",
        "mutation { createSession(input: {}) { id } }",
    ],
)
@pytest.mark.parametrize("accept", ["application/json", GRAPHQL_RESPONSE])
async def test_an_operation_without_a_token_is_a_401(gql: GraphQL, query: str, accept: str) -> None:
    response = await gql.client.post("/graphql", json={"query": query}, headers={"Accept": accept})

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.headers["content-type"] == accept
    body = response.json()
    assert "data" not in body
    assert error_codes(body) == ["UNAUTHENTICATED"]


async def test_a_bad_token_is_a_401_saying_so(gql: GraphQL, alice: Actor) -> None:
    response = await gql.client.post(
        "/graphql", json={"query": "{ me { id } }"}, headers={"Authorization": "Bearer pnt_nope"}
    )

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert error_codes(response.json()) == ["UNAUTHENTICATED"]


async def test_get_and_multipart_subscriptions_need_a_token_too(gql: GraphQL) -> None:
    over_get = await gql.client.get("/graphql", params={"query": "{ __typename }"})
    subscription = await gql.client.post(
        "/graphql",
        json={"query": 'subscription { sessionEvents(sessionId: "x") { sequence } }'},
        headers={"Accept": "multipart/mixed;subscriptionSpec=1.0"},
    )

    assert over_get.status_code == subscription.status_code == 401
    assert error_codes(over_get.json()) == error_codes(subscription.json()) == ["UNAUTHENTICATED"]


async def test_the_graphiql_page_still_loads_without_a_token(gql: GraphQL) -> None:
    response = await gql.client.get("/graphql", headers={"Accept": "text/html"})

    assert response.status_code == 200
    assert "graphiql" in response.text.lower()


async def test_a_token_gets_the_same_operation_served(gql: GraphQL, alice: Actor) -> None:
    body = await gql("{ __schema { queryType { name } } me { handle } }", as_=alice)

    assert body["data"] == {"__schema": {"queryType": {"name": "Query"}}, "me": {"handle": "alice"}}


# --- suggestions -------------------------------------------------------------------------------

TYPO = "{ sesions { totalCount } }"
ENUM_TYPO = "mutation($m: TurnMode) { createSession(input: {defaultMode: $m}) { id } }"


async def test_users_get_no_suggestions(gql: GraphQL, alice: Actor) -> None:
    field = await gql(TYPO, as_=alice)
    enum = await gql(ENUM_TYPO, {"m": "MANUL"}, as_=alice)

    assert error_codes(field) == ["GRAPHQL_VALIDATION_FAILED"]
    assert field["errors"][0]["message"] == "Cannot query field 'sesions' on type 'Query'."
    assert error_codes(enum) == ["BAD_USER_INPUT"]
    assert "MANUL" in enum["errors"][0]["message"]
    assert "Did you mean" not in enum["errors"][0]["message"]


async def test_admins_keep_suggestions(gql: GraphQL, admin: Actor) -> None:
    field = await gql(TYPO, as_=admin)
    enum = await gql(ENUM_TYPO, {"m": "MANUL"}, as_=admin)

    assert "Did you mean 'sessions'" in field["errors"][0]["message"]
    assert "Did you mean the enum value 'MANUAL'?" in enum["errors"][0]["message"]


# --- the operation timeout ---------------------------------------------------------------------

TIMEOUT_SECONDS = 0.3


class StuckAgentReads(SqlReadStore):
    """The real read store, except that listing agents waits on something that never answers."""

    async def all_agents(self, *, include_disabled: bool) -> list[Agent]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


def timed(settings: Settings) -> Settings:
    return settings.model_copy(update={"operation_timeout_seconds": TIMEOUT_SECONDS})


async def test_an_operation_stuck_awaiting_ends_with_timeout(
    settings: Settings, alice: Actor
) -> None:
    async with running_app(timed(settings)) as (app, gql):
        app.state.runtime = dataclasses.replace(
            app.state.runtime, reads=StuckAgentReads(app.state.database.reads)
        )
        stuck = await gql("{ agents { key } }", as_=alice)
        after = await gql("{ me { handle } }", as_=alice)

    assert stuck["data"] is None
    assert error_codes(stuck) == ["TIMEOUT"]
    assert stuck["errors"][0]["extensions"]["timeoutSeconds"] == TIMEOUT_SECONDS
    assert after == {"data": {"me": {"handle": "alice"}}}


async def test_an_operation_waiting_on_a_database_lock_ends_with_timeout(
    test_db: testdb.TestDatabase, settings: Settings, alice: Actor
) -> None:
    if not test_db.url.startswith("postgresql"):
        pytest.skip("SQLite readers never wait for a writer's lock")
    locker = create_async_engine(test_db.url)
    try:
        async with running_app(timed(settings)) as (_, gql):
            async with locker.connect() as connection, connection.begin():
                await connection.execute(text("LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE"))
                locked = await gql("{ sessions { totalCount } }", as_=alice)
            unlocked = await gql("{ sessions { totalCount } }", as_=alice)
    finally:
        await locker.dispose()

    assert error_codes(locked) == ["TIMEOUT"], locked
    assert unlocked == {"data": {"sessions": {"totalCount": 0}}}


RUN = """mutation($input: RunTurnInput!) { runTurn(input: $input) { status assistantOutput } }"""


async def test_run_turn_waiting_for_completion_is_not_timed_out(
    turn_settings: Settings, alice: Actor, fake_openai: FakeOpenAIServer
) -> None:
    fake_openai.set_default(FakeResponse(content="slow but sure", hang=TIMEOUT_SECONDS * 4))
    async with running_app(timed(turn_settings)) as (_, gql):
        session = (await gql("mutation { createSession(input: {}) { id } }", as_=alice))["data"]
        body = await gql(
            RUN,
            {"input": {"sessionId": session["createSession"]["id"], "message": "hi"}},
            as_=alice,
        )

    assert "errors" not in body, body
    assert body["data"]["runTurn"]["status"] == "COMPLETED"
    assert "slow but sure" in body["data"]["runTurn"]["assistantOutput"]


async def test_subscriptions_are_not_timed_out(settings: Settings, alice: Actor) -> None:
    assert QUIET_SECONDS > TIMEOUT_SECONDS * 2
    async with running_app(timed(settings)) as (_, gql):
        session = (await gql("mutation { createSession(input: {}) { id } }", as_=alice))["data"]
        body: dict[str, Any] = await subscribe_over_http(
            gql,
            "subscription($id: ID!) { sessionEvents(sessionId: $id) { sequence } }",
            {"id": session["createSession"]["id"]},
            alice,
        )

    assert body == {"data": None}  # still open and silent after QUIET_SECONDS: no TIMEOUT


async def test_a_query_over_websocket_is_timed_out_too(settings: Settings, alice: Actor) -> None:
    async with running_app(timed(settings)) as (app, _):
        app.state.runtime = dataclasses.replace(
            app.state.runtime, reads=StuckAgentReads(app.state.database.reads)
        )
        async for url in serve(app):
            async with asyncio.timeout(10), Client(transport=transport(url, alice.token)) as ws:
                with pytest.raises(TransportQueryError) as refused:
                    await ws.execute(GraphQLRequest("{ agents { key } }"))
                served = await ws.execute(GraphQLRequest("{ me { handle } }"))

    assert refused.value.errors is not None
    assert [error["extensions"]["code"] for error in refused.value.errors] == ["TIMEOUT"]
    assert served == {"me": {"handle": "alice"}}


# --- operations over the streaming transports keep their codes -----------------------------


async def test_a_query_over_websocket_gets_its_errors_code(
    settings: Settings, alice: Actor
) -> None:
    # given: a socket of alice's; a turn id that names no turn
    missing = "VHVybjowMDAwMDAwMC0wMDAwLTAwMDAtMDAwMC0wMDAwMDAwMDAwMDA="
    async with running_app(settings) as (app, _):
        async for url in serve(app):
            async with asyncio.timeout(10), Client(transport=transport(url, alice.token)) as ws:
                # when
                with pytest.raises(TransportQueryError) as refused:
                    await ws.execute(
                        GraphQLRequest(
                            "query($id: ID!) { turn(id: $id) { id } }",
                            variable_values={"id": missing},
                        )
                    )

    # then: the code a client branches on, as over plain HTTP
    assert refused.value.errors is not None
    assert [error["extensions"]["code"] for error in refused.value.errors] == ["NOT_FOUND"]


async def test_a_query_sent_as_a_multipart_subscription_is_a_bad_request(
    gql: GraphQL, alice: Actor, caplog: pytest.LogCaptureFixture
) -> None:
    # when: `Accept: multipart/mixed` serves subscriptions only
    body = await subscribe_over_http(gql, "{ me { id } }", {}, alice)

    # then: the caller's mistake, coded; nothing logged as an unexpected error
    assert error_codes(body) == ["BAD_REQUEST"], body
    assert "unexpected error" not in caplog.text

"""The query cost limit (graph/cost/model.py) over HTTP: what the default admits and refuses,
variables and fragments, introspection, subscriptions, and the `rateLimit` field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from graphql import get_introspection_query

from infra.settings import Settings
from tests.conftest import Actor, GraphQL, error_codes, running_app
from tests.integration.test_authorization_matrix import subscribe_over_http

# The page a client may always ask for with the default settings (cost 4062).
ADMITTED = (
    "{ sessions(first:20){ edges{ node{ turns(first:20){ edges{ node{ messages{ content } } } } }"
    " } } }"
)
HEAVY_ALIAS = (
    "sessions(first:100){ edges{ node{ turns(first:100){ edges{ node{ messages{ content }"
    " usage{ costUsd } } } } } } }"
)
REFUSED = "{ " + " ".join(f"s{i}: {HEAVY_ALIAS}" for i in range(10)) + " }"
GRAPHQL_RESPONSE = {"Accept": "application/graphql-response+json"}


async def post(gql: GraphQL, query: str, actor: Actor, **extra: Any) -> Any:
    headers = {"Authorization": f"Bearer {actor.token}", **GRAPHQL_RESPONSE}
    return await gql.client.post("/graphql", json={"query": query, **extra}, headers=headers)


async def test_the_default_admits_twenty_sessions_of_twenty_turns(
    gql: GraphQL, alice: Actor
) -> None:
    body = await gql(ADMITTED, as_=alice)

    assert "errors" not in body, body
    assert body["data"] == {"sessions": {"edges": []}}


async def test_the_default_refuses_ten_aliases_of_a_hundred_by_a_hundred(
    gql: GraphQL, alice: Actor
) -> None:
    response = await post(gql, REFUSED, alice)

    assert response.status_code == 400  # a request error: nothing was executed
    body = response.json()
    assert "data" not in body
    [error] = body["errors"]
    assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert error["extensions"]["maxCost"] == Settings().max_query_cost
    assert error["extensions"]["cost"] > error["extensions"]["maxCost"]
    assert "costs" in error["message"]


async def test_a_refused_mutation_does_not_run(gql: GraphQL, alice: Actor) -> None:
    expensive = (
        "mutation { createSession(input: {}) { turns(first: 100) { edges { node {"
        " messages { content usage { costUsd } } usage { costUsd } } } } } }"
    )

    body = await gql(expensive, as_=alice)
    count = await gql("{ sessions { totalCount } }", as_=alice)

    assert error_codes(body) == ["QUERY_TOO_COMPLEX"], body
    assert body["data"] is None
    assert count["data"]["sessions"]["totalCount"] == 0, count


async def test_rate_limit_reports_the_operations_cost(gql: GraphQL, alice: Actor) -> None:
    body = await gql(
        "{ rateLimit { cost maxCost requestsRemaining resetAt } me { id } }", as_=alice
    )

    # rateLimit { 4 scalars } = 5, me { id } = 2; this is the user's first request of the minute.
    limits = body["data"]["rateLimit"]
    assert (limits["cost"], limits["maxCost"]) == (7, Settings().max_query_cost)
    assert limits["requestsRemaining"] == Settings().rate_limit_requests_per_minute - 1
    reset_at = datetime.fromisoformat(limits["resetAt"])
    assert timedelta(0) < reset_at - datetime.now(UTC) <= timedelta(seconds=60)


async def cost_of(gql: GraphQL, actor: Actor, selection: str, **extra: Any) -> int:
    body = await gql.client.post(
        "/graphql",
        json={"query": selection, **extra},
        headers={"Authorization": f"Bearer {actor.token}"},
    )
    decoded = body.json()
    assert "errors" not in decoded, decoded
    cost: int = decoded["data"]["rateLimit"]["cost"]
    return cost


async def test_first_from_a_variable_multiplies_like_a_literal(gql: GraphQL, alice: Actor) -> None:
    with_variable = (
        "query($n: Int) { rateLimit { cost } sessions(first: $n) { edges { node { title } } } }"
    )
    literal = "{ rateLimit { cost } sessions(first: 7) { edges { node { title } } } }"

    seven = await cost_of(gql, alice, with_variable, variables={"n": 7})
    fifty = await cost_of(gql, alice, with_variable, variables={"n": 50})
    absent = await cost_of(gql, alice, with_variable)

    # rateLimit{cost} 2 + sessions 1 + edges (1 + n x (node 1 + title 1))
    assert seven == await cost_of(gql, alice, literal) == 2 + 1 + 1 + 7 * 2
    assert fifty == 2 + 1 + 1 + 50 * 2
    assert absent == 2 + 1 + 1 + Settings().default_page_size * 2


async def test_named_and_inline_fragments_cost_what_they_select(gql: GraphQL, alice: Actor) -> None:
    plain = "{ rateLimit { cost } sessions(first: 5) { edges { node { turns { totalCount } } } } }"
    fragments = """
    query { rateLimit { cost } sessions(first: 5) { ...Edges } }
    fragment Edges on SessionConnection { edges { node { ... on Session { ...Turns } } } }
    fragment Turns on Session { turns { totalCount } }
    """

    # rateLimit{cost} 2 + sessions 1 + edges (1 + 5 x (node 1 + turns 1 + totalCount 1))
    assert await cost_of(gql, alice, fragments) == await cost_of(gql, alice, plain) == 19


async def test_graphiql_introspection_passes_but_two_schemas_do_not(
    gql: GraphQL, alice: Actor
) -> None:
    introspection = await gql(get_introspection_query(), as_=alice)
    twice = await gql(
        "{ a: __schema { queryType { name } } b: __schema { types { name } } }", as_=alice
    )

    assert "errors" not in introspection
    assert introspection["data"]["__schema"]["queryType"]["name"] == "Query"
    assert error_codes(twice) == ["QUERY_TOO_COMPLEX"], twice
    assert "__schema" in twice["errors"][0]["message"]


async def test_subscriptions_are_costed(gql: GraphQL, alice: Actor) -> None:
    document = """
    subscription($id: ID!) { sessionEvents(sessionId: $id) {
      ... on TurnFinished { turn { session { turns(first: 100) { edges { node {
        messages { usage { costUsd } } usage { costUsd } } } } } } }
    } }"""
    session = (await gql("mutation { createSession(input: {}) { id } }", as_=alice))["data"]

    body = await subscribe_over_http(gql, document, {"id": session["createSession"]["id"]}, alice)

    assert error_codes(body) == ["QUERY_TOO_COMPLEX"], body


async def test_the_limit_is_the_setting(settings: Settings, alice: Actor) -> None:
    async with running_app(settings.model_copy(update={"max_query_cost": 10})) as (_, gql):
        cheap = await gql("{ me { id } rateLimit { maxCost } }", as_=alice)
        dearer = await gql("{ sessions(first: 5) { edges { node { id } } } }", as_=alice)

    assert cheap["data"]["rateLimit"] == {"maxCost": 10}
    assert error_codes(dearer) == ["QUERY_TOO_COMPLEX"]
    assert dearer["errors"][0]["extensions"] | {"code": None} == {
        "code": None,
        "cost": 12,  # sessions 1 + edges (1 + 5 x (node 1 + id 1))
        "maxCost": 10,
    }


@pytest.mark.parametrize("query", ["{ rateLimit { cost } }", "{ __schema { types { name } } }"])
async def test_anonymous_callers_get_nothing(gql: GraphQL, query: str) -> None:
    response = await gql.client.post("/graphql", json={"query": query})

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    body = response.json()
    assert "data" not in body
    assert error_codes(body) == ["UNAUTHENTICATED"]

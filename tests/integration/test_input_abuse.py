"""Hostile text and bodies are refused with a code, never an unexpected error: text no database
can store (NUL, lone surrogates) in any input, variable or literal, named in `extensions.field`;
bodies that are not UTF-8, nested too deeply or otherwise odd. Every test runs on SQLite and
PostgreSQL. (Bounds on amounts, ids, instants and cursors: test_input_bounds.py.)"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import Actor, GraphQL

CREATE_SESSION = "mutation($input: CreateSessionInput!) { createSession(input: $input) { id } }"
RUN_TURN = "mutation($input: RunTurnInput!) { runTurn(input: $input) { id } }"
CREATE_USER = "mutation($input: CreateUserInput!) { createUser(input: $input) { user { id } } }"
UPSERT_AGENT = "mutation($input: AgentInput!) { upsertAgent(input: $input) { id } }"
SESSIONS = "{ sessions { totalCount } }"
USERS = "{ users { totalCount } }"

NUL = "\x00"
SURROGATE = "\ud800"  # what JSON's "\ud800" decodes to: no UTF-8 encoding exists


def only_error(body: dict[str, Any]) -> dict[str, Any]:
    assert body.get("data") is None, body
    assert len(body["errors"]) == 1, body
    error: dict[str, Any] = body["errors"][0]
    return error


async def post_raw(gql: GraphQL, payload: dict[str, Any], actor: Actor) -> dict[str, Any]:
    """Posts JSON with \\u escapes (httpx's own encoder refuses lone surrogates)."""
    response = await gql.client.post(
        "/graphql",
        content=json.dumps(payload, ensure_ascii=True),
        headers={"Authorization": f"Bearer {actor.token}", "Content-Type": "application/json"},
    )
    body: dict[str, Any] = response.json()
    return body


async def create_session(gql: GraphQL, actor: Actor) -> str:
    body = await gql(CREATE_SESSION, {"input": {"title": "plans"}}, as_=actor)
    assert "errors" not in body, body
    session_id: str = body["data"]["createSession"]["id"]
    return session_id


# --- text no database can store ----------------------------------------------------------


@pytest.mark.parametrize("character", [NUL, SURROGATE], ids=["nul", "lone-surrogate"])
async def test_unstorable_text_in_a_title_is_refused_naming_the_field(
    gql: GraphQL, alice: Actor, character: str
) -> None:
    # when
    payload = {"query": CREATE_SESSION, "variables": {"input": {"title": f"a{character}b"}}}
    error = only_error(await post_raw(gql, payload, alice))

    # then
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["field"] == "input.title"
    assert "input.title must not contain" in error["message"]
    assert (await gql(SESSIONS, as_=alice))["data"]["sessions"]["totalCount"] == 0


async def test_nul_in_a_turn_message_is_refused_before_the_turn_starts(
    gql: GraphQL, alice: Actor
) -> None:
    # given
    session_id = await create_session(gql, alice)

    # when
    body = await gql(
        RUN_TURN, {"input": {"sessionId": session_id, "message": f"hi{NUL}"}}, as_=alice
    )

    # then
    error = only_error(body)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "input.message"}
    turns = await gql(
        "query($id: ID!) { session(id: $id) { turnCount } }", {"id": session_id}, as_=alice
    )
    assert turns["data"]["session"]["turnCount"] == 0


async def test_nul_in_a_handle_is_refused(gql: GraphQL, admin: Actor) -> None:
    body = await gql(CREATE_USER, {"input": {"handle": f"eve{NUL}"}}, as_=admin)

    error = only_error(body)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "input.handle"}
    assert (await gql(USERS, as_=admin))["data"]["users"]["totalCount"] == 1  # the admin only


async def test_nul_in_a_literal_is_refused_naming_the_argument(gql: GraphQL, alice: Actor) -> None:
    # \u0000 in the document itself, not in a variable
    query = 'mutation { createSession(input: {title: "a\\u0000b"}) { id } }'

    error = only_error(await gql(query, as_=alice))

    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "input.title"}


async def test_nul_deep_in_a_list_names_its_position(gql: GraphQL, alice: Actor) -> None:
    variables = {"input": {"title": "t", "agentKeys": ["qwen", f"x{NUL}"]}}

    error = only_error(await gql(CREATE_SESSION, variables, as_=alice))

    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "input.agentKeys[1]"}


async def test_nul_in_an_agent_prompt_is_refused(gql: GraphQL, admin: Actor) -> None:
    agent = {
        "key": "critic",
        "name": "Critic",
        "systemPrompt": f"You are{NUL} Critic.",
        "modelAlias": "deepseek-chat",
    }

    error = only_error(await gql(UPSERT_AGENT, {"input": agent}, as_=admin))

    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "input.systemPrompt"}


async def test_text_with_escaped_but_storable_characters_still_works(
    gql: GraphQL, alice: Actor
) -> None:
    # an emoji written as a surrogate pair is one storable character
    query = 'mutation { createSession(input: {title: "ok \\uD83D\\uDE00"}) { title } }'

    body = await gql(query, as_=alice)

    assert body == {"data": {"createSession": {"title": "ok \U0001f600"}}}


# --- odd request bodies ------------------------------------------------------------------------

ODD_BODIES = {
    "surrogate operation name": {"query": "query A { me { id } }", "operationName": SURROGATE},
    "surrogate in a comment": {"query": "{ me { id } } # " + SURROGATE},
    "surrogate variable name": {"query": "{ me { id } }", "variables": {SURROGATE: 1}},  # unused
    "surrogate key in an input": {
        "query": CREATE_SESSION,
        "variables": {"input": {SURROGATE: "x", "title": "t"}},
    },
    "nul operation name": {"query": "query A { me { id } }", "operationName": NUL},
    "variables not an object": {"query": "{ me { id } }", "variables": [1]},
    "query not a string": {"query": 7},
    "huge int": {"query": "{ users(first: 99999999999999999999) { totalCount } }"},
    "float for int": {"query": "{ users(first: 1.5) { totalCount } }"},
    "deep list": {"query": CREATE_SESSION, "variables": {"input": {"agentKeys": [[["q"]]]}}},
    # within the token limit (2,000), deeper than the parser's recursion allows
    "deep literal": {
        "query": "mutation { createSession(input: {agentKeys: "
        + "[" * 900
        + "]" * 900
        + "}) { id } }"
    },
    "deep literal with an escape": {
        "query": "mutation { createSession(input: {agentKeys: "
        + "[" * 900
        + '"\\u0041"'
        + "]" * 900
        + "}) { id } }"
    },
    "deep literal object": {
        "query": "{ costReport(input: " + "{a: " * 600 + "1" + "}" * 600 + ") { to } }"
    },
}


@pytest.mark.parametrize("payload", ODD_BODIES.values(), ids=ODD_BODIES.keys())
async def test_odd_request_bodies_never_get_an_internal_error(
    gql: GraphQL, admin: Actor, payload: dict[str, Any]
) -> None:
    response = await gql.client.post(
        "/graphql",
        content=json.dumps(payload, ensure_ascii=True),
        headers={"Authorization": f"Bearer {admin.token}", "Content-Type": "application/json"},
    )

    assert response.status_code < 500, response.text
    codes = [error["extensions"]["code"] for error in response.json().get("errors", [])]
    assert "INTERNAL_SERVER_ERROR" not in codes, response.text


@pytest.mark.parametrize("depth", [500, 990, 5_000, 100_000])
async def test_deeply_nested_variables_never_get_an_internal_error(
    gql: GraphQL, admin: Actor, depth: int
) -> None:
    nested = "[" * depth + "]" * depth
    body = '{"query": "{ me { id } }", "variables": {"deep": ' + nested + "}}"
    response = await gql.client.post(
        "/graphql",
        content=body,
        headers={"Authorization": f"Bearer {admin.token}", "Content-Type": "application/json"},
    )

    assert response.status_code < 500, response.text
    codes = [error["extensions"]["code"] for error in response.json().get("errors", [])]
    assert "INTERNAL_SERVER_ERROR" not in codes, response.text


@pytest.mark.parametrize(
    "body",
    [b'{"query": "{ me { id } }\xff"}', b"\xff\xfe{}", b'{"query": "\xed\xa0\x80"}'],
    ids=["invalid-byte", "bom-like", "utf8-encoded-surrogate"],
)
async def test_a_body_that_is_not_utf8_is_a_bad_request(
    gql: GraphQL, admin: Actor, body: bytes
) -> None:
    response = await gql.client.post(
        "/graphql",
        content=body,
        headers={"Authorization": f"Bearer {admin.token}", "Content-Type": "application/json"},
    )

    assert response.status_code == 400, response.text
    assert [error["extensions"]["code"] for error in response.json()["errors"]] == ["BAD_REQUEST"]


async def test_a_query_string_that_is_not_utf8_never_gets_an_internal_error(
    gql: GraphQL, admin: Actor
) -> None:
    response = await gql.client.get(
        "/graphql?query=%7B%20me%20%7B%20id%20%7D%20%7D%FF&variables=%7B%22a%22%3A%22%ED%A0%80%22%7D",
        headers={"Authorization": f"Bearer {admin.token}", "Accept": "application/json"},
    )

    assert response.status_code < 500, response.text
    codes = [error["extensions"]["code"] for error in response.json().get("errors", [])]
    assert "INTERNAL_SERVER_ERROR" not in codes, response.text

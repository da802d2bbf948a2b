"""Sessions through GraphQL: create, read, page, change, soft-delete, and every bad input."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from graph.ids import global_id
from infra.db.engine import Database
from infra.db.models import SessionAgentRow, SessionRow
from tests.conftest import Actor, GraphQL, error_codes

CREATE = """
mutation($input: CreateSessionInput!) {
  createSession(input: $input) { id title defaultMode turnCount agents { key } owner { handle } }
}"""
UPDATE = """
mutation($input: UpdateSessionInput!) {
  updateSession(input: $input) { id title defaultMode agents { key } }
}"""
DELETE = "mutation($id: ID!) { deleteSession(id: $id) }"
ONE = "query($id: ID!) { session(id: $id) { id title agents { key } } }"
PAGE = """
query($first: Int, $after: String, $last: Int, $before: String) {
  sessions(first: $first, after: $after, last: $last, before: $before) {
    totalCount
    edges { cursor node { title } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}"""


async def count_rows(database: Database, model: Any) -> int:
    async with database.reads() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def create(gql: GraphQL, actor: Actor, **input_: Any) -> dict[str, Any]:
    body = await gql(CREATE, {"input": input_}, as_=actor)
    assert "errors" not in body, body
    created: dict[str, Any] = body["data"]["createSession"]
    return created


async def test_create_session_defaults_to_every_enabled_agent(gql: GraphQL, alice: Actor) -> None:
    # when
    session = await create(gql, alice)

    # then
    assert session["title"] == "New session"
    assert session["defaultMode"] == "MANUAL"
    assert session["turnCount"] == 0
    assert [a["key"] for a in session["agents"]] == ["qwen", "deepseek", "writer", "researcher"]
    assert session["owner"]["handle"] == "alice"


async def test_create_session_keeps_the_roster_order_given(gql: GraphQL, alice: Actor) -> None:
    session = await create(
        gql, alice, title="  Plan  ", agentKeys=["Writer", "qwen"], defaultMode="ROUNDTABLE"
    )
    assert session["title"] == "Plan"
    assert session["defaultMode"] == "ROUNDTABLE"
    assert [a["key"] for a in session["agents"]] == ["writer", "qwen"]


@pytest.mark.parametrize(
    ("input_", "fragment"),
    [
        ({"agentKeys": ["qwen", "nobody"]}, "unknown or disabled agents: nobody"),
        ({"agentKeys": []}, "at least one agent"),
        ({"agentKeys": ["qwen", "QWEN"]}, "twice"),
        ({"agentKeys": ["bad key!"]}, "agent key"),
        ({"title": "   "}, "title must not be empty"),
        ({"title": "x" * 201}, "at most 200"),
    ],
)
async def test_bad_create_input_is_coded_and_writes_nothing(
    gql: GraphQL, alice: Actor, database: Database, input_: dict[str, Any], fragment: str
) -> None:
    body = await gql(CREATE, {"input": input_}, as_=alice)

    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert fragment in body["errors"][0]["message"]
    assert await count_rows(database, SessionRow) == 0
    assert await count_rows(database, SessionAgentRow) == 0


async def test_disabled_agent_cannot_join_a_roster(
    gql: GraphQL, admin: Actor, alice: Actor
) -> None:
    disable = """mutation { upsertAgent(input: {key: "qwen", name: "Qwen",
      systemPrompt: "x", modelAlias: "qwen-plus", enabled: false}) { enabled } }"""
    assert (await gql(disable, as_=admin))["data"]["upsertAgent"]["enabled"] is False

    body = await gql(CREATE, {"input": {"agentKeys": ["qwen"]}}, as_=alice)
    assert error_codes(body) == ["BAD_USER_INPUT"]

    default_roster = await create(gql, alice)
    assert "qwen" not in [a["key"] for a in default_roster["agents"]]


async def test_owner_updates_title_mode_and_roster(gql: GraphQL, alice: Actor) -> None:
    session = await create(gql, alice)
    body = await gql(
        UPDATE,
        {
            "input": {
                "id": session["id"],
                "title": "Renamed",
                "agentKeys": ["researcher"],
                "defaultMode": "ORCHESTRATOR",
            }
        },
        as_=alice,
    )
    updated = body["data"]["updateSession"]
    assert updated == {
        "id": session["id"],
        "title": "Renamed",
        "defaultMode": "ORCHESTRATOR",
        "agents": [{"key": "researcher"}],
    }


async def test_update_with_bad_roster_changes_nothing(gql: GraphQL, alice: Actor) -> None:
    session = await create(gql, alice, title="Keep")
    body = await gql(
        UPDATE, {"input": {"id": session["id"], "title": "New", "agentKeys": ["x"]}}, as_=alice
    )
    assert error_codes(body) == ["BAD_USER_INPUT"]
    after = await gql(ONE, {"id": session["id"]}, as_=alice)
    assert after["data"]["session"]["title"] == "Keep"
    assert len(after["data"]["session"]["agents"]) == 4


async def test_deleted_session_is_gone_for_its_owner_but_kept_in_the_database(
    gql: GraphQL, alice: Actor, database: Database
) -> None:
    session = await create(gql, alice)

    assert (await gql(DELETE, {"id": session["id"]}, as_=alice))["data"] == {
        "deleteSession": session["id"]
    }

    assert error_codes(await gql(ONE, {"id": session["id"]}, as_=alice)) == ["NOT_FOUND"]
    assert error_codes(await gql(DELETE, {"id": session["id"]}, as_=alice)) == ["NOT_FOUND"]
    update = await gql(UPDATE, {"input": {"id": session["id"], "title": "x"}}, as_=alice)
    assert error_codes(update) == ["NOT_FOUND"]
    listed = await gql(PAGE, {}, as_=alice)
    assert listed["data"]["sessions"]["totalCount"] == 0
    assert await count_rows(database, SessionRow) == 1  # soft delete: the row stays


async def test_another_users_session_answers_like_a_missing_one(
    gql: GraphQL, alice: Actor, bob: Actor
) -> None:
    session = await create(gql, alice, title="Private")

    for operation, variables in [
        (ONE, {"id": session["id"]}),
        (UPDATE, {"input": {"id": session["id"], "title": "Hijacked"}}),
        (DELETE, {"id": session["id"]}),
    ]:
        body = await gql(operation, variables, as_=bob)
        assert error_codes(body) == ["NOT_FOUND"], body
        assert "Private" not in str(body)

    still = await gql(ONE, {"id": session["id"]}, as_=alice)
    assert still["data"]["session"]["title"] == "Private"


@pytest.mark.parametrize(
    "bad_id",
    ["not-an-id", "", global_id("User", __import__("uuid").uuid4()), "U2Vzc2lvbjp4eXo="],
)
async def test_malformed_or_wrong_type_ids_are_bad_input(
    gql: GraphQL, alice: Actor, bad_id: str
) -> None:
    for operation, variables in [
        (ONE, {"id": bad_id}),
        (DELETE, {"id": bad_id}),
        (UPDATE, {"input": {"id": bad_id, "title": "x"}}),
    ]:
        assert error_codes(await gql(operation, variables, as_=alice)) == ["BAD_USER_INPUT"]


async def test_pages_walk_newest_first_both_ways(gql: GraphQL, alice: Actor, bob: Actor) -> None:
    for number in range(5):
        await create(gql, alice, title=f"s{number}")
    await create(gql, bob, title="not alice's")

    first = (await gql(PAGE, {"first": 2}, as_=alice))["data"]["sessions"]
    assert first["totalCount"] == 5
    assert [e["node"]["title"] for e in first["edges"]] == ["s4", "s3"]
    assert first["pageInfo"]["hasNextPage"] is True
    assert first["pageInfo"]["hasPreviousPage"] is False

    second = (await gql(PAGE, {"first": 2, "after": first["pageInfo"]["endCursor"]}, as_=alice))[
        "data"
    ]["sessions"]
    assert [e["node"]["title"] for e in second["edges"]] == ["s2", "s1"]
    assert second["pageInfo"]["hasNextPage"] is True
    assert second["pageInfo"]["hasPreviousPage"] is True

    third = (await gql(PAGE, {"first": 2, "after": second["pageInfo"]["endCursor"]}, as_=alice))[
        "data"
    ]["sessions"]
    assert [e["node"]["title"] for e in third["edges"]] == ["s0"]
    assert third["pageInfo"]["hasNextPage"] is False

    back = (await gql(PAGE, {"last": 2, "before": third["pageInfo"]["startCursor"]}, as_=alice))[
        "data"
    ]["sessions"]
    assert [e["node"]["title"] for e in back["edges"]] == ["s2", "s1"]
    assert back["pageInfo"]["hasPreviousPage"] is True
    assert back["pageInfo"]["hasNextPage"] is True

    tail = (await gql(PAGE, {"last": 2}, as_=alice))["data"]["sessions"]
    assert [e["node"]["title"] for e in tail["edges"]] == ["s1", "s0"]
    assert tail["pageInfo"]["hasPreviousPage"] is True
    assert tail["pageInfo"]["hasNextPage"] is False


@pytest.mark.parametrize(
    "variables",
    [
        {"first": 101},
        {"first": -1},
        {"first": 1, "last": 1},
        {"after": "!!!"},
        {"after": "WyJ4Il0"},  # a well-formed cursor of the wrong shape
        {"first": 1, "before": "WyJ4Il0"},
    ],
)
async def test_bad_page_arguments_are_bad_input(
    gql: GraphQL, alice: Actor, variables: dict[str, Any]
) -> None:
    assert error_codes(await gql(PAGE, variables, as_=alice)) == ["BAD_USER_INPUT"]

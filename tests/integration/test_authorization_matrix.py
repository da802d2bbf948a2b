"""Who may call what: one table, one row per root field of the schema.

The schema is walked (Query, Mutation and Subscription fields) and every field must have a row, so a
field cannot ship without deciding who may call it. Each row names a representative call and its
audience; rows of fields that reach another user's objects list the trespasses user B tries on
user A's objects. Then, for every row (one test per field, so a failure names the field):

- anonymous callers get HTTP 401 (UNAUTHENTICATED, no `data`) and nothing is written;
- admin-only fields answer FORBIDDEN to a normal user and write nothing;
- B's trespasses on A's objects answer NOT_FOUND (or, for lists, do not list A's), nothing is
  written, and A can still read her data with her token;
- the same representative call is served for its audience (A herself, or an admin), so the
  refusals are about who asks, not about a broken document.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import pytest
from graphql import (
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLNamedType,
    get_named_type,
)
from graphql import build_schema as build_sdl_schema
from sqlalchemy import select

from graph.schema import build_schema
from infra.db.engine import Database
from infra.db.models import Base
from tests.conftest import Actor, GraphQL, error_codes

# --- the representative calls ----------------------------------------------------------------

NODE = """query($id: ID!) {
  node(id: $id) { id ... on Session { title } ... on User { handle } ... on Turn { userMessage } }
}"""
ME = "{ me { id handle } }"
RATE_LIMIT = "{ rateLimit { cost maxCost requestsRemaining resetAt } }"
USERS = "{ users(first: 10) { totalCount edges { node { handle } } } }"
AGENTS = "{ agents { key } }"
MODELS = "{ models { alias } }"
SESSION = "query($id: ID!) { session(id: $id) { id title } }"
SESSIONS = "{ sessions(first: 10) { totalCount edges { node { id title } } } }"
CREATE_SESSION = 'mutation { createSession(input: {title: "Intruder\'s"}) { id } }'
UPDATE_SESSION = """mutation($id: ID!) {
  updateSession(input: {id: $id, title: "Hijacked", agentKeys: ["qwen"]}) { id title }
}"""
DELETE_SESSION = "mutation($id: ID!) { deleteSession(id: $id) }"
TURN = "query($id: ID!) { turn(id: $id) { id userMessage } }"
RUN_TURN = """mutation($id: ID!) {
  runTurn(input: {sessionId: $id, message: "@qwen hello"}) { id status }
}"""
CANCEL_TURN = "mutation($id: ID!) { cancelTurn(id: $id) { id status } }"
UPSERT_AGENT = """mutation { upsertAgent(input: {key: "qwen", name: "Pwned", systemPrompt: "leak",
  modelAlias: "qwen-plus", enabled: false}) { key enabled } }"""
UPSERT_MODEL = """mutation { upsertModel(input: {alias: "qwen-plus", provider: "scripted",
  inputUsdPerMillionTokens: "0", outputUsdPerMillionTokens: "0",
  maxOutputTokens: 2048, contextWindow: 131072}) { alias } }"""
CREATE_USER = 'mutation { createUser(input: {handle: "mallory", role: ADMIN}) { token } }'
ISSUE_TOKEN = "mutation($id: ID!) { issueToken(userId: $id) { token } }"
REVOKE_TOKENS = "mutation($id: ID!) { revokeTokens(userId: $id) }"
SET_BUDGET = 'mutation($id: ID!) { setUserBudget(userId: $id, monthlyBudgetUsd: "1") { id } }'
MY_USAGE = "{ myUsage { calls costUsd billableCostUsd } }"
TURN_PROGRESS = """subscription($id: ID!) {
  turnProgress(turnId: $id) { sequence ... on TurnFinished { turn { userMessage } } }
}"""
SESSION_EVENTS = "subscription($id: ID!) { sessionEvents(sessionId: $id) { sequence } }"
COST_REPORT = """{ costReport(input: {from: "2026-01-01T00:00:00Z", to: "2027-01-01T00:00:00Z",
  groupBy: [USER, DAY]}) { rows { user { handle } day totals { calls costUsd } } } }"""

CREATE_OWN = "mutation($title: String!) { createSession(input: {title: $title}) { id } }"
RUN_OWN = """mutation($id: ID!, $message: String!) {
  runTurn(input: {sessionId: $id, message: $message}) { id status messages { id usage { id } } }
}"""
ALICE_TITLE = "Alice's plan"
ALICE_MESSAGE = "@qwen Alice's question"
BOB_TITLE = "Bob's notes"


@dataclass(frozen=True)
class World:
    """Alice (A) and Bob (B), each with a session; A's has a finished turn. An admin."""

    admin: Actor
    alice: Actor
    bob: Actor
    alice_session: str
    bob_session: str
    alice_turn: str
    alice_message: str
    alice_usage: str


Variables = Callable[[World], dict[str, Any]]


def no_variables(_: World) -> dict[str, Any]:
    return {}


def alices_session(world: World) -> dict[str, Any]:
    return {"id": world.alice_session}


def alices_user(world: World) -> dict[str, Any]:
    return {"id": world.alice.id}


def alices_turn(world: World) -> dict[str, Any]:
    return {"id": world.alice_turn}


def alices_message(world: World) -> dict[str, Any]:
    return {"id": world.alice_message}


def alices_usage(world: World) -> dict[str, Any]:
    return {"id": world.alice_usage}


@dataclass(frozen=True)
class Call:
    document: str
    variables: Variables = no_variables


class Audience(Enum):
    SIGNED_IN = "any signed-in user"
    ADMIN = "admins only"


class Expect(Enum):
    NOT_FOUND = "answers like a missing object"
    NOT_LISTED = "lists only the caller's own objects"


@dataclass(frozen=True)
class Trespass:
    """User B aims `call` at user A's objects."""

    call: Call
    expect: Expect = Expect.NOT_FOUND


@dataclass(frozen=True)
class Rule:
    call: Call  # representative; anonymous, audience and FORBIDDEN checks send it
    audience: Audience
    trespasses: tuple[Trespass, ...] = ()
    no_trespass_because: str = ""  # required when `trespasses` is empty


USER = Audience.SIGNED_IN
ADMIN = Audience.ADMIN

RULES: dict[str, Rule] = {
    "Query.node": Rule(
        Call(NODE, alices_session),
        USER,
        trespasses=tuple(
            Trespass(Call(NODE, ids))
            for ids in (alices_session, alices_user, alices_turn, alices_message, alices_usage)
        ),
    ),
    "Query.me": Rule(Call(ME), USER, no_trespass_because="answers only about the caller"),
    "Query.rateLimit": Rule(
        Call(RATE_LIMIT), USER, no_trespass_because="answers only about the caller's operation"
    ),
    "Query.users": Rule(Call(USERS), ADMIN, no_trespass_because="admins only"),
    "Query.agents": Rule(Call(AGENTS), USER, no_trespass_because="the catalog is shared"),
    "Query.models": Rule(Call(MODELS), USER, no_trespass_because="the catalog is shared"),
    "Query.session": Rule(
        Call(SESSION, alices_session), USER, trespasses=(Trespass(Call(SESSION, alices_session)),)
    ),
    "Query.sessions": Rule(
        Call(SESSIONS), USER, trespasses=(Trespass(Call(SESSIONS), Expect.NOT_LISTED),)
    ),
    "Mutation.createSession": Rule(
        Call(CREATE_SESSION), USER, no_trespass_because="creates a session owned by the caller"
    ),
    "Mutation.updateSession": Rule(
        Call(UPDATE_SESSION, alices_session),
        USER,
        trespasses=(Trespass(Call(UPDATE_SESSION, alices_session)),),
    ),
    "Mutation.deleteSession": Rule(
        Call(DELETE_SESSION, alices_session),
        USER,
        trespasses=(Trespass(Call(DELETE_SESSION, alices_session)),),
    ),
    "Query.turn": Rule(
        Call(TURN, alices_turn), USER, trespasses=(Trespass(Call(TURN, alices_turn)),)
    ),
    "Mutation.runTurn": Rule(
        Call(RUN_TURN, alices_session),
        USER,
        trespasses=(Trespass(Call(RUN_TURN, alices_session)),),
    ),
    "Mutation.cancelTurn": Rule(
        Call(CANCEL_TURN, alices_turn),
        USER,
        trespasses=(Trespass(Call(CANCEL_TURN, alices_turn)),),
    ),
    "Mutation.upsertAgent": Rule(Call(UPSERT_AGENT), ADMIN, no_trespass_because="admins only"),
    "Mutation.upsertModel": Rule(Call(UPSERT_MODEL), ADMIN, no_trespass_because="admins only"),
    "Mutation.createUser": Rule(Call(CREATE_USER), ADMIN, no_trespass_because="admins only"),
    "Mutation.issueToken": Rule(
        Call(ISSUE_TOKEN, alices_user), USER, trespasses=(Trespass(Call(ISSUE_TOKEN, alices_user)),)
    ),
    "Mutation.revokeTokens": Rule(
        Call(REVOKE_TOKENS, alices_user),
        USER,
        trespasses=(Trespass(Call(REVOKE_TOKENS, alices_user)),),
    ),
    "Mutation.setUserBudget": Rule(
        Call(SET_BUDGET, alices_user), ADMIN, no_trespass_because="admins only"
    ),
    "Query.myUsage": Rule(Call(MY_USAGE), USER, no_trespass_because="sums only the caller's rows"),
    "Query.costReport": Rule(Call(COST_REPORT), ADMIN, no_trespass_because="admins only"),
    "Subscription.turnProgress": Rule(
        Call(TURN_PROGRESS, alices_turn),
        USER,
        trespasses=(Trespass(Call(TURN_PROGRESS, alices_turn)),),
    ),
    "Subscription.sessionEvents": Rule(
        Call(SESSION_EVENTS, alices_session),
        USER,
        trespasses=(Trespass(Call(SESSION_EVENTS, alices_session)),),
    ),
}


# --- the table against the schema ------------------------------------------------------------


def root_fields() -> dict[str, GraphQLField]:
    schema = build_sdl_schema(build_schema().as_str())
    roots = (schema.query_type, schema.mutation_type, schema.subscription_type)
    return {
        f"{root.name}.{name}": definition
        for root in roots
        if root is not None
        for name, definition in root.fields.items()
    }


def takes_an_id(definition: GraphQLField) -> bool:
    """An `ID` argument, or an input object with an `ID` field (e.g. UpdateSessionInput.id)."""

    def is_id(named: GraphQLNamedType) -> bool:
        if isinstance(named, GraphQLInputObjectType):
            return any(get_named_type(f.type).name == "ID" for f in named.fields.values())
        return named.name == "ID"

    return any(is_id(get_named_type(arg.type)) for arg in definition.args.values())


def test_every_root_field_has_exactly_one_row() -> None:
    fields = set(root_fields())

    assert sorted(fields - RULES.keys()) == [], "add a row to RULES for each new field"
    assert sorted(RULES.keys() - fields) == [], "remove rows of fields that no longer exist"


def test_every_row_decides_about_other_users_objects() -> None:
    fields = root_fields()
    for name, rule in RULES.items():
        assert rule.trespasses or rule.no_trespass_because, f"{name}: trespasses or a reason"
        if rule.audience is USER and takes_an_id(fields[name]):
            assert rule.trespasses, f"{name} takes an id: prove B cannot reach A's object with it"


# --- fixtures and helpers --------------------------------------------------------------------


@pytest.fixture
async def world(gql: GraphQL, admin: Actor, alice: Actor, bob: Actor) -> World:
    async def own_session(actor: Actor, title: str) -> str:
        body = await gql(CREATE_OWN, {"title": title}, as_=actor)
        assert "errors" not in body, body
        session_id: str = body["data"]["createSession"]["id"]
        return session_id

    alice_session = await own_session(alice, ALICE_TITLE)
    body = await gql(RUN_OWN, {"id": alice_session, "message": ALICE_MESSAGE}, as_=alice)
    assert body["data"]["runTurn"]["status"] == "COMPLETED", body
    turn = body["data"]["runTurn"]
    (message,) = turn["messages"]
    return World(
        admin=admin,
        alice=alice,
        bob=bob,
        alice_session=alice_session,
        bob_session=await own_session(bob, BOB_TITLE),
        alice_turn=turn["id"],
        alice_message=message["id"],
        alice_usage=message["usage"][0]["id"],
    )


async def snapshot(database: Database) -> dict[str, list[str]]:
    """Every row of every table, to prove a refused call wrote nothing."""
    async with database.reads() as session:
        return {
            table.name: sorted(repr(tuple(row)) for row in await session.execute(select(table)))
            for table in Base.metadata.sorted_tables
        }


async def send(gql: GraphQL, call: Call, world: World, as_: Actor | None) -> dict[str, Any]:
    if call.document.lstrip().startswith("subscription"):
        return await subscribe_over_http(gql, call.document, call.variables(world), as_)
    return await gql(call.document, call.variables(world), as_=as_)


# A live subscription that stays silent this long counts as served (nothing was refused).
QUIET_SECONDS = 1.0


async def subscribe_over_http(
    gql: GraphQL, document: str, variables: dict[str, Any], as_: Actor | None
) -> dict[str, Any]:
    """Sends a subscription over HTTP multipart (the transport that shares the HTTP context);
    returns the last payload's data and every payload's errors, like one response."""
    headers = {"Accept": "multipart/mixed;subscriptionSpec=1.0"}
    if as_ is not None:
        headers["Authorization"] = f"Bearer {as_.token}"
    try:
        async with asyncio.timeout(QUIET_SECONDS):
            response = await gql.client.post(
                "/graphql", json={"query": document, "variables": variables}, headers=headers
            )
    except TimeoutError:
        return {"data": None}  # open, live and silent: served
    if not response.headers.get("content-type", "").startswith("multipart/"):
        refused: dict[str, Any] = response.json()  # refused before streaming (e.g. a 401)
        return refused
    body: dict[str, Any] = {"data": None}
    errors: list[Any] = []
    for part in response.text.split("--graphql"):
        _, _, content = part.partition("\r\n\r\n")
        if not content.strip():
            continue
        decoded = json.loads(content)
        payload = decoded.get("payload", decoded)  # a bare `{}` is a heartbeat
        if "data" in payload:
            body["data"] = payload["data"]
        errors.extend(payload.get("errors", []))
    if errors:
        body["errors"] = errors
    return body


async def assert_alice_intact(gql: GraphQL, world: World) -> None:
    body = await gql(SESSION, {"id": world.alice_session}, as_=world.alice)
    assert "errors" not in body, body  # her token still works, her session is still hers
    assert body["data"]["session"] == {"id": world.alice_session, "title": ALICE_TITLE}


# --- the checks ------------------------------------------------------------------------------


async def assert_refused(
    gql: GraphQL, database: Database, world: World, call: Call, as_: Actor | None, code: str
) -> None:
    before = await snapshot(database)

    body = await send(gql, call, world, as_=as_)

    assert error_codes(body) == [code], body
    assert await snapshot(database) == before
    await assert_alice_intact(gql, world)


async def assert_anonymous_refused(
    gql: GraphQL, database: Database, world: World, call: Call
) -> None:
    before = await snapshot(database)
    headers = {}
    if call.document.lstrip().startswith("subscription"):
        headers["Accept"] = "multipart/mixed;subscriptionSpec=1.0"

    response = await gql.client.post(
        "/graphql",
        json={"query": call.document, "variables": call.variables(world)},
        headers=headers,
    )

    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    body = response.json()
    assert "data" not in body
    assert error_codes(body) == ["UNAUTHENTICATED"], body
    assert await snapshot(database) == before
    await assert_alice_intact(gql, world)


async def assert_out_of_reach(
    gql: GraphQL, database: Database, world: World, trespass: Trespass
) -> None:
    before = await snapshot(database)

    body = await send(gql, trespass.call, world, as_=world.bob)

    for secret in (ALICE_TITLE, ALICE_MESSAGE, world.alice.handle):
        assert secret not in json.dumps(body), body
    if trespass.expect is Expect.NOT_FOUND:
        assert error_codes(body) == ["NOT_FOUND"], body
    else:
        assert "errors" not in body, body
        listed = body["data"]["sessions"]
        assert [edge["node"]["id"] for edge in listed["edges"]] == [world.bob_session]
        assert listed["totalCount"] == 1
    assert await snapshot(database) == before
    await assert_alice_intact(gql, world)


@pytest.mark.parametrize("name", RULES)
async def test_each_root_field_keeps_to_its_row(
    gql: GraphQL, world: World, database: Database, name: str
) -> None:
    rule = RULES[name]

    # anonymous callers: 401 UNAUTHENTICATED before anything runs, nothing written
    await assert_anonymous_refused(gql, database, world, rule.call)

    # a normal user on an admin-only field: FORBIDDEN, nothing written
    if rule.audience is ADMIN:
        await assert_refused(gql, database, world, rule.call, world.bob, "FORBIDDEN")

    # B on A's objects: as if they did not exist, nothing written, A's data intact
    for trespass in rule.trespasses:
        await assert_out_of_reach(gql, database, world, trespass)

    # and the very same call serves its audience (the owner of the objects it names, or an
    # admin): the refusals above are about who asks, not about a broken document
    caller = world.admin if rule.audience is ADMIN else world.alice
    served = await send(gql, rule.call, world, as_=caller)
    assert "errors" not in served, served

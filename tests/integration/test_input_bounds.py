"""Input beyond what the database holds or the API hands out is refused as BAD_USER_INPUT (or
NOT_FOUND, FORBIDDEN), never an unexpected error: amounts beyond a BIGINT of nano-USD, a budget
mutation without its amount, other spellings of an id, instants outside the calendar, text
longer than its column, hand-made cursors, and the admin-only `agents(includeDisabled)`. Every
test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
from decimal import Decimal

import pytest

from domain.services import users as user_service
from graph.ids import global_id, parse_global_id
from infra.db.engine import Database
from infra.db.uow import SqlUnitOfWork
from tests.conftest import Actor, GraphQL, error_codes
from tests.integration.test_input_abuse import create_session, only_error

CREATE_USER = "mutation($input: CreateUserInput!) { createUser(input: $input) { user { id } } }"
UPSERT_MODEL = "mutation($input: ModelInput!) { upsertModel(input: $input) { alias } }"
BUDGET = "query($id: ID!) { node(id: $id) { ... on User { monthlyBudgetUsd } } }"
SESSION = "query($id: ID!) { session(id: $id) { id title } }"
NODE = "query($id: ID!) { node(id: $id) { id } }"
AGENTS = "query($all: Boolean!) { agents(includeDisabled: $all) { key enabled } }"
MY_USAGE = "query($from: DateTime, $to: DateTime) { myUsage(from: $from, to: $to) { calls } }"


# --- amounts beyond what can be stored --------------------------------------------------------


async def test_a_budget_beyond_the_maximum_is_refused_naming_it(
    gql: GraphQL, admin: Actor, alice: Actor
) -> None:
    # when
    created = await gql(
        CREATE_USER, {"input": {"handle": "eve", "monthlyBudgetUsd": "1e20"}}, as_=admin
    )
    set_ = await gql(
        'mutation($id: ID!) { setUserBudget(userId: $id, monthlyBudgetUsd: "1e20") { id } }',
        {"id": alice.id},
        as_=admin,
    )

    # then
    for body in (created, set_):
        error = only_error(body)
        assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "monthlyBudgetUsd"}
        assert error["message"] == "monthlyBudgetUsd must be at most 1000000000"
    assert (await gql(BUDGET, {"id": alice.id}, as_=admin))["data"]["node"] == {
        "monthlyBudgetUsd": None
    }


async def test_the_largest_budget_is_accepted(gql: GraphQL, admin: Actor) -> None:
    body = await gql(
        "mutation($input: CreateUserInput!) "
        "{ createUser(input: $input) { user { monthlyBudgetUsd } } }",
        {"input": {"handle": "eve", "monthlyBudgetUsd": "1000000000.000000000"}},
        as_=admin,
    )

    assert body == {"data": {"createUser": {"user": {"monthlyBudgetUsd": "1000000000"}}}}


@pytest.mark.parametrize("amount", ["1e20", "1e999999999", "-1e20"])
async def test_a_price_beyond_the_maximum_is_refused(
    gql: GraphQL, admin: Actor, amount: str
) -> None:
    model = {
        "alias": "tiny",
        "provider": "scripted",
        "inputUsdPerMillionTokens": "1",
        "outputUsdPerMillionTokens": amount,
        "maxOutputTokens": 512,
        "contextWindow": 8192,
    }

    error = only_error(await gql(UPSERT_MODEL, {"input": model}, as_=admin))

    assert error["extensions"] == {
        "code": "BAD_USER_INPUT",
        "field": "outputUsdPerMillionTokens",
    }
    assert ("1000000" in error["message"]) or ("negative" in error["message"])


# --- setUserBudget: the amount is required, null removes ------------------------------------


async def user_with_a_budget_of_5(database: Database) -> str:
    """Creates eve with a monthly budget of 5 USD; returns her User id."""
    issued = await user_service.create_user(
        SqlUnitOfWork(database.writes),
        user_service.CreateUser(handle="eve", monthly_budget_usd=Decimal(5)),
    )
    return global_id("User", issued.user.id)


async def test_set_user_budget_without_an_amount_is_refused_and_changes_nothing(
    gql: GraphQL, admin: Actor, database: Database
) -> None:
    # given
    eve = await user_with_a_budget_of_5(database)

    # when
    body = await gql(
        "mutation($id: ID!) { setUserBudget(userId: $id) { id } }", {"id": eve}, as_=admin
    )

    # then
    error = only_error(body)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "monthlyBudgetUsd"}
    assert (await gql(BUDGET, {"id": eve}, as_=admin))["data"]["node"] == {"monthlyBudgetUsd": "5"}


async def test_set_user_budget_with_an_explicit_null_removes_the_budget(
    gql: GraphQL, admin: Actor, database: Database
) -> None:
    # given
    eve = await user_with_a_budget_of_5(database)

    # when: null as a literal, and through a variable
    literal = await gql(
        "mutation($id: ID!) "
        "{ setUserBudget(userId: $id, monthlyBudgetUsd: null) { monthlyBudgetUsd } }",
        {"id": eve},
        as_=admin,
    )
    variable = await gql(
        "mutation($id: ID!, $b: Decimal) { setUserBudget(userId: $id, monthlyBudgetUsd: $b) "
        "{ monthlyBudgetUsd } }",
        {"id": eve, "b": None},
        as_=admin,
    )

    # then
    for body in (literal, variable):
        assert body == {"data": {"setUserBudget": {"monthlyBudgetUsd": None}}}


# --- ids: one spelling each ------------------------------------------------------------------


def respelled(raw_id: str, spell: str) -> str:
    """The same object's id with its uuid spelled another way `uuid.UUID` also reads."""
    type_name, value = parse_global_id(raw_id)
    node_id = {
        "upper": str(value).upper(),
        "braced": "{" + str(value) + "}",
        "undashed": value.hex,
        "urn": value.urn,
    }[spell]
    return base64.b64encode(f"{type_name}:{node_id}".encode()).decode()


@pytest.mark.parametrize("spell", ["upper", "braced", "undashed", "urn"])
async def test_another_spelling_of_an_id_is_not_found(
    gql: GraphQL, alice: Actor, spell: str
) -> None:
    # given
    session_id = await create_session(gql, alice)
    other = respelled(session_id, spell)
    assert other != session_id

    # when
    by_session = await gql(SESSION, {"id": other}, as_=alice)
    by_node = await gql(NODE, {"id": other}, as_=alice)
    canonical = await gql(SESSION, {"id": session_id}, as_=alice)

    # then
    assert error_codes(by_session) == ["NOT_FOUND"]
    assert error_codes(by_node) == ["NOT_FOUND"]
    assert canonical["data"]["session"]["id"] == session_id


async def test_an_id_with_junk_in_its_base64_is_not_found(gql: GraphQL, alice: Actor) -> None:
    session_id = await create_session(gql, alice)

    body = await gql(SESSION, {"id": f"{session_id[:4]}*{session_id[4:]}"}, as_=alice)

    assert error_codes(body) == ["NOT_FOUND"]  # base64 decoding skips the "*"


# --- agents(includeDisabled) ---------------------------------------------------------------


async def test_disabled_agents_are_listed_for_admins_only(
    gql: GraphQL, admin: Actor, alice: Actor
) -> None:
    # when
    as_user = await gql(AGENTS, {"all": True}, as_=alice)
    as_admin = await gql(AGENTS, {"all": True}, as_=admin)
    enabled_only = await gql(AGENTS, {"all": False}, as_=alice)

    # then
    assert error_codes(as_user) == ["FORBIDDEN"]
    assert "errors" not in as_admin
    assert "errors" not in enabled_only


# --- instants at the ends of the calendar --------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("0001-01-01T00:00:00+01:00", None),  # before the first instant once in UTC
        (None, "9999-12-31T23:59:59-01:00"),  # after the last
    ],
)
async def test_instants_outside_the_calendar_are_refused(
    gql: GraphQL, alice: Actor, start: str | None, end: str | None
) -> None:
    body = await gql(MY_USAGE, {"from": start, "to": end}, as_=alice)

    error = only_error(body)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["field"] == ("from" if start else "to")


# --- text longer than its column ---------------------------------------------------------------


async def test_a_provider_model_longer_than_its_column_is_refused(
    gql: GraphQL, admin: Actor
) -> None:
    model = {
        "alias": "tiny",
        "provider": "scripted",
        "providerModel": "m" * 129,
        "maxOutputTokens": 512,
        "contextWindow": 8192,
    }

    error = only_error(await gql(UPSERT_MODEL, {"input": model}, as_=admin))

    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["message"] == "providerModel must be at most 128 characters"


# --- cursors that decode but name no position --------------------------------------------------

USERS_AFTER = "query($after: String) { users(after: $after) { totalCount } }"
TURNS_AFTER = (
    "query($id: ID!, $after: String) { session(id: $id) { turns(after: $after) { totalCount } } }"
)


def cursor(*parts: str) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "key",
    [
        ("2026-01-01T00:00:00", "5b0c5b0c-0000-4000-8000-000000000000"),  # no offset
        ("0001-01-01T00:00:00+01:00", "5b0c5b0c-0000-4000-8000-000000000000"),  # before year 1
        ("9999-12-31T23:59:59-01:00", "5b0c5b0c-0000-4000-8000-000000000000"),  # after 9999
    ],
    ids=["naive", "before-year-1", "after-9999"],
)
async def test_a_time_cursor_outside_the_calendar_or_without_offset_is_malformed(
    gql: GraphQL, admin: Actor, key: tuple[str, str]
) -> None:
    body = await gql(USERS_AFTER, {"after": cursor(*key)}, as_=admin)

    assert error_codes(body) == ["BAD_USER_INPUT"], body


@pytest.mark.parametrize("index", ["²", "99999999999999999999", "-1"], ids=["digit", "huge", "neg"])
async def test_an_index_cursor_beyond_any_index_is_malformed(
    gql: GraphQL, alice: Actor, index: str
) -> None:
    session_id = await create_session(gql, alice)

    body = await gql(TURNS_AFTER, {"id": session_id, "after": cursor(index)}, as_=alice)

    assert error_codes(body) == ["BAD_USER_INPUT"], body

"""Users through GraphQL: `me`, creating users, tokens (issue, revoke, storage), budgets and month
spend, the admin's `users` list, and malformed `Authorization` headers."""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from domain.enums import BillingCategory, CallKind, TokenSource
from domain.spend import month_start
from graph.ids import global_id, parse_global_id
from infra.db.engine import Database
from infra.db.models import ApiTokenRow, UsageRecordRow, UserRow
from tests.conftest import Actor, GraphQL, error_codes

ME = "{ me { id handle role monthlyBudgetUsd monthSpendUsd budgetRemainingUsd } }"
CREATE_USER = """
mutation($input: CreateUserInput!) {
  createUser(input: $input) { token user { id handle role monthlyBudgetUsd } }
}"""
ISSUE_TOKEN = "mutation($id: ID!) { issueToken(userId: $id) { token user { id handle } } }"
REVOKE_TOKENS = "mutation($id: ID!) { revokeTokens(userId: $id) }"
SET_BUDGET = """
mutation($id: ID!, $budget: Decimal) {
  setUserBudget(userId: $id, monthlyBudgetUsd: $budget) {
    handle monthlyBudgetUsd monthSpendUsd budgetRemainingUsd
  }
}"""
USERS = """
query($first: Int, $after: String) {
  users(first: $first, after: $after) {
    totalCount
    edges { cursor node { handle } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}"""

RANDOM_PART = re.compile(r"^pnt_[A-Za-z0-9_-]{43,}$")  # 256 bits, URL-safe base64


def as_token(token: str) -> Actor:
    """An actor the GraphQL helper can send a raw token for."""
    return Actor(id="", uuid=None, handle="", token=token)


async def count(database: Database, model: Any, *where: Any) -> int:
    async with database.reads() as session:
        query = select(func.count()).select_from(model).where(*where)
        return int(await session.scalar(query) or 0)


async def me(gql: GraphQL, actor: Actor) -> dict[str, Any]:
    return await gql(ME, as_=actor)


async def create_user(gql: GraphQL, admin: Actor, **input_: Any) -> dict[str, Any]:
    body = await gql(CREATE_USER, {"input": input_}, as_=admin)
    assert "errors" not in body, body
    created: dict[str, Any] = body["data"]["createUser"]
    return created


# --- me ---------------------------------------------------------------------------------------


async def test_me_describes_the_caller(gql: GraphQL, alice: Actor, bob: Actor) -> None:
    body = await me(gql, alice)

    assert body["data"]["me"] == {
        "id": alice.id,
        "handle": "alice",
        "role": "USER",
        "monthlyBudgetUsd": None,
        "monthSpendUsd": "0",
        "budgetRemainingUsd": None,
    }
    assert (await me(gql, bob))["data"]["me"]["handle"] == "bob"


# --- createUser and its token -----------------------------------------------------------------


async def test_admin_creates_a_user_whose_token_works(gql: GraphQL, admin: Actor) -> None:
    # when
    created = await create_user(gql, admin, handle="  Carol.Dev ", monthlyBudgetUsd="12.5")

    # then
    assert created["user"]["handle"] == "carol.dev"
    assert created["user"]["role"] == "USER"
    assert created["user"]["monthlyBudgetUsd"] == "12.5"
    token = created["token"]
    assert RANDOM_PART.match(token), token
    seen = (await me(gql, as_token(token)))["data"]["me"]
    assert seen["handle"] == "carol.dev"
    assert seen["id"] == created["user"]["id"]


async def test_created_admin_has_admin_rights(gql: GraphQL, admin: Actor) -> None:
    created = await create_user(gql, admin, handle="dana", role="ADMIN")

    body = await gql(USERS, {"first": 5}, as_=as_token(created["token"]))

    assert "errors" not in body, body
    assert body["data"]["users"]["totalCount"] == 2


async def test_only_the_tokens_sha256_is_stored(
    gql: GraphQL, admin: Actor, database: Database
) -> None:
    # given
    created = await create_user(gql, admin, handle="erin")
    token = created["token"]
    _, user_uuid = parse_global_id(created["user"]["id"])

    # when
    async with database.reads() as session:
        rows = (
            await session.execute(
                select(ApiTokenRow.__table__).where(ApiTokenRow.user_id == user_uuid)
            )
        ).all()

    # then
    assert len(rows) == 1
    row = rows[0]._mapping
    assert row["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    random_part = token.removeprefix("pnt_")
    for column, value in row.items():
        assert token not in str(value), column
        assert random_part not in str(value), column


async def test_every_token_is_new(gql: GraphQL, admin: Actor, alice: Actor) -> None:
    first = await create_user(gql, admin, handle="frank")
    second = await gql(ISSUE_TOKEN, {"id": first["user"]["id"]}, as_=admin)

    tokens = {first["token"], second["data"]["issueToken"]["token"], alice.token, admin.token}
    assert len(tokens) == 4


async def test_taken_handle_is_a_conflict_and_writes_nothing(
    gql: GraphQL, admin: Actor, alice: Actor, database: Database
) -> None:
    users, tokens = await count(database, UserRow), await count(database, ApiTokenRow)

    for handle in ("alice", "  ALICE "):
        body = await gql(CREATE_USER, {"input": {"handle": handle}}, as_=admin)
        assert error_codes(body) == ["CONFLICT"], body

    assert await count(database, UserRow) == users
    assert await count(database, ApiTokenRow) == tokens


BAD_CREATE_INPUTS = [
    {"handle": "a"},
    {"handle": ""},
    {"handle": "-dash"},
    {"handle": "has space"},
    {"handle": "bang!"},
    {"handle": "x" * 65},
    {"handle": "greta", "monthlyBudgetUsd": "1.0000000001"},
    {"handle": "greta", "monthlyBudgetUsd": "-1"},
    {"handle": "greta", "monthlyBudgetUsd": "-0.000000001"},
    {"handle": "greta", "monthlyBudgetUsd": "NaN"},
]


async def test_bad_create_user_input_is_coded_and_writes_nothing(
    gql: GraphQL, admin: Actor, database: Database
) -> None:
    users, tokens = await count(database, UserRow), await count(database, ApiTokenRow)

    for input_ in BAD_CREATE_INPUTS:
        body = await gql(CREATE_USER, {"input": input_}, as_=admin)
        assert error_codes(body) == ["BAD_USER_INPUT"], (input_, body)

    assert await count(database, UserRow) == users
    assert await count(database, ApiTokenRow) == tokens


# --- issueToken / revokeTokens ----------------------------------------------------------------


async def test_a_user_issues_itself_a_second_working_token(
    gql: GraphQL, alice: Actor, database: Database
) -> None:
    body = await gql(ISSUE_TOKEN, {"id": alice.id}, as_=alice)

    issued = body["data"]["issueToken"]
    assert issued["user"] == {"id": alice.id, "handle": "alice"}
    assert RANDOM_PART.match(issued["token"])
    assert (await me(gql, as_token(issued["token"])))["data"]["me"]["handle"] == "alice"
    assert (await me(gql, alice))["data"]["me"]["handle"] == "alice"  # the first one still works
    assert await count(database, ApiTokenRow, ApiTokenRow.user_id == alice.uuid) == 2


async def test_a_user_cannot_issue_a_token_for_someone_else(
    gql: GraphQL, alice: Actor, bob: Actor, database: Database
) -> None:
    for target in (alice.id, global_id("User", uuid.uuid4())):
        body = await gql(ISSUE_TOKEN, {"id": target}, as_=bob)
        assert error_codes(body) == ["NOT_FOUND"], body

    assert await count(database, ApiTokenRow, ApiTokenRow.user_id == alice.uuid) == 1


async def test_an_admin_issues_a_token_for_another_user(
    gql: GraphQL, admin: Actor, alice: Actor
) -> None:
    body = await gql(ISSUE_TOKEN, {"id": alice.id}, as_=admin)

    token = body["data"]["issueToken"]["token"]
    assert (await me(gql, as_token(token)))["data"]["me"]["id"] == alice.id


async def test_revoking_stops_every_token_of_the_user_and_counts_them(
    gql: GraphQL, admin: Actor, alice: Actor, bob: Actor
) -> None:
    # given: alice holds two tokens
    second = as_token(
        (await gql(ISSUE_TOKEN, {"id": alice.id}, as_=alice))["data"]["issueToken"]["token"]
    )

    # when
    body = await gql(REVOKE_TOKENS, {"id": alice.id}, as_=alice)

    # then
    assert body == {"data": {"revokeTokens": 2}}
    for token in (alice, second):
        assert error_codes(await me(gql, token)) == ["UNAUTHENTICATED"]
    assert (await me(gql, bob))["data"]["me"]["handle"] == "bob"
    again = await gql(REVOKE_TOKENS, {"id": alice.id}, as_=admin)
    assert again == {"data": {"revokeTokens": 0}}
    fresh = await gql(ISSUE_TOKEN, {"id": alice.id}, as_=admin)
    assert (await me(gql, as_token(fresh["data"]["issueToken"]["token"])))["data"]["me"]


async def test_a_user_cannot_revoke_someone_elses_tokens(
    gql: GraphQL, alice: Actor, bob: Actor
) -> None:
    body = await gql(REVOKE_TOKENS, {"id": alice.id}, as_=bob)

    assert error_codes(body) == ["NOT_FOUND"], body
    assert (await me(gql, alice))["data"]["me"]["handle"] == "alice"


# --- budgets and month spend ------------------------------------------------------------------


async def add_usage(
    database: Database,
    user: Actor,
    cost_nano: int,
    category: BillingCategory = BillingCategory.USER_BILLABLE,
    at: datetime | None = None,
) -> None:
    async with database.writes() as session:
        session.add(
            UsageRecordRow(
                id=uuid.uuid4(),
                created_at=at or datetime.now(UTC),
                user_id=user.uuid,
                call_kind=CallKind.AGENT_RESPONSE,
                billing_category=category,
                provider="scripted",
                model_alias="qwen-plus",
                token_source=TokenSource.PROVIDER,
                prompt_tokens=10,
                completion_tokens=10,
                cost_nano=cost_nano,
                succeeded=True,
            )
        )
        await session.commit()


async def test_admin_sets_and_clears_a_budget(gql: GraphQL, admin: Actor, alice: Actor) -> None:
    body = await gql(SET_BUDGET, {"id": alice.id, "budget": "25.5"}, as_=admin)
    assert body["data"]["setUserBudget"] == {
        "handle": "alice",
        "monthlyBudgetUsd": "25.5",
        "monthSpendUsd": "0",
        "budgetRemainingUsd": "25.5",
    }
    assert (await me(gql, alice))["data"]["me"]["monthlyBudgetUsd"] == "25.5"

    cleared = await gql(SET_BUDGET, {"id": alice.id, "budget": None}, as_=admin)
    assert cleared["data"]["setUserBudget"]["monthlyBudgetUsd"] is None
    assert cleared["data"]["setUserBudget"]["budgetRemainingUsd"] is None
    assert (await me(gql, alice))["data"]["me"]["monthlyBudgetUsd"] is None


async def test_bad_budget_is_bad_input_and_keeps_the_old_one(
    gql: GraphQL, admin: Actor, alice: Actor
) -> None:
    await gql(SET_BUDGET, {"id": alice.id, "budget": "3"}, as_=admin)

    for budget in ("1.0000000001", "-5", "Infinity"):
        body = await gql(SET_BUDGET, {"id": alice.id, "budget": budget}, as_=admin)
        assert error_codes(body) == ["BAD_USER_INPUT"], (budget, body)

    assert (await me(gql, alice))["data"]["me"]["monthlyBudgetUsd"] == "3"


async def test_budget_of_an_unknown_user_is_not_found(gql: GraphQL, admin: Actor) -> None:
    body = await gql(SET_BUDGET, {"id": global_id("User", uuid.uuid4()), "budget": "1"}, as_=admin)

    assert error_codes(body) == ["NOT_FOUND"], body


async def test_remaining_budget_counts_only_this_months_billable_spend(
    gql: GraphQL, database: Database, admin: Actor, alice: Actor, bob: Actor
) -> None:
    # given
    await gql(SET_BUDGET, {"id": alice.id, "budget": "10.5"}, as_=admin)
    last_month = month_start(datetime.now(UTC)) - timedelta(microseconds=1)
    await add_usage(database, alice, 1_234_567_891)  # counts
    await add_usage(database, alice, 500_000_000)  # counts
    await add_usage(database, alice, 3_000_000_000, BillingCategory.SYSTEM_OVERHEAD)
    await add_usage(database, alice, 4_000_000_000, BillingCategory.UNMETERED)
    await add_usage(database, alice, 5_000_000_000, at=last_month)
    await add_usage(database, bob, 7_000_000_000)

    # when
    body = await me(gql, alice)

    # then
    assert body["data"]["me"]["monthSpendUsd"] == "1.734567891"
    assert body["data"]["me"]["budgetRemainingUsd"] == "8.765432109"
    assert (await me(gql, bob))["data"]["me"]["monthSpendUsd"] == "7"


async def test_remaining_budget_does_not_go_below_zero(
    gql: GraphQL, database: Database, admin: Actor, alice: Actor
) -> None:
    await gql(SET_BUDGET, {"id": alice.id, "budget": "1.5"}, as_=admin)
    await add_usage(database, alice, 2_000_000_001)

    body = await me(gql, alice)

    assert body["data"]["me"]["monthSpendUsd"] == "2.000000001"
    assert body["data"]["me"]["budgetRemainingUsd"] == "0"


async def test_whole_dollar_amounts_are_plain_decimal_strings(
    gql: GraphQL, database: Database, admin: Actor, alice: Actor
) -> None:
    await gql(SET_BUDGET, {"id": alice.id, "budget": "100"}, as_=admin)
    await add_usage(database, alice, 10_000_000_000)

    body = await me(gql, alice)

    assert body["data"]["me"]["monthlyBudgetUsd"] == "100"  # not "1E+2"
    assert body["data"]["me"]["monthSpendUsd"] == "10"  # not "1E+1"
    assert body["data"]["me"]["budgetRemainingUsd"] == "90"

    tiny = await gql(SET_BUDGET, {"id": alice.id, "budget": "10.000000001"}, as_=admin)
    assert tiny["data"]["setUserBudget"]["budgetRemainingUsd"] == "0.000000001"  # not "1E-9"


# --- the admin's users list -------------------------------------------------------------------


async def test_admins_page_through_users_oldest_first(gql: GraphQL, admin: Actor) -> None:
    # given: root (the admin), then five more, created in order
    for number in range(5):
        await create_user(gql, admin, handle=f"user{number}")
    expected = ["root"] + [f"user{number}" for number in range(5)]

    # when
    handles: list[str] = []
    after = None
    pages = 0
    while True:
        body = await gql(USERS, {"first": 4, "after": after}, as_=admin)
        page = body["data"]["users"]
        assert page["totalCount"] == 6
        assert page["pageInfo"]["hasPreviousPage"] is (after is not None)
        handles += [edge["node"]["handle"] for edge in page["edges"]]
        pages += 1
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]

    # then
    assert handles == expected
    assert pages == 2


async def test_bad_users_page_arguments_are_bad_input(gql: GraphQL, admin: Actor) -> None:
    for variables in ({"first": 101}, {"first": -1}, {"after": "!!"}, {"after": "WyJ4Il0"}):
        body = await gql(USERS, variables, as_=admin)
        assert error_codes(body) == ["BAD_USER_INPUT"], (variables, body)


# --- the Authorization header -----------------------------------------------------------------


MALFORMED_HEADERS = {
    "no scheme": "{token}",
    "wrong scheme": "Basic {token}",
    "other scheme": "Token {token}",
    "scheme only": "Bearer",
    "garbage": "Bearer garbage",
    "well-formed, unknown": "Bearer pnt_" + "A" * 43,
    "altered": "Bearer {token}x",
    "wrong case": "Bearer {upper}",
    "two tokens": "Bearer {token} {token}",
}


async def post_with_authorization(gql: GraphQL, query: str, header: str) -> dict[str, Any]:
    response = await gql.client.post(
        "/graphql", json={"query": query}, headers={"Authorization": header}
    )
    body: dict[str, Any] = response.json()
    return body


async def test_malformed_authorization_is_unauthenticated(gql: GraphQL, alice: Actor) -> None:
    for case, header in MALFORMED_HEADERS.items():
        value = header.format(token=alice.token, upper=alice.token.upper())
        for query in (ME, "{ sessions { totalCount } }"):
            body = await post_with_authorization(gql, query, value)
            assert error_codes(body) == ["UNAUTHENTICATED"], (case, query, body)


async def test_well_formed_authorization_is_accepted(gql: GraphQL, alice: Actor) -> None:
    for header in ("Bearer {token}", "bearer {token}", "  Bearer   {token}  "):
        body = await post_with_authorization(gql, ME, header.format(token=alice.token))
        assert body["data"]["me"]["handle"] == "alice", (header, body)

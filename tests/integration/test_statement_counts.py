"""Statement counts of list fields: a page of 1 and a page of 50 run the same number of SQL
statements, because every relation goes through a per-request dataloader (no N+1).

Statements are counted with SQLAlchemy's `before_cursor_execute` event on the engine of the *app
under test* (`app.state.database`): the `database` fixture is a second engine on the same database,
used here only to set data up, so the two never mix. The counter is reset right before the measured
request, after a warm-up request, and it keeps only statements run under the measured request's id
(`X-Request-ID`, a context variable that dataloader batches inherit): the app's background turn
sweeper shares the engine and must not be counted if it happens to wake up mid-request.

Left out of the count: `BEGIN` (and `PRAGMA`, should one ever go through SQLAlchemy). Our SQLite
engine turns the driver's implicit transactions off and issues `BEGIN` itself at the start of
every short session (infra/db/engine.py), while asyncpg opens PostgreSQL transactions without a
statement event. They are transaction bookkeeping, one per session, not queries, and counting them
would make the numbers differ by backend. PRAGMAs run on the raw connection at connect time and
never reach the event; they are filtered only to keep the count about queries if that changes.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

from domain.catalog import AgentSpec
from domain.services import catalog as catalog_service
from domain.services import sessions as session_service
from domain.services import users as user_service
from infra.catalog.loader import load_catalog
from infra.db.engine import Database
from infra.db.uow import SqlUnitOfWork
from infra.settings import DEFAULT_CATALOG
from tests.conftest import Actor, GraphQL
from tests.statement_log import StatementLog, measure

SESSIONS_PAGE = """
query($first: Int!) {
  sessions(first: $first) {
    edges { node {
      title
      owner { handle monthSpendUsd budgetRemainingUsd }
      agents { key model { alias price { inputUsdPerMillionTokens } } systemPrompt }
    } }
    totalCount
    pageInfo { hasNextPage }
  }
}"""
USERS_PAGE = """
query($first: Int!) {
  users(first: $first) {
    edges { node { handle monthlyBudgetUsd monthSpendUsd budgetRemainingUsd } }
    totalCount
    pageInfo { hasNextPage }
  }
}"""
AGENTS = "{ agents { key model { alias } } }"

BIG_PAGE = 50


async def _user_record(database: Database, actor: Actor) -> Any:
    async with SqlUnitOfWork(database.writes) as uow:
        return await uow.users.get(actor.uuid)


async def test_sessions_page_of_1_and_of_50_run_the_same_statements(
    gql: GraphQL, database: Database, alice: Actor, statements: StatementLog
) -> None:
    # given: 51 sessions, each with the default roster of 4 agents on 4 models; a budget
    await user_service.set_user_budget(SqlUnitOfWork(database.writes), alice.uuid, Decimal(5))
    owner = await _user_record(database, alice)
    limits = session_service.SessionLimits(max_title_length=200, max_roster_size=12)
    for number in range(BIG_PAGE + 1):
        await session_service.create_session(
            SqlUnitOfWork(database.writes),
            owner,
            session_service.CreateSession(title=f"s{number}"),
            limits,
        )
    await gql(SESSIONS_PAGE, {"first": 1}, as_=alice)  # warm-up

    # when
    one, one_data = await measure(gql, statements, SESSIONS_PAGE, {"first": 1}, alice)
    many, many_data = await measure(gql, statements, SESSIONS_PAGE, {"first": BIG_PAGE}, alice)

    # then
    assert len(one_data["sessions"]["edges"]) == 1
    assert len(many_data["sessions"]["edges"]) == BIG_PAGE
    assert all(len(edge["node"]["agents"]) == 4 for edge in many_data["sessions"]["edges"])
    assert len(many) == len(one), "\n\n".join(many)
    # token lookup, page rows, total count, owners, month spend, rosters, agents, models
    assert len(one) == 8, "\n\n".join(one)


async def test_users_page_of_1_and_of_50_run_the_same_statements(
    gql: GraphQL, database: Database, admin: Actor, statements: StatementLog
) -> None:
    # given: 50 users besides the admin, every other one with a budget
    for number in range(BIG_PAGE):
        budget = Decimal(number) if number % 2 else None
        await user_service.create_user(
            SqlUnitOfWork(database.writes),
            user_service.CreateUser(handle=f"user{number:02}", monthly_budget_usd=budget),
        )
    await gql(USERS_PAGE, {"first": 1}, as_=admin)  # warm-up

    # when
    one, one_data = await measure(gql, statements, USERS_PAGE, {"first": 1}, admin)
    many, many_data = await measure(gql, statements, USERS_PAGE, {"first": BIG_PAGE}, admin)

    # then
    assert len(one_data["users"]["edges"]) == 1
    assert len(many_data["users"]["edges"]) == BIG_PAGE
    assert len(many) == len(one), "\n\n".join(many)
    # token lookup, page rows, total count, month spend
    assert len(one) == 4, "\n\n".join(one)


async def test_agents_list_of_1_and_of_many_run_the_same_statements(
    gql: GraphQL, database: Database, alice: Actor, statements: StatementLog
) -> None:
    # given: one enabled agent first; then 24 enabled agents spread over all 6 models
    catalog = load_catalog(DEFAULT_CATALOG).spec
    for spec in catalog.agents[1:]:
        await upsert_agent(database, replace(spec, enabled=False))
    await gql(AGENTS, as_=alice)  # warm-up

    one, one_data = await measure(gql, statements, AGENTS, {}, alice)

    for spec in catalog.agents[1:]:
        await upsert_agent(database, spec)
    for number in range(20):
        model = catalog.models[number % len(catalog.models)]
        await upsert_agent(
            database,
            AgentSpec(
                key=f"extra{number}",
                name=f"Extra {number}",
                description="",
                system_prompt="You help.",
                model_alias=model.alias,
            ),
        )

    # when
    many, many_data = await measure(gql, statements, AGENTS, {}, alice)

    # then
    assert len(one_data["agents"]) == 1
    assert len(many_data["agents"]) == 24
    assert len({agent["model"]["alias"] for agent in many_data["agents"]}) == 6
    assert len(many) == len(one), "\n\n".join(many)
    # token lookup, agents, models
    assert len(one) == 3, "\n\n".join(one)


async def upsert_agent(database: Database, spec: AgentSpec) -> None:
    await catalog_service.upsert_agent(SqlUnitOfWork(database.writes), spec)

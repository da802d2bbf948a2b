"""`myUsage` (the caller's own rows, the current UTC month by default) and `Session.usage`
(every row of a session, batched per page: a page of 1 and of 50 run the same statements)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from domain.enums import BillingCategory
from domain.services import sessions as session_service
from domain.spend import month_start
from graph.ids import uuid_of
from infra.db.engine import Database
from infra.db.uow import SqlUnitOfWork
from tests.conftest import Actor, GraphQL, error_codes
from tests.integration.test_cost_report import (
    TOTALS,
    decoded,
    insert_usage,
    oracle_totals,
    usage,
)
from tests.statement_log import StatementLog, measure

MY_USAGE = f"""
query($from: DateTime, $to: DateTime) {{ myUsage(from: $from, to: $to) {{ {TOTALS} }} }}"""
ME = "{ me { monthSpendUsd } }"
SESSION = f"query($id: ID!) {{ session(id: $id) {{ usage {{ {TOTALS} }} }} }}"
SESSIONS_PAGE = f"""
query($first: Int!) {{
  sessions(first: $first) {{ edges {{ node {{ title usage {{ {TOTALS} }} }} }} }}
}}"""
BIG_PAGE = 50
T0 = datetime(2026, 3, 2, 12, tzinfo=UTC)


async def my_usage(gql: GraphQL, actor: Actor, **range_: str) -> dict[str, Any]:
    body = await gql(MY_USAGE, range_, as_=actor)
    assert "errors" not in body, body
    return decoded(body["data"]["myUsage"])


async def new_session(gql: GraphQL, actor: Actor, title: str = "s") -> str:
    body = await gql(
        "mutation($t: String) { createSession(input: {title: $t}) { id } }", {"t": title}, as_=actor
    )
    assert "errors" not in body, body
    session_id: str = body["data"]["createSession"]["id"]
    return session_id


# --- myUsage -------------------------------------------------------------------------------------


async def test_my_usage_counts_only_the_callers_rows(
    gql: GraphQL, database: Database, admin: Actor, alice: Actor, bob: Actor
) -> None:
    # given
    mine = [usage(alice, cost_nano=7, position=1), usage(alice, cost_nano=11, position=2)]
    theirs = [usage(bob, cost_nano=1_000, prompt_tokens=9, position=n) for n in range(3)]
    await insert_usage(database, mine + theirs)
    range_ = {"from": "2026-03-01T00:00:00Z", "to": "2026-04-01T00:00:00Z"}

    # when / then
    assert await my_usage(gql, alice, **range_) == oracle_totals(mine)
    assert await my_usage(gql, bob, **range_) == oracle_totals(theirs)
    assert await my_usage(gql, admin, **range_) == oracle_totals([])


async def test_my_usage_defaults_to_the_current_utc_month(
    gql: GraphQL, database: Database, alice: Actor
) -> None:
    # given: rows at the month's first instant, just before it, and at the next month's start
    start = month_start(datetime.now(UTC))
    next_month = month_start(start + timedelta(days=32))
    inside = [
        usage(alice, created_at=start, cost_nano=1_000, position=1),
        usage(
            alice,
            created_at=start + timedelta(microseconds=1),
            position=2,
            cost_nano=3,
            billing_category=BillingCategory.UNMETERED,
        ),
    ]
    outside = [
        usage(alice, created_at=start - timedelta(microseconds=1), cost_nano=20, position=3),
        usage(
            alice,
            created_at=next_month,
            cost_nano=400,
            position=4,
            billing_category=BillingCategory.SYSTEM_OVERHEAD,
        ),
    ]
    await insert_usage(database, inside + outside)

    # when
    totals = await my_usage(gql, alice)

    # then: the month's rows; its billable cost is what budgets count as month spend
    assert totals == oracle_totals(inside)
    me = await gql(ME, as_=alice)
    assert str(totals["billableCostUsd"]) == me["data"]["me"]["monthSpendUsd"] == "0.000001"


async def test_my_usage_with_one_bound_keeps_the_other_default(
    gql: GraphQL, database: Database, alice: Actor
) -> None:
    start = month_start(datetime.now(UTC))
    rows = [
        usage(alice, created_at=start - timedelta(days=1), position=1, cost_nano=5),
        usage(alice, created_at=start + timedelta(hours=1), position=2, cost_nano=9),
    ]
    await insert_usage(database, rows)
    since_yesterday = (start - timedelta(days=2)).isoformat()

    assert await my_usage(gql, alice, **{"from": since_yesterday}) == oracle_totals(rows)
    until_start = await my_usage(gql, alice, **{"from": since_yesterday, "to": start.isoformat()})
    assert until_start == oracle_totals(rows[:1])


async def test_my_usage_refuses_anonymous_callers_and_bad_ranges(
    gql: GraphQL, alice: Actor
) -> None:
    assert error_codes(await gql(MY_USAGE)) == ["UNAUTHENTICATED"]
    backwards = {"from": "2026-03-02T00:00:00Z", "to": "2026-03-01T00:00:00Z"}
    assert error_codes(await gql(MY_USAGE, backwards, as_=alice)) == ["BAD_USER_INPUT"]
    too_long = {"from": "2024-01-01T00:00:00Z", "to": "2026-03-01T00:00:00Z"}
    assert error_codes(await gql(MY_USAGE, too_long, as_=alice)) == ["BAD_USER_INPUT"]


# --- Session.usage -------------------------------------------------------------------------------


async def test_session_usage_sums_that_sessions_rows_at_any_time(
    gql: GraphQL, database: Database, alice: Actor
) -> None:
    # given: rows of one session years apart, rows of another session and of no session
    busy, idle, other = [await new_session(gql, alice, t) for t in ("busy", "idle", "other")]
    busy_rows = [
        usage(
            alice,
            session_id=uuid_of(busy, "Session"),
            created_at=T0 - timedelta(days=900),
            cost_nano=13,
            position=1,
        ),
        usage(
            alice,
            session_id=uuid_of(busy, "Session"),
            cost_nano=29,
            unpriced=True,
            billing_category=BillingCategory.SYSTEM_OVERHEAD,
            position=2,
        ),
    ]
    await insert_usage(
        database,
        [
            *busy_rows,
            usage(alice, session_id=uuid_of(other, "Session"), position=3),
            usage(alice, position=4),
        ],
    )

    # when
    body = await gql(SESSION, {"id": busy}, as_=alice)
    empty = await gql(SESSION, {"id": idle}, as_=alice)

    # then
    assert decoded(body["data"]["session"]["usage"]) == oracle_totals(busy_rows)
    assert decoded(empty["data"]["session"]["usage"]) == oracle_totals([])


async def test_session_usage_of_a_page_of_1_and_of_50_runs_the_same_statements(
    gql: GraphQL, database: Database, alice: Actor, statements: StatementLog
) -> None:
    # given: 51 sessions, session n with n + 1 usage rows of 1 nano-USD
    async with SqlUnitOfWork(database.writes) as uow:
        owner = await uow.users.get(alice.uuid)
    limits = session_service.SessionLimits(max_title_length=200, max_roster_size=12)
    rows = []
    for number in range(BIG_PAGE + 1):
        session = await session_service.create_session(
            SqlUnitOfWork(database.writes),
            owner,
            session_service.CreateSession(title=f"{number + 1} rows"),
            limits,
        )
        rows += [
            usage(alice, session_id=session.id, cost_nano=1, position=n) for n in range(number + 1)
        ]
    await insert_usage(database, rows)
    await gql(SESSIONS_PAGE, {"first": 1}, as_=alice)  # warm-up

    # when
    one, one_data = await measure(gql, statements, SESSIONS_PAGE, {"first": 1}, alice)
    many, many_data = await measure(gql, statements, SESSIONS_PAGE, {"first": BIG_PAGE}, alice)

    # then: each session's own totals, and no statement per session
    nodes = [edge["node"] for edge in many_data["sessions"]["edges"]]
    assert len(nodes) == BIG_PAGE
    for node in nodes:
        expected = int(node["title"].split()[0])
        assert node["usage"]["calls"] == expected
        assert decoded(node["usage"])["costUsd"] * 10**9 == expected
    assert len(one_data["sessions"]["edges"]) == 1
    assert len(many) == len(one), "\n\n".join(many)
    # token lookup, page rows, total count, session usage
    assert len(one) == 4, "\n\n".join(one)

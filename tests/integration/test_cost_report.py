"""`costReport` through GraphQL on both backends: exact sums, every grouping, the time range's
edges, UTC days, filters, billing categories, unpriced rows, soft-deleted sessions, who may ask,
bad input, and F46 Option A switched on between two ORCHESTRATOR turns.

Usage rows are inserted directly (there is no API that writes usage without a turn); an oracle
in Python groups the same rows to say what the database must answer.
"""

from __future__ import annotations

import itertools
import random
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, text

from domain.enums import BillingCategory, CallKind, TokenSource
from domain.reports import CostDimension, cost_report_query
from domain.turns.metering import DEFAULT_CATEGORIES
from graph.app import create_app
from graph.ids import global_id, uuid_of
from infra.catalog.loader import load_catalog
from infra.db.engine import Database
from infra.db.models import UsageRecordRow
from infra.db.report_reads import cost_report_statement
from infra.db.seed_usage import SeedSpec, seed_usage
from infra.settings import DEFAULT_CATALOG, Settings
from tests.conftest import Actor, GraphQL, error_codes
from tests.fakes.openai_script import FakeResponse
from tests.fakes.openai_server import FakeOpenAIServer

TOTALS = (
    "calls promptTokens completionTokens costUsd billableCostUsd overheadCostUsd unpricedCalls "
    "refusedCalls"
)
REPORT = f"""
query($input: CostReportInput!) {{
  costReport(input: $input) {{
    from to groupBy
    rows {{
      user {{ id handle }} agentKey modelAlias callKind billingCategory day
      totals {{ {TOTALS} }}
    }}
    totals {{ {TOTALS} }}
  }}
}}"""
DIMENSION_FIELDS = {
    "USER": "user",
    "AGENT": "agentKey",
    "MODEL": "modelAlias",
    "CALL_KIND": "callKind",
    "BILLING_CATEGORY": "billingCategory",
    "DAY": "day",
}
DIMENSIONS = list(DIMENSION_FIELDS)
DAY0 = datetime(2026, 3, 2, tzinfo=UTC)
MONEY = ("costUsd", "billableCostUsd", "overheadCostUsd")
COUNTS = ("calls", "promptTokens", "completionTokens", "unpricedCalls", "refusedCalls")


# --- usage rows and the oracle -------------------------------------------------------------------


def usage(user: Actor, **fields: Any) -> dict[str, Any]:
    """A usage row with plausible defaults; `fields` override them."""
    row: dict[str, Any] = {
        "id": uuid.uuid4(),
        "created_at": DAY0 + timedelta(hours=12),
        "user_id": user.uuid,
        "session_id": None,
        "turn_id": None,
        "agent_key": "qwen",
        "call_kind": CallKind.AGENT_RESPONSE,
        "billing_category": BillingCategory.USER_BILLABLE,
        "position": 1,
        "attempt": 1,
        "provider": "fake",
        "model_alias": "qwen-plus",
        "prompt_tokens": 100,
        "completion_tokens": 20,
        "cached_tokens": 0,
        "reasoning_tokens": 0,
        "token_source": TokenSource.PROVIDER,
        "unpriced": False,
        "input_nano_per_mtok": 400_000_000,
        "output_nano_per_mtok": 1_200_000_000,
        "cost_nano": 64_000,
        "latency_ms": 10,
        "succeeded": True,
        "error_code": None,
    }
    row.update(fields)
    return row


async def insert_usage(database: Database, rows: Sequence[dict[str, Any]]) -> None:
    async with database.engine.begin() as connection:
        await connection.execute(insert(UsageRecordRow), list(rows))


def usd(nano: int) -> Decimal:
    return Decimal(nano).scaleb(-9)


def oracle_totals(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    rows = list(rows)

    def cost(category: BillingCategory | None = None) -> Decimal:
        return usd(sum(r["cost_nano"] for r in rows if category in (None, r["billing_category"])))

    return {
        "calls": len(rows),
        "promptTokens": sum(r["prompt_tokens"] for r in rows),
        "completionTokens": sum(r["completion_tokens"] for r in rows),
        "costUsd": cost(),
        "billableCostUsd": cost(BillingCategory.USER_BILLABLE),
        "overheadCostUsd": cost(BillingCategory.SYSTEM_OVERHEAD),
        "unpricedCalls": sum(1 for r in rows if r["unpriced"]),
        "refusedCalls": sum(1 for r in rows if r["token_source"] is TokenSource.NONE),
    }


def oracle_key(row: dict[str, Any], group_by: Sequence[str]) -> tuple[Any, ...]:
    values = {
        "USER": global_id("User", row["user_id"]),
        "AGENT": row["agent_key"],
        "MODEL": row["model_alias"],
        "CALL_KIND": str(row["call_kind"]),
        "BILLING_CATEGORY": str(row["billing_category"]),
        "DAY": row["created_at"].astimezone(UTC).date().isoformat(),
    }
    return tuple(values[dimension] for dimension in group_by)


def oracle(rows: Sequence[dict[str, Any]], group_by: Sequence[str]) -> dict[tuple[Any, ...], Any]:
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[oracle_key(row, group_by)].append(row)
    return {key: oracle_totals(members) for key, members in groups.items()}


def decoded(totals: dict[str, Any]) -> dict[str, Any]:
    """GraphQL totals with money as Decimal; money must be plain fixed-point text."""
    for field in MONEY:
        assert "E" not in totals[field].upper(), totals[field]
    return {**totals, **{field: Decimal(totals[field]) for field in MONEY}}


def report_key(row: dict[str, Any], group_by: Sequence[str]) -> tuple[Any, ...]:
    def value(dimension: str) -> Any:
        field = DIMENSION_FIELDS[dimension]
        return row["user"]["id"] if field == "user" else row[field]

    return tuple(value(dimension) for dimension in group_by)


def report_groups(report: dict[str, Any], group_by: Sequence[str]) -> dict[tuple[Any, ...], Any]:
    groups = {report_key(row, group_by): decoded(row["totals"]) for row in report["rows"]}
    assert len(groups) == len(report["rows"]), "a group appears twice"
    return groups


def assert_rows_sum_to_totals(report: dict[str, Any]) -> None:
    rows = [decoded(row["totals"]) for row in report["rows"]]
    totals = decoded(report["totals"])
    for field in (*COUNTS, *MONEY):
        assert sum((row[field] for row in rows), start=type(totals[field])(0)) == totals[field]


def window(start: datetime = DAY0 - timedelta(days=3), days: int = 10) -> dict[str, str]:
    return {"from": start.isoformat(), "to": (start + timedelta(days=days)).isoformat()}


async def cost_report(
    gql: GraphQL, admin: Actor, group_by: Sequence[str] = (), **input_: Any
) -> dict[str, Any]:
    variables = {"input": {**window(), "groupBy": list(group_by), **input_}}
    body = await gql(REPORT, variables, as_=admin)
    assert "errors" not in body, body
    report: dict[str, Any] = body["data"]["costReport"]
    return report


def varied_rows(alice: Actor, bob: Actor, count: int = 60) -> list[dict[str, Any]]:
    """Rows spread over every dimension independently, near midnights, with odd costs."""
    rnd = random.Random(46)
    moments = [timedelta(0), timedelta(hours=11), timedelta(days=1) - timedelta(microseconds=1)]
    rows = []
    for number in range(count):
        unpriced = number % 7 == 0
        rows.append(
            usage(
                rnd.choice([alice, bob]),
                created_at=DAY0 + timedelta(days=rnd.randrange(3)) + rnd.choice(moments),
                agent_key=rnd.choice(["qwen", "writer", None]),
                model_alias=rnd.choice(["qwen-plus", "writer-large", "manager-mini"]),
                call_kind=rnd.choice(list(CallKind)),
                billing_category=rnd.choice(list(BillingCategory)),
                prompt_tokens=rnd.randrange(1, 5_000),
                completion_tokens=rnd.randrange(0, 900),
                unpriced=unpriced,
                cost_nano=0 if unpriced else rnd.randrange(1, 10**7) * 3 + 1,
                position=number,  # keeps the attempt key unique whatever else repeats
            )
        )
    return rows


# --- exact sums ----------------------------------------------------------------------------------


async def test_many_tiny_and_odd_costs_sum_exactly(
    gql: GraphQL, database: Database, admin: Actor, alice: Actor
) -> None:
    # given: 1,000 rows of one nano-USD, and odd amounts a float would blur
    odd = [333_333_333, 7, 123_456_789_012, 999_999_999, 1_000_000_001]
    rows = [usage(alice, cost_nano=1, position=n) for n in range(1_000)]
    rows += [usage(alice, cost_nano=amount, position=1_000 + n) for n, amount in enumerate(odd)]
    await insert_usage(database, rows)

    # when
    report = await cost_report(gql, admin, ["DAY"])

    # then: 1000e-9 + the odd amounts, to the last nano-USD, as plain decimal text
    expected = Decimal(1_000) / 10**9 + sum(Decimal(a) / 10**9 for a in odd)
    assert report["totals"]["costUsd"] == "125.790123352"
    assert Decimal(report["totals"]["costUsd"]) == expected
    assert report["totals"]["billableCostUsd"] == "125.790123352"
    assert report["totals"]["calls"] == 1_005
    assert [row["day"] for row in report["rows"]] == ["2026-03-02"]
    assert_rows_sum_to_totals(report)


PAIRS = [list(pair) for pair in itertools.combinations(DIMENSIONS, 2)]
SINGLES = [[dimension] for dimension in DIMENSIONS]
GROUPINGS = [[], *SINGLES, *PAIRS, ["DAY", "USER", "MODEL"], DIMENSIONS]


@pytest.mark.parametrize("group_by", GROUPINGS, ids=lambda g: "+".join(g) or "nothing")
async def test_each_grouping_matches_the_oracle_and_rows_sum_to_totals(
    gql: GraphQL,
    database: Database,
    admin: Actor,
    alice: Actor,
    bob: Actor,
    group_by: list[str],
) -> None:
    # given
    rows = varied_rows(alice, bob)
    await insert_usage(database, rows)

    # when
    report = await cost_report(gql, admin, group_by)

    # then: the groups are the oracle's, exactly
    assert report["groupBy"] == group_by
    assert report_groups(report, group_by) == oracle(rows, group_by)
    assert decoded(report["totals"]) == oracle_totals(rows)
    assert_rows_sum_to_totals(report)
    # dimensions not grouped by are null
    ungrouped = {DIMENSION_FIELDS[d] for d in DIMENSIONS} - {DIMENSION_FIELDS[d] for d in group_by}
    assert all(row[field] is None for row in report["rows"] for field in ungrouped)
    # sorted by cost descending, ties by the dimensions in groupBy order
    costs = [Decimal(row["totals"]["costUsd"]) for row in report["rows"]]
    assert costs == sorted(costs, reverse=True)


async def test_ties_in_cost_are_ordered_by_the_dimensions(
    gql: GraphQL, database: Database, admin: Actor, alice: Actor
) -> None:
    rows = [
        usage(alice, model_alias=alias, agent_key=key, cost_nano=cost, position=n)
        for n, (alias, key, cost) in enumerate(
            [("b-model", "qwen", 5), ("a-model", None, 5), ("a-model", "writer", 5), ("c", "x", 9)]
        )
    ]
    await insert_usage(database, rows)

    report = await cost_report(gql, admin, ["MODEL", "AGENT"])

    assert [(row["modelAlias"], row["agentKey"]) for row in report["rows"]] == [
        ("c", "x"),
        ("a-model", None),  # a missing value sorts first
        ("a-model", "writer"),
        ("b-model", "qwen"),
    ]


async def test_an_empty_range_has_no_rows_and_zero_totals(gql: GraphQL, admin: Actor) -> None:
    report = await cost_report(gql, admin, [])

    assert report["rows"] == []
    assert report["totals"] == {
        "calls": 0,
        "promptTokens": 0,
        "completionTokens": 0,
        "costUsd": "0",
        "billableCostUsd": "0",
        "overheadCostUsd": "0",
        "unpricedCalls": 0,
        "refusedCalls": 0,
    }


# --- time: [from, to) and UTC days ---------------------------------------------------------------

LAST_MICROSECOND = timedelta(days=1) - timedelta(microseconds=1)


async def test_from_is_included_and_to_is_excluded_at_utc_midnight(
    gql: GraphQL, database: Database, admin: Actor, alice: Actor
) -> None:
    # given: the last microsecond before, the first and last of the day, the first after
    moments = [DAY0 - timedelta(microseconds=1), DAY0, DAY0 + LAST_MICROSECOND, DAY0 + timedelta(1)]
    await insert_usage(
        database,
        [usage(alice, created_at=at, cost_nano=10**n, position=n) for n, at in enumerate(moments)],
    )

    # when: that day, in UTC and as the same instants written in +01:00
    utc = await cost_report(gql, admin, ["DAY"], **window(DAY0, days=1))
    shifted = await cost_report(
        gql,
        admin,
        ["DAY"],
        **{"from": "2026-03-02T01:00:00+01:00", "to": "2026-03-03T01:00:00+01:00"},
    )

    # then: the day's two rows (10 + 100 nano-USD), nothing of the neighbours
    for report in (utc, shifted):
        assert [(row["day"], row["totals"]["calls"]) for row in report["rows"]] == [
            ("2026-03-02", 2)
        ]
        assert report["totals"]["costUsd"] == "0.00000011"
    assert utc["from"] == shifted["from"] == "2026-03-02T00:00:00+00:00"
    assert utc["to"] == "2026-03-03T00:00:00+00:00"


async def test_day_buckets_are_utc_days_on_every_backend(
    gql: GraphQL, database: Database, admin: Actor, alice: Actor
) -> None:
    # given: instants written with offsets whose local date differs from the UTC date
    instants = {
        "2026-03-01T23:30:00-05:00": "2026-03-02",  # 04:30 UTC
        "2026-03-02T00:30:00+02:00": "2026-03-01",  # 22:30 UTC the day before
        "2026-03-02T23:59:59.999999+00:00": "2026-03-02",
        "2026-03-03T00:00:00+00:00": "2026-03-03",
        "2026-03-04T08:00:00+14:00": "2026-03-03",  # 18:00 UTC
    }
    rows = [
        usage(alice, created_at=datetime.fromisoformat(at), cost_nano=n + 1, position=n)
        for n, at in enumerate(instants)
    ]
    await insert_usage(database, rows)

    # when
    report = await cost_report(gql, admin, ["DAY"])

    # then: the same buckets on SQLite (naive UTC text) and PostgreSQL (timestamptz)
    days = {row["day"]: row["totals"]["calls"] for row in report["rows"]}
    assert days == {"2026-03-01": 1, "2026-03-02": 2, "2026-03-03": 2}


async def test_day_ignores_the_postgresql_session_time_zone(
    database: Database, alice: Actor
) -> None:
    # given: a row at 22:30 UTC, read by a connection whose TimeZone is UTC+14
    await insert_usage(database, [usage(alice, created_at=DAY0 + timedelta(hours=22.5))])
    query = cost_report_query(
        start=DAY0 - timedelta(days=1), end=DAY0 + timedelta(days=2), dimensions=[CostDimension.DAY]
    )

    async with database.engine.connect() as connection:
        if not database.is_sqlite:
            await connection.execute(text("SET TIME ZONE 'Pacific/Kiritimati'"))
        rows = list(await connection.execute(cost_report_statement(query)))

    # then: still the UTC day, not the local one (2026-03-03 in Kiritimati)
    assert [row[0].isoformat() for row in rows] == ["2026-03-02"]


# --- filters -------------------------------------------------------------------------------------

FILTERS = {
    "agentKeys": (["writer", "QWEN"], lambda r: r["agent_key"] in {"writer", "qwen"}),
    "modelAliases": (["manager-mini"], lambda r: r["model_alias"] == "manager-mini"),
    "callKinds": (
        ["MANAGER_ROUTING", "SUMMARY_EXTRACTION"],
        lambda r: r["call_kind"] in {CallKind.MANAGER_ROUTING, CallKind.SUMMARY_EXTRACTION},
    ),
    "billingCategories": (
        ["UNMETERED"],
        lambda r: r["billing_category"] is BillingCategory.UNMETERED,
    ),
}


@pytest.mark.parametrize("name", FILTERS)
async def test_each_filter_keeps_only_matching_rows(
    gql: GraphQL, database: Database, admin: Actor, alice: Actor, bob: Actor, name: str
) -> None:
    # given
    rows = varied_rows(alice, bob)
    await insert_usage(database, rows)
    values, keep = FILTERS[name]
    kept = [row for row in rows if keep(row)]
    assert 0 < len(kept) < len(rows)

    # when
    report = await cost_report(gql, admin, ["CALL_KIND", "AGENT"], **{name: values})

    # then
    assert report_groups(report, ["CALL_KIND", "AGENT"]) == oracle(kept, ["CALL_KIND", "AGENT"])
    assert decoded(report["totals"]) == oracle_totals(kept)


async def test_user_filter_takes_global_ids_and_combines_with_the_others(
    gql: GraphQL, database: Database, admin: Actor, alice: Actor, bob: Actor
) -> None:
    rows = varied_rows(alice, bob)
    await insert_usage(database, rows)
    kept = [r for r in rows if r["user_id"] == bob.uuid and r["model_alias"] == "writer-large"]

    report = await cost_report(
        gql, admin, ["USER"], userIds=[bob.id], modelAliases=["writer-large"]
    )

    assert [(row["user"]["id"], row["user"]["handle"]) for row in report["rows"]] == [
        (bob.id, "bob")
    ]
    assert decoded(report["totals"]) == oracle_totals(kept)


# --- categories, unpriced rows, deleted sessions -------------------------------------------------


async def test_unmetered_rows_count_in_tokens_calls_and_cost_only(
    gql: GraphQL, database: Database, admin: Actor, alice: Actor
) -> None:
    await insert_usage(
        database,
        [
            usage(
                alice, billing_category=BillingCategory.USER_BILLABLE, cost_nano=1_000, position=1
            ),
            usage(
                alice, billing_category=BillingCategory.SYSTEM_OVERHEAD, cost_nano=200, position=2
            ),
            usage(
                alice,
                call_kind=CallKind.MANAGER_ROUTING,
                billing_category=BillingCategory.UNMETERED,
                agent_key=None,
                prompt_tokens=7,
                completion_tokens=3,
                cost_nano=30,
                position=0,
            ),
        ],
    )

    report = await cost_report(gql, admin, ["BILLING_CATEGORY"])

    by_category = {row["billingCategory"]: row["totals"] for row in report["rows"]}
    assert by_category["UNMETERED"] == {
        "calls": 1,
        "promptTokens": 7,
        "completionTokens": 3,
        "costUsd": "0.00000003",
        "billableCostUsd": "0",
        "overheadCostUsd": "0",
        "unpricedCalls": 0,
        "refusedCalls": 0,
    }
    assert report["totals"]["costUsd"] == "0.00000123"
    assert report["totals"]["billableCostUsd"] == "0.000001"
    assert report["totals"]["overheadCostUsd"] == "0.0000002"


async def test_unpriced_rows_are_counted_with_zero_cost(
    gql: GraphQL, database: Database, admin: Actor, alice: Actor
) -> None:
    await insert_usage(
        database,
        [
            usage(
                alice,
                model_alias="local",
                unpriced=True,
                cost_nano=0,
                position=n,
                input_nano_per_mtok=None,
                output_nano_per_mtok=None,
            )
            for n in range(3)
        ]
        + [usage(alice, cost_nano=5, position=9)],
    )

    report = await cost_report(gql, admin, ["MODEL"])

    by_model = {row["modelAlias"]: row["totals"] for row in report["rows"]}
    assert by_model["local"]["unpricedCalls"] == 3
    assert by_model["local"]["calls"] == 3
    assert by_model["local"]["costUsd"] == "0"
    assert by_model["qwen-plus"]["unpricedCalls"] == 0
    assert report["totals"]["unpricedCalls"] == 3
    assert report["totals"]["costUsd"] == "0.000000005"


async def test_a_soft_deleted_sessions_usage_still_counts(
    gql: GraphQL, database: Database, admin: Actor, alice: Actor
) -> None:
    # given: usage in a session that its owner then deletes
    body = await gql("mutation { createSession(input: {}) { id } }", as_=alice)
    session_id = body["data"]["createSession"]["id"]
    await insert_usage(database, [usage(alice, session_id=uuid_of(session_id, "Session"))])
    deleted = await gql(
        "mutation($id: ID!) { deleteSession(id: $id) }", {"id": session_id}, as_=alice
    )
    assert "errors" not in deleted, deleted

    # when
    report = await cost_report(gql, admin, ["USER"])

    # then
    assert report["totals"]["calls"] == 1
    assert report["rows"][0]["user"]["handle"] == "alice"
    assert report["totals"]["costUsd"] == "0.000064"


# --- who may ask, and bad input ------------------------------------------------------------------


async def test_only_admins_get_the_report(gql: GraphQL, alice: Actor) -> None:
    variables = {"input": {**window(), "groupBy": []}}

    assert error_codes(await gql(REPORT, variables)) == ["UNAUTHENTICATED"]
    forbidden = await gql(REPORT, variables, as_=alice)
    assert error_codes(forbidden) == ["FORBIDDEN"]
    assert forbidden["data"] is None


@pytest.mark.parametrize(
    ("input_", "fragment"),
    [
        ({"from": "2026-03-02T00:00:00Z", "to": "2026-03-02T00:00:00Z"}, "before"),
        ({"from": "2026-03-03T00:00:00Z", "to": "2026-03-02T00:00:00Z"}, "before"),
        ({"from": "2025-01-01T00:00:00Z", "to": "2026-01-03T00:00:00Z"}, "366 days"),
        ({"from": "2026-03-02T00:00:00", "to": "2026-03-03T00:00:00Z"}, "UTC offset"),
        ({"groupBy": ["DAY", "MODEL", "DAY"]}, "twice"),
        ({"agentKeys": []}, "must not be empty"),
        ({"agentKeys": ["no spaces"]}, "agent key"),
        ({"modelAliases": [" "]}, "model alias"),
        ({"userIds": ["not-an-id"]}, "not a valid id"),
        ({"groupBy": ["WEEK"]}, "WEEK"),
    ],
)
async def test_bad_input_is_coded(
    gql: GraphQL, admin: Actor, input_: dict[str, Any], fragment: str
) -> None:
    body = await gql(REPORT, {"input": {**window(), "groupBy": [], **input_}}, as_=admin)

    assert error_codes(body) == ["BAD_USER_INPUT"], body
    assert fragment in body["errors"][0]["message"]


async def test_a_user_filter_with_another_types_id_is_bad_input(
    gql: GraphQL, admin: Actor, alice: Actor
) -> None:
    body = await gql("mutation { createSession(input: {}) { id } }", as_=alice)
    session_id = body["data"]["createSession"]["id"]

    refused = await gql(
        REPORT, {"input": {**window(), "groupBy": [], "userIds": [session_id]}}, as_=admin
    )

    assert error_codes(refused) == ["BAD_USER_INPUT"]
    assert "expected an id of a User" in refused["errors"][0]["message"]


# --- F46 Option A: one setting away, history keeps its category ----------------------------------

RUN = """mutation($input: RunTurnInput!) { runTurn(input: $input) { status usage { callKind } } }"""


async def orchestrated_turn(gql: GraphQL, actor: Actor) -> None:
    body = await gql("mutation { createSession(input: {}) { id } }", as_=actor)
    session = body["data"]["createSession"]["id"]
    turn = await gql(
        RUN, {"input": {"sessionId": session, "message": "hi", "mode": "ORCHESTRATOR"}}, as_=actor
    )
    assert turn["data"]["runTurn"]["status"] == "COMPLETED", turn
    assert turn["data"]["runTurn"]["usage"][0]["callKind"] == "MANAGER_ROUTING"


async def test_switching_routing_to_overhead_applies_to_new_turns_only(
    turn_gql: GraphQL,
    turn_settings: Settings,
    fake_openai: FakeOpenAIServer,
    admin: Actor,
    alice: Actor,
) -> None:
    # given: a turn under the default (F46: routing UNMETERED)
    fake_openai.set_default(
        FakeResponse(content='{"selected_agent_keys": ["qwen"]}'), model="manager-mini"
    )
    fake_openai.set_default(FakeResponse(content="Qwen reply."), model="qwen-plus")
    await orchestrated_turn(turn_gql, alice)

    # when: the service restarts with Option A and runs another turn
    option_a = turn_settings.model_copy(
        update={"routing_billing_category": BillingCategory.SYSTEM_OVERHEAD}
    )
    switched = create_app(option_a, migrate_on_start=False)
    async with switched.router.lifespan_context(switched):
        transport = httpx.ASGITransport(app=switched)
        async with httpx.AsyncClient(transport=transport, base_url="http://t", timeout=30) as http:
            await orchestrated_turn(GraphQL(http), alice)

    # then: the first routing call stays UNMETERED, the second is overhead
    now = datetime.now(UTC)
    report = await cost_report(
        turn_gql,
        admin,
        ["CALL_KIND", "BILLING_CATEGORY"],
        **window(now - timedelta(hours=1), days=1),
        callKinds=["MANAGER_ROUTING"],
    )
    routing = {row["billingCategory"]: row["totals"] for row in report["rows"]}
    assert set(routing) == {"UNMETERED", "SYSTEM_OVERHEAD"}
    assert routing["UNMETERED"]["calls"] == routing["SYSTEM_OVERHEAD"]["calls"] == 1
    assert routing["UNMETERED"]["overheadCostUsd"] == "0"
    overhead = routing["SYSTEM_OVERHEAD"]
    assert Decimal(overhead["costUsd"]) > 0
    assert overhead["overheadCostUsd"] == overhead["costUsd"]
    assert overhead["billableCostUsd"] == "0"
    assert report["totals"]["overheadCostUsd"] == overhead["costUsd"]


# --- the dev seed feeds the report ---------------------------------------------------------------


async def test_seeded_usage_is_varied_and_the_report_counts_all_of_it(
    gql: GraphQL, database: Database, admin: Actor
) -> None:
    # given: 3,000 rows over 10 days ending at DAY0, in batches of 1,000
    end = DAY0 + timedelta(days=1)
    spec = SeedSpec(rows=3_000, days=10, seed=5, users=4, sessions_per_user=2, batch_size=1_000,
                    end=end)  # fmt: skip
    seeded = await seed_usage(database, load_catalog(DEFAULT_CATALOG).spec, spec)

    # when
    report = await cost_report(
        gql, admin, ["CALL_KIND", "BILLING_CATEGORY"], **window(end - timedelta(days=10), 10)
    )
    by_user = await cost_report(gql, admin, ["USER"], **window(end - timedelta(days=10), 10))

    # then: every row is in range, each call kind has its default category
    assert seeded == report["totals"]["calls"] == 3_000
    pairs = {(row["callKind"], row["billingCategory"]) for row in report["rows"]}
    assert pairs == {(str(kind), str(DEFAULT_CATEGORIES[kind])) for kind in CallKind}
    assert 0 < report["totals"]["unpricedCalls"] < 100
    assert len(by_user["rows"]) == 4
    assert all(row["user"]["handle"].startswith("seed-") for row in by_user["rows"])
    async with database.engine.connect() as connection:
        facts = (
            await connection.execute(
                text(
                    "SELECT count(DISTINCT token_source), count(DISTINCT session_id), "
                    "sum(CASE WHEN unpriced THEN cost_nano ELSE 0 END), count(DISTINCT attempt) "
                    "FROM usage_records"
                )
            )
        ).one()
    assert tuple(facts) == (2, 8, 0, 2)  # estimated rows, every session, free unpriced, retries

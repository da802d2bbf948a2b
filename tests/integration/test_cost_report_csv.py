"""`GET /api/v1/admin/cost-report.csv`: the GraphQL report's rows as CSV (same parameters, same
numbers, money as plain decimal text), admins only, JSON errors before any CSV is sent."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from domain import reports
from graph.reports.csv_route import csv_chunks
from infra.db.engine import Database
from tests.conftest import Actor, GraphQL
from tests.integration.test_cost_report import cost_report, insert_usage, usage, varied_rows

PATH = "/api/v1/admin/cost-report.csv"
RANGE = {"from": "2026-02-27T00:00:00Z", "to": "2026-03-09T00:00:00Z"}  # test_cost_report.window
TOTALS = {
    "calls": "calls",
    "prompt_tokens": "promptTokens",
    "completion_tokens": "completionTokens",
    "cost_usd": "costUsd",
    "billable_cost_usd": "billableCostUsd",
    "overhead_cost_usd": "overheadCostUsd",
    "unpriced_calls": "unpricedCalls",
    "refused_calls": "refusedCalls",
}
DIMENSIONS = {
    "user_id": lambda row: row["user"]["id"],
    "user_handle": lambda row: row["user"]["handle"],
    "agent_key": lambda row: row["agentKey"],
    "model_alias": lambda row: row["modelAlias"],
    "call_kind": lambda row: row["callKind"],
    "billing_category": lambda row: row["billingCategory"],
    "day": lambda row: row["day"],
}


async def get_csv(
    client: httpx.AsyncClient, actor: Actor | None, params: dict[str, str] | str
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {actor.token}"} if actor else {}
    return await client.get(PATH, params=params, headers=headers)


def parsed(response: httpx.Response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"].startswith("attachment; filename=")
    return list(csv.DictReader(io.StringIO(response.text)))


def as_csv(row: dict[str, Any], columns: list[str]) -> dict[str, str]:
    """A GraphQL report row as the CSV should carry it."""
    cells = {}
    for column in columns:
        if column in TOTALS:
            cells[column] = str(row["totals"][TOTALS[column]])
        else:
            value = DIMENSIONS[column](row)
            cells[column] = "" if value is None else str(value)
    return cells


GROUPINGS = {
    "DAY,MODEL": ["day", "model_alias"],
    "USER": ["user_id", "user_handle"],
    "AGENT,BILLING_CATEGORY": ["agent_key", "billing_category"],
    "": [],
    "BILLING_CATEGORY,DAY,CALL_KIND,MODEL,AGENT,USER": [
        "billing_category",
        "day",
        "call_kind",
        "model_alias",
        "agent_key",
        "user_id",
        "user_handle",
    ],
}


@pytest.mark.parametrize("group_by", GROUPINGS, ids=lambda g: g or "nothing")
async def test_csv_rows_equal_the_graphql_rows(
    gql: GraphQL,
    client: httpx.AsyncClient,
    database: Database,
    admin: Actor,
    alice: Actor,
    bob: Actor,
    group_by: str,
) -> None:
    # given
    await insert_usage(database, varied_rows(alice, bob))

    # when
    report = await cost_report(gql, admin, [d for d in group_by.split(",") if d])
    response = await get_csv(client, admin, {**RANGE, "groupBy": group_by})

    # then: the grouped dimensions in groupBy order, the totals; same rows, order and text
    columns = [*GROUPINGS[group_by], *TOTALS]
    assert response.text.splitlines()[0] == ",".join(columns)
    rows = parsed(response)
    assert len(rows) == len(report["rows"]) > 0
    assert rows == [as_csv(row, columns) for row in report["rows"]]


async def test_filters_and_repeated_parameters_match_graphql(
    gql: GraphQL,
    client: httpx.AsyncClient,
    database: Database,
    admin: Actor,
    alice: Actor,
    bob: Actor,
) -> None:
    await insert_usage(database, varied_rows(alice, bob))
    report = await cost_report(
        gql,
        admin,
        ["USER", "CALL_KIND"],
        userIds=[bob.id],
        callKinds=["AGENT_RESPONSE", "MANAGER_ROUTING"],
        agentKeys=["qwen", "writer"],
    )

    query = (
        f"from={RANGE['from']}&to={RANGE['to']}&groupBy=USER,CALL_KIND&userIds={bob.id}"
        "&callKinds=AGENT_RESPONSE&callKinds=MANAGER_ROUTING&agentKeys=qwen,writer"
    )
    rows = parsed(await get_csv(client, admin, query))

    assert rows == [as_csv(row, list(rows[0])) for row in report["rows"]]
    assert {row["user_handle"] for row in rows} == {"bob"}


async def test_money_is_plain_decimal_text_and_an_unencoded_plus_offset_is_understood(
    client: httpx.AsyncClient, database: Database, admin: Actor, alice: Actor
) -> None:
    await insert_usage(database, [usage(alice, cost_nano=1), usage(alice, cost_nano=10**10)])

    # '+' left unencoded in a query string arrives as a space
    response = await get_csv(
        client, admin, "from=2026-03-02T01:00:00+01:00&to=2026-03-03T01:00:00+01:00"
    )

    assert parsed(response) == [
        {
            "calls": "2",
            "prompt_tokens": "200",
            "completion_tokens": "40",
            "cost_usd": "10.000000001",
            "billable_cost_usd": "10.000000001",
            "overhead_cost_usd": "0",
            "unpriced_calls": "0",
            "refused_calls": "0",
        }
    ]


async def test_an_empty_report_is_the_header_alone(client: httpx.AsyncClient, admin: Actor) -> None:
    response = await get_csv(client, admin, {**RANGE, "groupBy": "DAY"})

    assert response.status_code == 200
    assert response.text == (
        "day,calls,prompt_tokens,completion_tokens,cost_usd,billable_cost_usd,"
        "overhead_cost_usd,unpriced_calls,refused_calls\r\n"
    )


async def test_anonymous_callers_get_401_and_users_403_as_json(
    client: httpx.AsyncClient, alice: Actor
) -> None:
    anonymous = await get_csv(client, None, RANGE)
    bad_token = await client.get(PATH, params=RANGE, headers={"Authorization": "Bearer nope"})
    user = await get_csv(client, alice, RANGE)

    for response in (anonymous, bad_token):
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert user.status_code == 403
    assert user.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"to": RANGE["to"]}, "from is required"),
        ({"from": "yesterday", "to": RANGE["to"]}, "not an ISO 8601"),
        ({**RANGE, "from": RANGE["to"]}, "before"),
        ({"from": "2025-01-01T00:00:00Z", "to": "2026-03-01T00:00:00Z"}, "366 days"),
        ({"from": "2026-03-01T00:00:00", "to": RANGE["to"]}, "UTC offset"),
        ({**RANGE, "groupBy": "DAY,WEEK"}, "groupBy takes"),
        ({**RANGE, "groupBy": "DAY,DAY"}, "twice"),
        ({**RANGE, "callKinds": "CHAT"}, "callKinds takes"),
        ({**RANGE, "billingCategories": ""}, "must not be empty"),
        ({**RANGE, "userIds": "U2Vzc2lvbjox"}, "not a valid id"),
        ({**RANGE, "groupby": "DAY"}, "unknown parameters: groupby"),
        ({**RANGE, "modelAliases": "qwen\x00plus"}, "modelAliases must not contain NUL"),
        ({**RANGE, "from": "0001-01-01T00:00:00+01:00"}, "from is outside the years"),
    ],
)
async def test_bad_parameters_get_400_with_a_json_error(
    client: httpx.AsyncClient, admin: Actor, params: dict[str, str], fragment: str
) -> None:
    response = await get_csv(client, admin, params)

    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert fragment in error["message"]


def test_rows_stream_in_chunks_after_the_header() -> None:
    # given: a report of 1,001 rows
    row = reports.CostReportRow(agent_key="qwen", totals=reports.UsageTotals(calls=1, cost_nano=1))
    query = reports.cost_report_query(
        start=datetime(2026, 3, 2, tzinfo=UTC),
        end=datetime(2026, 3, 3, tzinfo=UTC),
        dimensions=[reports.CostDimension.AGENT],
    )
    report = reports.CostReport(query=query, rows=(row,) * 1_001, totals=reports.UsageTotals())

    # when
    chunks = list(csv_chunks(report, {}))

    # then: the header with 500 rows, 500 rows, the last row
    assert [chunk.count("\r\n") for chunk in chunks] == [501, 500, 1]
    assert chunks[0].startswith("agent_key,calls,")
    assert chunks[2].endswith("qwen,1,0,0,0.000000001,0,0,0,0\r\n")


def test_text_cells_that_spreadsheets_would_run_as_formulas_are_quoted() -> None:
    # given: an agent key and a model alias a spreadsheet would evaluate ("-A1" is a valid key)
    row = reports.CostReportRow(
        agent_key="-A1",
        model_alias="=HYPERLINK(x)",
        totals=reports.UsageTotals(calls=1),
    )
    plain = reports.CostReportRow(agent_key="qwen", model_alias="qwen-plus", totals=row.totals)
    query = reports.cost_report_query(
        start=datetime(2026, 3, 2, tzinfo=UTC),
        end=datetime(2026, 3, 3, tzinfo=UTC),
        dimensions=[reports.CostDimension.AGENT, reports.CostDimension.MODEL],
    )
    report = reports.CostReport(query=query, rows=(row, plain), totals=reports.UsageTotals())

    # when
    lines = "".join(csv_chunks(report, {})).splitlines()

    # then: shown as text; ordinary values (and the numbers) are untouched
    assert lines[1].startswith("'-A1,'=HYPERLINK(x),1,")
    assert lines[2].startswith("qwen,qwen-plus,1,")

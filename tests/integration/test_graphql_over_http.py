"""GraphQL over HTTP (the spec `graphql-http` audits; scripts/graphql_http_audit.sh runs the audit
itself): media type negotiation, status codes, and the `data` entry on request errors."""

from __future__ import annotations

import dataclasses
import json
import uuid
from typing import Any

import httpx
import pytest

from domain.records import Agent
from graph.http_protocol import negotiate
from graph.ids import global_id
from infra.db.reads import SqlReadStore
from tests.conftest import Actor, error_codes

NEW = "application/graphql-response+json"
JSON = "application/json"


def auth(actor: Actor, accept: str | None = NEW) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {actor.token}"}
    if accept is not None:
        headers["Accept"] = accept
    return headers


async def post(
    client: httpx.AsyncClient, actor: Actor, query: str, accept: str | None = NEW, **variables: Any
) -> httpx.Response:
    return await client.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers=auth(actor, accept),
    )


def codes(response: httpx.Response) -> list[str]:
    return error_codes(response.json())


# --- media type negotiation -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, JSON),
        ("", JSON),
        ("*/*", JSON),
        ("application/*", JSON),
        (JSON, JSON),
        (NEW, NEW),
        (f"{NEW}, {JSON};q=0.9", NEW),  # what the spec tells clients to send
        (f"{NEW}, {JSON}", NEW),
        (f"{NEW};q=0.5, {JSON}", JSON),
        (f"{NEW}, */*", NEW),
        (f"{JSON}, */*;q=0.8", JSON),
        (f"*/*, {JSON};q=0", NEW),
        ("text/html, application/xhtml+xml, */*;q=0.8", JSON),  # a browser
        ("text/html", None),
        (f"{NEW};q=0, {JSON};q=0", None),
    ],
)
def test_negotiation_picks_the_response_media_type(accept: str | None, expected: str) -> None:
    assert negotiate(accept) == expected


@pytest.mark.parametrize(
    ("accept", "media_type"),
    [(None, JSON), ("*/*", JSON), (JSON, JSON), (NEW, NEW), (f"{NEW}, {JSON};q=0.9", NEW)],
)
async def test_a_successful_query_answers_in_the_negotiated_media_type(
    client: httpx.AsyncClient, alice: Actor, accept: str | None, media_type: str
) -> None:
    response = await post(client, alice, "{ me { handle } }", accept=accept)

    assert response.status_code == 200
    assert response.headers["content-type"] == media_type
    assert response.json() == {"data": {"me": {"handle": "alice"}}}


async def test_an_unacceptable_accept_header_is_406_with_a_code(
    client: httpx.AsyncClient, alice: Actor
) -> None:
    response = await post(client, alice, "{ me { handle } }", accept="text/csv")

    assert response.status_code == 406
    assert response.headers["content-type"] == JSON
    assert "data" not in response.json()
    assert codes(response) == ["NOT_ACCEPTABLE"]


# --- request errors: 400 without data under graphql-response+json, 200 with data:null under json


REQUEST_ERRORS = {
    "parse": ("{ me { handle ", {}, "GRAPHQL_PARSE_FAILED"),
    "validation": ("{ me { handle nope } }", {}, "GRAPHQL_VALIDATION_FAILED"),
    "variable coercion": (
        "query($f: Int) { sessions(first: $f) { totalCount } }",
        {"f": "ten"},
        "BAD_USER_INPUT",
    ),
    "missing variable": ("query($id: ID!) { session(id: $id) { id } }", {}, "BAD_USER_INPUT"),
    "null variable": (
        "query($id: ID!) { session(id: $id) { id } }",
        {"id": None},
        "BAD_USER_INPUT",
    ),
    "alias limit": (  # the default limit is 30 aliases
        "{ " + " ".join(f"a{i}: me {{ handle }}" for i in range(31)) + " }",
        {},
        "GRAPHQL_VALIDATION_FAILED",
    ),
}


@pytest.mark.parametrize("case", list(REQUEST_ERRORS))
async def test_request_errors_are_400_without_data_under_graphql_response_json(
    client: httpx.AsyncClient, alice: Actor, case: str
) -> None:
    query, variables, code = REQUEST_ERRORS[case]

    response = await post(client, alice, query, accept=NEW, **variables)

    assert response.status_code == 400
    assert response.headers["content-type"] == NEW
    body = response.json()
    assert "data" not in body, body
    assert codes(response) == [code], body
    assert all(error["message"] for error in body["errors"])


@pytest.mark.parametrize("case", list(REQUEST_ERRORS))
async def test_request_errors_stay_200_with_null_data_under_json(
    client: httpx.AsyncClient, alice: Actor, case: str
) -> None:
    query, variables, code = REQUEST_ERRORS[case]

    response = await post(client, alice, query, accept=JSON, **variables)

    assert response.status_code == 200
    assert response.headers["content-type"] == JSON
    assert response.json()["data"] is None
    assert codes(response) == [code]


# --- execution errors keep 200 and data in both media types -----------------------------------


@pytest.mark.parametrize("accept", [NEW, JSON])
async def test_a_domain_error_during_execution_is_200_with_data(
    client: httpx.AsyncClient, alice: Actor, accept: str
) -> None:
    missing = global_id("Session", uuid.uuid4())

    response = await post(
        client,
        alice,
        "query($id: ID!) { me { handle } session(id: $id) { id } }",
        accept,
        id=missing,
    )

    assert response.status_code == 200
    assert response.headers["content-type"] == accept
    body = response.json()
    assert "data" in body
    assert codes(response) == ["NOT_FOUND"]


@pytest.mark.parametrize("accept", [NEW, JSON])
async def test_bad_user_input_from_a_resolver_is_not_a_request_error(
    client: httpx.AsyncClient, alice: Actor, accept: str
) -> None:
    # given: a session, then an update naming an agent that does not exist (checked by the domain)
    created = await post(
        client,
        alice,
        'mutation { createSession(input: {title: "Tea", agentKeys: ["writer"]}) { id } }',
        accept=JSON,
    )
    session_id = created.json()["data"]["createSession"]["id"]

    response = await post(
        client,
        alice,
        "mutation($input: UpdateSessionInput!) { updateSession(input: $input) { id } }",
        accept,
        input={"id": session_id, "agentKeys": ["no-such-agent"]},
    )

    assert response.status_code == 200
    assert "data" in response.json()
    assert codes(response) == ["BAD_USER_INPUT"]
    assert response.json()["errors"][0]["path"] == ["updateSession"]


class FailingAgentReads(SqlReadStore):
    async def all_agents(self, *, include_disabled: bool) -> list[Agent]:
        raise RuntimeError("boom")


async def test_a_masked_failure_is_200_with_data_and_request_id(
    app: Any, client: httpx.AsyncClient, alice: Actor, caplog: pytest.LogCaptureFixture
) -> None:
    app.state.runtime = dataclasses.replace(
        app.state.runtime, reads=FailingAgentReads(app.state.database.reads)
    )

    with caplog.at_level("CRITICAL"):
        response = await post(client, alice, "{ agents { key } }", accept=NEW)

    assert response.status_code == 200
    assert response.headers["content-type"] == NEW
    body = response.json()
    assert body["data"] is None  # present: execution had started
    (error,) = body["errors"]
    assert error["extensions"] == {
        "code": "INTERNAL_SERVER_ERROR",
        "requestId": response.headers["x-request-id"],
    }


# --- GET --------------------------------------------------------------------------------------


@pytest.mark.parametrize("accept", [NEW, JSON])
async def test_get_runs_queries_with_json_variables(
    client: httpx.AsyncClient, alice: Actor, accept: str
) -> None:
    response = await client.get(
        "/graphql",
        params={
            "query": "query($n: String!) { __type(name: $n) { name } me { handle } }",
            "variables": json.dumps({"n": "Query"}),
        },
        headers=auth(alice, accept),
    )

    assert response.status_code == 200
    assert response.headers["content-type"] == accept
    assert response.json() == {"data": {"__type": {"name": "Query"}, "me": {"handle": "alice"}}}


@pytest.mark.parametrize("accept", [NEW, JSON, "*/*"])
async def test_get_refuses_mutations_with_405(
    client: httpx.AsyncClient, alice: Actor, accept: str
) -> None:
    response = await client.get(
        "/graphql",
        params={"query": 'mutation { createSession(input: {title: "x"}) { id } }'},
        headers=auth(alice, accept),
    )

    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert "data" not in response.json()
    assert codes(response) == ["METHOD_NOT_ALLOWED"]
    sessions = await post(client, alice, "{ sessions { totalCount } }", accept=JSON)
    assert sessions.json()["data"]["sessions"]["totalCount"] == 0  # nothing ran


async def test_get_without_a_query_still_serves_graphiql(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", headers={"Accept": "text/html"})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")


# --- the HTTP layer: content types and odd bodies ---------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1"],
)
async def test_a_post_that_is_not_utf8_json_is_415(
    client: httpx.AsyncClient, alice: Actor, content_type: str | None
) -> None:
    headers = auth(alice, NEW)
    if content_type is not None:
        headers["Content-Type"] = content_type
    content = json.dumps({"query": "{ me { handle } }"}).encode()

    response = await client.post("/graphql", content=content, headers=headers)

    assert response.status_code == 415
    assert response.headers["content-type"] == NEW
    assert "data" not in response.json()
    assert codes(response) == ["UNSUPPORTED_MEDIA_TYPE"]


async def test_json_with_an_explicit_utf8_charset_is_accepted(
    client: httpx.AsyncClient, alice: Actor
) -> None:
    headers = {**auth(alice, JSON), "Content-Type": "application/json; charset=UTF-8"}
    content = json.dumps({"query": "{ me { handle } }"}).encode()

    response = await client.post("/graphql", content=content, headers=headers)

    assert response.json() == {"data": {"me": {"handle": "alice"}}}


ODD_BODIES = {
    "not json": b'{ "not a JSON',
    "empty": b"",
    "no query": b'{"notquery": "{ __typename }"}',
    "query not a string": b'{"query": 0}',
    "variables not a map": b'{"query": "{ __typename }", "variables": "x"}',
    "extensions not a map": b'{"query": "{ __typename }", "extensions": []}',
    "operationName not a string": b'{"query": "{ __typename }", "operationName": false}',
    "unknown operationName": b'{"query": "query A { __typename }", "operationName": "B"}',
    "batch": b'[{"query": "{ __typename }"}, {"query": "{ __typename }"}]',
}


@pytest.mark.parametrize("accept", [NEW, JSON])
@pytest.mark.parametrize("case", list(ODD_BODIES))
async def test_odd_bodies_are_400_with_a_coded_error(
    client: httpx.AsyncClient, alice: Actor, case: str, accept: str
) -> None:
    headers = {**auth(alice, accept), "Content-Type": JSON}

    response = await client.post("/graphql", content=ODD_BODIES[case], headers=headers)

    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == accept
    body = response.json()
    assert "data" not in body
    assert codes(response) == ["BAD_REQUEST"], body
    assert body["errors"][0]["message"]


async def test_operation_name_selects_the_operation(
    client: httpx.AsyncClient, alice: Actor
) -> None:
    response = await client.post(
        "/graphql",
        json={"query": "query A { __typename } query B { me { handle } }", "operationName": "B"},
        headers=auth(alice, NEW),
    )

    assert response.status_code == 200
    assert response.json() == {"data": {"me": {"handle": "alice"}}}


async def test_a_too_large_body_is_still_the_413_json_error(
    client: httpx.AsyncClient, alice: Actor, settings: Any
) -> None:
    content = b'{"query": "' + b" " * settings.max_request_bytes + b'{ me { handle } }"}'

    response = await client.post(
        "/graphql", content=content, headers={**auth(alice, NEW), "Content-Type": JSON}
    )

    assert response.status_code == 413
    assert response.headers["content-type"] == JSON
    assert codes(response) == ["REQUEST_TOO_LARGE"]

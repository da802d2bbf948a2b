"""The access log (graph/access_log.py): one `pantheon.access` line per HTTP request and per
operation over a WebSocket at its end, in text and JSON, never with a token or a variable."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import websockets
from gql.transport.exceptions import TransportQueryError
from websockets.typing import Subprotocol

from graph.request_context import RequestIdFilter
from infra.db.engine import open_database
from infra.db.reads import SqlReadStore
from infra.logging import configure_logging
from infra.settings import Settings
from tests.conftest import Actor, GraphQL
from tests.fakes.openai_server import FakeOpenAIServer
from tests.integration.test_cli import free_port
from tests.integration.test_subscriptions import (
    AGENTS,
    PROGRESS,
    _serve,
    collect,
    script_agents,
    start_turn,
    wait_finished,
)

pytestmark = pytest.mark.timeout(60)

SECRET = "secret-prompt-71d2"
CREATE = "mutation($input: CreateSessionInput!) { createSession(input: $input) { id } }"
RUN = "mutation RunIt($input: RunTurnInput!) { runTurn(input: $input) { id status } }"


@pytest.fixture
def service_log() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield io.StringIO()
    root.handlers[:] = handlers
    root.setLevel(level)


def capture(buffer: io.StringIO, fmt: str) -> None:
    """The handler `pantheon serve` installs, at INFO."""
    configure_logging("INFO", fmt, record_filter=RequestIdFilter(), stream=buffer)


def access_lines(buffer: io.StringIO) -> list[str]:
    return [line for line in buffer.getvalue().splitlines() if "pantheon.access" in line]


def json_access(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in access_lines(buffer)]


async def new_session(gql: GraphQL, actor: Actor) -> str:
    body = await gql(CREATE, {"input": {"agentKeys": AGENTS}}, as_=actor)
    assert "errors" not in body, body
    session: str = body["data"]["createSession"]["id"]
    return session


async def run_turn(gql: GraphQL, actor: Actor, session: str) -> httpx.Response:
    return await gql.client.post(
        "/graphql",
        json={
            "query": RUN,
            "variables": {
                "input": {"sessionId": session, "message": SECRET, "waitForCompletion": False}
            },
            "operationName": "RunIt",
        },
        headers={"Authorization": f"Bearer {actor.token}"},
    )


async def test_a_run_turn_is_one_text_line_with_its_request_user_operation_and_status(
    turn_gql: GraphQL, alice: Actor, service_log: io.StringIO
) -> None:
    session = await new_session(turn_gql, alice)
    capture(service_log, "text")

    response = await run_turn(turn_gql, alice, session)

    assert response.status_code == 200
    assert "errors" not in response.json()
    (line,) = [line for line in access_lines(service_log) if "runTurn" in line]
    request_id = response.headers["x-request-id"]
    assert f"[{request_id}]" in line
    assert " INFO pantheon.access " in line
    assert "POST /graphql 200 mutation runTurn name=RunIt" in line
    assert f"user={alice.uuid}" in line
    assert "duration_ms=" in line
    assert line.endswith("codes=-")
    assert SECRET not in service_log.getvalue()
    await wait_finished(turn_gql, alice, response.json()["data"]["runTurn"]["id"])


async def test_a_run_turn_in_json_has_each_field_under_its_key(
    turn_gql: GraphQL, alice: Actor, service_log: io.StringIO
) -> None:
    session = await new_session(turn_gql, alice)
    capture(service_log, "json")

    response = await run_turn(turn_gql, alice, session)

    (line,) = [line for line in json_access(service_log) if line["operation"]]
    assert line["request_id"] == response.headers["x-request-id"]
    assert line["level"] == "INFO"
    assert line["kind"] == "POST"
    assert line["path"] == "/graphql"
    assert line["status"] == 200
    assert line["user_id"] == str(alice.uuid)
    assert line["operation"] == "mutation runTurn"
    assert line["operation_name"] == "RunIt"
    assert isinstance(line["duration_ms"], float)
    assert line["duration_ms"] >= 0
    assert line["error_codes"] == []
    assert "trace_id" not in line
    assert "span_id" not in line
    assert SECRET not in service_log.getvalue()
    await wait_finished(turn_gql, alice, response.json()["data"]["runTurn"]["id"])


async def test_a_failing_operation_logs_its_codes(
    gql: GraphQL, alice: Actor, service_log: io.StringIO
) -> None:
    capture(service_log, "json")

    body = await gql(
        "query Look($id: ID!) { turn(id: $id) { id } me { handle } }",
        {"id": "no-such-id"},
        as_=alice,
    )

    codes = [error["extensions"]["code"] for error in body["errors"]]
    (line,) = json_access(service_log)
    assert line["operation"] == "query turn me"
    assert line["operation_name"] == "Look"
    assert line["error_codes"] == codes
    assert codes
    assert "no-such-id" not in service_log.getvalue()  # variables are never logged


async def test_refusals_before_graphql_are_logged_with_their_status_and_code(
    client: httpx.AsyncClient, service_log: io.StringIO
) -> None:
    capture(service_log, "json")

    response = await client.post("/graphql", json={"query": "{ me { handle } }"})

    assert response.status_code == 401
    (line,) = json_access(service_log)
    assert line["status"] == 401
    assert line["error_codes"] == ["UNAUTHENTICATED"]
    assert line["user_id"] is None


async def test_a_request_failing_before_graphql_logs_503_and_its_code(
    app: Any,
    client: httpx.AsyncClient,
    alice: Actor,
    service_log: io.StringIO,
) -> None:
    # given: the token lookup (before execution) hits a database nothing listens on
    down = open_database(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/none")
    app.state.runtime = dataclasses.replace(app.state.runtime, reads=SqlReadStore(down.reads))
    capture(service_log, "json")
    try:
        response = await client.post(
            "/graphql",
            json={"query": "{ me { handle } }"},
            headers={"Authorization": f"Bearer {alice.token}"},
        )
    finally:
        await down.dispose()

    assert response.status_code == 503
    (line,) = json_access(service_log)
    assert line["status"] == 503
    assert line["error_codes"] == ["SERVICE_UNAVAILABLE"]
    assert line["request_id"] == response.headers["x-request-id"]


async def test_a_body_too_large_is_logged_413(
    client: httpx.AsyncClient, settings: Settings, service_log: io.StringIO
) -> None:
    capture(service_log, "json")

    response = await client.post("/graphql", content=b"x" * (settings.max_request_bytes + 1))

    assert response.status_code == 413
    (line,) = json_access(service_log)
    assert (line["status"], line["error_codes"]) == (413, ["REQUEST_TOO_LARGE"])


async def test_the_token_query_parameter_and_headers_are_never_logged(
    client: httpx.AsyncClient, alice: Actor, service_log: io.StringIO
) -> None:
    capture(service_log, "text")

    await client.post(
        f"/graphql?token={alice.token}",
        json={"query": "{ me { handle } }"},
        headers={"Authorization": f"Bearer {alice.token}"},
    )
    await client.get(f"/graphql?token={alice.token}&query=%7B%20me%20%7B%20handle%20%7D%20%7D")
    await client.get(f"/api/v1/cost-report.csv?token={alice.token}")

    logged = service_log.getvalue()
    assert len(access_lines(service_log)) == 3
    assert alice.token not in logged
    assert "token=" not in logged


async def test_probes_are_logged_at_debug_only(
    client: httpx.AsyncClient, service_log: io.StringIO
) -> None:
    capture(service_log, "text")

    await client.get("/api/v1/health")
    await client.get("/api/v1/ready")

    assert access_lines(service_log) == []


# --- WebSocket subscriptions -------------------------------------------------------------------


@pytest.fixture
async def ws_url(turn_app: Any) -> AsyncIterator[str]:
    async for url in _serve(turn_app):
        yield url


async def wait_for_line(buffer: io.StringIO, needle: str) -> dict[str, Any]:
    async with asyncio.timeout(10):
        while True:
            for line in json_access(buffer):
                if needle in json.dumps(line):
                    return line
            await asyncio.sleep(0.02)


async def wait_for_lines(buffer: io.StringIO, needle: str, *, count: int) -> list[dict[str, Any]]:
    async with asyncio.timeout(10):
        while True:
            lines = [line for line in json_access(buffer) if needle in json.dumps(line)]
            if len(lines) >= count:
                return lines
            await asyncio.sleep(0.02)


async def test_a_subscription_that_completes_is_logged_at_its_end(
    ws_url: str,
    turn_gql: GraphQL,
    alice: Actor,
    fake_openai: FakeOpenAIServer,
    service_log: io.StringIO,
) -> None:
    script_agents(fake_openai, token_delay=0.0)
    session = await new_session(turn_gql, alice)
    turn_id = await start_turn(turn_gql, alice, session)
    await wait_finished(turn_gql, alice, turn_id)
    capture(service_log, "json")

    events = await collect(ws_url, alice, PROGRESS, {"id": turn_id})

    assert events[-1]["__typename"] == "TurnFinished"
    line = await wait_for_line(service_log, "subscription turnProgress")
    assert line["kind"] == "OP"
    assert line["outcome"] == "completed"
    assert line["user_id"] == str(alice.uuid)
    assert line["status"] is None
    assert line["error_codes"] == []
    assert line["duration_ms"] >= 0
    assert turn_id not in service_log.getvalue()  # a variable


async def test_a_subscription_the_client_completes_is_logged_cancelled_and_the_socket_too(
    ws_url: str, turn_gql: GraphQL, alice: Actor, service_log: io.StringIO
) -> None:
    session = await new_session(turn_gql, alice)
    capture(service_log, "json")

    async with websockets.connect(
        f"{ws_url}?token={alice.token}", subprotocols=[Subprotocol("graphql-transport-ws")]
    ) as socket:
        init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {alice.token}"}}
        await socket.send(json.dumps(init))
        assert json.loads(await socket.recv())["type"] == "connection_ack"
        query = "subscription Watch($id: ID!) { sessionEvents(sessionId: $id) { sequence } }"
        subscribe = {"query": query, "variables": {"id": session}, "operationName": "Watch"}
        await socket.send(json.dumps({"id": "1", "type": "subscribe", "payload": subscribe}))
        await asyncio.sleep(0.3)  # let it start waiting for events
        await socket.send(json.dumps({"id": "1", "type": "complete"}))
        line = await wait_for_line(service_log, "subscription sessionEvents")

    assert line["operation_name"] == "Watch"
    assert line["outcome"] == "cancelled"
    assert line["user_id"] == str(alice.uuid)
    socket_line = await wait_for_line(service_log, '"kind": "WS"')
    assert socket_line["path"] == "/graphql"
    assert socket_line["status"] == 1000
    assert socket_line["user_id"] == str(alice.uuid)
    logged = service_log.getvalue()
    assert alice.token not in logged
    assert session not in logged


async def test_a_subscription_ended_by_an_error_is_logged_failed_with_the_code(
    ws_url: str, alice: Actor, service_log: io.StringIO
) -> None:
    # given: a turn id that names no turn of alice's
    missing = "VHVybjowMDAwMDAwMC0wMDAwLTAwMDAtMDAwMC0wMDAwMDAwMDAwMDA="
    capture(service_log, "json")

    # when: the subscription is refused (it ends with an error, as SLOW_CONSUMER ends one)
    with pytest.raises(TransportQueryError):
        await collect(ws_url, alice, PROGRESS, {"id": missing})

    # then
    line = await wait_for_line(service_log, "subscription turnProgress")
    assert line["error_codes"] == ["NOT_FOUND"]
    assert line["outcome"] == "failed"

"""Subscriptions end to end: a real uvicorn server in this process, the `gql` WebSocket client
(graphql-transport-ws), turns streamed by the fake OpenAI server. Both backends."""

from __future__ import annotations

import asyncio
import functools
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
import uvicorn
import websockets
from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportConnectionFailed, TransportQueryError
from gql.transport.httpx import HTTPXAsyncTransport
from gql.transport.websockets import WebsocketsTransport
from websockets.typing import Subprotocol

from graph.app import create_app
from infra.settings import Settings
from tests.conftest import Actor, GraphQL
from tests.fakes.openai_script import FakeResponse
from tests.fakes.openai_server import FakeOpenAIServer
from tests.turns_support import MANAGER_MODEL

pytestmark = pytest.mark.timeout(60)

CREATE = "mutation($input: CreateSessionInput!) { createSession(input: $input) { id } }"
RUN = """mutation($input: RunTurnInput!) {
  runTurn(input: $input) { id status messages { position content agent { key } } }
}"""
TURN = """query($id: ID!) {
  turn(id: $id) { id status messages { position content agent { key } } }
}"""
PROGRESS = """subscription($id: ID!, $after: Int) {
  turnProgress(turnId: $id, afterSequence: $after) {
    __typename turnId sessionId sequence at
    ... on RoutingDecided { routing { selectedAgentKeys } }
    ... on AgentStarted { agentKey position }
    ... on AgentDelta { agentKey position text firstSequence }
    ... on AgentFinished { message { id position content status } }
    ... on SummaryUpdated { summary { id } }
    ... on TurnStarted { turn { id } }
    ... on TurnFinished { turn { id status messages { position content agent { key } } } }
  }
}"""
SESSION_EVENTS = """subscription($id: ID!) {
  sessionEvents(sessionId: $id) {
    __typename turnId sequence ... on TurnFinished { turn { status } }
  }
}"""
AGENTS = ["qwen", "deepseek", "writer"]
ANSWERS = {
    "qwen-plus": "Qwen thinks the plan is sound overall.",
    "deepseek-chat": "DeepSeek would add a rollback step first.",
    "writer-large": "Writer suggests a shorter summary for readers.",
}


# --- a real server --------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _serve(app: Any) -> AsyncIterator[str]:
    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
                await asyncio.sleep(0.02)
        yield f"ws://127.0.0.1:{port}/graphql"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


@pytest.fixture
async def ws_url(turn_app: Any) -> AsyncIterator[str]:
    async for url in _serve(turn_app):
        yield url


def transport(url: str, token: str | None) -> WebsocketsTransport:
    payload = {"Authorization": f"Bearer {token}"} if token else {}
    return WebsocketsTransport(
        url=url,
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
        init_payload=payload,
        connect_timeout=10,
        connect_args={"max_size": None},  # a finished turn's messages may exceed 1 MB
    )


async def collect(
    url: str,
    actor: Actor,
    document: str,
    variables: dict[str, Any],
    *,
    limit: int | None = None,
    pause: float = 0.0,
) -> list[dict[str, Any]]:
    """The subscription's events until it completes (or `limit` events), bounded in time."""
    events: list[dict[str, Any]] = []
    async with asyncio.timeout(30):
        async with Client(transport=transport(url, actor.token)) as session:
            request = GraphQLRequest(document, variable_values=variables)
            async for result in session.subscribe(request):
                events.append(next(iter(result.values())))
                if limit is not None and len(events) >= limit:
                    break
                if pause:
                    await asyncio.sleep(pause)
    return events


async def new_session(gql: GraphQL, actor: Actor) -> str:
    body = await gql(CREATE, {"input": {"agentKeys": AGENTS}}, as_=actor)
    assert "errors" not in body, body
    session_id: str = body["data"]["createSession"]["id"]
    return session_id


async def start_turn(gql: GraphQL, actor: Actor, session: str, mode: str = "ROUNDTABLE") -> str:
    body = await gql(
        RUN,
        {
            "input": {
                "sessionId": session,
                "message": "review the plan",
                "mode": mode,
                "waitForCompletion": False,
            }
        },
        as_=actor,
    )
    assert "errors" not in body, body
    assert body["data"]["runTurn"]["status"] == "RUNNING", body
    turn_id: str = body["data"]["runTurn"]["id"]
    return turn_id


def script_agents(fake_openai: FakeOpenAIServer, *, token_delay: float = 0.01) -> None:
    for model, answer in ANSWERS.items():
        fake_openai.set_default(FakeResponse(content=answer, token_delay=token_delay), model=model)


async def turn_state(gql: GraphQL, actor: Actor, turn_id: str) -> dict[str, Any]:
    body = await gql(TURN, {"id": turn_id}, as_=actor)
    assert "errors" not in body, body
    turn: dict[str, Any] = body["data"]["turn"]
    return turn


async def wait_finished(gql: GraphQL, actor: Actor, turn_id: str) -> dict[str, Any]:
    async with asyncio.timeout(20):
        while True:
            turn = await turn_state(gql, actor, turn_id)
            if turn["status"] != "RUNNING":
                return turn
            await asyncio.sleep(0.05)


def covered(events: list[dict[str, Any]]) -> list[int]:
    """The sequences the events cover, in order: a merged AgentDelta covers
    firstSequence..sequence."""
    sequences: list[int] = []
    for event in events:
        sequences += range(event.get("firstSequence", event["sequence"]), event["sequence"] + 1)
    return sequences


def assert_complete_history(events: list[dict[str, Any]], turn: dict[str, Any]) -> None:
    sequences = covered(events)
    assert sequences == list(range(1, len(sequences) + 1)), sequences
    assert events[0]["__typename"] == "TurnStarted"
    assert events[-1]["__typename"] == "TurnFinished"
    assert events[-1]["turn"]["status"] == turn["status"] == "COMPLETED"
    by_position = {m["position"]: m["content"] for m in turn["messages"]}
    assert len(by_position) == 3
    for position, content in by_position.items():
        deltas = [
            e["text"]
            for e in events
            if e["__typename"] == "AgentDelta" and e["position"] == position
        ]
        assert "".join(deltas) == content
    finished = [e["message"] for e in events if e["__typename"] == "AgentFinished"]
    assert [m["content"] for m in finished] == [by_position[p] for p in (1, 2, 3)]


# --- the tests ------------------------------------------------------------------------------


async def test_a_subscriber_after_the_mutation_gets_every_event_in_order(
    ws_url: str, turn_gql: GraphQL, alice: Actor, fake_openai: FakeOpenAIServer
) -> None:
    script_agents(fake_openai)
    session = await new_session(turn_gql, alice)
    turn_id = await start_turn(turn_gql, alice, session)

    events = await collect(ws_url, alice, PROGRESS, {"id": turn_id})

    turn = await turn_state(turn_gql, alice, turn_id)
    assert_complete_history(events, turn)
    assert {e["turnId"] for e in events} == {turn_id}
    assert {e["sessionId"] for e in events} == {session}


async def test_an_orchestrator_turn_streams_every_event_after_the_manager_routed_it(
    ws_url: str, turn_gql: GraphQL, alice: Actor, fake_openai: FakeOpenAIServer
) -> None:
    # given: the manager picks all three agents, in another order than the roster's
    script_agents(fake_openai)
    picks = '{"selected_agent_keys": ["writer", "qwen", "deepseek"]}'
    fake_openai.set_default(FakeResponse(content=picks), model=MANAGER_MODEL)
    session = await new_session(turn_gql, alice)
    http = HTTPXAsyncTransport(
        url=ws_url.replace("ws://", "http://", 1),
        headers={"Authorization": f"Bearer {alice.token}"},
    )

    async with Client(transport=http) as client:  # the gql client over HTTP, as apps use it
        # when: a turn that does not wait, subscribed (over WebSocket) after the mutation returned
        run_input = {
            "sessionId": session,
            "message": "review the plan",
            "mode": "ORCHESTRATOR",
            "waitForCompletion": False,
        }
        started = await client.execute(GraphQLRequest(RUN, variable_values={"input": run_input}))
        assert started["runTurn"]["status"] == "RUNNING"
        turn_id = started["runTurn"]["id"]
        events = await collect(ws_url, alice, PROGRESS, {"id": turn_id})
        final = await client.execute(GraphQLRequest(TURN, variable_values={"id": turn_id}))

    # then: gap-free, each agent's deltas are its message, and TurnFinished shows the final turn
    turn = final["turn"]
    assert_complete_history(events, turn)
    assert events[-1]["turn"] == turn
    [routed] = [e for e in events if e["__typename"] == "RoutingDecided"]
    assert routed["routing"]["selectedAgentKeys"] == ["writer", "qwen", "deepseek"]
    assert [m["agent"]["key"] for m in turn["messages"]] == ["writer", "qwen", "deepseek"]


async def test_the_next_turn_can_start_as_soon_as_turn_finished_arrives(
    ws_url: str, turn_gql: GraphQL, alice: Actor, fake_openai: FakeOpenAIServer
) -> None:
    # TurnFinished is published after the turn's closing commit: a client that starts the
    # next turn on receiving it is never told that a turn of the session is still running.
    script_agents(fake_openai, token_delay=0.0)
    session = await new_session(turn_gql, alice)
    for _ in range(8):
        turn_id = await start_turn(turn_gql, alice, session)
        events = await collect(ws_url, alice, PROGRESS, {"id": turn_id})
        assert events[-1]["__typename"] == "TurnFinished"


async def test_resuming_after_a_sequence_gives_the_rest_without_duplicates(
    ws_url: str, turn_gql: GraphQL, alice: Actor, fake_openai: FakeOpenAIServer
) -> None:
    script_agents(fake_openai, token_delay=0.03)
    session = await new_session(turn_gql, alice)
    turn_id = await start_turn(turn_gql, alice, session)

    first = await collect(ws_url, alice, PROGRESS, {"id": turn_id}, limit=5)
    last = first[-1]["sequence"]
    rest = await collect(ws_url, alice, PROGRESS, {"id": turn_id, "after": last})

    assert covered(first) == list(range(1, last + 1))
    assert covered(rest)[0] == last + 1
    turn = await turn_state(turn_gql, alice, turn_id)
    assert_complete_history(first + rest, turn)


async def test_a_late_subscriber_gets_the_whole_history_and_completes(
    ws_url: str, turn_gql: GraphQL, alice: Actor, fake_openai: FakeOpenAIServer
) -> None:
    script_agents(fake_openai, token_delay=0.005)  # deltas published one by one
    session = await new_session(turn_gql, alice)
    turn_id = await start_turn(turn_gql, alice, session)
    turn = await wait_finished(turn_gql, alice, turn_id)

    events = await collect(ws_url, alice, PROGRESS, {"id": turn_id})
    after_the_end = await collect(
        ws_url, alice, PROGRESS, {"id": turn_id, "after": events[-1]["sequence"]}
    )

    assert_complete_history(events, turn)
    assert after_the_end == []
    # the retained deltas of each agent were replayed as one merged delta
    deltas = [e for e in events if e["__typename"] == "AgentDelta"]
    assert [d["position"] for d in deltas] == [1, 2, 3]
    assert all(d["firstSequence"] < d["sequence"] for d in deltas)


async def test_another_users_turn_and_session_are_not_found(
    ws_url: str, turn_gql: GraphQL, alice: Actor, bob: Actor, fake_openai: FakeOpenAIServer
) -> None:
    script_agents(fake_openai, token_delay=0.0)
    session = await new_session(turn_gql, alice)
    turn_id = await start_turn(turn_gql, alice, session)

    for document, variables in ((PROGRESS, {"id": turn_id}), (SESSION_EVENTS, {"id": session})):
        with pytest.raises(TransportQueryError) as refused:
            await collect(ws_url, bob, document, variables)
        assert refused.value.errors is not None
        assert [e["extensions"]["code"] for e in refused.value.errors] == ["NOT_FOUND"]
        assert "review the plan" not in str(refused.value.errors)
    await wait_finished(turn_gql, alice, turn_id)


async def test_a_bad_or_missing_token_is_rejected_at_connect(ws_url: str, alice: Actor) -> None:
    async def connect(token: str | None) -> None:
        async with asyncio.timeout(10):
            async with Client(transport=transport(ws_url, token)) as session:
                await session.execute(GraphQLRequest("{ me { id } }"))

    for token in ("not-a-token", None):
        with pytest.raises(TransportConnectionFailed):  # refused before any operation
            await connect(token)


async def test_the_token_key_is_matched_case_insensitively(ws_url: str, alice: Actor) -> None:
    socket_transport = WebsocketsTransport(
        url=ws_url,
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
        init_payload={"authorization": f"Bearer {alice.token}"},
    )
    async with asyncio.timeout(10):
        async with Client(transport=socket_transport) as session:
            result = await session.execute(GraphQLRequest("{ me { handle } }"))
    assert result == {"me": {"handle": alice.handle}}


async def test_the_legacy_graphql_ws_protocol_streams_too(
    ws_url: str, turn_gql: GraphQL, alice: Actor, fake_openai: FakeOpenAIServer
) -> None:
    script_agents(fake_openai, token_delay=0.0)
    session = await new_session(turn_gql, alice)
    turn_id = await start_turn(turn_gql, alice, session)
    turn = await wait_finished(turn_gql, alice, turn_id)

    legacy = WebsocketsTransport(  # no subprotocols: Strawberry picks graphql-ws
        url=ws_url, init_payload={"Authorization": f"Bearer {alice.token}"}
    )
    events: list[dict[str, Any]] = []
    async with asyncio.timeout(20):
        async with Client(transport=legacy) as client:
            request = GraphQLRequest(PROGRESS, variable_values={"id": turn_id})
            async for result in client.subscribe(request):
                events.append(result["turnProgress"])

    assert_complete_history(events, turn)


async def test_session_events_follow_a_turn(
    ws_url: str, turn_gql: GraphQL, alice: Actor, fake_openai: FakeOpenAIServer
) -> None:
    script_agents(fake_openai, token_delay=0.02)
    session = await new_session(turn_gql, alice)
    received: list[dict[str, Any]] = []

    async def follow() -> None:
        async with Client(transport=transport(ws_url, alice.token)) as client:
            request = GraphQLRequest(SESSION_EVENTS, variable_values={"id": session})
            async for result in client.subscribe(request):
                received.append(result["sessionEvents"])
                if result["sessionEvents"]["__typename"] == "TurnFinished":
                    return

    async with asyncio.timeout(30):
        follower = asyncio.create_task(follow())
        await asyncio.sleep(0.5)  # connected and subscribed: sessionEvents is live only
        turn_id = await start_turn(turn_gql, alice, session)
        await follower

    assert received[-1]["turn"]["status"] == "COMPLETED"
    assert {e["turnId"] for e in received} == {turn_id}
    sequences = [e["sequence"] for e in received]
    assert sequences == sorted(sequences)


async def test_a_subscriber_that_disconnects_mid_turn_does_not_break_it(
    ws_url: str, turn_gql: GraphQL, alice: Actor, fake_openai: FakeOpenAIServer
) -> None:
    script_agents(fake_openai, token_delay=0.03)
    session = await new_session(turn_gql, alice)
    turn_id = await start_turn(turn_gql, alice, session)

    early = await collect(ws_url, alice, PROGRESS, {"id": turn_id}, limit=3)
    turn = await wait_finished(turn_gql, alice, turn_id)

    assert len(early) == 3
    assert turn["status"] == "COMPLETED"
    assert [m["content"] for m in turn["messages"]] == list(ANSWERS.values())


# --- a slow consumer: a tiny buffer, a fast stream ------------------------------------------


@pytest.fixture
async def slow_ws(turn_settings: Settings) -> AsyncIterator[tuple[str, Any]]:
    application = create_app(
        turn_settings.model_copy(update={"subscriber_buffer": 2}), migrate_on_start=False
    )
    async with application.router.lifespan_context(application):
        async for url in _serve(application):
            yield url, application


async def test_a_slow_consumer_gets_slow_consumer_and_resumes(
    slow_ws: tuple[str, Any], alice: Actor, fake_openai: FakeOpenAIServer
) -> None:
    url, application = slow_ws
    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=application), base_url="http://pantheon.test"
    )
    async with http:
        await _slow_consumer(url, GraphQL(http), alice, fake_openai)


async def _slow_consumer(
    url: str, turn_gql: GraphQL, alice: Actor, fake_openai: FakeOpenAIServer
) -> None:
    # given: big deltas, and a client that stops reading for a while: its socket buffers fill,
    # the server's sends wait, and the subscription's buffer (2 events here) overflows
    words = " ".join(f"w{n}-{'x' * 16_000}" for n in range(200))  # about 10 MB in all
    for model in ANSWERS:
        fake_openai.set_default(FakeResponse(content=words, token_delay=0.0005), model=model)
    # when: it stops reading after the first event until the turn has finished (whether the
    # server's sends back up that far depends on the machine's socket buffers and scheduling:
    # a turn the client kept up with after all is tried again, three times at most)
    for _attempt in range(3):
        session = await new_session(turn_gql, alice)
        turn_id = await start_turn(turn_gql, alice, session)
        finished = functools.partial(wait_finished, turn_gql, alice, turn_id)
        received, ending = await stall_then_read(url, alice.token, turn_id, stall=finished)
        if ending is not None:
            break

    # then: what came before the error is gap-free, and a resume completes the history
    assert ending is not None, "the subscription completed: the client never fell behind"
    assert [e["extensions"]["code"] for e in ending] == ["SLOW_CONSUMER"]
    last = received[-1]["sequence"] if received else 0
    assert ending[0]["extensions"]["lastSequence"] == last
    turn = await wait_finished(turn_gql, alice, turn_id)
    assert turn["status"] == "COMPLETED"
    rest = await collect(url, alice, PROGRESS, {"id": turn_id, "after": last})
    assert_complete_history(received + rest, turn)


def _small_window_socket(url: str) -> socket.socket:
    """A client socket whose receive buffer is set small before it connects (so the TCP window
    is negotiated small): a client that stops reading then pushes back after a few KB, not after
    the megabytes loopback's auto-tuned buffers would hold, whatever the machine's settings."""
    host, _, rest = url.removeprefix("ws://").partition(":")
    port = int(rest.split("/", 1)[0])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16_384)
    sock.connect((host, port))
    sock.setblocking(False)
    return sock


async def stall_then_read(
    url: str, token: str, turn_id: str, *, stall: Callable[[], Awaitable[Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    """Subscribes over a raw graphql-transport-ws socket that buffers one message (`gql` reads
    everything as it comes, so it never pushes back), stops reading after the first event until
    `stall()` returns, then reads on; returns the events and the errors it ended with (None if
    it completed)."""
    received: list[dict[str, Any]] = []
    async with (
        asyncio.timeout(30),
        websockets.connect(
            url,
            sock=_small_window_socket(url),
            subprotocols=[Subprotocol("graphql-transport-ws")],
            max_queue=1,
            max_size=None,
            close_timeout=1,
        ) as ws,
    ):
        init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
        await ws.send(json.dumps(init))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        subscribe = {"query": PROGRESS, "variables": {"id": turn_id}}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": subscribe}))
        while True:
            message = json.loads(await ws.recv())
            if message["type"] == "complete":
                return received, None
            if message["type"] == "error":
                return received, message["payload"]
            if message["type"] == "next":
                if message["payload"].get("errors"):
                    return received, message["payload"]["errors"]
                received.append(message["payload"]["data"]["turnProgress"])
                if len(received) == 1:
                    await stall()

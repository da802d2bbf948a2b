"""Two `pantheon serve` processes on one PostgreSQL database and one Redis: a turn run by one
process is streamed, replayed and cancelled through the other.

Real OS processes (started like an operator would: `pantheon migrate`, `pantheon catalog sync`,
`pantheon create-user`, then `pantheon serve` twice), the `gql` client over HTTP and over
WebSocket (graphql-transport-ws), every model answered by the fake OpenAI server. The database
is created for this module and dropped after it; the Redis keys live under a private prefix and
are deleted after it.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from gql import Client, GraphQLRequest
from gql.transport.httpx import HTTPXAsyncTransport

from tests import db as testdb
from tests.fakes.openai_script import FakeResponse
from tests.fakes.openai_server import FakeOpenAIServer
from tests.integration.test_cli import (
    CLI_TIMEOUT,
    PANTHEON,
    TOKEN,
    Server,
    cli_env,
    running_server,
)
from tests.integration.test_subscriptions import PROGRESS, covered, transport
from tests.turns_support import write_fake_catalog

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.timeout(120)]

CREATE = "mutation($input: CreateSessionInput!) { createSession(input: $input) { id } }"
RUN = "mutation($input: RunTurnInput!) { runTurn(input: $input) { id status } }"
TURN = "query($id: ID!) { turn(id: $id) { id status messages { position content } } }"
CANCEL = "mutation($id: ID!) { cancelTurn(id: $id) { id status } }"
AGENTS = ["qwen", "deepseek", "writer"]
MODELS = ["qwen-plus", "deepseek-chat", "writer-large"]
WAIT = 20.0  # the bound of any single wait for a turn or a subscription


def _words(name: str, count: int) -> str:
    return " ".join(f"{name}{n}" for n in range(count))


@dataclass
class Cluster:
    """Two API processes sharing one database and one Redis, and a user's token."""

    a: Server
    b: Server
    token: str


def ws_url(server: Server) -> str:
    return server.url.replace("http://", "ws://", 1) + "/graphql"


def _cli(cwd: Path, env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [PANTHEON, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, f"pantheon {' '.join(args)}:\n{result.stderr}"
    return result.stdout


def _prepare(cwd: Path, env: dict[str, str]) -> str:
    """Migrates the database, loads the catalog once (so the two servers never race to insert
    it) and creates a user; returns the user's token."""
    _cli(cwd, env, "migrate")
    _cli(cwd, env, "catalog", "sync")
    printed = _cli(cwd, env, "create-user", "alice")
    found = TOKEN.search(printed)
    assert found is not None, printed
    return found.group()


@pytest.fixture(scope="module")
async def cluster(
    tmp_path_factory: pytest.TempPathFactory, fake_openai_server: FakeOpenAIServer
) -> AsyncIterator[Cluster]:
    async with testdb.shared_stores(
        database_prefix="pantheon_e2e", key_prefix="pantheon-test"
    ) as stores:
        tmp = tmp_path_factory.mktemp("two-processes")
        cwd = tmp / "work"
        cwd.mkdir()
        catalog = write_fake_catalog(tmp / "catalog.toml", fake_openai_server)
        stack = ExitStack()
        try:
            env = cli_env(
                tmp,
                **stores.env,
                PANTHEON_CATALOG_FILE=str(catalog),
                # Heartbeats every 10 s: only the Redis cancel channel can stop a turn running
                # on the other process within a few seconds.
                PANTHEON_TURN_LEASE_SECONDS="30",
                PANTHEON_TURN_HEARTBEAT_SECONDS="10",
                PANTHEON_SHUTDOWN_GRACE_SECONDS="2",
            )
            token = await asyncio.to_thread(_prepare, cwd, env)
            # Both servers start at once; each is registered in the stack as soon as it is
            # ready, so whatever happens to the other, the stack terminates it.
            started = await asyncio.gather(
                *(
                    asyncio.to_thread(
                        stack.enter_context, running_server(cwd, env, tmp / f"{n}.log")
                    )
                    for n in ("a", "b")
                ),
                return_exceptions=True,
            )
            for outcome in started:
                if isinstance(outcome, BaseException):
                    raise outcome
            a, b = started
            assert isinstance(a, Server)
            assert isinstance(b, Server)
            yield Cluster(a=a, b=b, token=token)
        finally:
            await asyncio.to_thread(stack.close)


# --- the clients ------------------------------------------------------------------------------


async def execute(
    server: Server, token: str, document: str, variables: dict[str, Any]
) -> dict[str, Any]:
    """One operation over HTTP with the `gql` client; GraphQL errors raise."""
    http = HTTPXAsyncTransport(
        url=f"{server.url}/graphql", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    async with asyncio.timeout(15), Client(transport=http) as session:
        result: dict[str, Any] = await session.execute(
            GraphQLRequest(document, variable_values=variables)
        )
        return result


async def start_turn(cluster: Cluster, server: Server, message: str) -> str:
    created = await execute(server, cluster.token, CREATE, {"input": {"agentKeys": AGENTS}})
    session_id = created["createSession"]["id"]
    started = await execute(
        server,
        cluster.token,
        RUN,
        {
            "input": {
                "sessionId": session_id,
                "message": message,
                "mode": "ROUNDTABLE",
                "waitForCompletion": False,
            }
        },
    )
    assert started["runTurn"]["status"] == "RUNNING", started
    turn_id: str = started["runTurn"]["id"]
    return turn_id


async def turn_state(cluster: Cluster, server: Server, turn_id: str) -> dict[str, Any]:
    turn: dict[str, Any] = (await execute(server, cluster.token, TURN, {"id": turn_id}))["turn"]
    return turn


async def subscribe(
    server: Server, token: str, turn_id: str, after: int | None = None
) -> AsyncIterator[dict[str, Any]]:
    """The turn's progress events over WebSocket until the server completes the subscription.
    The caller bounds the time."""
    async with Client(transport=transport(ws_url(server), token)) as session:
        request = GraphQLRequest(PROGRESS, variable_values={"id": turn_id, "after": after})
        async for result in session.subscribe(request):
            yield result["turnProgress"]


async def collect(
    server: Server, token: str, turn_id: str, after: int | None
) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    async with asyncio.timeout(WAIT):
        async for event in subscribe(server, token, turn_id, after):
            events.append(event)
    return events


def assert_deltas_match_messages(events: list[dict[str, Any]], turn: dict[str, Any]) -> None:
    stored = {message["position"]: message["content"] for message in turn["messages"]}
    assert sorted(stored) == [1, 2, 3], turn
    for position, content in stored.items():
        streamed = "".join(
            event["text"]
            for event in events
            if event["__typename"] == "AgentDelta" and event["position"] == position
        )
        assert streamed == content, (position, streamed, content)


# --- a completed turn run on B, followed on A -------------------------------------------------


@dataclass
class LiveRun:
    turn_id: str
    events: list[dict[str, Any]]
    status_on_b_at_first_event: str
    stored: dict[str, Any]


@pytest.fixture(scope="module")
async def live_run(cluster: Cluster, fake_openai_server: FakeOpenAIServer) -> LiveRun:
    """A roundtable turn started on B; A's subscriber attaches while it runs and follows it to
    the end."""
    fake_openai_server.reset()
    for model in MODELS:
        # about 1 s of streaming per agent: the subscriber on A attaches long before the end
        fake_openai_server.set_default(
            FakeResponse(content=_words(model.split("-")[0], 20), token_delay=0.05), model=model
        )
    turn_id = await start_turn(cluster, cluster.b, "review the plan")
    events: list[dict[str, Any]] = []
    status_at_first = ""
    async with asyncio.timeout(WAIT):
        async for event in subscribe(cluster.a, cluster.token, turn_id):
            if not events:
                status_at_first = (await turn_state(cluster, cluster.b, turn_id))["status"]
            events.append(event)
    stored = await turn_state(cluster, cluster.a, turn_id)
    return LiveRun(turn_id, events, status_at_first, stored)


async def test_a_subscriber_on_a_gets_every_event_of_a_turn_run_on_b_in_order(
    live_run: LiveRun, cluster: Cluster
) -> None:
    events = live_run.events

    # the subscription was live: the turn was still running on B when A delivered its first event
    assert live_run.status_on_b_at_first_event == "RUNNING"
    # every event, each once, in order
    assert events, "no event reached the subscriber"
    sequences = covered(events)
    assert sequences == list(range(1, len(sequences) + 1)), sequences
    assert {event["turnId"] for event in events} == {live_run.turn_id}
    assert events[0]["__typename"] == "TurnStarted"
    assert events[-1]["__typename"] == "TurnFinished"
    assert events[-1]["turn"]["status"] == "COMPLETED"
    assert [e["__typename"] for e in events].count("TurnFinished") == 1
    # each agent's deltas are its stored message, as both processes read it from the database
    assert live_run.stored["status"] == "COMPLETED"
    assert_deltas_match_messages(events, live_run.stored)
    assert await turn_state(cluster, cluster.b, live_run.turn_id) == live_run.stored
    started = [e["position"] for e in events if e["__typename"] == "AgentStarted"]
    finished = [e["message"]["position"] for e in events if e["__typename"] == "AgentFinished"]
    assert started == finished == [1, 2, 3]


async def test_a_new_subscription_on_a_after_a_sequence_replays_exactly_the_rest(
    live_run: LiveRun, cluster: Cluster
) -> None:
    # given: a sequence from the middle of what the live subscriber received
    total = covered(live_run.events)[-1]
    middle = live_run.events[len(live_run.events) // 2]
    after = middle["sequence"]
    assert 1 < after < total, (after, total)

    # when
    replayed = await collect(cluster.a, cluster.token, live_run.turn_id, after)

    # then: exactly after+1..N, each once, ending with the finish
    assert covered(replayed) == list(range(after + 1, total + 1))
    assert replayed[-1]["__typename"] == "TurnFinished"
    assert replayed[-1]["turn"]["status"] == "COMPLETED"

    # and the text after the cut is what the live subscriber saw after it
    def text_after(events: list[dict[str, Any]]) -> str:
        return "".join(
            e["text"]
            for e in events
            if e["__typename"] == "AgentDelta" and e["firstSequence"] > after
        )

    assert text_after(replayed) == text_after(live_run.events)


# --- a cancel sent to A stops the turn running on B ---------------------------------------------


async def test_a_cancel_sent_to_a_stops_the_turn_running_on_b(
    cluster: Cluster, fake_openai: FakeOpenAIServer
) -> None:
    # given: a turn on B whose first agent streams for about 10 s
    for model in MODELS:
        fake_openai.set_default(
            FakeResponse(content=_words("w", 100), token_delay=0.1), model=model
        )
    turn_id = await start_turn(cluster, cluster.b, "take your time")
    events: list[dict[str, Any]] = []
    streaming = asyncio.Event()

    async def follow() -> None:
        async for event in subscribe(cluster.a, cluster.token, turn_id):
            events.append(event)
            if event["__typename"] == "AgentDelta":
                streaming.set()

    follower = asyncio.create_task(follow())
    try:
        async with asyncio.timeout(10):
            await streaming.wait()  # B's stream reaches A's subscriber

        # when
        answer = await execute(cluster.a, cluster.token, CANCEL, {"id": turn_id})
        assert answer["cancelTurn"]["id"] == turn_id
        assert answer["cancelTurn"]["status"] == "CANCELLED"  # A waited for B's TurnFinished

        # then: B stops the turn within a few seconds, far sooner than its 10 s heartbeat
        async with asyncio.timeout(5):
            while True:
                status = (await turn_state(cluster, cluster.b, turn_id))["status"]
                if status != "RUNNING":
                    break
                await asyncio.sleep(0.05)
        assert status == "CANCELLED"
        # and A's subscriber sees the finish, with nothing missing before it
        async with asyncio.timeout(5):
            await follower
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)

    assert events[-1]["__typename"] == "TurnFinished"
    assert events[-1]["turn"]["status"] == "CANCELLED"
    sequences = covered(events)
    assert sequences == list(range(1, len(sequences) + 1)), sequences
    # the first agent was cut off mid-stream: B closed its call to the provider
    [call] = fake_openai.requests(model="qwen-plus")
    assert call.disconnected_at is not None
    assert fake_openai.requests(model="writer-large") == []

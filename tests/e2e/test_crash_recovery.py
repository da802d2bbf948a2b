"""Nothing billable is lost to a crash: a `pantheon serve` process is killed with SIGKILL while
an agent's provider call is in flight; a second process recovers the turn, and the ledger holds
that call — an ESTIMATED usage row of the prompt that was sent, marked `recovered`.

Real OS processes on a PostgreSQL database of this module's own and Redis under a key prefix of
its own (started as an operator would, see test_two_processes.py), every model answered by the
fake OpenAI server, which holds the call open until the killed process's connection drops. What
the call had streamed before the kill (deltas retained in Redis) is metered as its completion.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from domain.llm import ChatMessage, estimate_prompt_tokens, estimate_tokens
from graph.ids import uuid_of
from tests import db as testdb
from tests.e2e.test_two_processes import _prepare
from tests.fakes.openai_script import FakeResponse
from tests.fakes.openai_server import FakeOpenAIServer
from tests.integration.test_cli import Server, cli_env, running_server
from tests.turns_support import write_fake_catalog

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.timeout(120)]

CREATE = "mutation($input: CreateSessionInput!) { createSession(input: $input) { id } }"
RUN = "mutation($input: RunTurnInput!) { runTurn(input: $input) { id status } }"
TURN = """
query($id: ID!) {
  turn(id: $id) {
    status
    messages { position status content error { code } }
    usage {
      callKind agentKey attempt succeeded errorCode tokenSource recovered promptTokens
      completionTokens costUsd billingCategory providerModel
    }
  }
}"""
ME = "{ me { monthSpendUsd } }"


@dataclass
class Setup:
    cwd: Path
    env: dict[str, str]
    tmp: Path
    token: str
    redis_url: str
    prefix: str


@pytest.fixture
async def setup(tmp_path: Path, fake_openai: FakeOpenAIServer) -> AsyncIterator[Setup]:
    async with testdb.shared_stores(
        database_prefix="pantheon_crash", key_prefix="pantheon-crash"
    ) as stores:
        cwd = tmp_path / "work"
        cwd.mkdir()
        catalog = write_fake_catalog(tmp_path / "catalog.toml", fake_openai)
        env = cli_env(
            tmp_path,
            **stores.env,
            PANTHEON_CATALOG_FILE=str(catalog),
            # Short leases, so the survivor recovers the dead process's turn within seconds.
            PANTHEON_TURN_LEASE_SECONDS="3",
            PANTHEON_TURN_HEARTBEAT_SECONDS="0.5",
            PANTHEON_RECOVERY_INTERVAL_SECONDS="0.5",
            PANTHEON_SHUTDOWN_GRACE_SECONDS="1",
        )
        token = await asyncio.to_thread(_prepare, cwd, env)
        yield Setup(
            cwd=cwd,
            env=env,
            tmp=tmp_path,
            token=token,
            redis_url=stores.redis_url,
            prefix=stores.prefix,
        )


def gql(server: Server, token: str, query: str, variables: dict[str, Any] | None = None) -> Any:
    response = httpx.post(
        f"{server.url}/graphql",
        json={"query": query, "variables": variables or {}},
        headers={"Authorization": f"Bearer {token}"},
        timeout=15,
    )
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


def wait_for(check: Any, *, within: float = 30.0) -> Any:
    deadline = time.monotonic() + within
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.1)


@pytest.fixture
def servers(setup: Setup) -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


async def kill_then_recover(
    a: Server, turn_id: str, setup: Setup, servers: ExitStack
) -> tuple[Server, Any]:
    """Kills A (no shutdown, no close), starts B and waits until B has closed the turn A was
    running; returns B and the turn as B serves it."""
    a.process.kill()
    a.process.wait(timeout=10)
    b = servers.enter_context(running_server(setup.cwd, setup.env, setup.tmp / "b.log"))
    turn = await asyncio.to_thread(
        wait_for,
        lambda: (
            (t := gql(b, setup.token, TURN, {"id": turn_id})["turn"])["status"] != "RUNNING" and t
        ),
    )
    return b, turn


async def test_a_call_in_flight_when_its_process_is_killed_is_in_the_ledger(
    setup: Setup, fake_openai: FakeOpenAIServer, servers: ExitStack
) -> None:
    # given: qwen's provider takes a minute to answer; process A runs a turn that calls it
    fake_openai.set_default(FakeResponse(content="too late", hang=60.0), model="qwen-plus")
    a = servers.enter_context(running_server(setup.cwd, setup.env, setup.tmp / "a.log"))
    session = gql(a, setup.token, CREATE, {"input": {"agentKeys": ["qwen", "deepseek"]}})
    session_id = session["createSession"]["id"]
    run = {"sessionId": session_id, "message": "@qwen tell me a story", "mode": "MANUAL"}
    started = gql(a, setup.token, RUN, {"input": {**run, "waitForCompletion": False}})
    turn_id = started["runTurn"]["id"]
    [request] = await asyncio.to_thread(wait_for, lambda: fake_openai.requests(model="qwen-plus"))

    # when: A is killed mid-call (no shutdown, no close), and B starts
    b, turn = await kill_then_recover(a, turn_id, setup, servers)

    # then: B recovered the turn, and the ledger holds the call A had in flight
    assert turn["status"] == "FAILED"
    assert turn["messages"] == [
        {"position": 1, "status": "FAILED", "content": "", "error": {"code": "RUNNER_LOST"}}
    ]
    [row] = turn["usage"]
    sent = [ChatMessage(role=m["role"], content=m["content"]) for m in request.messages]
    assert row == {
        "callKind": "AGENT_RESPONSE",
        "agentKey": "qwen",
        "attempt": 1,
        "succeeded": False,
        "errorCode": "RUNNER_LOST",
        "tokenSource": "ESTIMATED",
        "recovered": True,
        # the prompt B re-built from what A committed is the one A sent
        "promptTokens": estimate_prompt_tokens(sent),
        "completionTokens": 0,
        "costUsd": row["costUsd"],
        "billingCategory": "USER_BILLABLE",
        "providerModel": "qwen-plus",
    }
    assert Decimal(row["costUsd"]) > 0
    # billed like any call: it counts in the user's month spend
    me = gql(b, setup.token, ME)["me"]
    assert Decimal(me["monthSpendUsd"]) == Decimal(row["costUsd"])


async def test_what_a_killed_call_had_streamed_is_metered_as_its_completion(
    setup: Setup, fake_openai: FakeOpenAIServer, servers: ExitStack
) -> None:
    # given: qwen streams a long answer slowly; process A runs a turn that calls it
    words = [f"word{n}" for n in range(200)]
    fake_openai.set_default(
        FakeResponse(content=" ".join(words), token_delay=0.2), model="qwen-plus"
    )
    a = servers.enter_context(running_server(setup.cwd, setup.env, setup.tmp / "a.log"))
    session = gql(a, setup.token, CREATE, {"input": {"agentKeys": ["qwen"]}})
    run = {"sessionId": session["createSession"]["id"], "message": "@qwen a long story"}
    started = gql(a, setup.token, RUN, {"input": {**run, "waitForCompletion": False}})
    turn_id = started["runTurn"]["id"]
    await streamed_deltas(setup, turn_id, at_least=3)

    # when: A is killed mid-stream, and B starts
    _, turn = await kill_then_recover(a, turn_id, setup, servers)

    # then: the text A had streamed (read back from Redis) is the message's and is metered
    [message] = turn["messages"]
    streamed = message["content"]
    assert streamed, message
    assert " ".join(words).startswith(streamed), message
    [row] = turn["usage"]
    assert (row["recovered"], row["tokenSource"]) == (True, "ESTIMATED")
    assert row["completionTokens"] == estimate_tokens(streamed) > 0


async def streamed_deltas(setup: Setup, turn_id: str, *, at_least: int) -> None:
    """Waits until the turn's Redis stream holds `at_least` deltas (after its 3 start events)."""
    turn_uuid = uuid_of(turn_id, "Turn")
    redis = Redis.from_url(setup.redis_url)
    try:
        async with asyncio.timeout(30):
            # Another process writes the stream: there is no event of ours to await.
            while await redis.xlen(f"{setup.prefix}:turn:{turn_uuid}") < 3 + at_least:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    finally:
        await redis.aclose()

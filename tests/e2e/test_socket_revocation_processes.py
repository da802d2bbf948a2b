"""Socket limits across real `pantheon serve` processes sharing one PostgreSQL and one Redis:
`revokeTokens` served by one process closes the user's sockets on the other with 4403 within
5 s, the per-user socket limit is one count for both, and `serve` applies the message size
limit. Started like tests/e2e/test_two_processes.py does."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import websockets
from websockets.typing import Subprotocol

from tests import db as testdb
from tests.e2e.test_two_processes import _cli, ws_url
from tests.integration.test_cli import TOKEN, Server, cli_env, running_server
from tests.integration.test_socket_limits import acknowledged, close_code

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.timeout(120)]

REVOCATION_BOUND = 5.0
MAX_SOCKETS = 3


@dataclass
class Pair:
    a: Server
    b: Server
    tokens: dict[str, str]  # handle -> token


def _user(cwd: Path, env: dict[str, str], handle: str) -> str:
    found = TOKEN.search(_cli(cwd, env, "create-user", handle))
    assert found is not None
    return found.group()


def _prepare(cwd: Path, env: dict[str, str]) -> dict[str, str]:
    _cli(cwd, env, "migrate")
    _cli(cwd, env, "catalog", "sync")
    return {handle: _user(cwd, env, handle) for handle in ("alice", "bob", "carol")}


@pytest.fixture(scope="module")
async def pair(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Pair]:
    async with testdb.shared_stores(
        database_prefix="pantheon_e2e", key_prefix="pantheon-test"
    ) as stores:
        tmp = tmp_path_factory.mktemp("socket-processes")
        cwd = tmp / "work"
        cwd.mkdir()
        stack = ExitStack()
        try:
            env = cli_env(
                tmp,
                **stores.env,
                PANTHEON_MAX_WEBSOCKETS_PER_USER=str(MAX_SOCKETS),
                PANTHEON_MAX_WEBSOCKET_MESSAGE_BYTES="8192",
                PANTHEON_SHUTDOWN_GRACE_SECONDS="2",
            )
            tokens = await asyncio.to_thread(_prepare, cwd, env)
            a = await asyncio.to_thread(
                stack.enter_context, running_server(cwd, env, tmp / "a.log")
            )
            b = await asyncio.to_thread(
                stack.enter_context, running_server(cwd, env, tmp / "b.log")
            )
            yield Pair(a=a, b=b, tokens=tokens)
        finally:
            await asyncio.to_thread(stack.close)


async def post(server: Server, token: str, query: str, variables: dict[str, str]) -> object:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(
            f"{server.url}/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {token}"},
        )
    return response.json()


async def open_socket(server: Server, token: str) -> websockets.ClientConnection:
    ws = await websockets.connect(
        ws_url(server), subprotocols=[Subprotocol("graphql-transport-ws")], open_timeout=10
    )
    init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
    await ws.send(json.dumps(init))
    return ws


async def open_acknowledged(server: Server, token: str) -> websockets.ClientConnection:
    ws = await open_socket(server, token)
    await acknowledged(ws)
    return ws


async def try_socket(server: Server, token: str) -> websockets.ClientConnection | None:
    """An acknowledged socket, or None when the server closed it instead."""
    ws = await open_socket(server, token)
    try:
        async with asyncio.timeout(10):
            reply = json.loads(await ws.recv())
    except websockets.ConnectionClosed:
        return None
    assert reply["type"] == "connection_ack", reply
    return ws


async def test_revoke_tokens_on_one_process_closes_the_users_sockets_on_both(pair: Pair) -> None:
    alice, bob = pair.tokens["alice"], pair.tokens["bob"]
    me = await post(pair.a, alice, "{ me { id } }", {})
    alice_id = me["data"]["me"]["id"]  # type: ignore[index]
    sockets = [await open_acknowledged(pair.b, alice), await open_acknowledged(pair.a, alice)]
    bobs = await open_acknowledged(pair.b, bob)
    try:
        # when: process A serves alice's revokeTokens
        revoked = await post(
            pair.a, alice, "mutation($id: ID!) { revokeTokens(userId: $id) }", {"id": alice_id}
        )
        assert revoked == {"data": {"revokeTokens": 1}}, revoked
        # then: her sockets on B and on A are closed as forbidden within the bound
        codes = await asyncio.gather(*(close_code(ws, REVOCATION_BOUND) for ws in sockets))
        assert codes == [4403, 4403]
        # and: bob's socket on B still answers
        await bobs.send(json.dumps({"type": "ping"}))
        async with asyncio.timeout(5):
            assert json.loads(await bobs.recv())["type"] == "pong"
    finally:
        await asyncio.gather(*(ws.close() for ws in [*sockets, bobs]), return_exceptions=True)


async def test_the_socket_limit_is_one_count_for_both_processes(pair: Pair) -> None:
    carol = pair.tokens["carol"]
    sockets = [await open_acknowledged(pair.a, carol), await open_acknowledged(pair.b, carol)]
    sockets.append(await open_acknowledged(pair.a, carol))
    try:
        # when: carol, at her limit of 3 across A and B, opens a fourth on B
        assert await close_code(await open_socket(pair.b, carol)) == 1008
        # then: once one closes (on A), B admits one again
        await sockets.pop(0).close()
        async with asyncio.timeout(10):
            # A's release may still be on its way to Redis: retry until B admits her
            while (admitted := await try_socket(pair.b, carol)) is None:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        sockets.append(admitted)
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


async def test_serve_closes_a_socket_sending_an_oversize_message(pair: Pair) -> None:
    ws = await open_acknowledged(pair.a, pair.tokens["bob"])
    try:
        await ws.send(json.dumps({"type": "ping", "payload": {"pad": "x" * 10_000}}))
        assert await close_code(ws) == 1009
    finally:
        await ws.close()

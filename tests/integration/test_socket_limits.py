"""WebSocket limits end to end: a real uvicorn server in this process (its own frame limit left
at uvicorn's 16 MiB default, so the app's bound is what is tested), raw `websockets` clients
speaking graphql-transport-ws, so the close codes are seen exactly. Both backends; the
cross-process cases on the shared Redis with two app instances."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import websockets
from redis.asyncio import Redis
from websockets.typing import Subprotocol

from infra.db.engine import Database
from infra.db.uow import SqlUnitOfWork
from infra.settings import Settings
from infra.sockets.redis_coordinator import RedisSocketCoordinator
from tests.conftest import Actor, GraphQL, running_app
from tests.db import REDIS_URL_ENV, delete_redis_keys
from tests.integration.test_subscriptions import _serve

pytestmark = pytest.mark.timeout(60)

REVOKE = "mutation($id: ID!) { revokeTokens(userId: $id) }"
REVOCATION_BOUND = 5.0  # seconds: the revoked user's sockets are closed within this

serving = contextlib.asynccontextmanager(_serve)


async def open_socket(url: str, actor: Actor) -> websockets.ClientConnection:
    """A socket that sent `connection_init` with the actor's token (not yet acknowledged)."""
    ws = await websockets.connect(
        url, subprotocols=[Subprotocol("graphql-transport-ws")], max_size=None, open_timeout=10
    )
    init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {actor.token}"}}
    await ws.send(json.dumps(init))
    return ws


async def acknowledged(ws: websockets.ClientConnection) -> None:
    async with asyncio.timeout(10):
        reply = json.loads(await ws.recv())
    assert reply["type"] == "connection_ack", reply


async def open_acknowledged(url: str, actor: Actor) -> websockets.ClientConnection:
    ws = await open_socket(url, actor)
    await acknowledged(ws)
    return ws


async def close_code(ws: websockets.ClientConnection, within: float = 10.0) -> int | None:
    """The code the server closed the socket with (waits up to `within` seconds)."""
    try:
        async with asyncio.timeout(within):
            while True:
                await ws.recv()
    except websockets.ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd is not None else None
    raise AssertionError("unreachable")


async def still_open(ws: websockets.ClientConnection) -> bool:
    """A graphql-transport-ws ping answered by a pong."""
    try:
        await ws.send(json.dumps({"type": "ping"}))
        async with asyncio.timeout(5):
            return bool(json.loads(await ws.recv())["type"] == "pong")
    except websockets.ConnectionClosed:
        return False


@contextlib.asynccontextmanager
async def server(settings: Settings) -> AsyncIterator[tuple[str, GraphQL, Any]]:
    async with running_app(settings) as (app, gql), serving(app) as url:
        yield url, gql, app


async def close_all(sockets: list[websockets.ClientConnection]) -> None:
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


# --- message size ------------------------------------------------------------------------------


async def test_an_oversize_message_closes_the_socket_with_1009(
    settings: Settings, alice: Actor
) -> None:
    limited = settings.model_copy(update={"max_websocket_message_bytes": 4_096})
    async with server(limited) as (url, _gql, _app):
        ws = await open_acknowledged(url, alice)
        # given: a message just under the limit is served
        ping = {"type": "ping", "payload": {"pad": "x" * 3_900}}
        await ws.send(json.dumps(ping))
        async with asyncio.timeout(5):
            assert json.loads(await ws.recv())["type"] == "pong"
        # when: one over it arrives (uvicorn itself would take up to 16 MiB)
        huge = {"id": "1", "type": "subscribe", "payload": {"query": "{ me { id } }" + " " * 5_000}}
        await ws.send(json.dumps(huge))
        # then: the socket is closed as "message too big", without an answer
        assert await close_code(ws) == 1009


# --- sockets per user --------------------------------------------------------------------------


async def test_the_eleventh_socket_of_a_user_is_closed_with_1008_and_a_closed_one_frees_its_place(
    settings: Settings, alice: Actor, bob: Actor
) -> None:
    assert settings.max_websockets_per_user == 10  # the default
    async with server(settings) as (url, _gql, app):
        sockets = [await open_acknowledged(url, alice) for _ in range(10)]
        try:
            # when: alice opens an eleventh
            eleventh = await open_socket(url, alice)
            # then: it is closed as a policy violation; the ten still work
            assert await close_code(eleventh) == 1008
            assert await still_open(sockets[0])
            # and: another user is not affected
            bobs = await open_acknowledged(url, bob)
            sockets.append(bobs)
            # when: one of alice's sockets closes, its place is free again
            await sockets.pop(0).close()
            async with asyncio.timeout(5):
                while app.state.runtime.sockets.open_sockets(alice.uuid) != 9:  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
            sockets.append(await open_acknowledged(url, alice))
            assert await still_open(sockets[-1])
        finally:
            await close_all(sockets)


# --- revocation --------------------------------------------------------------------------------


async def test_revoking_a_users_tokens_closes_its_open_sockets_with_4403(
    settings: Settings, alice: Actor, bob: Actor
) -> None:
    async with server(settings) as (url, gql, _app):
        alices = [await open_acknowledged(url, alice) for _ in range(2)]
        bobs = await open_acknowledged(url, bob)
        try:
            # when: alice revokes her own tokens
            body = await gql(REVOKE, {"id": alice.id}, as_=alice)
            assert body == {"data": {"revokeTokens": 1}}, body
            # then: both of her sockets are closed as forbidden within the bound
            codes = await asyncio.gather(*(close_code(ws, REVOCATION_BOUND) for ws in alices))
            assert codes == [4403, 4403]
            # and: bob's socket is untouched; a new socket with her old token is refused
            assert await still_open(bobs)
            assert await close_code(await open_socket(url, alice)) == 4403
        finally:
            await close_all([*alices, bobs])


# --- across processes (two app instances on the shared Redis) ---------------------------------


@pytest.fixture
async def shared_redis() -> AsyncIterator[tuple[str, str]]:
    url = os.environ[REDIS_URL_ENV]
    prefix = f"pantheon-test-{uuid.uuid4().hex[:12]}"
    yield url, prefix
    await delete_redis_keys(url, prefix)


@contextlib.asynccontextmanager
async def two_servers(
    settings: Settings, redis: tuple[str, str]
) -> AsyncIterator[tuple[tuple[str, GraphQL, Any], tuple[str, GraphQL, Any]]]:
    url, prefix = redis
    shared = settings.model_copy(update={"redis_url": url, "redis_key_prefix": prefix})
    async with server(shared) as a, server(shared) as b:
        for _url, _gql, app in (a, b):
            async with asyncio.timeout(10):
                await app.state.runtime.sockets.coordinator.listening.wait()
        yield a, b


@pytest.mark.redis
async def test_revocation_on_one_process_closes_the_users_sockets_on_the_other(
    settings: Settings, shared_redis: tuple[str, str], alice: Actor, bob: Actor
) -> None:
    async with two_servers(settings, shared_redis) as ((_, gql_a, _), (url_b, _, _)):
        on_b = await open_acknowledged(url_b, alice)
        bobs = await open_acknowledged(url_b, bob)
        try:
            # when: alice's tokens are revoked through process A
            body = await gql_a(REVOKE, {"id": alice.id}, as_=alice)
            assert body == {"data": {"revokeTokens": 1}}, body
            # then: her socket on process B is closed as forbidden within the bound
            assert await close_code(on_b, REVOCATION_BOUND) == 4403
            assert await still_open(bobs)
        finally:
            await close_all([on_b, bobs])


@pytest.mark.redis
async def test_the_socket_limit_holds_across_processes(
    settings: Settings, shared_redis: tuple[str, str], alice: Actor
) -> None:
    limited = settings.model_copy(update={"max_websockets_per_user": 2})
    async with two_servers(limited, shared_redis) as ((url_a, _, _), (url_b, _, app_b)):
        sockets = [await open_acknowledged(url_a, alice), await open_acknowledged(url_b, alice)]
        try:
            # when: a third opens on either process, it is over the shared limit
            assert await close_code(await open_socket(url_a, alice)) == 1008
            assert await close_code(await open_socket(url_b, alice)) == 1008
            # when: the one on B closes, A may open one again
            await sockets.pop(1).close()
            async with asyncio.timeout(5):
                while app_b.state.runtime.sockets.open_sockets(alice.uuid):  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
            sockets.append(await open_acknowledged(url_a, alice))
        finally:
            await close_all(sockets)


@pytest.mark.redis
async def test_the_sockets_of_a_process_that_died_stop_counting_after_the_claim_ttl(
    shared_redis: tuple[str, str],
) -> None:
    url, prefix = shared_redis
    user = uuid.uuid4()
    dead = RedisSocketCoordinator(url, prefix=prefix, claim_ttl_seconds=1.0)
    alive = RedisSocketCoordinator(url, prefix=prefix, claim_ttl_seconds=1.0)
    try:
        # given: a process holds the user's only place and then stops renewing it (it died)
        assert await dead.claim(user, "s1", limit=1)
        assert not await alive.claim(user, "s2", limit=1)
        # when: its claim's TTL passes, the place is free for the live process
        await asyncio.sleep(1.2)  # the TTL runs on Redis's clock: nothing to wait on
        assert await alive.claim(user, "s2", limit=1)
        # and: a live process's renewal keeps its claim beyond the TTL
        await asyncio.sleep(0.6)
        await alive.renew()
        await asyncio.sleep(0.6)
        assert not await dead.claim(user, "s3", limit=1)
    finally:
        await dead.aclose()
        await alive.aclose()


async def test_without_redis_the_count_falls_back_to_this_processs_sockets() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    coordinator = RedisSocketCoordinator(f"redis://127.0.0.1:{port}/0", timeout_seconds=0.5)
    user = uuid.uuid4()
    try:
        assert await coordinator.claim(user, "s1", limit=2)
        assert await coordinator.claim(user, "s2", limit=2)
        assert not await coordinator.claim(user, "s3", limit=2)
        await coordinator.release(user, "s1")
        assert await coordinator.claim(user, "s3", limit=2)
        await coordinator.announce_revoked(user)  # logged, never raised
    finally:
        await coordinator.aclose()


async def test_a_recheck_closes_the_sockets_whose_tokens_were_revoked_unannounced(
    settings: Settings, database: Database, alice: Actor, bob: Actor
) -> None:
    async with server(settings) as (url, _gql, app):
        alices = await open_acknowledged(url, alice)
        bobs = await open_acknowledged(url, bob)
        try:
            # given: alice's tokens are revoked where no announcement reaches this process
            # (as when the revocation channel was down)
            async with SqlUnitOfWork(database.writes) as uow:
                await uow.tokens.revoke_all(alice.uuid, at=datetime.now(UTC))
                await uow.commit()
            assert await still_open(alices)
            # when: the registry checks its sockets again (it does when the channel is back)
            assert await app.state.runtime.sockets.recheck() == 1
            # then: her socket is closed as forbidden, bob's is not
            assert await close_code(alices, REVOCATION_BOUND) == 4403
            assert await still_open(bobs)
        finally:
            await close_all([alices, bobs])


@pytest.mark.redis
async def test_the_revocation_listener_reports_a_reconnection(
    shared_redis: tuple[str, str],
) -> None:
    url, prefix = shared_redis
    coordinator = RedisSocketCoordinator(url, prefix=prefix)
    reconnected = asyncio.Event()
    coordinator.on_reconnected(reconnected.set)
    admin = Redis.from_url(url, decode_responses=True)
    try:
        coordinator.start()
        async with asyncio.timeout(10):
            await coordinator.listening.wait()
        assert not reconnected.is_set()
        # when: its pub/sub connection (the only one named after this prefix) is cut
        listeners = [
            client["id"]
            for client in await admin.client_list()
            if client.get("name") == f"pantheon-{prefix}" and "P" in client.get("flags", "")
        ]
        assert len(listeners) == 1, listeners
        await admin.client_kill_filter(_id=listeners[0])
        # then: once subscribed again it says so (the registry re-checks its sockets' tokens)
        async with asyncio.timeout(10):
            await reconnected.wait()
    finally:
        await coordinator.aclose()
        await admin.aclose()

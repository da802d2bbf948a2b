"""Rate limits through the API: 429 with Retry-After when a request is refused whole, the
X-RateLimit-* headers when admitted, WebSocket subscribes counted, turns and provider tokens at
admission (the shortfall settled after the turn), failed authentications per client address,
and the counts shared by every process through Redis."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import websockets

from domain.rate_limits import LimitName
from graph.app import create_app
from infra.settings import Settings
from tests.conftest import Actor, error_codes
from tests.db import REDIS_URL_ENV, delete_redis_keys
from tests.fakes.openai_script import FakeResponse
from tests.fakes.openai_server import FakeOpenAIServer
from tests.integration.test_subscriptions import _serve

pytestmark = pytest.mark.parametrize("backend_db", ["sqlite"], indirect=True)

ME = "{ me { handle } }"
CREATE = "mutation($input: CreateSessionInput!) { createSession(input: $input) { id } }"
RUN = """mutation($input: RunTurnInput!) {
  runTurn(input: $input) { id status messages { status } }
}"""
SESSION_EVENTS = "subscription($id: ID!) { sessionEvents(sessionId: $id) { sequence } }"
BAD_TOKEN = "Bearer pt_" + "x" * 40


@contextlib.asynccontextmanager
async def serving(settings: Settings, **update: Any) -> AsyncIterator[Any]:
    app = create_app(settings.model_copy(update=update), migrate_on_start=False)
    async with app.router.lifespan_context(app):
        yield app


def http(app: Any, client: tuple[str, int] = ("127.0.0.1", 50000)) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=client)
    return httpx.AsyncClient(transport=transport, base_url="http://pantheon.test", timeout=30)


async def post(
    client: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    authorization: str | None = None,
    forwarded_for: str | None = None,
) -> httpx.Response:
    headers = {"Authorization": authorization} if authorization else {}
    if forwarded_for:
        headers["X-Forwarded-For"] = forwarded_for
    return await client.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
    )


def bearer(actor: Actor) -> str:
    return f"Bearer {actor.token}"


def refusal(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert "data" not in body, body
    [error] = body["errors"]
    extensions: dict[str, Any] = error["extensions"]
    return extensions


# --- requests ----------------------------------------------------------------------------------


async def test_an_admitted_request_carries_its_window_and_a_refused_one_answers_429(
    settings: Settings, alice: Actor, bob: Actor
) -> None:
    async with serving(settings, rate_limit_requests_per_minute=3) as app, http(app) as client:
        # when
        admitted = [await post(client, ME, authorization=bearer(alice)) for _ in range(3)]
        refused = await post(client, ME, authorization=bearer(alice))
        bobs = await post(client, ME, authorization=bearer(bob))

    # then: GitHub's headers on success; the fourth is refused whole
    now = time.time()
    assert [r.status_code for r in admitted] == [200, 200, 200]
    assert [r.headers["X-RateLimit-Limit"] for r in admitted] == ["3", "3", "3"]
    assert [r.headers["X-RateLimit-Remaining"] for r in admitted] == ["2", "1", "0"]
    for response in admitted:
        assert now - 5 <= int(response.headers["X-RateLimit-Reset"]) <= now + 61
        assert response.json()["data"]["me"]["handle"] == "alice"
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    extensions = refusal(refused)
    assert extensions["code"] == "RATE_LIMITED"
    assert extensions["limit"] == "requests"
    assert extensions["retryAfterSeconds"] == int(refused.headers["Retry-After"])
    assert bobs.status_code == 200, "each user has a window of their own"


async def test_each_websocket_subscribe_counts_against_the_users_requests(
    settings: Settings, alice: Actor
) -> None:
    async with serving(settings, rate_limit_requests_per_minute=3) as app, http(app) as client:
        created = await post(client, CREATE, {"input": {}}, authorization=bearer(alice))
        session = created.json()["data"]["createSession"]["id"]  # request 1
        async for url in _serve(app):
            # when: three subscribes on one socket
            replies = await _subscribe_three_times(url, alice, session)
            break
        after = await post(client, ME, authorization=bearer(alice))

    # then: the first two run (and wait for events), the third is refused
    assert [(m["id"], m["type"]) for m in replies] == [("3", "next"), ("3", "complete")]
    [error] = replies[0]["payload"]["errors"]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    assert error["extensions"]["limit"] == "requests"
    assert error["extensions"]["retryAfterSeconds"] >= 1
    assert after.status_code == 429, "the socket's subscribes used the HTTP window too"


async def _subscribe_three_times(url: str, actor: Actor, session: str) -> list[dict[str, Any]]:
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as socket:  # type: ignore[list-item]
        await socket.send(
            json.dumps({"type": "connection_init", "payload": {"Authorization": bearer(actor)}})
        )
        assert json.loads(await socket.recv())["type"] == "connection_ack"
        for operation_id in ("1", "2", "3"):
            payload = {"query": SESSION_EVENTS, "variables": {"id": session}}
            await socket.send(
                json.dumps({"id": operation_id, "type": "subscribe", "payload": payload})
            )
        replies: list[dict[str, Any]] = []
        async with asyncio.timeout(10):
            while not replies:
                message = json.loads(await socket.recv())
                if message["type"] in ("next", "error"):
                    replies.append(message)
        with contextlib.suppress(TimeoutError):  # nothing comes for the two that run
            async with asyncio.timeout(0.5):
                while True:
                    replies.append(json.loads(await socket.recv()))
        return replies


# --- turns and provider tokens ---------------------------------------------------------------


async def _session(client: httpx.AsyncClient, actor: Actor) -> str:
    body = (
        await post(client, CREATE, {"input": {"agentKeys": ["qwen"]}}, authorization=bearer(actor))
    ).json()
    assert "errors" not in body, body
    session_id: str = body["data"]["createSession"]["id"]
    return session_id


async def _run(client: httpx.AsyncClient, actor: Actor, session: str) -> dict[str, Any]:
    variables = {"input": {"sessionId": session, "message": "hello there", "mode": "ROUNDTABLE"}}
    body: dict[str, Any] = (await post(client, RUN, variables, authorization=bearer(actor))).json()
    return body


async def _turn_count(app: Any) -> int:
    from sqlalchemy import text

    async with app.state.database.reads() as session:
        return int((await session.execute(text("SELECT count(*) FROM turns"))).scalar_one())


async def test_turns_over_the_per_minute_limit_are_refused_at_admission(
    turn_settings: Settings, alice: Actor, fake_openai: FakeOpenAIServer
) -> None:
    async with serving(turn_settings, rate_limit_turns_per_minute=1) as app, http(app) as client:
        session = await _session(client, alice)
        first = await _run(client, alice, session)
        refused = await _run(client, alice, session)
        written = await _turn_count(app)

    assert first["data"]["runTurn"]["status"] == "COMPLETED", first
    assert error_codes(refused) == ["RATE_LIMITED"]
    assert refused["errors"][0]["extensions"]["limit"] == "turns"
    assert refused["errors"][0]["extensions"]["retryAfterSeconds"] >= 1
    assert written == 1, "a refused turn writes nothing"


async def test_the_tokens_a_turn_spent_beyond_its_estimate_are_settled_after_it(
    turn_settings: Settings, alice: Actor, fake_openai: FakeOpenAIServer
) -> None:
    # given: room for 1,000 tokens a minute; a turn's prompt is estimated at far less, but its
    # reply costs 5,000
    fake_openai.set_default(
        FakeResponse(content="long", completion_tokens=5_000), model="qwen-plus"
    )
    async with (
        serving(turn_settings, rate_limit_tokens_per_minute=1_000) as app,
        http(app) as client,
    ):
        session = await _session(client, alice)
        rate = app.state.runtime.rate_limiter

        # when
        first = await _run(client, alice, session)
        left = await rate.store.state(LimitName.TOKENS, str(alice.uuid), limit=1_000)
        refused = await _run(client, alice, session)

    # then: admitted on its estimate, then charged the shortfall: the window is spent
    assert first["data"]["runTurn"]["status"] == "COMPLETED", first
    assert left.remaining == 0
    assert error_codes(refused) == ["RATE_LIMITED"]
    assert refused["errors"][0]["extensions"]["limit"] == "tokens"


async def test_a_turn_within_its_estimate_leaves_room_for_the_next(
    turn_settings: Settings, alice: Actor, fake_openai: FakeOpenAIServer
) -> None:
    # given: the same window, replies of a few tokens
    fake_openai.set_default(FakeResponse(content="short", completion_tokens=3), model="qwen-plus")
    async with (
        serving(turn_settings, rate_limit_tokens_per_minute=1_000) as app,
        http(app) as client,
    ):
        session = await _session(client, alice)
        rate = app.state.runtime.rate_limiter
        first = await _run(client, alice, session)
        left = await rate.store.state(LimitName.TOKENS, str(alice.uuid), limit=1_000)
        second = await _run(client, alice, session)

    assert first["data"]["runTurn"]["status"] == "COMPLETED", first
    assert 0 < left.remaining < 1_000, "the estimate was charged at admission"
    assert second["data"]["runTurn"]["status"] == "COMPLETED", second


# --- failed authentications per address --------------------------------------------------------


async def test_an_address_that_sent_invalid_tokens_is_refused_even_with_a_valid_one(
    settings: Settings, alice: Actor
) -> None:
    async with serving(settings, rate_limit_auth_failures_per_minute=2) as app:
        async with http(app, ("198.51.100.7", 4000)) as guesser:
            anonymous = [await post(guesser, ME) for _ in range(3)]  # no token: not a failure
            failures = [await post(guesser, ME, authorization=BAD_TOKEN) for _ in range(2)]
            refused = await post(guesser, ME, authorization=bearer(alice))
        async with http(app, ("198.51.100.8", 4000)) as neighbour:
            elsewhere = await post(neighbour, ME, authorization=bearer(alice))

    assert all(r.status_code != 429 for r in anonymous + failures)
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    extensions = refusal(refused)
    assert (extensions["code"], extensions["limit"]) == ("RATE_LIMITED", "auth_failures")
    assert elsewhere.json()["data"]["me"]["handle"] == "alice"


async def test_a_trusted_proxys_forwarded_address_is_the_one_limited(
    settings: Settings, alice: Actor
) -> None:
    async with (
        serving(
            settings, rate_limit_auth_failures_per_minute=2, trusted_proxies="127.0.0.1/32"
        ) as app,
        http(app, ("127.0.0.1", 4000)) as proxy,
    ):
        for _ in range(2):
            await post(proxy, ME, authorization=BAD_TOKEN, forwarded_for="203.0.113.1")
        refused = await post(proxy, ME, authorization=bearer(alice), forwarded_for="203.0.113.1")
        # a client cannot escape by writing its own hop: the proxy appends the real one
        spoofed = await post(
            proxy, ME, authorization=bearer(alice), forwarded_for="192.0.2.9, 203.0.113.1"
        )
        other = await post(proxy, ME, authorization=bearer(alice), forwarded_for="203.0.113.2")

    assert refused.status_code == 429
    assert spoofed.status_code == 429
    assert other.status_code == 200
    assert other.json()["data"]["me"]["handle"] == "alice"


async def test_forwarded_addresses_are_ignored_unless_the_peer_is_a_trusted_proxy(
    settings: Settings, alice: Actor
) -> None:
    async with (
        serving(settings, rate_limit_auth_failures_per_minute=2) as app,
        http(app, ("198.51.100.7", 4000)) as client,
    ):
        await post(client, ME, authorization=BAD_TOKEN, forwarded_for="203.0.113.1")
        await post(client, ME, authorization=BAD_TOKEN, forwarded_for="203.0.113.2")
        refused = await post(client, ME, authorization=bearer(alice), forwarded_for="203.0.113.3")

    assert refused.status_code == 429
    assert refusal(refused)["limit"] == "auth_failures"


async def test_a_locked_out_address_cannot_open_a_socket(settings: Settings, alice: Actor) -> None:
    async with serving(settings, rate_limit_auth_failures_per_minute=1) as app:
        async for url in _serve(app):
            before = await _connection_init(url, alice)
            async with http(app) as client:
                await post(client, ME, authorization=BAD_TOKEN)  # from 127.0.0.1 too
            after = await _connection_init(url, alice)
            break

    # graphql-transport-ws has one refusal: 4403 (its payload reaches no client)
    assert before == "connection_ack"
    assert after == 4403


async def _connection_init(url: str, actor: Actor) -> str | int:
    """The reply to `connection_init` with the actor's token: its type, or the close code."""
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as socket:  # type: ignore[list-item]
        init = {"type": "connection_init", "payload": {"Authorization": bearer(actor)}}
        await socket.send(json.dumps(init))
        try:
            async with asyncio.timeout(10):
                kind: str = json.loads(await socket.recv())["type"]
                return kind
        except websockets.ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd is not None else -1


# --- many processes, one Redis -----------------------------------------------------------------


@pytest.fixture
async def redis_prefix() -> AsyncIterator[tuple[str, str]]:
    url = os.environ[REDIS_URL_ENV]
    prefix = f"pantheon-test-{uuid.uuid4().hex[:12]}"
    yield url, prefix
    await delete_redis_keys(url, prefix)


@pytest.mark.redis
async def test_two_app_instances_on_one_redis_share_the_counts(
    settings: Settings, alice: Actor, bob: Actor, redis_prefix: tuple[str, str]
) -> None:
    url, prefix = redis_prefix
    shared = {"redis_url": url, "redis_key_prefix": prefix, "rate_limit_requests_per_minute": 3}
    async with (
        serving(settings, **shared) as one,
        serving(settings, **shared) as two,
        http(one) as first,
        http(two) as second,
    ):
        # when: three requests over the two instances, then one more on each
        statuses = [
            (await post(client, ME, authorization=bearer(alice))).status_code
            for client in (first, second, first, second, first)
        ]
        bobs = await post(second, ME, authorization=bearer(bob))
        keys = await _redis_keys(url, prefix)

    assert statuses == [200, 200, 200, 429, 429]
    assert bobs.status_code == 200
    assert keys
    assert all(key.startswith(f"{prefix}:ratelimit") for key in keys)


async def _redis_keys(url: str, prefix: str) -> list[str]:
    from redis.asyncio import Redis

    client = Redis.from_url(url, decode_responses=True)
    try:
        return [key async for key in client.scan_iter(match=f"{prefix}*")]
    finally:
        await client.aclose()

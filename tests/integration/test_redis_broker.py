"""Redis-specific behaviour: bounded memory, processes sharing one Redis, and an outage."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from domain.turns.events import SlowConsumer, TurnEvent, TurnEventType
from graph.app import create_app
from graph.startup import build_broker
from infra.db.engine import Database
from infra.events.memory import InMemoryEventBroker
from infra.events.redis_broker import (
    EventsUnavailable,
    RedisEventBroker,
    RedisUnavailable,
    client_name,
    describe_url,
)
from infra.settings import Settings
from tests.conftest import Actor, GraphQL, running_app
from tests.db import REDIS_URL_ENV, delete_redis_keys
from tests.fakes.openai_script import FakeResponse
from tests.fakes.openai_server import FakeOpenAIServer
from tests.integration.test_broker_contract import drain, event, take
from tests.private_redis import PrivateRedis, free_port

WAIT = 5.0


@contextlib.asynccontextmanager
async def two_apps(settings: Settings) -> AsyncIterator[tuple[Any, GraphQL, Any, GraphQL]]:
    """Two API processes in one: apps A and B on the same `settings` (one database, one Redis),
    both started; yields (app A, its client, app B, its client)."""
    app_a = create_app(settings, migrate_on_start=False)
    app_b = create_app(settings, migrate_on_start=False)
    async with (
        app_a.router.lifespan_context(app_a),
        app_b.router.lifespan_context(app_b),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app_a), base_url="http://a") as a,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app_b), base_url="http://b") as b,
    ):
        yield app_a, GraphQL(a), app_b, GraphQL(b)


@pytest.fixture
async def shared() -> AsyncIterator[tuple[str, str]]:
    """The shared Redis and a key prefix private to this test; its keys are deleted after."""
    url = os.environ[REDIS_URL_ENV]
    prefix = f"pantheon-test-{uuid.uuid4().hex[:12]}"
    yield url, prefix
    await delete_redis_keys(url, prefix)


# --- no server needed ------------------------------------------------------------------------


def test_described_url_never_shows_credentials() -> None:
    assert describe_url("redis://user:s3cret@cache.internal:6380/2") == (
        "redis://cache.internal:6380/2"
    )
    assert describe_url("rediss://:s3cret@cache.internal") == "rediss://cache.internal:6379/0"


async def test_unreachable_redis_fails_start_up_in_one_line() -> None:
    broker = RedisEventBroker(f"redis://:s3cret@127.0.0.1:{free_port()}/0")
    try:
        with pytest.raises(RedisUnavailable) as raised:
            async with asyncio.timeout(WAIT):
                await broker.check()
    finally:
        await broker.aclose()
    message = str(raised.value)
    assert message.startswith("PANTHEON_REDIS_URL: Redis at redis://127.0.0.1:")
    assert "\n" not in message
    assert "s3cret" not in message


async def test_the_broker_follows_the_settings() -> None:
    assert isinstance(build_broker(Settings()), InMemoryEventBroker)
    chosen = build_broker(
        Settings(
            redis_url="redis://127.0.0.1:6379/0",
            redis_key_prefix="blue",
            redis_stream_max_length=500,
            event_retention_seconds=120,
        )
    )
    try:
        assert isinstance(chosen, RedisEventBroker)
        assert (chosen.prefix, chosen.max_stream_length, chosen.retention_seconds) == (
            "blue",
            500,
            120,
        )
    finally:
        await chosen.aclose()


async def test_start_up_fails_in_one_line_when_redis_is_unreachable(settings: Settings) -> None:
    unreachable = f"redis://:s3cret@127.0.0.1:{free_port()}/0"
    app = create_app(settings.model_copy(update={"redis_url": unreachable}), migrate_on_start=False)
    with pytest.raises(RedisUnavailable) as raised:
        async with asyncio.timeout(WAIT), app.router.lifespan_context(app):
            pass
    assert "s3cret" not in str(raised.value)


# --- the shared Redis --------------------------------------------------------------------------


@pytest.mark.redis
async def test_the_app_runs_on_redis_and_closes_it_at_shutdown(
    settings: Settings, shared: tuple[str, str]
) -> None:
    url, prefix = shared
    app = create_app(
        settings.model_copy(update={"redis_url": url, "redis_key_prefix": prefix}),
        migrate_on_start=False,
    )
    async with asyncio.timeout(WAIT * 2):
        async with app.router.lifespan_context(app):
            broker = app.state.runtime.broker
            assert isinstance(broker, RedisEventBroker)
            assert broker.prefix == prefix
            await broker.listening.wait()  # the supervisor's cancel handler is subscribed
        assert not broker.listening.is_set()
        assert broker.active_subscriptions == 0


@pytest.mark.redis
async def test_streams_are_bounded_in_length_and_expire(shared: tuple[str, str]) -> None:
    url, prefix = shared
    broker = RedisEventBroker(url, prefix=prefix, retention_seconds=30, max_stream_length=100)
    raw = Redis.from_url(url, decode_responses=True)
    try:
        turn, session = uuid.uuid4(), uuid.uuid4()
        for start in range(1, 1001, 50):
            await broker.publish(tuple(event(turn, session, s) for s in range(start, start + 50)))
        for key in (broker.turn_key(turn), broker.session_key(session)):
            length = await raw.xlen(key)
            # MAXLEN ~ trims whole stream nodes (100 entries each by default)
            assert 100 <= length <= 250, (key, length)
            assert 0 < await raw.ttl(key) <= 30
        retained = await broker.retained(turn, after=0)
        assert retained[-1].sequence == 1000
        assert [e.sequence for e in retained] == list(range(retained[0].sequence, 1001))
        assert await broker.last_sequence(turn) == 1000
    finally:
        await broker.aclose()
        await raw.aclose()


@pytest.mark.redis
async def test_processes_share_one_redis(shared: tuple[str, str]) -> None:
    url, prefix = shared
    a = RedisEventBroker(url, prefix=prefix, block_ms=200)
    b = RedisEventBroker(url, prefix=prefix, block_ms=200)
    other_tenant = RedisEventBroker(url, prefix=f"{prefix}-other", block_ms=200)
    try:
        for broker in (a, b, other_tenant):
            await broker.check()
        turn, session = uuid.uuid4(), uuid.uuid4()
        on_b = b.subscribe_session(session, buffer=10)
        elsewhere = other_tenant.subscribe_session(session, buffer=10)
        await a.publish(tuple(event(turn, session, s) for s in (1, 2, 3)))
        assert [e.sequence for e in await take(on_b, 3)] == [1, 2, 3]
        assert [e.sequence for e in await b.retained(turn, after=1)] == [2, 3]
        assert await b.last_sequence(turn) == 3
        # another prefix is another deployment: it sees nothing
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5):
                await anext(elsewhere)
        await on_b.aclose()
        assert b.active_subscriptions == 0
        assert other_tenant.active_subscriptions == 1
    finally:
        for broker in (a, b, other_tenant):
            await broker.aclose()


@pytest.mark.redis
async def test_many_live_subscribers_never_starve_publishing(shared: tuple[str, str]) -> None:
    # given: more live subscriptions than redis-py's default pool of 100 connections (once each
    # held a connection in XREAD BLOCK, and bench/stream_latency.py found publishing starved)
    url, prefix = shared
    broker = RedisEventBroker(url, prefix=prefix, block_ms=200)
    try:
        await broker.check()
        session = uuid.uuid4()
        turns = [uuid.uuid4() for _ in range(120)]
        subscriptions = [broker.subscribe_turn(turn, buffer=10) for turn in turns]
        await asyncio.sleep(0.3)  # every reader is now blocked in XREAD

        # when
        for turn in turns:
            await broker.publish((event(turn, session, 1), event(turn, session, 2)))

        # then: every subscriber gets both events, and replay reads still work
        for subscription in subscriptions:
            assert [e.sequence for e in await take(subscription, 2)] == [1, 2]
        assert await broker.last_sequence(turns[-1]) == 2
        # and one shared reader serves them all: a connection per subscriber would be 120
        raw = Redis.from_url(url, decode_responses=True)
        try:
            ours = [c for c in await raw.client_list() if c["name"] == client_name(prefix)]
        finally:
            await raw.aclose()
        assert 1 < len(ours) <= 3, ours  # the publisher's, the reader's (and a spare)
        for subscription in subscriptions:
            await subscription.aclose()
    finally:
        await broker.aclose()


@pytest.mark.redis
async def test_a_subscriber_that_joins_while_publishing_is_paused_is_told(
    shared: tuple[str, str],
) -> None:
    # given: a publish that failed (its session's key holds a string: XADD fails with
    # WRONGTYPE), so publishing pauses for a while
    url, prefix = shared
    broker = RedisEventBroker(url, prefix=prefix, block_ms=200, retry_after_seconds=30)
    raw = Redis.from_url(url)
    try:
        await broker.check()
        turn, session = uuid.uuid4(), uuid.uuid4()
        await raw.set(broker.session_key(session), "not a stream")
        await broker.publish((event(turn, session, 1),))
        # when: a subscriber joins during the pause, and the turn publishes on
        late = broker.subscribe_turn(turn, buffer=10)
        await broker.publish((event(turn, session, 2),))
        # then: what it missed is not a silent gap (it resumes from the outbox)
        delivered, ended = await drain(late)  # 1 may come: the failed pipeline wrote its key
        assert isinstance(ended, EventsUnavailable), ended
        assert 2 not in delivered
    finally:
        await broker.aclose()
        await raw.aclose()


# --- an outage of a private Redis --------------------------------------------------------------


@pytest.mark.redis
async def test_outage_publish_never_raises_subscribers_end_coded_then_recovers(
    private_redis: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    broker = RedisEventBroker(
        private_redis.url,
        prefix="outage",
        block_ms=200,
        retry_after_seconds=0.2,
        connect_timeout_seconds=0.5,
    )
    seen: list[uuid.UUID] = []
    try:
        await broker.check()
        broker.on_cancel_request(seen.append)
        turn, session = uuid.uuid4(), uuid.uuid4()
        live = broker.subscribe_turn(turn, buffer=10)
        await broker.publish((event(turn, session, 1, TurnEventType.TURN_STARTED),))
        assert [e.sequence for e in await take(live, 1)] == [1]

        private_redis.kill()
        with caplog.at_level(logging.WARNING, logger="pantheon.events.redis"):
            started = time.monotonic()
            for sequence in range(2, 12):  # a streaming turn keeps publishing
                await broker.publish((event(turn, session, sequence),))
            assert time.monotonic() - started < 2.0  # never slows the turn
            await broker.request_cancel(turn)  # never raises either
            assert await broker.retained(turn, after=0) == []
            assert await broker.last_sequence(turn) == 0
            with pytest.raises(EventsUnavailable) as raised:
                async with asyncio.timeout(WAIT):
                    await anext(live)
        assert isinstance(raised.value, SlowConsumer)  # resume with afterSequence
        assert (raised.value.code, raised.value.last_delivered) == ("EVENTS_UNAVAILABLE", 1)
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any("publishing turn events to Redis" in m for m in warnings)
        assert sum("publishing turn events to Redis" in m for m in warnings) == 1  # once
        assert all("@" not in m for m in warnings)
        assert broker.active_subscriptions == 0

        private_redis.start()  # same port, empty (no persistence)
        await asyncio.sleep(0.3)  # past retry_after_seconds
        again = broker.subscribe_turn(turn, buffer=10)
        async with asyncio.timeout(WAIT):
            while not await broker.retained(turn, after=0):
                await broker.publish((event(turn, session, 12),))
                await asyncio.sleep(0.1)
        got: TurnEvent = (await take(again, 1))[0]
        assert got.sequence == 12
        async with asyncio.timeout(WAIT):  # the cancel listener reconnected by itself
            while turn not in seen:
                await broker.request_cancel(turn)
                await asyncio.sleep(0.1)
        await again.aclose()
    finally:
        await broker.aclose()


# --- two API processes on one database and one Redis -------------------------------------------


@pytest.mark.redis
async def test_a_cancel_sent_to_one_process_stops_the_turn_running_on_another_at_once(
    turn_settings: Settings,
    shared: tuple[str, str],
    alice: Actor,
    fake_openai: FakeOpenAIServer,
    database: Database,
) -> None:
    from tests.integration.test_turn_guarantees import (
        CANCEL,
        RUN,
        _uuid_of_turn,
        new_session,
        run_input,
        turn_row,
    )
    from tests.turns_support import eventually

    url, prefix = shared
    # heartbeats every 10 s: only the Redis cancel channel can stop the turn within 3 s
    both = turn_settings.model_copy(
        update={
            "redis_url": url,
            "redis_key_prefix": prefix,
            "turn_lease_seconds": 30.0,
            "turn_heartbeat_seconds": 10.0,
        }
    )
    fake_openai.set_default(
        FakeResponse(content=" ".join(f"w{n}" for n in range(100)), token_delay=0.1),
        model="qwen-plus",
    )
    async with two_apps(both) as (app_a, gql_a, app_b, gql_b):
        broker_b = app_b.state.runtime.broker
        await asyncio.wait_for(app_a.state.runtime.broker.listening.wait(), WAIT)
        session = await new_session(gql_a, alice)
        started = await gql_a(RUN, run_input(session, waitForCompletion=False), as_=alice)
        turn_id = _uuid_of_turn(started["data"]["runTurn"]["id"])

        async def streaming_seen_on_b() -> bool:  # A's deltas reach process B
            events = await broker_b.retained(turn_id, after=0)
            return any(e.type == TurnEventType.AGENT_DELTA for e in events)

        await eventually(streaming_seen_on_b, within=WAIT)

        cancelled = await gql_b(CANCEL, {"id": started["data"]["runTurn"]["id"]}, as_=alice)
        assert "errors" not in cancelled, cancelled
        # B waited for the turn running on A to close: it answers with the final state
        assert cancelled["data"]["cancelTurn"]["status"] == "CANCELLED", cancelled

        async def stopped() -> bool:
            return bool((await turn_row(database, turn_id))[0] == "CANCELLED")

        await eventually(stopped, within=3)
        [call] = fake_openai.requests(model="qwen-plus")
        assert call.disconnected_at is not None


def test_a_lost_event_stream_reaches_the_client_as_events_unavailable() -> None:
    from graph.subscriptions.api import _coded

    error = _coded(EventsUnavailable(7), 7)
    assert error.extensions == {"code": "EVENTS_UNAVAILABLE", "lastSequence": 7}
    assert error.message == "event stream unavailable; resubscribe with afterSequence: 7"
    slow = _coded(SlowConsumer(3), 3)
    assert slow.extensions == {"code": "SLOW_CONSUMER", "lastSequence": 3}


@pytest.mark.redis
async def test_with_redis_the_next_turn_can_start_as_soon_as_turn_finished_arrives(
    turn_settings: Settings,
    shared: tuple[str, str],
    alice: Actor,
    fake_openai: FakeOpenAIServer,
) -> None:
    from tests.integration.test_subscriptions import (
        PROGRESS,
        _serve,
        collect,
        new_session,
        script_agents,
        start_turn,
    )

    url, prefix = shared
    settings = turn_settings.model_copy(update={"redis_url": url, "redis_key_prefix": prefix})
    script_agents(fake_openai, token_delay=0.0)
    async with running_app(settings) as (app, gql):
        session = await new_session(gql, alice)
        async for ws_url in _serve(app):
            for _ in range(8):
                turn_id = await start_turn(gql, alice, session)
                events = await collect(ws_url, alice, PROGRESS, {"id": turn_id})
                assert events[-1]["__typename"] == "TurnFinished"

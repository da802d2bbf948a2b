"""One contract for every `EventBroker`: the in-memory one and Redis Streams.

For Redis, `pair.publisher` and `pair.subscriber` are two broker instances over one Redis (two
"processes"); in memory they are the same instance (one process). Each Redis run uses its own key
prefix and deletes its keys afterwards (the Redis server is shared)."""

from __future__ import annotations

import asyncio
import gc
import os
import uuid
import weakref
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from domain.turns.events import EventSubscription, SlowConsumer, TurnEvent
from domain.turns.events import TurnEventType as T
from infra.events.memory import InMemoryEventBroker
from infra.events.redis_broker import RedisEventBroker
from tests.db import REDIS_URL_ENV, delete_redis_keys

BROKERS = [
    pytest.param("memory", id="memory"),
    pytest.param("redis", id="redis", marks=pytest.mark.redis),
]
WAIT = 5.0  # seconds any single expectation may take


@dataclass
class Pair:
    publisher: Any
    subscriber: Any
    make: Callable[[], Any]  # another broker over the same backend (memory: the same one)
    opened: list[Any] = field(default_factory=list)


@pytest.fixture(params=BROKERS)
async def pair(request: pytest.FixtureRequest) -> AsyncIterator[Pair]:
    if request.param == "memory":
        memory = InMemoryEventBroker(retention_seconds=60)
        yield Pair(memory, memory, make=lambda: InMemoryEventBroker(retention_seconds=60))
        await memory.aclose()
        return
    url = os.environ[REDIS_URL_ENV]
    prefix = f"pantheon-test-{uuid.uuid4().hex[:12]}"
    opened: list[RedisEventBroker] = []

    def make() -> RedisEventBroker:
        broker = RedisEventBroker(url, prefix=prefix, retention_seconds=60, block_ms=200)
        opened.append(broker)
        return broker

    a, b = make(), make()
    await a.check()
    await b.check()
    try:
        yield Pair(a, b, make=make)
    finally:
        for broker in opened:
            await broker.aclose()
        await delete_redis_keys(url, prefix)


def event(turn: uuid.UUID, session: uuid.UUID, sequence: int, kind: T = T.AGENT_DELTA) -> TurnEvent:
    return TurnEvent(
        turn_id=turn,
        session_id=session,
        sequence=sequence,
        type=kind,
        at=datetime(2026, 1, 1, 12, 0, sequence % 60, tzinfo=UTC),
        payload={"text": f"chunk {sequence}", "n": sequence},
    )


async def take(subscription: EventSubscription, count: int) -> list[TurnEvent]:
    got: list[TurnEvent] = []
    async with asyncio.timeout(WAIT):
        while len(got) < count:
            got.append(await anext(subscription))
    return got


async def drain(subscription: EventSubscription) -> tuple[list[int], BaseException | None]:
    """Reads until the subscription stops; the sequences read and how it stopped."""
    delivered: list[int] = []
    try:
        async with asyncio.timeout(WAIT):
            async for item in subscription:
                delivered.append(item.sequence)
    except Exception as error:
        return delivered, error
    return delivered, None


async def ended(subscription: EventSubscription) -> bool:
    """True when the subscription stops (StopAsyncIteration) within WAIT."""
    try:
        async with asyncio.timeout(WAIT):
            await anext(subscription)
    except StopAsyncIteration:
        return True
    return False


async def test_turn_subscription_delivers_in_publication_order(pair: Pair) -> None:
    turn, other, session = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    subscription = pair.subscriber.subscribe_turn(turn, buffer=100)
    try:
        await pair.publisher.publish((event(turn, session, 1, T.TURN_STARTED),))
        await pair.publisher.publish((event(other, session, 1, T.TURN_STARTED),))
        for sequence in range(2, 6):
            await pair.publisher.publish((event(turn, session, sequence),))
        await pair.publisher.publish(tuple(event(turn, session, s) for s in (6, 7, 8)))
        got = await take(subscription, 8)
        assert [e.sequence for e in got] == list(range(1, 9))
        assert {e.turn_id for e in got} == {turn}
        assert got[0] == event(turn, session, 1, T.TURN_STARTED)  # every field survives
    finally:
        await subscription.aclose()


async def test_fan_out_to_several_subscribers(pair: Pair) -> None:
    turn, session = uuid.uuid4(), uuid.uuid4()
    subscriptions = [pair.subscriber.subscribe_turn(turn, buffer=50) for _ in range(3)]
    subscriptions.append(pair.publisher.subscribe_turn(turn, buffer=50))
    try:
        await pair.publisher.publish(tuple(event(turn, session, s) for s in range(1, 6)))
        for subscription in subscriptions:
            assert [e.sequence for e in await take(subscription, 5)] == [1, 2, 3, 4, 5]
    finally:
        for subscription in subscriptions:
            await subscription.aclose()


async def test_session_subscription_sees_every_turn_of_the_session(pair: Pair) -> None:
    session, elsewhere = uuid.uuid4(), uuid.uuid4()
    first, second, foreign = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    subscription = pair.subscriber.subscribe_session(session, buffer=100)
    try:
        published = [
            event(first, session, 1, T.TURN_STARTED),
            event(second, session, 1, T.TURN_STARTED),
            event(first, session, 2),
            event(second, session, 2),
            event(first, session, 3, T.TURN_FINISHED),
        ]
        await pair.publisher.publish((event(foreign, elsewhere, 1, T.TURN_STARTED),))
        for item in published[:2]:
            await pair.publisher.publish((item,))
        await pair.publisher.publish(tuple(published[2:]))
        got = await take(subscription, len(published))
        assert [(e.turn_id, e.sequence) for e in got] == [
            (e.turn_id, e.sequence) for e in published
        ]
    finally:
        await subscription.aclose()


async def test_retained_after_a_sequence_in_order(pair: Pair) -> None:
    turn, session = uuid.uuid4(), uuid.uuid4()
    await pair.publisher.publish((event(turn, session, 1, T.TURN_STARTED),))
    await pair.publisher.publish(tuple(event(turn, session, s) for s in range(2, 7)))
    retained = await pair.subscriber.retained(turn, after=3)
    assert retained == [event(turn, session, s) for s in (4, 5, 6)]
    assert [e.sequence for e in await pair.subscriber.retained(turn, after=0)] == list(range(1, 7))
    assert await pair.subscriber.retained(turn, after=6) == []
    assert await pair.subscriber.retained(uuid.uuid4(), after=0) == []


async def test_last_sequence(pair: Pair) -> None:
    turn, session = uuid.uuid4(), uuid.uuid4()
    assert await pair.subscriber.last_sequence(turn) == 0
    await pair.publisher.publish(tuple(event(turn, session, s) for s in range(1, 5)))
    assert await pair.subscriber.last_sequence(turn) == 4
    assert await pair.publisher.last_sequence(turn) == 4


async def test_overflow_ends_a_slow_subscriber_without_a_gap(pair: Pair) -> None:
    turn, session = uuid.uuid4(), uuid.uuid4()
    fast = pair.subscriber.subscribe_turn(turn, buffer=100)
    slow = pair.subscriber.subscribe_turn(turn, buffer=3)
    try:
        await pair.publisher.publish(tuple(event(turn, session, s) for s in range(1, 11)))
        assert [e.sequence for e in await take(fast, 10)] == list(range(1, 11))
        await asyncio.sleep(0.2)  # the slow one never read meanwhile
        delivered, error = await drain(slow)
        assert isinstance(error, SlowConsumer), error
        assert delivered == list(range(1, len(delivered) + 1))  # a prefix: never a gap
        assert len(delivered) <= 3
        assert error.last_delivered == (delivered[-1] if delivered else 0)
        assert error.code == "SLOW_CONSUMER"
        assert await ended(slow)  # it stops after the error
        # the fast subscriber is unaffected and keeps following
        await pair.publisher.publish((event(turn, session, 11),))
        assert [e.sequence for e in await take(fast, 1)] == [11]
    finally:
        await fast.aclose()
        await slow.aclose()


async def test_unsubscribe_stops_delivery_and_frees_the_subscription(pair: Pair) -> None:
    turn, session = uuid.uuid4(), uuid.uuid4()
    subscription = pair.subscriber.subscribe_turn(turn, buffer=10)
    await pair.publisher.publish((event(turn, session, 1),))
    assert [e.sequence for e in await take(subscription, 1)] == [1]
    await subscription.aclose()
    await pair.publisher.publish((event(turn, session, 2),))
    assert await ended(subscription)
    await subscription.aclose()  # idempotent
    ref = weakref.ref(subscription)
    del subscription
    for _ in range(20):  # a background reader may need a loop turn to finish
        gc.collect()
        if ref() is None:
            break
        await asyncio.sleep(0.05)
    assert ref() is None, "the broker still holds a closed subscription"


async def test_closing_the_broker_ends_its_live_subscriptions(pair: Pair) -> None:
    broker = pair.make()
    if isinstance(broker, RedisEventBroker):
        await broker.check()
    subscription = broker.subscribe_turn(uuid.uuid4(), buffer=10)
    await broker.aclose()
    assert await ended(subscription)
    await broker.aclose()  # idempotent


async def test_cancel_request_reaches_the_registered_callback(pair: Pair) -> None:
    turn = uuid.uuid4()
    seen: list[uuid.UUID] = []
    pair.subscriber.on_cancel_request(seen.append)
    async with asyncio.timeout(WAIT):
        # Redis pub/sub is fire-and-forget: ask again until the listener is subscribed.
        while turn not in seen:
            await pair.publisher.request_cancel(turn)
            await asyncio.sleep(0.05)
    assert set(seen) == {turn}


async def test_take_ready_hands_over_what_queued_up_without_waiting(pair: Pair) -> None:
    turn, session = uuid.uuid4(), uuid.uuid4()
    subscription = pair.subscriber.subscribe_turn(turn, buffer=50)
    try:
        assert subscription.take_ready() == []  # nothing yet: never waits
        await pair.publisher.publish(tuple(event(turn, session, s) for s in range(1, 6)))
        first = await take(subscription, 1)  # the reader has delivered by now
        rest: list[TurnEvent] = []
        async with asyncio.timeout(WAIT):
            while len(first) + len(rest) < 5:
                rest += subscription.take_ready()
                await asyncio.sleep(0.01)
        assert [e.sequence for e in first + rest] == [1, 2, 3, 4, 5]
        assert subscription.take_ready() == []
        await pair.publisher.publish((event(turn, session, 6),))
        assert [e.sequence for e in await take(subscription, 1)] == [6]
    finally:
        await subscription.aclose()


async def test_take_ready_gives_nothing_once_the_subscription_ended(pair: Pair) -> None:
    turn, session = uuid.uuid4(), uuid.uuid4()
    subscription = pair.subscriber.subscribe_turn(turn, buffer=10)
    await pair.publisher.publish((event(turn, session, 1),))
    await take(subscription, 1)
    await subscription.aclose()
    await pair.publisher.publish((event(turn, session, 2),))
    assert subscription.take_ready() == []

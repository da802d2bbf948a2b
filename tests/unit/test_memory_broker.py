"""The in-memory broker against the `EventBroker` port: order, fan-out, bounded buffers ending in
`SlowConsumer`, retention, cancel requests, closing."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest

from domain.turns.events import EventBroker, SlowConsumer, TurnEvent, TurnEventType
from infra.events.memory import InMemoryEventBroker

pytestmark = pytest.mark.timeout(10)

TURN = uuid.uuid4()
SESSION = uuid.uuid4()


def event(
    sequence: int,
    kind: TurnEventType = TurnEventType.AGENT_DELTA,
    *,
    turn: uuid.UUID = TURN,
    session: uuid.UUID = SESSION,
) -> TurnEvent:
    return TurnEvent(
        turn_id=turn,
        session_id=session,
        sequence=sequence,
        type=kind,
        at=datetime.now(UTC),
        payload={"text": f"t{sequence}"},
    )


async def take(subscription: object, count: int) -> list[int]:
    got: list[int] = []
    async with asyncio.timeout(2):
        async for item in subscription:  # type: ignore[attr-defined]
            got.append(item.sequence)
            if len(got) == count:
                break
    return got


def test_it_implements_the_port() -> None:
    broker: EventBroker = InMemoryEventBroker()
    assert broker is not None


async def test_subscribers_get_events_in_publication_order_from_subscribing_on() -> None:
    broker = InMemoryEventBroker()
    await broker.publish((event(1),))
    subscription = broker.subscribe_turn(TURN, buffer=10)

    await broker.publish((event(2), event(3)))
    await broker.publish((event(4),))

    assert await take(subscription, 3) == [2, 3, 4]
    assert await broker.last_sequence(TURN) == 4
    await subscription.aclose()


async def test_events_fan_out_to_every_turn_and_session_subscriber() -> None:
    broker = InMemoryEventBroker()
    by_turn = [broker.subscribe_turn(TURN, buffer=10) for _ in range(3)]
    by_session = broker.subscribe_session(SESSION, buffer=10)
    other_turn = broker.subscribe_turn(uuid.uuid4(), buffer=10)
    other = uuid.uuid4()

    await broker.publish((event(1), event(2), event(1, turn=other)))

    for subscription in by_turn:
        assert await take(subscription, 2) == [1, 2]
    assert await take(by_session, 3) == [1, 2, 1]
    with pytest.raises(TimeoutError):
        await take(other_turn, 1)


async def test_a_waiting_subscriber_wakes_on_publish() -> None:
    broker = InMemoryEventBroker()
    subscription = broker.subscribe_turn(TURN, buffer=2)
    waiting = asyncio.create_task(take(subscription, 1))
    await asyncio.sleep(0.01)

    await broker.publish((event(1),))

    assert await waiting == [1]


async def test_an_overflowing_subscriber_gets_what_was_buffered_then_slow_consumer() -> None:
    broker = InMemoryEventBroker()
    slow = broker.subscribe_turn(TURN, buffer=2)
    fast = broker.subscribe_turn(TURN, buffer=100)

    # publishing never waits for anyone, however far behind
    async with asyncio.timeout(1):
        await broker.publish(tuple(event(n) for n in range(1, 21)))

    assert (await slow.__anext__()).sequence == 1
    assert (await slow.__anext__()).sequence == 2
    with pytest.raises(SlowConsumer) as cut:
        await slow.__anext__()
    assert cut.value.last_delivered == 2
    assert cut.value.code == "SLOW_CONSUMER"
    assert await take(fast, 20) == list(range(1, 21))
    # the cut subscriber is gone: later events are not buffered for it
    await broker.publish((event(21),))
    assert await take(slow, 1) == []  # ended after the error


async def test_retained_gives_events_after_a_sequence_in_order_deltas_included() -> None:
    broker = InMemoryEventBroker()
    await broker.publish((event(3), event(1, TurnEventType.TURN_STARTED), event(2)))

    assert [e.sequence for e in await broker.retained(TURN, after=0)] == [1, 2, 3]
    assert [e.sequence for e in await broker.retained(TURN, after=1)] == [2, 3]
    assert await broker.retained(uuid.uuid4(), after=0) == []


async def test_events_past_the_retention_window_are_forgotten() -> None:
    broker = InMemoryEventBroker(retention_seconds=0.05)
    await broker.publish((event(1),))
    await asyncio.sleep(0.1)

    assert await broker.retained(TURN, after=0) == []


async def test_a_turn_keeps_at_most_its_cap_of_events() -> None:
    broker = InMemoryEventBroker(max_events_per_turn=5)
    await broker.publish(tuple(event(n) for n in range(1, 11)))

    assert [e.sequence for e in await broker.retained(TURN, after=0)] == [6, 7, 8, 9, 10]
    assert await broker.last_sequence(TURN) == 10


async def test_a_cancel_request_reaches_the_registered_handler() -> None:
    broker = InMemoryEventBroker()
    seen: list[uuid.UUID] = []

    def failing(_: uuid.UUID) -> None:
        raise RuntimeError("boom")

    broker.on_cancel_request(failing)  # a failing handler neither raises nor stops the others
    broker.on_cancel_request(seen.append)

    await broker.request_cancel(TURN)

    assert seen == [TURN]


async def test_closing_ends_every_subscription() -> None:
    broker = InMemoryEventBroker()
    subscription = broker.subscribe_session(SESSION, buffer=4)
    waiting = asyncio.create_task(take(subscription, 1))
    await asyncio.sleep(0.01)

    await broker.aclose()

    assert await waiting == []
    assert await take(broker.subscribe_turn(TURN, buffer=1), 1) == []


async def test_an_unsubscribed_subscription_receives_nothing_more() -> None:
    broker = InMemoryEventBroker()
    subscription = broker.subscribe_turn(TURN, buffer=4)
    await subscription.aclose()

    await broker.publish((event(1),))

    assert await take(subscription, 1) == []

"""`DeltaPublisher`: at most one publish in flight; deltas that arrive meanwhile go out together,
numbered when published; `flush` waits for all of them."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from datetime import UTC, datetime

from domain.turns.deltas import DeltaPublisher
from domain.turns.events import TurnEvent, TurnEventType

TURN, SESSION = uuid.uuid4(), uuid.uuid4()


class Broker:
    def __init__(self, *, gate: asyncio.Event | None = None) -> None:
        self.published: list[TurnEvent] = []
        self.gate = gate  # while cleared, a publish waits (a slow round trip)
        self.numbers = itertools.count(1)

    def make(self, text: str) -> TurnEvent:
        return TurnEvent(
            turn_id=TURN,
            session_id=SESSION,
            sequence=next(self.numbers),
            type=TurnEventType.AGENT_DELTA,
            at=datetime(2026, 1, 1, tzinfo=UTC),
            payload={"text": text},
        )

    async def publish(self, events: tuple[TurnEvent, ...]) -> None:
        if self.gate is not None:
            await self.gate.wait()
        self.published += events


def sent(broker: Broker) -> list[tuple[int, str]]:
    return [(e.sequence, str(e.payload["text"])) for e in broker.published]


async def test_with_a_broker_that_keeps_up_each_delta_goes_out_alone() -> None:
    broker = Broker()
    deltas = DeltaPublisher(broker.publish, broker.make)
    for text in ("a", "b", "c"):
        deltas.add(text)
        await asyncio.sleep(0)  # the provider's next chunk comes later
        await asyncio.sleep(0)
    await deltas.flush()
    assert sent(broker) == [(1, "a"), (2, "b"), (3, "c")]


async def test_deltas_arriving_during_a_slow_publish_go_out_merged_in_the_next() -> None:
    gate = asyncio.Event()
    broker = Broker(gate=gate)
    deltas = DeltaPublisher(broker.publish, broker.make)
    deltas.add("Hel")
    await asyncio.sleep(0)  # its publish is now out, waiting on the broker
    for text in ("lo", ", ", "world"):
        deltas.add(text)  # never waits
    gate.set()
    async with asyncio.timeout(2):
        await deltas.flush()
    assert sent(broker) == [(1, "Hel"), (2, "lo, world")]


async def test_flush_returns_only_after_everything_added_is_published() -> None:
    gate = asyncio.Event()
    broker = Broker(gate=gate)
    deltas = DeltaPublisher(broker.publish, broker.make)
    deltas.add("x")
    flushing = asyncio.create_task(deltas.flush())
    await asyncio.sleep(0.05)
    assert not flushing.done()
    gate.set()
    async with asyncio.timeout(2):
        await flushing
    assert sent(broker) == [(1, "x")]
    await deltas.flush()  # nothing pending: returns at once


async def test_a_failing_publisher_does_not_stop_the_deltas_after_it() -> None:
    broker = Broker()
    failures = iter([RuntimeError("boom")])

    async def flaky(events: tuple[TurnEvent, ...]) -> None:
        if (error := next(failures, None)) is not None:
            raise error
        await broker.publish(events)

    deltas = DeltaPublisher(flaky, broker.make)
    deltas.add("lost")
    await deltas.flush()
    deltas.add("kept")
    await deltas.flush()
    assert sent(broker) == [(2, "kept")]

"""Live subscriptions of the Redis broker, and the one reader per process that feeds them.

A connection held in `XREAD BLOCK` per subscription would cost a Redis connection and a round
trip per subscriber per wake-up: a hundred streaming turns meant a hundred readers parsing a
hundred replies, and ten thousand subscribers would approach Redis's client limit. Instead one
`XREAD BLOCK` covers every stream this process's subscribers follow; what it returns is decoded
once per stream and handed to each subscriber's bounded buffer.

A new stream has to join a read already blocked: the reader also follows a small wake-up
stream of its own, and a subscription to a new stream appends to it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from typing import Any

from domain.turns.events import SlowConsumer, TurnEvent
from infra.events import codec

log = logging.getLogger("pantheon.events.redis")

WAKE_TTL_SECONDS = 60  # the wake-up stream outlives no process for long


class EventsUnavailable(SlowConsumer):
    """The broker lost Redis under a live subscription. Like `SlowConsumer`, the client resumes
    with `afterSequence` = `last_delivered` (durable events replay from the outbox)."""

    code = "EVENTS_UNAVAILABLE"
    summary = "event stream unavailable"


def stream_id(entry_id: str) -> tuple[int, int]:
    """A stream entry id (`<ms>-<seq>`) as a comparable pair."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class StreamSubscription:
    """One subscriber's bounded buffer of one stream, filled by the shared reader. An overflow
    ends it with `SlowConsumer`; a Redis failure with `EventsUnavailable`."""

    def __init__(self, reader: SharedStreamReader, key: str, start_id: str, buffer: int) -> None:
        self._reader = reader
        self._key = key
        self._after: tuple[int, int] | None = stream_id(start_id)  # None once past it
        self.start_id = start_id
        self._cap = max(1, buffer)
        self._buffer: deque[TurnEvent] = deque()
        self._wakeup = asyncio.Event()
        self._end: type[SlowConsumer] | None = None
        self._finished = False  # the consumer has been told the subscription ended
        self._last_delivered = 0

    @property
    def key(self) -> str:
        return self._key

    def __aiter__(self) -> StreamSubscription:
        return self

    def deliver(self, entries: list[tuple[str, TurnEvent]]) -> None:
        """Called by the reader with a stream's new entries, in order."""
        if self._finished or self._end is not None:
            return
        for entry_id, event in entries:
            if self._after is not None:  # the reader may have started this stream earlier
                if stream_id(entry_id) <= self._after:
                    continue
                self._after = None
            if len(self._buffer) >= self._cap:
                self.fail(SlowConsumer)
                return
            self._buffer.append(event)
        self._wakeup.set()

    def fail(self, end: type[SlowConsumer]) -> None:
        """Ends the subscription at its next read with `end`; the client resumes from the
        outbox after the last event it got."""
        if self._end is None:
            self._end = end
            self._reader.remove(self)
        self._wakeup.set()

    async def __anext__(self) -> TurnEvent:
        while True:
            if self._finished:
                raise StopAsyncIteration
            if self._end is not None:
                self._finished = True
                self._buffer.clear()
                raise self._end(self._last_delivered)
            if self._buffer:
                event = self._buffer.popleft()
                self._last_delivered = event.sequence
                return event
            self._wakeup.clear()
            await self._wakeup.wait()

    def take_ready(self) -> list[TurnEvent]:
        if self._finished or self._end is not None:
            return []
        ready = list(self._buffer)
        self._buffer.clear()
        if ready:
            self._last_delivered = ready[-1].sequence
        return ready

    async def aclose(self) -> None:
        self.stop()

    def stop(self) -> None:
        """Ends the subscription at once."""
        self._finished = True
        self._buffer.clear()
        self._reader.remove(self)
        self._wakeup.set()


class SharedStreamReader:
    """The process's one `XREAD BLOCK` loop over every stream with a live subscriber. It runs
    while there are subscribers and starts again with the next one."""

    def __init__(self, reader: Any, writer: Any, *, prefix: str, block_ms: int, count: int) -> None:
        self._redis = reader  # a client of its own: a blocked read never holds up publishing
        self._writer = writer  # for the wake-up entries: the reader's connection is blocked
        self._block_ms = block_ms
        self._count = count
        self._wake_key = f"{prefix}:wake:{uuid.uuid4().hex}"
        self._wake_cursor = "0-0"
        self._followed: dict[str, set[StreamSubscription]] = {}
        self._cursors: dict[str, str] = {}  # stream -> the last entry id read (or its start)
        self._task: asyncio.Task[None] | None = None
        self._waking: asyncio.Task[None] | None = None
        self._wake_again = False
        self._where = ""
        self._closed = False

    def describe(self, where: str) -> None:
        self._where = where

    @property
    def subscriber_count(self) -> int:
        return sum(len(subscribers) for subscribers in self._followed.values())

    def subscriptions_of(self, keys: set[str]) -> list[StreamSubscription]:
        return [sub for key in keys & self._followed.keys() for sub in self._followed[key]]

    def add(self, subscription: StreamSubscription) -> None:
        key = subscription.key
        subscribers = self._followed.get(key)
        if subscribers is None:
            self._followed[key] = {subscription}
            self._cursors[key] = subscription.start_id
            self._ensure_running()
        else:
            # Read on from the stream's cursor: entries after the cursor but before this
            # subscription's start are skipped by `deliver`; entries before the cursor were
            # read (so published) before it subscribed.
            subscribers.add(subscription)

    def remove(self, subscription: StreamSubscription) -> None:
        subscribers = self._followed.get(subscription.key)
        if subscribers is None:
            return
        subscribers.discard(subscription)
        if not subscribers:
            del self._followed[subscription.key]
            del self._cursors[subscription.key]

    def _ensure_running(self) -> None:
        """Starts the reader, or wakes it: a read blocked without a new stream would only see
        that stream's events when it returns (up to `block_ms` later)."""
        if self._closed:
            return
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="redis-shared-reader"
            )
        elif self._waking is not None:
            self._wake_again = True  # the read it wakes may already be past this stream
        else:
            self._waking = asyncio.get_running_loop().create_task(self._wake_until_done())

    async def _wake_until_done(self) -> None:
        """One wake-up in flight at a time: a hundred new subscriptions cost a few writes."""
        try:
            while True:
                self._wake_again = False
                await self._wake()
                if not self._wake_again:
                    return
        finally:
            self._waking = None

    async def _wake(self) -> None:
        try:
            pipe = self._writer.pipeline(transaction=False)
            pipe.xadd(self._wake_key, {"w": "1"}, maxlen=1)
            pipe.expire(self._wake_key, WAKE_TTL_SECONDS)
            await pipe.execute()
        except Exception as exc:  # the read ends within block_ms anyway
            log.debug("waking the Redis reader failed (%s)", type(exc).__name__)

    async def _run(self) -> None:
        try:
            while self._followed and not self._closed:
                streams = {**self._cursors, self._wake_key: self._wake_cursor}
                reply = await self._redis.xread(streams, count=self._count, block=self._block_ms)
                self._dispatch(reply)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not self._closed:
                log.warning(
                    "live event subscriptions lost Redis at %s (%s); they end with %s",
                    self._where,
                    type(exc).__name__,
                    EventsUnavailable.code,
                )
            for subscribers in list(self._followed.values()):
                for subscription in list(subscribers):
                    subscription.fail(EventsUnavailable)

    def _dispatch(self, reply: Any) -> None:
        streams = reply.items() if isinstance(reply, dict) else (reply or [])
        for key, entries in streams:
            if not entries:
                continue
            if key == self._wake_key:
                self._wake_cursor = entries[-1][0]
                continue
            if key not in self._cursors:  # its last subscriber left during the read
                continue
            self._cursors[key] = entries[-1][0]
            decoded = [
                (entry_id, codec.decode(fields[codec.FIELD])) for entry_id, fields in entries
            ]
            for subscription in list(self._followed.get(key, ())):
                subscription.deliver(decoded)

    async def aclose(self, *, wait_seconds: float) -> None:
        """Ends every subscription; the read stops at its next `XREAD` return (cancelling a
        redis-py call mid-read can stall on its disconnect), so this takes about `block_ms`."""
        self._closed = True
        for subscribers in list(self._followed.values()):
            for subscription in list(subscribers):
                subscription.stop()
        task, self._task = self._task, None
        if task is not None and not task.done():
            await self._wake()
            _done, pending = await asyncio.wait({task}, timeout=wait_seconds)
            for leftover in pending:
                leftover.cancel()
        if self._waking is not None:
            self._waking.cancel()

"""The scale-out broker: Redis Streams shared by every API process.

Key layout (PREFIX = `PANTHEON_REDIS_KEY_PREFIX`, default `pantheon`):

- `PREFIX:turn:<turn id>`       a stream of the turn's events (deltas included)
- `PREFIX:session:<session id>` a stream of every event of the session's turns
- `PREFIX:cancel`               a pub/sub channel carrying turn ids to stop

Each `XADD` trims its stream with `MAXLEN ~ max_stream_length`, and a stream's `EXPIRE` is
renewed to the retention window when this process first writes it and then at most every
tenth of that window, so Redis memory stays bounded by (active streams x max length) and idle
streams vanish on their own (within 1.1 x the retention window).

Publishes are group-committed: every turn of the process appends to one queue and a single
writer sends whatever has queued up as one pipeline, so a hundred streaming turns cost one
round trip per flush instead of one each. `publish` returns once its events are written (or
given up), in order per turn.

Publishing never raises and never waits long: a Redis error is logged once per outage, further
publishes are skipped for `retry_after_seconds`, and durable events stay replayable from the
database outbox. A live subscription whose Redis connection fails ends with `EventsUnavailable`
(a `SlowConsumer`: the client resumes with `afterSequence`, replayed from the outbox), never with
a silent gap.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from domain.turns.events import TurnEvent
from infra.events import codec
from infra.events.redis_reader import (
    EventsUnavailable,
    SharedStreamReader,
    StreamSubscription,
)
from infra.redis_pubsub import listen_to_channel
from infra.settings import SettingsError

log = logging.getLogger("pantheon.events.redis")


class RedisUnavailable(SettingsError):
    """Redis did not answer at start-up; the message is one line, without credentials."""


def describe_url(url: str) -> str:
    """host:port/db of a Redis URL, never its user or password."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = parts.port or 6379
    return f"{parts.scheme}://{host}:{port}{parts.path or '/0'}"


def client_name(prefix: str) -> str:
    """`pantheon-<prefix>`, as Redis accepts a connection name (no spaces or newlines)."""
    return "pantheon-" + "".join(c if c.isprintable() and not c.isspace() else "_" for c in prefix)


class RedisEventBroker:
    def __init__(
        self,
        url: str,
        *,
        prefix: str = "pantheon",
        retention_seconds: float = 900.0,
        max_stream_length: int = 10_000,
        # Roomy: on a CPU-starved process a healthy round trip can take a while, and a timeout
        # pauses publishing (ending live subscriptions) for retry_after_seconds.
        publish_timeout_seconds: float = 2.0,
        retry_after_seconds: float = 1.0,
        block_ms: int = 1_000,
        connect_timeout_seconds: float = 2.0,
        read_count: int = 1_000,
    ) -> None:
        self.prefix = prefix
        self.retention_seconds = retention_seconds
        self.max_stream_length = max_stream_length
        self.publish_timeout_seconds = publish_timeout_seconds
        self.retry_after_seconds = retry_after_seconds
        self.block_ms = block_ms
        self.where = describe_url(url)
        self.cancel_channel = f"{prefix}:cancel"
        options: dict[str, Any] = {
            "decode_responses": True,
            "socket_connect_timeout": connect_timeout_seconds,
            "socket_timeout": block_ms / 1000 + 5.0,  # above XREAD BLOCK, below a hung turn
            "retry": Retry(NoBackoff(), 0),  # this broker decides when to try again
            # Names its connections, so `CLIENT LIST` shows which are Pantheon's, and whose.
            "client_name": client_name(prefix),
        }
        self._redis: Any = Redis.from_url(url, **options)  # redis-py stubs: untyped replies
        # The shared reader's connection sits in XREAD BLOCK: a client of its own, so it never
        # holds up publishing, replay or cancels.
        self._reader_client: Any = Redis.from_url(url, max_connections=2, **options)
        self._reader = SharedStreamReader(
            self._reader_client, self._redis, prefix=prefix, block_ms=block_ms, count=read_count
        )
        self._reader.describe(self.where)
        self._clock_offset_ms = 0.0  # Redis server time minus local time, set by `check`
        self._clock_margin_ms = 50.0  # how far back a new subscription starts (clock error)
        self._publish_paused_until = 0.0
        self._failing = False
        self._queued: list[TurnEvent] = []
        self._queued_waiters: list[asyncio.Future[None]] = []
        self._writer: asyncio.Task[None] | None = None
        self._expiry_renewed: dict[str, float] = {}  # key -> when this process last renewed it
        self._expiry_pruned = 0.0
        self._callbacks: list[Callable[[uuid.UUID], None]] = []
        self._listener: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()  # the cancel channel is subscribed (tests wait on it)
        self._closed = False

    # --- keys --------------------------------------------------------------------------------

    def turn_key(self, turn_id: uuid.UUID) -> str:
        return f"{self.prefix}:turn:{turn_id}"

    def session_key(self, session_id: uuid.UUID) -> str:
        return f"{self.prefix}:session:{session_id}"

    # --- start-up ----------------------------------------------------------------------------

    async def ping(self) -> None:
        """One PING (readiness, infra/readiness.py); raises when Redis does not answer."""
        await self._redis.ping()

    async def check(self) -> None:
        """Pings Redis and learns its clock (stream ids are its milliseconds); raises
        `RedisUnavailable` with a one-line message when it does not answer."""
        try:
            async with asyncio.timeout(5.0):
                await self._redis.ping()  # connects, so the clock reading below is one round trip
                before = time.time()
                seconds, micros = await self._redis.time()
                after = time.time()
        except Exception as exc:
            detail = " ".join(str(exc).split()).replace(self._secret(), "***")  # one line
            raise RedisUnavailable(
                f"PANTHEON_REDIS_URL: Redis at {self.where} is unreachable "
                f"({type(exc).__name__}: {detail})"
            ) from None
        self._clock_offset_ms = (seconds + micros / 1e6 - (before + after) / 2) * 1000
        self._clock_margin_ms = 5.0 + (after - before) * 1000
        self._ensure_listener()

    def _secret(self) -> str:
        password = self._redis.connection_pool.connection_kwargs.get("password")
        return str(password) if password else "\0"

    # --- publishing --------------------------------------------------------------------------

    async def publish(self, events: tuple[TurnEvent, ...]) -> None:
        if not events or self._closed:
            return
        written = asyncio.get_running_loop().create_future()
        self._queued.extend(events)
        self._queued_waiters.append(written)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_queued(), name="redis-publisher")
        # Shielded: a caller cancelled while waiting must not cancel the shared write.
        await asyncio.shield(written)

    async def _write_queued(self) -> None:
        """The single writer: sends what has queued up, one pipeline per round, until the queue
        is empty. Never raises."""
        while self._queued:
            events, waiters = tuple(self._queued), self._queued_waiters
            self._queued, self._queued_waiters = [], []
            try:
                if time.monotonic() >= self._publish_paused_until:
                    await self._write(events)
                else:
                    # Skipped: whoever follows these turns (subscribed before or during the
                    # pause) must not wait for them; they resume from the outbox.
                    log.debug("redis unavailable; %d event(s) not published", len(events))
                    self._end_subscriptions_of(events)
            finally:
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_result(None)

    async def _write(self, events: tuple[TurnEvent, ...]) -> None:
        try:
            async with asyncio.timeout(self.publish_timeout_seconds):
                pipe = self._redis.pipeline(transaction=False)
                for event in events:
                    entry = {codec.FIELD: codec.encode(event)}
                    for key in (self.turn_key(event.turn_id), self.session_key(event.session_id)):
                        pipe.xadd(key, entry, maxlen=self.max_stream_length, approximate=True)
                for key in self._expiries_due(events):
                    pipe.expire(key, max(1, int(self.retention_seconds)))
                await pipe.execute()
        except Exception as exc:  # never raise into a turn
            self._publish_paused_until = time.monotonic() + self.retry_after_seconds
            self._expiry_renewed.clear()  # what failed may not have been renewed
            self._end_subscriptions_of(events)
            if not self._failing:
                self._failing = True
                log.warning(
                    "publishing turn events to Redis at %s failed (%s); live subscribers will "
                    "resume from the outbox, retrying in %.1fs",
                    self.where,
                    type(exc).__name__,
                    self.retry_after_seconds,
                )
            return
        if self._failing:
            self._failing = False
            log.warning("publishing turn events to Redis at %s works again", self.where)

    def _expiries_due(self, events: tuple[TurnEvent, ...]) -> set[str]:
        """Keys whose EXPIRE this process has not renewed within a tenth of the retention
        window (an EXPIRE per event would double the commands of a streaming turn)."""
        now = time.monotonic()
        every = self.retention_seconds / 10
        if now - self._expiry_pruned > every:
            self._expiry_pruned = now
            self._expiry_renewed = {
                key: at for key, at in self._expiry_renewed.items() if now - at < every
            }
        due: set[str] = set()
        for event in events:
            for key in (self.turn_key(event.turn_id), self.session_key(event.session_id)):
                if now - self._expiry_renewed.get(key, -every) >= every:
                    due.add(key)
                    self._expiry_renewed[key] = now
        return due

    def _end_subscriptions_of(self, events: tuple[TurnEvent, ...]) -> None:
        """Live subscribers of these turns and sessions missed events that never reached Redis:
        they end with EVENTS_UNAVAILABLE and resume from the outbox, never with a silent gap."""
        keys = {self.turn_key(e.turn_id) for e in events}
        keys |= {self.session_key(e.session_id) for e in events}
        for subscription in self._reader.subscriptions_of(keys):
            subscription.fail(EventsUnavailable)

    async def last_sequence(self, turn_id: uuid.UUID) -> int:
        try:
            entries = await self._redis.xrevrange(self.turn_key(turn_id), count=1)
        except Exception as exc:
            log.warning("reading the last sequence from Redis failed (%s)", type(exc).__name__)
            return 0
        for _entry_id, fields in entries:
            return codec.decode(fields[codec.FIELD]).sequence
        return 0

    async def retained(self, turn_id: uuid.UUID, *, after: int = 0) -> list[TurnEvent]:
        try:
            entries = await self._redis.xrange(self.turn_key(turn_id))
        except Exception as exc:
            log.warning("reading retained events from Redis failed (%s)", type(exc).__name__)
            return []
        events = [codec.decode(fields[codec.FIELD]) for _entry_id, fields in entries]
        return sorted((e for e in events if e.sequence > after), key=lambda e: e.sequence)

    # --- subscriptions -----------------------------------------------------------------------

    def subscribe_turn(self, turn_id: uuid.UUID, *, buffer: int) -> StreamSubscription:
        return self._subscribe(self.turn_key(turn_id), buffer)

    def subscribe_session(self, session_id: uuid.UUID, *, buffer: int) -> StreamSubscription:
        return self._subscribe(self.session_key(session_id), buffer)

    def _subscribe(self, key: str, buffer: int) -> StreamSubscription:
        # Live from now: stream ids are Redis's clock in ms, so "now" is an id. It starts a
        # few ms back (the clock error): events published just before subscribing may also
        # come, never fewer; a consumer replaying first dedupes by sequence anyway.
        now_ms = int(time.time() * 1000 + self._clock_offset_ms - self._clock_margin_ms)
        subscription = StreamSubscription(self._reader, key, f"{now_ms}-0", buffer)
        if self._closed:
            subscription.stop()
        else:
            self._reader.add(subscription)
        return subscription

    @property
    def active_subscriptions(self) -> int:
        return self._reader.subscriber_count

    # --- cancel ------------------------------------------------------------------------------

    async def request_cancel(self, turn_id: uuid.UUID) -> None:
        try:
            async with asyncio.timeout(self.publish_timeout_seconds):
                await self._redis.publish(self.cancel_channel, str(turn_id))
        except Exception as exc:
            # The DB flag is the source of truth: the runner sees it at its next heartbeat.
            log.warning("cancel request via Redis failed (%s)", type(exc).__name__)

    def on_cancel_request(self, callback: Callable[[uuid.UUID], None]) -> None:
        self._callbacks.append(callback)
        self._ensure_listener()

    def _ensure_listener(self) -> None:
        if self._listener is not None or not self._callbacks or self._closed:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop yet: `check` starts it
            return
        self._listener = loop.create_task(self._listen(), name="redis-cancel-listener")

    async def _listen(self) -> None:
        await listen_to_channel(
            self._redis,
            self.cancel_channel,
            on_message=self._dispatch,
            listening=self.listening,
            closed=lambda: self._closed,
            name="cancel listener",
            where=self.where,
            log=log,
        )

    def _dispatch(self, data: Any) -> None:
        try:
            turn_id = uuid.UUID(str(data))
        except ValueError:
            log.warning("ignored a malformed cancel request")
            return
        for callback in list(self._callbacks):
            try:
                callback(turn_id)
            except Exception:
                log.exception("cancel callback failed for turn %s", turn_id)

    # --- shutdown ----------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Ends every live subscription and the cancel listener, writes what is queued, then
        closes the pools. The shared reader stops at its next `XREAD BLOCK` return, so this
        takes at most about `block_ms`."""
        if self._closed:
            return
        self._closed = True
        await self._reader.aclose(wait_seconds=self.block_ms / 1000 + 1.5)
        tasks: list[asyncio.Task[None]] = []
        if self._writer is not None:
            tasks.append(self._writer)  # what is queued is written (or given up) first
        if self._listener is not None:
            tasks.append(self._listener)
            self._listener = None
        pending = {task for task in tasks if not task.done()}
        if pending:
            _done, pending = await asyncio.wait(pending, timeout=self.block_ms / 1000 + 1.5)
        for task in pending:
            task.cancel()
        self.listening.clear()
        await self._reader_client.aclose(close_connection_pool=True)
        await self._redis.aclose(close_connection_pool=True)

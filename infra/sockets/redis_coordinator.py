"""Open sockets per user and token revocations, shared by every API process through Redis.

Keys (PREFIX = `PANTHEON_REDIS_KEY_PREFIX`):

- `PREFIX:sockets:<user id>`  a sorted set: one member per open socket (`<process>:<socket>`),
  scored by when it stops counting (Redis time + `claim_ttl_seconds`). Each process renews its
  own members every third of the TTL, so the sockets of a process that died stop counting
  within the TTL; the set itself expires with its last member.
- `PREFIX:revoked`            a pub/sub channel carrying the ids of users whose tokens were
  revoked; every process closes that user's sockets.

A claim is one Lua script (drop expired members, count, add), so two processes admitting the
user's last place at once cannot both win. If Redis fails, the count falls back to this
process's own sockets (logged once per outage) rather than refusing every socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from infra.events.redis_broker import client_name, describe_url
from infra.redis_pubsub import listen_to_channel

log = logging.getLogger("pantheon.sockets.redis")

_CLAIM = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 1 end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[3])))
return 1
"""

_RENEW = """
local t = redis.call('TIME')
local until_ = tonumber(t[1]) + tonumber(t[2]) / 1000000 + tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], until_, ARGV[i]) end
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[1])))
return 1
"""


class RedisSocketCoordinator:
    def __init__(
        self,
        url: str,
        *,
        prefix: str = "pantheon",
        claim_ttl_seconds: float = 30.0,
        timeout_seconds: float = 2.0,
    ) -> None:
        self.prefix = prefix
        self.where = describe_url(url)
        self.revoked_channel = f"{prefix}:revoked"
        self.claim_ttl_seconds = claim_ttl_seconds
        self.timeout_seconds = timeout_seconds
        self._process = uuid.uuid4().hex[:12]
        self._redis: Any = Redis.from_url(  # redis-py stubs: untyped replies
            url,
            decode_responses=True,
            socket_connect_timeout=timeout_seconds,
            socket_timeout=timeout_seconds + 1.0,
            retry=Retry(NoBackoff(), 0),
            client_name=client_name(prefix),
        )
        self._claim_script = self._redis.register_script(_CLAIM)
        self._renew_script = self._redis.register_script(_RENEW)
        self._claims: dict[uuid.UUID, set[str]] = {}  # this process's sockets, by user
        self._callbacks: list[Callable[[uuid.UUID], None]] = []
        self._reconnected: list[Callable[[], None]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.listening = asyncio.Event()  # the revocation channel is subscribed (tests wait)
        self._failing = False
        self._closed = False

    def key(self, user_id: uuid.UUID) -> str:
        return f"{self.prefix}:sockets:{user_id}"

    def _member(self, socket_id: str) -> str:
        return f"{self._process}:{socket_id}"

    def start(self) -> None:
        """Starts the revocation listener and the renewal of this process's claims."""
        if self._tasks or self._closed:
            return
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._listen(), name="redis-revocation-listener"),
            loop.create_task(self._renew_forever(), name="redis-socket-claims"),
        ]

    # --- the count ---------------------------------------------------------------------------

    async def claim(self, user_id: uuid.UUID, socket_id: str, *, limit: int) -> bool:
        local = self._claims.setdefault(user_id, set())
        try:
            async with asyncio.timeout(self.timeout_seconds):
                won = await self._claim_script(
                    keys=[self.key(user_id)],
                    args=[self._member(socket_id), limit, self.claim_ttl_seconds],
                )
        except Exception as exc:
            self._failed("counting sockets", exc)
            won = len(local) < limit  # this process's sockets only, until Redis is back
        else:
            self._works_again()
        if won:
            local.add(socket_id)
        elif not local:
            del self._claims[user_id]
        return bool(won)

    async def release(self, user_id: uuid.UUID, socket_id: str) -> None:
        local = self._claims.get(user_id)
        if local is not None:
            local.discard(socket_id)
            if not local:
                del self._claims[user_id]
        try:
            async with asyncio.timeout(self.timeout_seconds):
                await self._redis.zrem(self.key(user_id), self._member(socket_id))
        except Exception as exc:  # the member expires within claim_ttl_seconds anyway
            self._failed("releasing a socket", exc)

    async def _renew_forever(self) -> None:
        while not self._closed:
            await asyncio.sleep(self.claim_ttl_seconds / 3)
            await self.renew()

    async def renew(self) -> None:
        """Pushes the expiry of every socket this process holds one TTL ahead."""
        claims = [(user, sorted(ids)) for user, ids in self._claims.items() if ids]
        if not claims:
            return
        try:
            async with asyncio.timeout(self.timeout_seconds):
                pipe = self._redis.pipeline(transaction=False)
                for user_id, socket_ids in claims:
                    members = [self._member(socket_id) for socket_id in socket_ids]
                    await self._renew_script(
                        keys=[self.key(user_id)],
                        args=[self.claim_ttl_seconds, *members],
                        client=pipe,
                    )
                await pipe.execute()
        except Exception as exc:
            self._failed("renewing socket counts", exc)

    # --- revocations -------------------------------------------------------------------------

    async def announce_revoked(self, user_id: uuid.UUID) -> None:
        try:
            async with asyncio.timeout(self.timeout_seconds):
                await self._redis.publish(self.revoked_channel, str(user_id))
        except Exception as exc:
            log.warning(
                "revocation of user %s not announced to other processes: Redis at %s failed "
                "(%s); their sockets of this user stay open",
                user_id,
                self.where,
                type(exc).__name__,
            )

    def on_revoked(self, callback: Callable[[uuid.UUID], None]) -> None:
        self._callbacks.append(callback)

    def on_reconnected(self, callback: Callable[[], None]) -> None:
        self._reconnected.append(callback)

    async def _listen(self) -> None:
        await listen_to_channel(
            self._redis,
            self.revoked_channel,
            on_message=self._dispatch,
            listening=self.listening,
            closed=lambda: self._closed,
            name="revocation listener",
            where=self.where,
            log=log,
            on_resubscribed=self._notify_reconnected,  # revocations meanwhile never arrived
        )

    def _notify_reconnected(self) -> None:
        log.warning("revocation listener back on Redis at %s; re-checking tokens", self.where)
        for callback in list(self._reconnected):
            try:
                callback()
            except Exception:
                log.exception("reconnection callback failed")

    def _dispatch(self, data: Any) -> None:
        try:
            user_id = uuid.UUID(str(data))
        except ValueError:
            log.warning("ignored a malformed revocation message")
            return
        for callback in list(self._callbacks):
            try:
                callback(user_id)
            except Exception:
                log.exception("revocation callback failed for user %s", user_id)

    # --- health and shutdown -----------------------------------------------------------------

    def _failed(self, what: str, exc: Exception) -> None:
        if not self._failing:
            self._failing = True
            log.warning(
                "%s in Redis at %s failed (%s); counting this process's sockets only",
                what,
                self.where,
                type(exc).__name__,
            )

    def _works_again(self) -> None:
        if self._failing:
            self._failing = False
            log.warning("socket counts in Redis at %s work again", self.where)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        tasks, self._tasks = self._tasks, []
        if tasks:
            # The listener notices `_closed` within its 0.2 s poll (cancelling redis-py
            # mid-read can stall on its disconnect); the renewal only sleeps.
            _done, pending = await asyncio.wait(tasks, timeout=1.5)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self.listening.clear()
        # This process's sockets end with it: stop counting them now rather than at expiry.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.timeout_seconds):
                pipe = self._redis.pipeline(transaction=False)
                for user_id, socket_ids in self._claims.items():
                    pipe.zrem(self.key(user_id), *(self._member(s) for s in socket_ids))
                if self._claims:
                    await pipe.execute()
        self._claims.clear()
        await self._redis.aclose(close_connection_pool=True)

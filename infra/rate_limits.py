"""The rate limits' counter store: the `limits` library's sliding-window counter, on Redis (shared
by every process) when PANTHEON_REDIS_URL is set, in this process's memory otherwise.

The sliding-window counter keeps two integers per key whatever the cost of a hit, which is what
a token limit needs (the moving window stores one entry per unit of cost).

While Redis cannot be reached the limits are not dropped, nor is every request refused: each
process counts in its own memory (so N processes admit at most N times a limit) and goes back to
Redis a few seconds later, as the socket registry does (docs/rate_limits.md)."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

from limits import RateLimitItem, RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from domain.rate_limits import LimitName, WindowState
from infra.faults import redis_fault

log = logging.getLogger("pantheon.rate_limits")
T = TypeVar("T")
# How long a process counts in memory after Redis failed, before it tries Redis again.
RETRY_REDIS_AFTER_SECONDS = 5.0
# A Redis that accepts connections but never answers must not hold requests: give up this soon.
REDIS_TIMEOUT_SECONDS = 2.0


class LimitsCounterStore:
    """Implements domain.rate_limits.CounterStore."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._strategy = SlidingWindowCounterRateLimiter(storage)
        self._items: dict[tuple[LimitName, int], RateLimitItem] = {}

    def _item(self, name: LimitName, limit: int) -> RateLimitItem:
        item = self._items.get((name, limit))
        if item is None:
            item = self._items[(name, limit)] = RateLimitItemPerMinute(limit, namespace=name.value)
        return item

    async def acquire(self, name: LimitName, key: str, *, limit: int, cost: int) -> bool:
        return await self._strategy.hit(self._item(name, limit), key, cost=cost)

    async def has_room(self, name: LimitName, key: str, *, limit: int, cost: int) -> bool:
        return await self._strategy.test(self._item(name, limit), key, cost=cost)

    async def state(self, name: LimitName, key: str, *, limit: int) -> WindowState:
        stats = await self._strategy.get_window_stats(self._item(name, limit), key)
        return WindowState(
            limit=limit,
            remaining=stats.remaining,
            reset_at=datetime.fromtimestamp(stats.reset_time, UTC),
        )

    async def aclose(self) -> None:
        client = getattr(getattr(self.storage, "bridge", None), "storage", None)
        if client is not None:  # the redis-py client behind RedisStorage
            await client.aclose()
        timer = getattr(self.storage, "timer", None)
        if timer is not None:  # MemoryStorage's expiry task
            timer.cancel()
            with contextlib.suppress(BaseException):
                await timer


class FallbackCounterStore:
    """Redis counters, with this process's memory standing in while Redis is unreachable."""

    def __init__(self, shared: LimitsCounterStore, local: LimitsCounterStore) -> None:
        self.shared = shared
        self.local = local
        self._local_until = 0.0  # monotonic time before which Redis is not tried again

    async def _use(self, call: Callable[[LimitsCounterStore], Awaitable[T]]) -> T:
        if time.monotonic() >= self._local_until:
            try:
                return await call(self.shared)
            except Exception as error:
                fault = redis_fault(error)
                if fault is None:
                    raise
                # Requests in flight together all fail at once: the first one logs the outage.
                if time.monotonic() >= self._local_until:
                    log.warning(
                        "rate limits: %s; counting in this process's memory, retrying in %gs",
                        fault,
                        RETRY_REDIS_AFTER_SECONDS,
                    )
                self._local_until = time.monotonic() + RETRY_REDIS_AFTER_SECONDS
        return await call(self.local)

    async def acquire(self, name: LimitName, key: str, *, limit: int, cost: int) -> bool:
        return await self._use(lambda store: store.acquire(name, key, limit=limit, cost=cost))

    async def has_room(self, name: LimitName, key: str, *, limit: int, cost: int) -> bool:
        return await self._use(lambda store: store.has_room(name, key, limit=limit, cost=cost))

    async def state(self, name: LimitName, key: str, *, limit: int) -> WindowState:
        return await self._use(lambda store: store.state(name, key, limit=limit))

    async def aclose(self) -> None:
        try:
            await self.shared.aclose()
        finally:
            await self.local.aclose()


CounterStores = LimitsCounterStore | FallbackCounterStore


def memory_counters() -> LimitsCounterStore:
    return LimitsCounterStore(MemoryStorage())


def redis_counters(url: str, *, prefix: str) -> FallbackCounterStore:
    """Counters under `<prefix>:ratelimit`, through redis-py (the client the broker uses too),
    with in-memory counters while Redis is unreachable."""
    storage = RedisStorage(
        f"async+{url}",
        implementation="redispy",
        key_prefix=f"{prefix}:ratelimit",
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
    )
    return FallbackCounterStore(LimitsCounterStore(storage), memory_counters())

"""The rate limits' counter store: the `limits` library's sliding-window counter, on Redis (shared
by every process) when PANTHEON_REDIS_URL is set, in this process's memory otherwise.

The sliding-window counter keeps two integers per key whatever the cost of a hit, which is what
a token limit needs (the moving window stores one entry per unit of cost)."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

from limits import RateLimitItem, RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from domain.rate_limits import LimitName, WindowState


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


def memory_counters() -> LimitsCounterStore:
    return LimitsCounterStore(MemoryStorage())


def redis_counters(url: str, *, prefix: str) -> LimitsCounterStore:
    """Counters under `<prefix>:ratelimit`, through redis-py (the client the broker uses too)."""
    storage = RedisStorage(
        f"async+{url}", implementation="redispy", key_prefix=f"{prefix}:ratelimit"
    )
    return LimitsCounterStore(storage)

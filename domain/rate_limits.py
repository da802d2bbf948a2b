"""Rate limits: what is limited and by how much (the policy), the counter store it needs (a port
that infra/ implements with the `limits` library), and the checks the API and admission call.

Every limit is a per-minute sliding-window counter keyed by who is limited: requests, turns and
provider tokens per user, failed authentications per client address. A refusal is `RateLimited`,
naming the limit and when to retry. See docs/rate_limits.md.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from domain.clock import utcnow
from domain.errors import RateLimited

WINDOW_SECONDS = 60


class LimitName(StrEnum):
    """The value of `extensions.limit` on a RATE_LIMITED error."""

    REQUESTS = "requests"
    TURNS = "turns"
    TOKENS = "tokens"
    AUTH_FAILURES = "auth_failures"
    WEBSOCKETS = "websockets"
    RUNNING_TURNS = "running_turns"


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestWindow:
    """The caller's per-minute request window after this request was counted."""

    limit: int
    remaining: int
    reset_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimitPolicy:
    """Per-minute amounts; 0 turns a limit off."""

    requests_per_minute: int = 1_200
    turns_per_minute: int = 120
    tokens_per_minute: int = 2_000_000
    auth_failures_per_minute: int = 20


@dataclass(frozen=True, slots=True, kw_only=True)
class WindowState:
    """A counter's state: what is left of `limit`, and when at least one more unit is free."""

    limit: int
    remaining: int
    reset_at: datetime


class CounterStore(Protocol):
    """Sliding-window counters, shared by every process when backed by Redis."""

    async def acquire(self, name: LimitName, key: str, *, limit: int, cost: int) -> bool:
        """Adds `cost` if the window has room for it (atomically); False, adding nothing, if not."""
        ...

    async def has_room(self, name: LimitName, key: str, *, limit: int, cost: int) -> bool:
        """True if `cost` would fit now; adds nothing."""
        ...

    async def state(self, name: LimitName, key: str, *, limit: int) -> WindowState: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnCharge:
    """What a turn's admission took from the user's windows; settled after the turn."""

    user_id: uuid.UUID
    tokens: int


class RateLimiter:
    """The policy applied to a counter store. Each check raises `RateLimited` when refused."""

    def __init__(self, policy: RateLimitPolicy, store: CounterStore) -> None:
        self.policy = policy
        self.store = store

    async def count_request(self, user_id: uuid.UUID) -> RequestWindow | None:
        """Counts one GraphQL operation of the user; None when the limit is off."""
        limit = self.policy.requests_per_minute
        if not limit:
            return None
        key = str(user_id)
        admitted = await self.store.acquire(LimitName.REQUESTS, key, limit=limit, cost=1)
        state = await self.store.state(LimitName.REQUESTS, key, limit=limit)
        if not admitted:
            raise _refused(LimitName.REQUESTS, f"at most {limit} requests per minute", state)
        return RequestWindow(limit=limit, remaining=state.remaining, reset_at=state.reset_at)

    async def admit_turn(self, user_id: uuid.UUID, *, estimated_tokens: int) -> TurnCharge:
        """Counts a turn and its estimated provider tokens, both or neither. An estimate larger
        than the whole window is charged as the window, so such a turn can still run."""
        turns, tokens = self.policy.turns_per_minute, self.policy.tokens_per_minute
        charge = min(estimated_tokens, tokens) if tokens else 0
        key = str(user_id)
        if turns and not await self.store.has_room(LimitName.TURNS, key, limit=turns, cost=1):
            await self._refuse(LimitName.TURNS, key, turns, f"at most {turns} turns per minute")
        if charge and not await self.store.has_room(
            LimitName.TOKENS, key, limit=tokens, cost=charge
        ):
            await self._refuse(
                LimitName.TOKENS, key, tokens, f"at most {tokens} provider tokens per minute"
            )
        if turns:
            await self.store.acquire(LimitName.TURNS, key, limit=turns, cost=1)
        if charge:
            await self.store.acquire(LimitName.TOKENS, key, limit=tokens, cost=charge)
        return TurnCharge(user_id=user_id, tokens=charge)

    async def settle_turn(self, charge: TurnCharge, *, spent_tokens: int) -> None:
        """Adds what the turn spent beyond its estimate (never refunds an over-estimate). A window
        holds at most its limit, so an overrun blocks the user's next turns for about a minute."""
        limit = self.policy.tokens_per_minute
        shortfall = spent_tokens - charge.tokens
        if not limit or shortfall <= 0:
            return
        key = str(charge.user_id)
        state = await self.store.state(LimitName.TOKENS, key, limit=limit)
        cost = min(shortfall, state.remaining)
        if cost > 0:
            await self.store.acquire(LimitName.TOKENS, key, limit=limit, cost=cost)

    async def check_authentication_allowed(self, client: str) -> None:
        """Refuses a client address that sent too many invalid tokens, before its token is read."""
        limit = self.policy.auth_failures_per_minute
        if limit and not await self.store.has_room(
            LimitName.AUTH_FAILURES, client, limit=limit, cost=1
        ):
            await self._refuse(
                LimitName.AUTH_FAILURES,
                client,
                limit,
                f"at most {limit} failed authentications per minute from one address",
            )

    async def record_authentication_failure(self, client: str) -> None:
        limit = self.policy.auth_failures_per_minute
        if limit:
            await self.store.acquire(LimitName.AUTH_FAILURES, client, limit=limit, cost=1)

    async def _refuse(self, name: LimitName, key: str, limit: int, message: str) -> None:
        raise _refused(name, message, await self.store.state(name, key, limit=limit))


def _refused(name: LimitName, message: str, state: WindowState) -> RateLimited:
    return RateLimited(
        f"rate limit exceeded: {message}",
        limit=name.value,
        retry_after_seconds=seconds_until(state.reset_at),
    )


def seconds_until(moment: datetime) -> int:
    """Whole seconds from now until `moment`, at least 1 (a Retry-After of 0 invites a loop)."""
    return max(1, math.ceil((moment - utcnow()).total_seconds()))


class NoCounters:
    """A store that never refuses: rate limits off (unit tests of other services, the CLI)."""

    async def acquire(self, name: LimitName, key: str, *, limit: int, cost: int) -> bool:
        return True

    async def has_room(self, name: LimitName, key: str, *, limit: int, cost: int) -> bool:
        return True

    async def state(self, name: LimitName, key: str, *, limit: int) -> WindowState:
        return WindowState(limit=limit, remaining=limit, reset_at=utcnow())


UNLIMITED = RateLimiter(
    RateLimitPolicy(
        requests_per_minute=0, turns_per_minute=0, tokens_per_minute=0, auth_failures_per_minute=0
    ),
    NoCounters(),
)
"""The limiter of callers that configure none: every limit off."""

"""The rate-limit policy (domain/rate_limits.py) on the `limits` library's in-memory counters."""

from __future__ import annotations

import uuid

import pytest

from domain.errors import RateLimited
from domain.rate_limits import LimitName, RateLimiter, RateLimitPolicy
from infra.rate_limits import memory_counters
from infra.settings import Settings

USER = uuid.uuid4()


def limiter(**amounts: int) -> RateLimiter:
    off = ("requests", "turns", "tokens", "auth_failures")
    policy = {f"{name}_per_minute": 0 for name in off} | amounts
    return RateLimiter(RateLimitPolicy(**policy), memory_counters())


async def tokens_left(rate: RateLimiter) -> int:
    state = await rate.store.state(LimitName.TOKENS, str(USER), limit=rate.policy.tokens_per_minute)
    return state.remaining


async def test_requests_over_the_limit_are_refused_with_the_limit_and_a_retry_time() -> None:
    # given
    rate = limiter(requests_per_minute=3)
    windows = [await rate.count_request(USER) for _ in range(3)]

    # when
    with pytest.raises(RateLimited) as refused:
        await rate.count_request(USER)

    # then
    assert [w.remaining for w in windows if w] == [2, 1, 0]
    assert refused.value.code == "RATE_LIMITED"
    assert refused.value.extensions["limit"] == "requests"
    assert 1 <= refused.value.retry_after_seconds <= 60
    assert await rate.count_request(uuid.uuid4()) is not None  # another user has their own


async def test_a_limit_of_zero_is_off() -> None:
    rate = limiter()
    assert await rate.count_request(USER) is None
    charge = await rate.admit_turn(USER, estimated_tokens=10**9)
    assert charge.tokens == 0


async def test_a_turn_refused_for_its_tokens_takes_no_turn_from_the_window() -> None:
    # given: room for two turns, and for 100 tokens
    rate = limiter(turns_per_minute=2, tokens_per_minute=100)
    await rate.admit_turn(USER, estimated_tokens=90)

    # when: the tokens do not fit
    with pytest.raises(RateLimited) as refused:
        await rate.admit_turn(USER, estimated_tokens=20)

    # then: the turn was not counted, so a small one still fits
    assert refused.value.limit == "tokens"
    await rate.admit_turn(USER, estimated_tokens=10)
    with pytest.raises(RateLimited) as third:
        await rate.admit_turn(USER, estimated_tokens=0)
    assert third.value.limit == "turns"


async def test_an_estimate_larger_than_the_window_is_charged_as_the_window() -> None:
    rate = limiter(tokens_per_minute=100)
    charge = await rate.admit_turn(USER, estimated_tokens=5_000)
    assert charge.tokens == 100
    with pytest.raises(RateLimited):
        await rate.admit_turn(USER, estimated_tokens=1)


async def test_only_a_shortfall_is_settled_after_the_turn() -> None:
    # given: two turns estimated at 10 tokens each
    rate = limiter(tokens_per_minute=1_000)
    over = await rate.admit_turn(USER, estimated_tokens=10)
    under = await rate.admit_turn(USER, estimated_tokens=10)
    assert await tokens_left(rate) == 980

    # when: one spent 300, the other 4
    await rate.settle_turn(over, spent_tokens=300)
    await rate.settle_turn(under, spent_tokens=4)

    # then: the shortfall (290) is added; the over-estimate is not refunded
    assert await tokens_left(rate) == 690


async def test_a_settlement_fills_the_window_at_most() -> None:
    rate = limiter(tokens_per_minute=100)
    charge = await rate.admit_turn(USER, estimated_tokens=10)
    await rate.settle_turn(charge, spent_tokens=10_000)
    assert await tokens_left(rate) == 0
    with pytest.raises(RateLimited) as refused:
        await rate.admit_turn(USER, estimated_tokens=1)
    assert refused.value.limit == "tokens"


async def test_failed_authentications_lock_the_address_out_before_its_token_is_read() -> None:
    rate = limiter(auth_failures_per_minute=2)
    await rate.check_authentication_allowed("203.0.113.5")
    await rate.record_authentication_failure("203.0.113.5")
    await rate.record_authentication_failure("203.0.113.5")

    with pytest.raises(RateLimited) as refused:
        await rate.check_authentication_allowed("203.0.113.5")

    assert refused.value.limit == "auth_failures"
    await rate.check_authentication_allowed("203.0.113.6")


def test_trusted_proxies_must_be_addresses_or_networks() -> None:
    parsed = Settings(trusted_proxies="10.0.0.0/8, 127.0.0.1,::1").trusted_proxy_networks
    assert [str(network) for network in parsed] == ["10.0.0.0/8", "127.0.0.1/32", "::1/128"]
    with pytest.raises(ValueError, match="not an IP address"):
        Settings(trusted_proxies="10.0.0.0/8,proxy.internal")

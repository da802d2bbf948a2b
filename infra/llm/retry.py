"""The backoff between attempts: exponential, with jitter, honouring ``Retry-After``."""

from __future__ import annotations

import random

from infra.llm.config import RetryPolicy


def backoff_delay(
    policy: RetryPolicy, failed_attempt: int, retry_after: float | None, rng: random.Random
) -> float:
    """Seconds to wait after attempt ``failed_attempt`` (1-based) failed.

    ``base_delay * 2**(n-1)`` stretched by a random fraction up to ``jitter`` (so clients that
    failed together do not retry together), raised to the provider's ``Retry-After`` if that is
    longer, and capped at ``max_delay`` either way.
    """
    delay = policy.base_delay * 2.0 ** (failed_attempt - 1)
    delay *= 1 + rng.uniform(0, policy.jitter)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(delay, policy.max_delay)

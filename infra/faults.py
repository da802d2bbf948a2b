"""Recognises infrastructure faults: the database (infra/db/faults.py) or Redis cannot be reached.

Redis carries the rate limits' counters, the socket registry and the events when
PANTHEON_REDIS_URL is set, so a Redis outage fails a request before anything of it ran — the
same retryable SERVICE_UNAVAILABLE as a database outage, never a masked internal error.
"""

from __future__ import annotations

from redis import exceptions as redis_errors

from infra.db.faults import database_fault, exception_chain

# ConnectionError covers refused, reset and closed connections; TimeoutError a socket timeout.
_REDIS_GONE = (redis_errors.ConnectionError, redis_errors.TimeoutError)


def redis_fault(error: BaseException) -> str | None:
    for link in exception_chain(error):
        if isinstance(link, _REDIS_GONE):
            return f"Redis is unreachable ({type(link).__name__})"
    return None


def infra_fault(error: BaseException) -> str | None:
    """A safe one-line description when `error` is an infrastructure fault, else None (the
    shape of graph/errors.py's `InfraFault`)."""
    return database_fault(error) or redis_fault(error)

"""`/api/v1/ready`: may a load balancer send this process traffic? (docs/operations.md, *Health
and readiness*). Each check answers in a word or two; any failing one makes the answer 503.

- database: a `SELECT 1` through the pool (a pool with no free connection fails it too);
- migrations: the database's Alembic revision is the code's head. Once seen at head it is not
  asked again by this process (migrations only move forward under a running process). A revision
  the code does not know is a newer deploy's migration: still ready, so a rolling deploy that
  migrated first does not take every old process out at once;
- redis: a PING, when PANTHEON_REDIS_URL is set.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from infra.db import migrate
from infra.db.engine import Database
from infra.faults import infra_fault

log = logging.getLogger("pantheon.app")

UP, DOWN, AT_HEAD = "up", "down", "at head"
REDIS_TIMEOUT_SECONDS = 2.0  # under a probe's usual timeout


class Readiness:
    """One per process (the app's state): it remembers that the migrations were at head."""

    def __init__(self) -> None:
        self._at_head = False
        self._heads = migrate.head_revisions()

    async def checks(self, database: Database, redis: Any | None) -> dict[str, str]:
        checks = {"database": await _probe("database", database.ping())}
        if checks["database"] == UP:
            checks["migrations"] = await self._migrations(database)
        else:
            checks["migrations"] = "unknown"
        if redis is not None:
            checks["redis"] = await _probe("redis", _ping(redis))
        return checks

    def passing(self, checks: dict[str, str]) -> bool:
        return all(value in (UP, AT_HEAD) or value.startswith("ahead") for value in checks.values())

    async def _migrations(self, database: Database) -> str:
        if self._at_head:
            return AT_HEAD
        try:
            current = await migrate.current_revision(database.engine)
        except Exception as error:
            _log_fault("migrations", error)
            return "unknown"
        head = ", ".join(self._heads)
        if current in self._heads:
            self._at_head = True
            return AT_HEAD
        if current is None:
            return f"behind (none < {head})"
        if current in migrate.known_revisions():
            return f"behind ({current} < {head})"
        return f"ahead ({current} unknown to this code, head {head})"


async def _ping(redis: Any) -> None:
    async with asyncio.timeout(REDIS_TIMEOUT_SECONDS):
        await redis.ping()


async def _probe(name: str, check: Any) -> str:
    try:
        await check
    except Exception as error:
        _log_fault(name, error)
        return DOWN
    return UP


def _log_fault(name: str, error: Exception) -> None:
    fault = infra_fault(error)
    if fault is not None:
        log.warning("not ready: %s unavailable: %s", name, fault)
    elif isinstance(error, TimeoutError):
        log.warning("not ready: %s did not answer in time", name)
    else:
        log.exception("readiness check %s failed", name)

"""Test databases: one per backend per test run, migrated once, emptied between tests.

The servers are shared and long-lived (CI reuses them), so a PostgreSQL run creates its own
database with a random name and drops it at the end; services commit several times per turn,
so isolation is by truncation, not by a rolled-back outer transaction.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from domain.services.catalog import sync_catalog
from infra.catalog.loader import load_catalog
from infra.db import migrate
from infra.db.engine import Database, open_database
from infra.db.models import Base
from infra.db.uow import SqlUnitOfWork
from infra.settings import DEFAULT_CATALOG

PG_URL_ENV = "PANTHEON_TEST_DATABASE_URL"
REDIS_URL_ENV = "PANTHEON_TEST_REDIS_URL"


def pg_admin_url() -> str | None:
    return os.environ.get(PG_URL_ENV) or None


@dataclass
class TestDatabase:
    url: str
    database: Database


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def create_pg_database(admin_url: str, prefix: str = "pantheon_t") -> str:
    """Creates an empty database beside the admin URL's and returns its SQLAlchemy URL."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(_asyncpg_dsn(admin_url))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


async def drop_pg_database(admin_url: str, url: str) -> None:
    name = make_url(url).database
    conn = await asyncpg.connect(_asyncpg_dsn(admin_url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def delete_redis_keys(url: str, prefix: str) -> int:
    """Deletes the keys under `prefix` (tests and benches share the machine's Redis, each under
    a random prefix of its own); returns how many there were."""
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
        return len(keys)
    finally:
        await client.aclose()


@dataclass(frozen=True)
class SharedStores:
    """What real `pantheon` processes of one test share: a database and a Redis key prefix."""

    database_url: str
    redis_url: str
    prefix: str

    @property
    def env(self) -> dict[str, str]:
        """The settings that point a `pantheon` process at these stores."""
        return {
            "PANTHEON_DATABASE_URL": self.database_url,
            "PANTHEON_REDIS_URL": self.redis_url,
            "PANTHEON_REDIS_KEY_PREFIX": self.prefix,
        }


@contextlib.asynccontextmanager
async def shared_stores(*, database_prefix: str, key_prefix: str) -> AsyncIterator[SharedStores]:
    """A fresh PostgreSQL database and a private Redis key prefix (`<key_prefix>-<random>`);
    the test is skipped unless both servers are configured. Afterwards the database is dropped
    and the keys are deleted (even when the drop fails), so stop the processes inside."""
    admin_url = pg_admin_url()
    redis_url = os.environ.get(REDIS_URL_ENV)
    if not admin_url or not redis_url:
        pytest.skip(f"{PG_URL_ENV} and {REDIS_URL_ENV} are both needed")
    prefix = f"{key_prefix}-{uuid.uuid4().hex[:12]}"
    database_url = await create_pg_database(admin_url, prefix=database_prefix)
    try:
        yield SharedStores(database_url=database_url, redis_url=redis_url, prefix=prefix)
    finally:
        try:
            await drop_pg_database(admin_url, database_url)
        finally:
            await delete_redis_keys(redis_url, prefix)


def sqlite_url(directory: Path) -> str:
    return f"sqlite+aiosqlite:///{directory / 'pantheon-test.db'}"


async def open_migrated(url: str) -> Database:
    database = open_database(url, pool_size=10, max_overflow=10)
    await migrate.upgrade(database.engine)
    return database


async def reset(database: Database) -> None:
    """Empties every table and loads the default catalog again."""
    tables = [table.name for table in reversed(Base.metadata.sorted_tables)]
    async with database.engine.begin() as connection:
        if database.is_sqlite:
            for name in tables:
                await connection.execute(text(f'DELETE FROM "{name}"'))
        else:
            quoted = ", ".join(f'"{name}"' for name in tables)
            await connection.execute(text(f"TRUNCATE {quoted} CASCADE"))
    await sync_catalog(
        SqlUnitOfWork(database.writes), load_catalog(DEFAULT_CATALOG).spec, overwrite=True
    )

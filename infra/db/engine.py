"""Engines and session factories. SQLite is configured as a real embedded database."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.ext.asyncio import AsyncSession as AsyncSessionType
from sqlalchemy.pool import ConnectionPoolEntry

from infra.db.commits import note_commit
from infra.settings import Settings

WRITE_OPTION = "pantheon_write"


@dataclass(frozen=True, slots=True)
class Database:
    """One engine and the two session factories the rest of the code uses."""

    engine: AsyncEngine
    writes: async_sessionmaker[AsyncSessionType]  # for units of work
    reads: async_sessionmaker[AsyncSessionType]  # for short read sessions

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @property
    def location(self) -> str:
        """Where the database is, for an operator's message (never the password)."""
        if self.is_sqlite:
            return f"the SQLite file {self.engine.url.database}"
        return make_url(self.engine.url).render_as_string(hide_password=True)

    async def ping(self) -> None:
        """One round trip; raises what the driver or the pool raises (see infra/db/faults.py)."""
        async with self.reads() as session:
            await session.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


def open_database(
    url: str,
    *,
    pool_size: int = 20,
    max_overflow: int = 10,
    pool_timeout_seconds: float = 30.0,
    busy_timeout_ms: int = 30_000,
    hide_parameters: bool = True,
) -> Database:
    """`hide_parameters`: SQLAlchemy's errors leave out the statement's bound values (prompts,
    messages, token digests), so that a logged traceback cannot carry them."""
    if url.startswith("sqlite"):
        engine = _sqlite_engine(url, busy_timeout_ms, hide_parameters)
    else:
        engine = create_async_engine(
            url,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_timeout=pool_timeout_seconds,
            pool_pre_ping=True,
            hide_parameters=hide_parameters,
        )
    event.listen(engine.sync_engine, "commit", _note_commit)
    write_engine = engine.execution_options(**{WRITE_OPTION: True})
    return Database(
        engine=engine,
        writes=async_sessionmaker(write_engine, expire_on_commit=False, autoflush=False),
        reads=async_sessionmaker(engine, expire_on_commit=False, autoflush=False),
    )


def _note_commit(_connection: Connection) -> None:
    note_commit()


def open_configured_database(settings: Settings) -> Database:
    """The database the settings name, with their pool and SQLite lock settings."""
    return open_database(
        settings.effective_database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout_seconds=settings.db_pool_timeout_seconds,
        busy_timeout_ms=settings.sqlite_busy_timeout_ms,
        hide_parameters=not settings.log_content,
    )


def _sqlite_engine(url: str, busy_timeout_ms: int, hide_parameters: bool) -> AsyncEngine:
    path = url.split(":///", 1)[1]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(
        url, connect_args={"timeout": busy_timeout_ms / 1000}, hide_parameters=hide_parameters
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _configure(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # The driver's own transaction handling is turned off so that `begin` below decides.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(connection: Connection) -> None:
        # Writers take the write lock up front: a deferred transaction that later upgrades
        # to a writer can fail with "database is locked" without waiting on busy_timeout.
        if connection.get_execution_options().get(WRITE_OPTION):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.exec_driver_sql("BEGIN")

    return engine

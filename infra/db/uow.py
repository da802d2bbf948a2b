"""The unit of work: the only place in the code base that commits (a test enforces it)."""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Protocol, Self

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain.errors import Conflict
from domain.turns.events import EventPublisher, TurnEvent
from domain.turns.metering import UsageEntry
from infra.db.repositories.catalog import SqlAgentRepository, SqlModelRepository
from infra.db.repositories.sessions import SqlSessionRepository
from infra.db.repositories.summaries import SqlSummaryRepository
from infra.db.repositories.turn_facts import (
    SqlAgentMessageRepository,
    SqlEventRepository,
    SqlUsageRepository,
)
from infra.db.repositories.turns import SqlTurnRepository
from infra.db.repositories.users import SqlTokenRepository, SqlUserRepository

# Unique constraints whose violation a caller can fix, and how to say so.
_CONFLICT_MESSAGES = {
    "uq_users_handle": "that handle is taken",
    "users.handle": "that handle is taken",
    "uq_models_alias": "that model alias exists",
    "uq_agents_key": "that agent key exists",
    # The partial unique index: at most one RUNNING turn per session.
    "ix_turns_session_id": "a turn of this session is running; wait for it or cancel it",
    "turns.session_id": "a turn of this session is running; wait for it or cancel it",
    "uq_session_summaries": "a summary of this range of turns exists",
}


class CommitObserver(Protocol):
    """Told what a unit committed (infra/telemetry/metrics.py feeds the ledger counters)."""

    def usage_committed(self, entries: Sequence[UsageEntry]) -> None: ...

    def events_published(self, events: Sequence[TurnEvent]) -> None: ...


class SqlUnitOfWork:
    """`async with uow:` opens a session; `commit()` makes it durable; exit rolls back the rest.

    With a `publisher`, `commit()` is also the outbox relay: once the commit succeeded, it
    publishes the events the unit staged in `events`, in order. Every unit that writes an event
    gets it published, the start unit's included, and no caller has a publish step to forget;
    a unit whose commit fails publishes nothing (the events never happened).

    With an `observer`, the same moment reports the usage rows the unit committed, so the
    metrics' token and cost counters only ever count what the ledger holds.
    """

    users: SqlUserRepository
    tokens: SqlTokenRepository
    models: SqlModelRepository
    agents: SqlAgentRepository
    sessions: SqlSessionRepository
    turns: SqlTurnRepository
    messages: SqlAgentMessageRepository
    usage: SqlUsageRepository
    events: SqlEventRepository
    summaries: SqlSummaryRepository

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        *,
        publisher: EventPublisher | None = None,
        observer: CommitObserver | None = None,
    ) -> None:
        self._factory = session_factory
        self._publisher = publisher
        self._observer = observer
        self._session: AsyncSession | None = None

    async def __aenter__(self) -> Self:
        session = self._session = self._factory()
        self.users = SqlUserRepository(session)
        self.tokens = SqlTokenRepository(session)
        self.models = SqlModelRepository(session)
        self.agents = SqlAgentRepository(session)
        self.sessions = SqlSessionRepository(session)
        self.turns = SqlTurnRepository(session)
        self.messages = SqlAgentMessageRepository(session)
        self.usage = SqlUsageRepository(session)
        self.events = SqlEventRepository(session)
        self.summaries = SqlSummaryRepository(session)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        session, self._session = self._require_session(), None
        try:
            await session.rollback()
        finally:
            await session.close()

    async def flush(self) -> None:
        try:
            await self._require_session().flush()
        except IntegrityError as error:
            if not _is_unique_violation(error):
                raise  # a broken foreign key or check is a bug, not the caller's conflict
            raise _conflict(error) from None

    async def commit(self) -> None:
        try:
            await self._require_session().commit()
        except IntegrityError as error:
            if not _is_unique_violation(error):
                raise
            raise _conflict(error) from None
        usage = tuple(self.usage.staged)
        self.usage.staged.clear()
        if usage and self._observer is not None:
            self._observer.usage_committed(usage)
        await self._publish_committed()

    async def _publish_committed(self) -> None:
        staged = tuple(self.events.staged)
        self.events.staged.clear()
        if staged and self._publisher is not None:
            await self._publisher.publish(staged)  # never raises: the outbox keeps them
            if self._observer is not None:
                self._observer.events_published(staged)

    def _require_session(self) -> AsyncSession:
        if self._session is None:
            raise RuntimeError("use the unit of work inside `async with`")
        return self._session


def _is_unique_violation(error: IntegrityError) -> bool:
    detail = str(error.orig)
    return (
        "UNIQUE constraint failed" in detail  # SQLite
        or getattr(error.orig, "sqlstate", None) == "23505"  # PostgreSQL unique_violation
        or "duplicate key value violates unique constraint" in detail
    )


def _conflict(error: IntegrityError) -> Conflict:
    detail = str(error.orig)
    for marker, message in _CONFLICT_MESSAGES.items():
        if marker in detail:
            return Conflict(message)
    return Conflict("the change conflicts with the current state; reload and retry")

"""deleteSession racing runTurn on PostgreSQL: both lock the session row, so whichever unit
comes second waits for the first and then sees its outcome. Deterministic: the first unit is
held open (after all its statements, before its commit) until the second is seen waiting on a
lock, then let go."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import text

from domain.errors import Conflict, NotFound
from domain.records import User
from domain.services import sessions as session_service
from domain.turns import service
from domain.turns.ports import TurnUnitOfWork
from domain.turns.settings import TurnSettings
from infra.db.engine import Database
from infra.db.uow import SqlUnitOfWork
from tests.conftest import Actor
from tests.turns_support import eventually
from tests.wrapped_uow import WrappedUnitOfWork

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.postgres,
    pytest.mark.parametrize("backend_db", ["postgres"], indirect=True),
]

LIMITS = session_service.SessionLimits(max_title_length=200, max_roster_size=12)
SETTINGS = TurnSettings(max_running_turns_per_user=100)


class Gate:
    def __init__(self) -> None:
        self.reached = asyncio.Event()  # the held unit ran every statement; it is not committed
        self.release = asyncio.Event()


class HeldUnitOfWork(WrappedUnitOfWork):
    """The real unit of work, except that `commit()` first sends everything staged, then waits
    for the gate: the unit's locks are held, its writes invisible to others."""

    def __init__(self, inner: SqlUnitOfWork, gate: Gate) -> None:
        super().__init__(inner)
        self._gate = gate

    async def commit(self) -> None:
        await self._inner.flush()
        self._gate.reached.set()
        await self._gate.release.wait()
        await self._inner.commit()


async def user_of(database: Database, actor: Actor) -> User:
    async with SqlUnitOfWork(database.writes) as uow:
        user = await uow.users.get(actor.uuid)
    assert user is not None
    return user


async def a_session(database: Database, user: User) -> uuid.UUID:
    session = await session_service.create_session(
        SqlUnitOfWork(database.writes), user, session_service.CreateSession(title="race"), LIMITS
    )
    return session.id


def start(
    database: Database, user: User, session_id: uuid.UUID, gate: Gate | None = None
) -> asyncio.Task[service.StartOutcome]:
    def new_uow() -> TurnUnitOfWork:
        uow = SqlUnitOfWork(database.writes)
        return uow if gate is None else HeldUnitOfWork(uow, gate)  # type: ignore[return-value]

    request = service.RunTurnRequest(session_id=session_id, message="go")
    return asyncio.create_task(service.start_turn(new_uow, user, request, SETTINGS, runner_id="r"))


def delete(
    database: Database, user: User, session_id: uuid.UUID, gate: Gate | None = None
) -> asyncio.Task[uuid.UUID]:
    uow = SqlUnitOfWork(database.writes)
    held: Any = uow if gate is None else HeldUnitOfWork(uow, gate)
    return asyncio.create_task(session_service.delete_session(held, user, session_id))


def waiting_on_a_lock(database: Database) -> Callable[[], Any]:
    async def check() -> bool:
        async with database.engine.connect() as connection:
            waiting = await connection.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
        return bool(waiting)

    return check


async def rows(database: Database, sql: str, **params: Any) -> Any:
    async with database.engine.connect() as connection:
        return (await connection.execute(text(sql), params)).scalar_one()


async def test_a_turn_starting_while_the_session_is_deleted_waits_and_is_not_found(
    database: Database, alice: Actor
) -> None:
    # given: a deleteSession that has done everything but commit
    user = await user_of(database, alice)
    session_id = await a_session(database, user)
    gate = Gate()
    deleting = delete(database, user, session_id, gate)
    await asyncio.wait_for(gate.reached.wait(), 10)

    # when: a turn starts meanwhile; it waits for the session's lock; then the delete commits
    starting = start(database, user, session_id)
    await eventually(waiting_on_a_lock(database))
    gate.release.set()

    # then: the delete succeeded and the turn was refused: it never ran, nor reserved budget
    assert await asyncio.wait_for(deleting, 10) == session_id
    with pytest.raises(NotFound):
        await asyncio.wait_for(starting, 10)
    turns = await rows(database, "SELECT count(*) FROM turns WHERE session_id = :s", s=session_id)
    assert turns == 0


async def test_a_delete_while_a_turn_starts_waits_and_answers_conflict(
    database: Database, alice: Actor
) -> None:
    # given: a turn start that has done everything but commit
    user = await user_of(database, alice)
    session_id = await a_session(database, user)
    gate = Gate()
    starting = start(database, user, session_id, gate)
    await asyncio.wait_for(gate.reached.wait(), 10)

    # when: the session is deleted meanwhile; the delete waits for the lock; the start commits
    deleting = delete(database, user, session_id)
    await eventually(waiting_on_a_lock(database))
    gate.release.set()

    # then: the turn runs, and the delete answers its documented CONFLICT
    outcome = await asyncio.wait_for(starting, 10)
    assert outcome.started is not None
    with pytest.raises(Conflict):
        await asyncio.wait_for(deleting, 10)
    deleted_at = await rows(database, "SELECT deleted_at FROM sessions WHERE id = :s", s=session_id)
    assert deleted_at is None

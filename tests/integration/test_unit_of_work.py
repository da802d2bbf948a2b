"""The SQL unit of work on both backends: commit persists, anything else rolls back, and `flush()`
turns a unique-key clash into `Conflict` before the commit."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from domain.enums import Role
from domain.errors import Conflict
from infra.db.engine import Database
from infra.db.models import ApiTokenRow, UserRow
from infra.db.uow import SqlUnitOfWork


async def handles(database: Database) -> list[str]:
    """What any other connection sees now."""
    async with database.reads() as session:
        return list(await session.scalars(select(UserRow.handle).order_by(UserRow.handle)))


async def count_tokens(database: Database) -> int:
    async with database.reads() as session:
        return int(await session.scalar(select(func.count()).select_from(ApiTokenRow)) or 0)


async def add_user(uow: SqlUnitOfWork, handle: str) -> uuid.UUID:
    user = await uow.users.add(handle=handle, role=Role.USER, monthly_budget_nano=None)
    return user.id


async def test_commit_persists(database: Database) -> None:
    # when
    async with SqlUnitOfWork(database.writes) as uow:
        await add_user(uow, "alice")
        await uow.commit()

    # then
    assert await handles(database) == ["alice"]


async def test_leaving_without_commit_rolls_back(database: Database) -> None:
    # when: rows are staged and even flushed to the database, but never committed
    async with SqlUnitOfWork(database.writes) as uow:
        await add_user(uow, "alice")
        await uow.flush()

    # then
    assert await handles(database) == []


async def test_an_exception_inside_rolls_back(database: Database) -> None:
    async def fails_after_flushing() -> None:
        async with SqlUnitOfWork(database.writes) as uow:
            user_id = await add_user(uow, "alice")
            await uow.flush()
            await uow.tokens.add(user_id=user_id, digest="d" * 64, display_prefix="pnt_x")
            raise RuntimeError("boom")

    # when
    with pytest.raises(RuntimeError, match="boom"):
        await fails_after_flushing()

    # then
    assert await handles(database) == []
    assert await count_tokens(database) == 0


async def test_work_committed_before_an_exception_stays_committed(database: Database) -> None:
    async def fails_after_committing() -> None:
        async with SqlUnitOfWork(database.writes) as uow:
            await add_user(uow, "alice")
            await uow.commit()
            await add_user(uow, "bob")
            raise RuntimeError("after the commit")

    with pytest.raises(RuntimeError, match="after"):
        await fails_after_committing()

    assert await handles(database) == ["alice"]


async def test_flush_surfaces_a_duplicate_handle_as_conflict_before_commit(
    database: Database,
) -> None:
    # given
    async with SqlUnitOfWork(database.writes) as uow:
        await add_user(uow, "alice")
        await uow.commit()

    steps: list[str] = []

    async def add_bob_and_alice_again() -> None:
        async with SqlUnitOfWork(database.writes) as uow:
            await add_user(uow, "bob")
            await add_user(uow, "alice")
            await uow.flush()
            steps.append("flushed")
            await uow.commit()

    # when
    with pytest.raises(Conflict, match="that handle is taken"):
        await add_bob_and_alice_again()

    # then: the flush raised; nothing of the failed unit is kept, the first alice is untouched
    assert steps == []
    assert await handles(database) == ["alice"]


async def test_commit_also_reports_a_duplicate_as_conflict(database: Database) -> None:
    async with SqlUnitOfWork(database.writes) as uow:
        await add_user(uow, "alice")
        await uow.commit()

    async def add_alice_again() -> None:
        async with SqlUnitOfWork(database.writes) as uow:
            await add_user(uow, "alice")
            await uow.commit()

    with pytest.raises(Conflict, match="that handle is taken"):
        await add_alice_again()

    assert await handles(database) == ["alice"]


async def test_a_commitless_unit_after_a_committed_one_sees_the_committed_data(
    database: Database,
) -> None:
    # given
    async with SqlUnitOfWork(database.writes) as uow:
        alice_id = await add_user(uow, "alice")
        await uow.commit()

    # when: a second unit that only reads and never commits
    async with SqlUnitOfWork(database.writes) as reader:
        seen = await reader.users.get(alice_id)
        anyone = await reader.users.exists_any()

    # then
    assert seen is not None
    assert seen.handle == "alice"
    assert anyone is True


async def test_the_same_unit_of_work_object_can_be_entered_again(database: Database) -> None:
    uow = SqlUnitOfWork(database.writes)
    async with uow:
        alice_id = await add_user(uow, "alice")
        await uow.commit()

    async with uow:
        assert await uow.users.get(alice_id) is not None
        await add_user(uow, "bob")  # staged, never committed

    assert await handles(database) == ["alice"]


async def test_using_the_unit_of_work_outside_async_with_is_an_error(database: Database) -> None:
    uow = SqlUnitOfWork(database.writes)

    with pytest.raises(RuntimeError, match="inside `async with`"):
        await uow.commit()
    with pytest.raises(RuntimeError, match="inside `async with`"):
        await uow.flush()

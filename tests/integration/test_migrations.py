"""Alembic is the only way the schema changes: one head; from an empty database the migrations
build exactly the models, go down to nothing and up again; PostgreSQL names follow the naming
convention; concurrent `upgrade()`s queue on the advisory lock."""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from infra.db import migrate
from infra.db.engine import Database, open_database
from infra.db.models import Base
from infra.db.types import NAMING_CONVENTION
from tests import db as testdb

ROOT = Path(__file__).resolve().parents[2]
VERSION_TABLE = "alembic_version"
MODEL_TABLES = set(Base.metadata.tables)


@pytest.fixture
async def fresh_pg_url() -> AsyncIterator[str]:
    """An empty PostgreSQL database of this test's own, dropped afterwards."""
    admin_url = testdb.pg_admin_url()
    if not admin_url:
        pytest.skip(f"{testdb.PG_URL_ENV} is not set")
    url = await testdb.create_pg_database(admin_url, prefix="pantheon_mig")
    try:
        yield url
    finally:
        await testdb.drop_pg_database(admin_url, url)


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
async def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A database with no tables at all, on each backend."""
    admin_url = testdb.pg_admin_url()
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    elif admin_url:
        url = await testdb.create_pg_database(admin_url, prefix="pantheon_mig")
    else:
        pytest.skip(f"{testdb.PG_URL_ENV} is not set")
    database = open_database(url)
    try:
        yield database
    finally:
        await database.dispose()
        if request.param == "postgres" and admin_url:
            await testdb.drop_pg_database(admin_url, url)


async def schema_differences(database: Database) -> list[Any]:
    """What `alembic revision --autogenerate` would write: [] when migrations match the models."""

    def compare(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        return list(compare_metadata(context, Base.metadata))

    async with database.engine.connect() as connection:
        return await connection.run_sync(compare)


async def table_names(database: Database) -> set[str]:
    async with database.engine.connect() as connection:
        return set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))


def test_there_is_exactly_one_head() -> None:
    heads = migrate.head_revisions()
    assert len(heads) == 1, (
        f"several Alembic heads {heads}: rebase your revision's down_revision on main's head"
    )


async def test_upgrade_from_empty_builds_exactly_the_models(empty_database: Database) -> None:
    # given
    assert await table_names(empty_database) == set()

    # when
    await migrate.upgrade(empty_database.engine)

    # then
    assert await table_names(empty_database) == MODEL_TABLES | {VERSION_TABLE}
    assert await migrate.current_revision(empty_database.engine) == migrate.head_revisions()[0]
    differences = await schema_differences(empty_database)
    assert differences == [], (
        "the migrations do not build what infra/db/models.py declares; write a revision "
        f"(alembic revision --autogenerate) for: {differences}"
    )


async def test_downgrade_to_base_removes_everything_and_upgrade_works_again(
    empty_database: Database,
) -> None:
    # given
    await migrate.upgrade(empty_database.engine)

    # when
    await migrate.downgrade(empty_database.engine, "base")

    # then
    assert await table_names(empty_database) <= {VERSION_TABLE}
    assert await migrate.current_revision(empty_database.engine) is None

    # and when
    await migrate.upgrade(empty_database.engine)

    # then
    assert await table_names(empty_database) == MODEL_TABLES | {VERSION_TABLE}
    assert await migrate.current_revision(empty_database.engine) == migrate.head_revisions()[0]
    assert await schema_differences(empty_database) == []


async def test_upgrading_an_up_to_date_database_changes_nothing(
    empty_database: Database,
) -> None:
    await migrate.upgrade(empty_database.engine)

    await migrate.upgrade(empty_database.engine)

    assert await migrate.current_revision(empty_database.engine) == migrate.head_revisions()[0]
    assert await schema_differences(empty_database) == []


# naming convention (PostgreSQL keeps every name as given, so it shows what the migrations wrote)

PREFIXES = {kind: NAMING_CONVENTION[kind].split("_", 1)[0] for kind in NAMING_CONVENTION}


def named_objects(connection: Connection) -> list[tuple[str, str, str]]:
    """(table, kind, name) of every constraint and index outside Alembic's own table."""
    inspector = inspect(connection)
    found: list[tuple[str, str, str]] = []
    for table in inspector.get_table_names():
        if table == VERSION_TABLE:
            continue
        found.append((table, "pk", inspector.get_pk_constraint(table)["name"]))
        found += [(table, "uq", c["name"]) for c in inspector.get_unique_constraints(table)]
        found += [(table, "ck", c["name"]) for c in inspector.get_check_constraints(table)]
        found += [(table, "fk", c["name"]) for c in inspector.get_foreign_keys(table)]
        found += [
            (table, "ix", index["name"])
            for index in inspector.get_indexes(table)
            if not index.get("duplicates_constraint")  # the index behind a uq_ constraint
        ]
    return found


def convention_violations(objects: list[tuple[str, str, str]]) -> list[str]:
    def conforms(table: str, kind: str, name: str) -> bool:
        if kind == "pk":
            return name == f"pk_{table}"
        return name.startswith(f"{PREFIXES[kind]}_{table}_")

    return sorted(
        f"{table}: {kind} {name!r}"
        for table, kind, name in objects
        if not conforms(table, kind, name or "")
    )


@pytest.fixture
async def migrated_pg(fresh_pg_url: str) -> AsyncIterator[Database]:
    database = await testdb.open_migrated(fresh_pg_url)
    try:
        yield database
    finally:
        await database.dispose()


async def pg_violations(database: Database) -> list[str]:
    async with database.engine.connect() as connection:
        objects = await connection.run_sync(named_objects)
    assert {kind for _, kind, _ in objects} == {"pk", "uq", "ck", "fk", "ix"}
    return convention_violations(objects)


@pytest.mark.postgres
async def test_every_constraint_and_index_name_follows_the_convention(
    migrated_pg: Database,
) -> None:
    violations = await pg_violations(migrated_pg)

    assert violations == [], (
        "name constraints and indexes through infra/db/types.py's NAMING_CONVENTION "
        f"(use op.f() in migrations): {violations}"
    )


@pytest.mark.postgres
async def test_a_name_outside_the_convention_is_reported(migrated_pg: Database) -> None:
    # given: objects named the way PostgreSQL or a hand-written migration would
    async with migrated_pg.engine.begin() as connection:
        await connection.execute(text("CREATE INDEX users_role_idx ON users (role)"))
        await connection.execute(
            text("ALTER TABLE users ADD CONSTRAINT budget_positive CHECK (monthly_budget_nano > 0)")
        )
        await connection.execute(text("ALTER TABLE models ADD UNIQUE (provider_model, provider)"))

    # when
    violations = await pg_violations(migrated_pg)

    # then
    assert violations == [
        "models: uq 'models_provider_model_provider_key'",
        "users: ck 'budget_positive'",
        "users: ix 'users_role_idx'",
    ]


# the advisory lock: two processes migrating one fresh database at the same moment

_MIGRATE_WHEN_TOLD = textwrap.dedent(
    """
    import asyncio, sys
    from infra.db import migrate
    from infra.db.engine import open_database

    async def main() -> None:
        database = open_database(sys.argv[1])
        try:
            await migrate.upgrade(database.engine)
        finally:
            await database.dispose()

    print("ready", flush=True)
    sys.stdin.readline()  # both processes are imported and wait here: then both go at once
    asyncio.run(main())
    print("migrated", flush=True)
    """
)


async def start_migrator(url: str) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _MIGRATE_WHEN_TOLD,
        url,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
    )
    assert process.stdout is not None
    ready = await asyncio.wait_for(process.stdout.readline(), timeout=60)
    assert ready.strip() == b"ready"
    return process


async def release(process: asyncio.subprocess.Process) -> tuple[int, str, str]:
    stdout, stderr = await asyncio.wait_for(process.communicate(b"go\n"), timeout=60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


@pytest.mark.postgres
@pytest.mark.timeout(90)
async def test_two_concurrent_upgrades_of_a_fresh_database_both_succeed(
    fresh_pg_url: str,
) -> None:
    # given: two processes imported and waiting to migrate the same empty database
    processes: list[asyncio.subprocess.Process] = []
    try:
        for _ in range(2):
            processes.append(await start_migrator(fresh_pg_url))

        # when: both are released together
        results = await asyncio.gather(*(release(process) for process in processes))
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()

    # then: no duplicate-table error, and the database is at head
    for returncode, stdout, stderr in results:
        assert returncode == 0, stderr
        assert stdout.strip() == "migrated", stderr
    database = open_database(fresh_pg_url)
    try:
        assert await migrate.current_revision(database.engine) == migrate.head_revisions()[0]
        assert await table_names(database) == MODEL_TABLES | {VERSION_TABLE}
    finally:
        await database.dispose()

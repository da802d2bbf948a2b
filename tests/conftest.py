"""Shared fixtures: databases per backend, the app over ASGI, users with tokens, a GraphQL helper.

PostgreSQL and Redis tests run when PANTHEON_TEST_DATABASE_URL / PANTHEON_TEST_REDIS_URL are set
(.ci/run sets both). When a URL is set, its server must answer: a missing server fails the run, and
so does any PostgreSQL/Redis test that ends up skipped.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from domain.enums import Role
from domain.services import users as user_service
from domain.services.catalog import sync_catalog
from graph.app import create_app
from infra.catalog.loader import load_catalog
from infra.db.engine import Database
from infra.db.uow import SqlUnitOfWork
from infra.settings import Settings
from tests import db as testdb
from tests.fakes.openai_server import FakeOpenAIServer
from tests.turns_support import write_fake_catalog

pytest_plugins = ["tests.fakes.fixtures", "tests.statement_log", "tests.private_redis"]

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "postgres" in item.keywords and not testdb.pg_admin_url():
            item.add_marker(pytest.mark.skip(reason=f"{testdb.PG_URL_ENV} is not set"))
        if "redis" in item.keywords and not os.environ.get(testdb.REDIS_URL_ENV):
            item.add_marker(pytest.mark.skip(reason=f"{testdb.REDIS_URL_ENV} is not set"))


_skipped_required: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if not report.skipped or hasattr(report, "wasxfail"):  # an xfail is not a skip
        return
    keywords = report.keywords
    required = ("postgres" in keywords and testdb.pg_admin_url()) or (
        "redis" in keywords and os.environ.get(testdb.REDIS_URL_ENV)
    )
    if required:
        _skipped_required.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _skipped_required:
        listed = "\n  ".join(_skipped_required)
        print(f"\nERROR: tests needing a configured server were skipped:\n  {listed}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def tmp_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pantheon")


@pytest.fixture(scope="session")
async def sqlite_database(tmp_root: Path) -> AsyncIterator[testdb.TestDatabase]:
    url = testdb.sqlite_url(tmp_root)
    database = await testdb.open_migrated(url)
    yield testdb.TestDatabase(url=url, database=database)
    await database.dispose()


@pytest.fixture(scope="session")
async def postgres_database() -> AsyncIterator[testdb.TestDatabase]:
    admin_url = testdb.pg_admin_url()
    if not admin_url:
        pytest.skip(f"{testdb.PG_URL_ENV} is not set")
    url = await testdb.create_pg_database(admin_url)
    database = await testdb.open_migrated(url)
    yield testdb.TestDatabase(url=url, database=database)
    await database.dispose()
    await testdb.drop_pg_database(admin_url, url)


@pytest.fixture(params=BACKENDS)
def backend_db(request: pytest.FixtureRequest) -> testdb.TestDatabase:
    # A sync fixture: getfixturevalue of an async fixture cannot run inside a running loop.
    chosen: testdb.TestDatabase = request.getfixturevalue(f"{request.param}_database")
    return chosen


@pytest.fixture
async def test_db(backend_db: testdb.TestDatabase) -> testdb.TestDatabase:
    """A migrated, emptied database holding only the default catalog; per backend."""
    await testdb.reset(backend_db.database)
    return backend_db


@pytest.fixture
def database(test_db: testdb.TestDatabase) -> Database:
    return test_db.database


@pytest.fixture
def settings(test_db: testdb.TestDatabase, tmp_root: Path) -> Settings:
    return Settings(database_url=test_db.url, data_dir=tmp_root / "data", max_page_size=100)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Any]:
    application = create_app(settings, migrate_on_start=False)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://pantheon.test") as http:
        yield http


@dataclass
class Actor:
    """A user and its token, as the API knows it."""

    id: str  # the global id
    uuid: Any
    handle: str
    token: str


async def make_actor(database: Database, handle: str, role: Role = Role.USER) -> Actor:
    from graph.ids import global_id

    issued = await user_service.create_user(
        SqlUnitOfWork(database.writes), user_service.CreateUser(handle=handle, role=role)
    )
    return Actor(
        id=global_id("User", issued.user.id),
        uuid=issued.user.id,
        handle=issued.user.handle,
        token=issued.secret,
    )


@pytest.fixture
async def admin(database: Database) -> Actor:
    return await make_actor(database, "root", Role.ADMIN)


@pytest.fixture
async def alice(database: Database) -> Actor:
    return await make_actor(database, "alice")


@pytest.fixture
async def bob(database: Database) -> Actor:
    return await make_actor(database, "bob")


class GraphQL:
    """Posts operations to /graphql as a given actor; returns the decoded JSON body."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def __call__(
        self, query: str, variables: dict[str, Any] | None = None, *, as_: Actor | None = None
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {as_.token}"} if as_ else {}
        response = await self.client.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
def gql(client: httpx.AsyncClient) -> GraphQL:
    return GraphQL(client)


def error_codes(body: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in body.get("errors", [])]


# --- turns: the app with every model served by the fake OpenAI server --------------------------


@pytest.fixture
async def fake_catalog(tmp_path: Path, fake_openai: FakeOpenAIServer, database: Database) -> Path:
    path = write_fake_catalog(tmp_path / "catalog.toml", fake_openai)
    await sync_catalog(SqlUnitOfWork(database.writes), load_catalog(path).spec, overwrite=True)
    return path


@pytest.fixture
def turn_settings(settings: Settings, fake_catalog: Path) -> Settings:
    """Short leases and sweeps, so recovery is observable within a test."""
    return settings.model_copy(
        update={
            "catalog_file": fake_catalog,
            # Long enough that a loaded CI machine never loses a live lease (recovery tests
            # give their abandoned turns their own short leases).
            "turn_lease_seconds": 10.0,
            "turn_heartbeat_seconds": 0.2,
            "recovery_interval_seconds": 0.3,
            "shutdown_grace_seconds": 2.0,
        }
    )


@pytest.fixture
async def turn_app(turn_settings: Settings) -> AsyncIterator[Any]:
    application = create_app(turn_settings, migrate_on_start=False)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def turn_gql(turn_app: Any) -> AsyncIterator[GraphQL]:
    transport = httpx.ASGITransport(app=turn_app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://pantheon.test", timeout=30
    ) as http:
        yield GraphQL(http)


@contextlib.asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[tuple[Any, GraphQL]]:
    """The app on `settings`, started, with a GraphQL client over ASGI (for tests whose
    settings differ from the fixtures')."""
    application = create_app(settings, migrate_on_start=False)
    async with (
        application.router.lifespan_context(application),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=application),
            base_url="http://pantheon.test",
            timeout=30,
        ) as http,
    ):
        yield application, GraphQL(http)


@contextlib.asynccontextmanager
async def app_with(settings: Settings, **overrides: Any) -> AsyncIterator[GraphQL]:
    """The app on `settings` with `overrides`, started, and a GraphQL client over ASGI whose
    requests may take a minute (concurrent turns on a loaded machine)."""
    application = create_app(settings.model_copy(update=overrides), migrate_on_start=False)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://pantheon.test", timeout=60
        ) as http:
            yield GraphQL(http)


@pytest.fixture
async def wide_gql(turn_settings: Settings) -> AsyncIterator[GraphQL]:
    """The turn app letting one user run many turns at once (running-turns cap 50)."""
    async with app_with(turn_settings, max_running_turns_per_user=50) as gql:
        yield gql

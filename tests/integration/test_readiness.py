"""`/api/v1/ready` names each check: the database, its migrations at head, Redis when configured;
any failing one answers 503 with Retry-After. `/api/v1/health` only says the process is alive."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from graph.errors import RETRY_AFTER_SECONDS
from infra.db import migrate
from infra.db.engine import Database, open_database
from infra.settings import Settings
from tests.conftest import running_app
from tests.private_redis import PrivateRedis

pytestmark = pytest.mark.timeout(60)

HEAD = migrate.head_revisions()[0]


@pytest.fixture
async def behind(tmp_path: Path) -> AsyncIterator[Database]:
    """A database migrated only to the revision before the head."""
    database = open_database(f"sqlite+aiosqlite:///{tmp_path / 'behind.db'}")
    (older,) = {r.down_revision for r in _revisions() if r.revision == HEAD}
    await migrate.upgrade(database.engine, str(older))
    try:
        yield database
    finally:
        await database.dispose()


def _revisions() -> list[Any]:
    from alembic.script import ScriptDirectory

    return list(ScriptDirectory.from_config(migrate.alembic_config()).walk_revisions())


async def test_all_up_is_ready_with_each_check_named(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/ready")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "checks": {"database": "up", "migrations": "at head"},
    }


async def test_migrations_behind_the_code_are_not_ready(app: Any, behind: Database) -> None:
    # given: this process's database is one migration behind (never seen at head before)
    older = await migrate.current_revision(behind.engine)
    app.state.database = behind
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://pantheon.test"
    ) as client:
        # when
        ready = await client.get("/api/v1/ready")
        health = await client.get("/api/v1/health")

    # then
    assert ready.status_code == 503
    assert ready.headers["retry-after"] == str(RETRY_AFTER_SECONDS)
    assert ready.json() == {
        "status": "unavailable",
        "checks": {"database": "up", "migrations": f"behind ({older} < {HEAD})"},
    }
    assert health.status_code == 200


async def test_once_at_head_the_revision_is_not_asked_again(
    app: Any, client: httpx.AsyncClient, behind: Database
) -> None:
    assert (await client.get("/api/v1/ready")).json()["checks"]["migrations"] == "at head"
    healthy = app.state.database
    app.state.database = behind
    try:
        response = await client.get("/api/v1/ready")
    finally:
        app.state.database = healthy

    assert response.json()["checks"]["migrations"] == "at head"  # cached for the process


async def test_redis_down_is_not_ready_and_up_again_is(
    settings: Settings, private_redis: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    with_redis = settings.model_copy(
        update={"redis_url": private_redis.url, "redis_key_prefix": "ready-test"}
    )
    async with running_app(with_redis) as (_app, gql):
        up = await gql.client.get("/api/v1/ready")
        private_redis.kill()
        with caplog.at_level(logging.WARNING, logger="pantheon.app"):
            down = await gql.client.get("/api/v1/ready")
        private_redis.start()  # lets the app's shutdown close its clients cleanly

    assert up.status_code == 200
    assert up.json()["checks"] == {"database": "up", "migrations": "at head", "redis": "up"}
    assert down.status_code == 503
    assert down.headers["retry-after"] == str(RETRY_AFTER_SECONDS)
    assert down.json() == {
        "status": "unavailable",
        "checks": {"database": "up", "migrations": "at head", "redis": "down"},
    }
    # one line naming Redis, no traceback
    warnings = [r for r in caplog.records if "not ready" in r.getMessage()]
    assert [(r.levelno, r.exc_info) for r in warnings] == [(logging.WARNING, None)]
    assert "redis" in warnings[0].getMessage()

"""When the database cannot be reached (down, or its pool exhausted) callers get a classified,
retryable SERVICE_UNAVAILABLE — 503 with Retry-After when nothing of the request ran — and the
readiness probe turns red; never a masked INTERNAL_SERVER_ERROR."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from graph.errors import RETRY_AFTER_SECONDS
from graph.ids import global_id
from infra.db.engine import Database, open_database
from infra.db.reads import SqlReadStore
from infra.db.turn_reads import SqlTurnReads
from infra.db.uow import SqlUnitOfWork
from infra.settings import Settings
from tests.conftest import Actor, running_app
from tests.integration.test_cli import free_port
from tests.integration.test_rate_limits import _connection_init as connection_init
from tests.integration.test_subscriptions import _serve as serve
from tests.private_redis import PrivateRedis

ME = "{ me { handle } }"
CREATE_SESSION = 'mutation { createSession(input: {title: "x"}) { id } }'


@pytest.fixture
async def down() -> AsyncIterator[Database]:
    """A real PostgreSQL URL on a port nothing listens on."""
    database = open_database(f"postgresql+asyncpg://postgres:s3cret@127.0.0.1:{free_port()}/none")
    yield database
    await database.dispose()


def post(client: httpx.AsyncClient, query: str, actor: Actor) -> Any:
    return client.post(
        "/graphql", json={"query": query}, headers={"Authorization": f"Bearer {actor.token}"}
    )


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == str(RETRY_AFTER_SECONDS)
    (error,) = response.json()["errors"]
    assert error["extensions"] == {
        "code": "SERVICE_UNAVAILABLE",
        "requestId": response.headers["x-request-id"],
    }
    assert "s3cret" not in response.text
    assert "Traceback" not in response.text


# --- the database is down ---------------------------------------------------------------------


async def test_authentication_that_cannot_reach_the_database_is_503(
    app: Any, client: httpx.AsyncClient, alice: Actor, down: Database
) -> None:
    # given: the token lookup (in the context getter, before execution) hits the dead database
    app.state.runtime = dataclasses.replace(app.state.runtime, reads=SqlReadStore(down.reads))

    # when
    response = await post(client, ME, alice)

    # then
    assert_unavailable(response)


async def test_a_mutation_whose_unit_of_work_cannot_reach_the_database_is_503(
    app: Any, client: httpx.AsyncClient, alice: Actor, down: Database
) -> None:
    # given: authentication works, writes go to the dead database
    app.state.runtime = dataclasses.replace(
        app.state.runtime, new_uow=lambda: SqlUnitOfWork(down.writes)
    )

    # when
    response = await post(client, CREATE_SESSION, alice)

    # then: the only root field failed this way, so nothing ran
    assert_unavailable(response)
    assert response.json()["errors"][0]["path"] == ["createSession"]


async def test_a_mutation_that_committed_before_the_database_failed_is_not_503(
    app: Any, client: httpx.AsyncClient, alice: Actor, down: Database, database: Database
) -> None:
    # given: the session is created (committed); then reading its turns hits the dead database
    app.state.runtime = dataclasses.replace(app.state.runtime, turn_reads=SqlTurnReads(down.reads))

    # when
    response = await post(
        client, "mutation { createSession(input: {}) { id turns { totalCount } } }", alice
    )

    # then: SERVICE_UNAVAILABLE, but something ran, so no invitation to retry blindly
    assert response.status_code == 200
    body = response.json()
    assert body["data"] is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["SERVICE_UNAVAILABLE"]
    assert "retry-after" not in response.headers
    async with database.reads() as session:
        assert await session.scalar(text("SELECT count(*) FROM sessions")) == 1


async def test_a_query_where_only_some_fields_failed_keeps_200_and_the_rest(
    app: Any, client: httpx.AsyncClient, alice: Actor, down: Database
) -> None:
    # given: turns are read from the dead database
    app.state.runtime = dataclasses.replace(app.state.runtime, turn_reads=SqlTurnReads(down.reads))
    turn_id = global_id("Turn", uuid.uuid4())

    # when
    response = await post(client, f'{{ me {{ handle }} turn(id: "{turn_id}") {{ id }} }}', alice)

    # then
    assert response.status_code == 200
    body = response.json()
    assert body["data"] == {"me": {"handle": "alice"}, "turn": None}
    assert [e["extensions"]["code"] for e in body["errors"]] == ["SERVICE_UNAVAILABLE"]
    assert "retry-after" not in response.headers


async def test_the_failure_is_logged_in_one_line_without_a_traceback(
    app: Any,
    client: httpx.AsyncClient,
    alice: Actor,
    down: Database,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app.state.runtime = dataclasses.replace(app.state.runtime, reads=SqlReadStore(down.reads))

    with caplog.at_level(logging.INFO):
        response = await post(client, ME, alice)

    request_id = response.headers["x-request-id"]
    logged = [r for r in caplog.records if request_id in r.getMessage()]
    assert [(r.levelno, r.exc_info) for r in logged] == [(logging.WARNING, None)]
    assert "ConnectionRefusedError" in logged[0].getMessage()


async def test_readiness_is_red_while_the_database_is_down(
    app: Any, client: httpx.AsyncClient, down: Database
) -> None:
    assert (await client.get("/api/v1/ready")).status_code == 200
    healthy = app.state.database
    app.state.database = down
    try:
        response = await client.get("/api/v1/ready")
    finally:
        app.state.database = healthy

    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": "down", "migrations": "unknown"},
    }
    assert response.headers["retry-after"] == str(RETRY_AFTER_SECONDS)


# --- the pool is exhausted --------------------------------------------------------------------


@pytest.fixture
def tiny_pool(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"db_pool_size": 1, "db_max_overflow": 0, "db_pool_timeout_seconds": 0.2}
    )


@pytest.mark.postgres
@pytest.mark.parametrize("backend_db", ["postgres"], indirect=True)
async def test_an_exhausted_pool_is_503_and_readiness_red_until_a_connection_frees(
    tiny_pool: Settings, alice: Actor
) -> None:
    async with running_app(tiny_pool) as (app, _gql):
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://pantheon.test"
        )
        async with client:
            # given: the pool's only connection is busy
            async with app.state.database.engine.connect() as busy:
                await busy.execute(text("SELECT 1"))

                # when / then
                assert_unavailable(await post(client, ME, alice))
                assert (await client.get("/api/v1/ready")).status_code == 503

            # and once it is free again, the same request works
            response = await post(client, ME, alice)
            assert response.status_code == 200
            assert response.json() == {"data": {"me": {"handle": "alice"}}}
            assert (await client.get("/api/v1/ready")).status_code == 200


@pytest.mark.postgres
@pytest.mark.parametrize("backend_db", ["postgres"], indirect=True)
async def test_a_mutation_waiting_on_an_exhausted_pool_is_service_unavailable(
    tiny_pool: Settings, database: Database, alice: Actor
) -> None:
    async with running_app(tiny_pool) as (app, _gql):
        # given: authentication reads through the test's own pool; the app's pool is held busy
        app.state.runtime = dataclasses.replace(
            app.state.runtime, reads=SqlReadStore(database.reads)
        )
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://pantheon.test"
        )
        async with client, app.state.database.engine.connect() as busy:
            await busy.execute(text("SELECT 1"))

            # when: the unit of work waits for a connection
            response = await post(client, CREATE_SESSION, alice)

        # then
        assert_unavailable(response)


# --- Redis is down ----------------------------------------------------------------------------


@pytest.mark.redis
async def test_while_redis_is_down_requests_are_served_and_still_rate_limited(
    settings: Settings, private_redis: PrivateRedis, alice: Actor
) -> None:
    # given: the rate limits' counters (and the events) on a Redis that is gone after the start
    on_redis = settings.model_copy(
        update={
            "redis_url": private_redis.url,
            "redis_key_prefix": "redis-down",
            "rate_limit_requests_per_minute": 2,
        }
    )
    async with running_app(on_redis) as (_, gql):
        private_redis.kill()

        # when: three requests of one user
        answers = [await post(gql.client, ME, alice) for _ in range(3)]

    # then: no internal error and no 503 for everyone: this process counts in memory meanwhile
    assert [answer.status_code for answer in answers] == [200, 200, 429], answers[-1].text
    assert answers[1].headers["x-ratelimit-remaining"] == "0"
    assert answers[2].json()["errors"][0]["extensions"]["limit"] == "requests"


async def test_a_socket_whose_token_check_cannot_reach_the_database_is_refused_in_one_line(
    app: Any, alice: Actor, down: Database, caplog: pytest.LogCaptureFixture
) -> None:
    # given: the token lookup of `connection_init` hits the dead database
    app.state.runtime = dataclasses.replace(app.state.runtime, reads=SqlReadStore(down.reads))

    # when
    async for url in serve(app):
        reply = await connection_init(url, alice)

    # then: refused as graphql-transport-ws refuses (4403), logged as a fault, not a crash
    assert reply == 4403
    assert "socket refused: infrastructure unavailable" in caplog.text
    assert "Traceback" not in caplog.text

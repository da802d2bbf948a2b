"""Logs never carry what callers sent (prompts, messages, variable values) unless
PANTHEON_LOG_CONTENT=true, tracebacks included; an incoming X-Request-ID is kept only when it is a
plain token, so it can neither forge nor break a log line."""

from __future__ import annotations

import dataclasses
import io
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from domain.turns.ports import NewTurn
from domain.turns.records import Turn
from graph.request_context import RequestIdFilter
from infra.db.repositories.turns import SqlTurnRepository
from infra.db.uow import SqlUnitOfWork
from infra.logging import configure_logging
from infra.settings import Settings
from tests.conftest import Actor, running_app

SECRET = "my-secret-prompt-8c1f"
RUN = """
mutation($input: RunTurnInput!) { runTurn(input: $input) { id } }"""
CREATE = "mutation { createSession(input: {}) { id } }"


class LeakyTurns(SqlTurnRepository):
    """The real repository, except that storing a turn runs a statement that fails in the
    database with the user's message among its bound parameters."""

    async def add(self, turn: NewTurn) -> Turn:
        await self._session.execute(
            text("INSERT INTO no_such_table (message) VALUES (:message)"),
            {"message": turn.user_message},
        )
        raise AssertionError("unreachable: the statement fails")


class LeakyUnitOfWork(SqlUnitOfWork):
    async def __aenter__(self) -> LeakyUnitOfWork:
        await super().__aenter__()
        self.turns = LeakyTurns(self._require_session())
        return self


@pytest.fixture
def service_log() -> Iterator[io.StringIO]:
    """What the service writes to its log, through the handler `pantheon serve` installs."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    buffer = io.StringIO()
    yield buffer
    root.handlers[:] = handlers
    root.setLevel(level)


async def failing_turn(settings: Settings, actor: Actor) -> httpx.Response:
    async with running_app(settings) as (app, gql):
        session = (await gql(CREATE, as_=actor))["data"]["createSession"]["id"]
        database = app.state.database
        app.state.runtime = dataclasses.replace(
            app.state.runtime, new_uow=lambda: LeakyUnitOfWork(database.writes)
        )
        return await gql.client.post(
            "/graphql",
            json={"query": RUN, "variables": {"input": {"sessionId": session, "message": SECRET}}},
            headers={"Authorization": f"Bearer {actor.token}"},
        )


@pytest.mark.parametrize("fmt", ["text", "json"])
async def test_a_failing_request_logs_no_prompt_text_not_even_in_its_traceback(
    settings: Settings, alice: Actor, service_log: io.StringIO, fmt: str
) -> None:
    # given: the settings `pantheon serve` starts with by default
    configure_logging("DEBUG", fmt, record_filter=RequestIdFilter(), stream=service_log)

    # when
    response = await failing_turn(settings, alice)

    # then: masked for the caller, logged with a traceback, and the prompt is nowhere
    (error,) = response.json()["errors"]
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    logged = service_log.getvalue()
    assert error["extensions"]["requestId"] in logged
    assert "Traceback (most recent call last)" in logged
    assert "test_log_content.py" in logged  # the frames stay, for debugging
    assert SECRET not in logged


async def test_with_log_content_on_the_prompt_is_in_the_traceback(
    settings: Settings, alice: Actor, service_log: io.StringIO
) -> None:
    configure_logging(
        "DEBUG", "text", record_filter=RequestIdFilter(), content=True, stream=service_log
    )

    response = await failing_turn(settings.model_copy(update={"log_content": True}), alice)

    assert response.json()["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert SECRET in service_log.getvalue()


# --- X-Request-ID ------------------------------------------------------------------------------


KEPT = ["trace-42.abc", "A" * 64, "0af7651916cd43dd8448eb211c80319c", "a_b-c.d"]
REPLACED = [
    "A" * 65,
    "has space",
    'quote"d',
    "<script>",
    "line\nbreak",
    "tab\there",
    "ünïcode",
    "semi;colon",
    "slash/id",
    "",
]


async def test_an_incoming_request_id_is_kept_only_when_it_is_a_plain_token(
    app: Any, alice: Actor
) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://pantheon.test") as client:
        for incoming in KEPT:
            response = await client.get("/api/v1/health", headers={"X-Request-ID": incoming})
            assert response.headers["x-request-id"] == incoming
        returned = set()
        for incoming in REPLACED:
            response = await client.post(
                "/graphql",
                json={"query": "{ me { handle } }"},
                headers={
                    "X-Request-ID": incoming.encode("utf-8"),  # type: ignore[dict-item]
                    "Authorization": f"Bearer {alice.token}",
                },
            )
            fresh = response.headers["x-request-id"]
            assert fresh != incoming
            assert len(fresh) == 32
            assert fresh.isalnum()
            returned.add(fresh)
        assert len(returned) == len(REPLACED)  # each a fresh id


async def test_a_refused_request_id_never_reaches_the_log(
    app: Any, service_log: io.StringIO
) -> None:
    configure_logging("DEBUG", "text", record_filter=RequestIdFilter(), stream=service_log)
    forged = "x] ERROR pantheon.app [forged"
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://pantheon.test") as client:
        # a request that logs: the unauthenticated readiness probe is fine, so fail one instead
        app.state.database, healthy = _unreachable(), app.state.database
        try:
            response = await client.get("/api/v1/ready", headers={"X-Request-ID": forged})
        finally:
            await app.state.database.dispose()
            app.state.database = healthy

    assert response.status_code == 503
    assert "forged" not in service_log.getvalue()
    assert "not ready" in service_log.getvalue()


def _unreachable() -> Any:
    from infra.db.engine import open_database
    from tests.integration.test_cli import free_port

    return open_database(f"postgresql+asyncpg://nobody@127.0.0.1:{free_port()}/none")

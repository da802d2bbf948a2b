"""The SQL statements one GraphQL request runs (a pytest plugin: the `statements` fixture).

Only the measured request's statements count: the log keeps those whose request id is the one
`measure` sends, so background work (heartbeats, sweeps) never adds to a count."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import event

from graph.request_context import current_request_id
from tests.conftest import Actor, GraphQL

NOT_QUERIES = ("BEGIN", "PRAGMA")


class StatementLog:
    def __init__(self) -> None:
        self.request_id = ""
        self.statements: list[str] = []

    def __call__(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if current_request_id() != self.request_id:
            return
        if not statement.lstrip().upper().startswith(NOT_QUERIES):
            self.statements.append(statement)


@pytest.fixture
async def statements(app: Any) -> AsyncIterator[StatementLog]:
    engine = app.state.database.engine.sync_engine
    log = StatementLog()
    event.listen(engine, "before_cursor_execute", log)
    yield log
    event.remove(engine, "before_cursor_execute", log)


async def measure(
    gql: GraphQL, statements: StatementLog, query: str, variables: dict[str, Any], actor: Actor
) -> tuple[list[str], dict[str, Any]]:
    """The statements of one request, and its data."""
    statements.request_id = f"measured-{uuid.uuid4().hex}"
    statements.statements.clear()
    response = await gql.client.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {actor.token}", "X-Request-ID": statements.request_id},
    )
    assert response.headers["x-request-id"] == statements.request_id
    body = response.json()
    assert "errors" not in body, body
    return list(statements.statements), body["data"]

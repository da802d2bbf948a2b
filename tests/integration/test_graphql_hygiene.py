"""What every caller can rely on whatever they send: coded errors, masked failures with a request
id, query limits, a bounded request size, health probes, request ids, and an offline GraphiQL."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import pytest

from domain.records import Agent, User
from graph.app import create_app
from infra.db.engine import open_database
from infra.db.reads import SqlReadStore
from infra.settings import Settings
from tests.conftest import Actor, GraphQL, error_codes

LEAK = "boom SELECT secret_column FROM x"
LEAK_MARKERS = ("secret_column", "Traceback", "SELECT", "boom", "RuntimeError")
REQUEST_ID = re.compile(r"^[0-9a-f]{32}$")
LIMIT_BYTES = 2048


class FailingAgentReads(SqlReadStore):
    """The real read store, except that listing agents hits an unexpected failure."""

    async def all_agents(self, *, include_disabled: bool) -> list[Agent]:
        raise RuntimeError(LEAK)


class FailingTokenReads(SqlReadStore):
    """The real read store, except that authentication (in the context getter) fails."""

    async def user_by_token_digest(self, digest: str) -> User | None:
        raise RuntimeError(LEAK)


def use_reads(app: Any, reads_class: type[SqlReadStore]) -> None:
    app.state.runtime = dataclasses.replace(
        app.state.runtime, reads=reads_class(app.state.database.reads)
    )


def post(client: httpx.AsyncClient, actor: Actor, query: str, **variables: Any) -> Any:
    return client.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {actor.token}"},
    )


def assert_masked(response: httpx.Response, caplog: pytest.LogCaptureFixture) -> None:
    request_id = response.headers["x-request-id"]
    (error,) = response.json()["errors"]
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id}
    for marker in LEAK_MARKERS:
        assert marker not in response.text, marker
    logged = [r for r in caplog.records if r.exc_info and request_id in r.getMessage()]
    assert len(logged) == 1, caplog.text
    assert logged[0].levelno == logging.ERROR
    assert str(logged[0].exc_info[1]) == LEAK  # type: ignore[index]
    assert "Traceback" in caplog.text
    assert "secret_column" in caplog.text


# --- unexpected failures are masked -----------------------------------------------------------


async def test_an_unexpected_resolver_error_is_masked_and_logged_with_the_request_id(
    app: Any, client: httpx.AsyncClient, alice: Actor, caplog: pytest.LogCaptureFixture
) -> None:
    # given
    use_reads(app, FailingAgentReads)

    # when
    with caplog.at_level(logging.ERROR):
        response = await client.post(
            "/graphql",
            json={"query": "{ me { handle } agents { key } }"},
            headers={"Authorization": f"Bearer {alice.token}"},
        )

    # then
    assert response.status_code == 200
    assert response.json()["data"] is None  # agents is non-null, so the error nulls data
    assert REQUEST_ID.match(response.headers["x-request-id"])
    assert_masked(response, caplog)


async def test_an_unexpected_error_while_authenticating_is_masked_json(
    app: Any, client: httpx.AsyncClient, alice: Actor, caplog: pytest.LogCaptureFixture
) -> None:
    # given: the context getter's token lookup fails, outside GraphQL execution
    use_reads(app, FailingTokenReads)

    # when
    with caplog.at_level(logging.ERROR):
        response = await client.post(
            "/graphql",
            json={"query": "{ me { handle } }"},
            headers={"Authorization": f"Bearer {alice.token}"},
        )

    # then
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    assert_masked(response, caplog)


# --- coded request errors ---------------------------------------------------------------------


BAD_REQUESTS = {
    "parse": ("{ me { handle ", {}, "GRAPHQL_PARSE_FAILED"),
    "unknown field": ("{ me { handle nope } }", {}, "GRAPHQL_VALIDATION_FAILED"),
    "variable type": (
        "query($f: Int) { sessions(first: $f) { totalCount } }",
        {"f": "ten"},
        "BAD_USER_INPUT",
    ),
    "missing variable": ("query($id: ID!) { session(id: $id) { id } }", {}, "BAD_USER_INPUT"),
    "null variable": (
        "query($id: ID!) { session(id: $id) { id } }",
        {"id": None},
        "BAD_USER_INPUT",
    ),
    "bad decimal": (
        'mutation($b: Decimal) { setUserBudget(userId: "x", monthlyBudgetUsd: $b) { id } }',
        {"b": "lots"},
        "BAD_USER_INPUT",
    ),
}


async def test_bad_requests_carry_their_code(gql: GraphQL, alice: Actor) -> None:
    for case, (query, variables, code) in BAD_REQUESTS.items():
        body = await gql(query, variables, as_=alice)
        assert error_codes(body) == [code], (case, body)
        assert body["data"] is None, case


# --- query limits -----------------------------------------------------------------------------


@pytest.fixture
async def tight(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app with small limits: depth 3, 2 aliases, 50 tokens, 2 KiB bodies."""
    limited = settings.model_copy(
        update={
            "max_query_depth": 3,
            "max_aliases": 2,
            "max_query_tokens": 50,
            "max_request_bytes": LIMIT_BYTES,
        }
    )
    app = create_app(limited, migrate_on_start=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://pantheon.test") as http:
            yield http


async def ask(client: httpx.AsyncClient, actor: Actor, query: str) -> dict[str, Any]:
    response = await client.post(
        "/graphql", json={"query": query}, headers={"Authorization": f"Bearer {actor.token}"}
    )
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize(
    ("at_limit", "over_limit", "code"),
    [
        pytest.param(
            "{ sessions { edges { node { title } } } }",
            "{ sessions { edges { node { owner { handle } } } } }",
            "GRAPHQL_VALIDATION_FAILED",
            id="depth",
        ),
        pytest.param(
            "{ a: me { handle } b: me { handle } }",
            "{ a: me { handle } b: me { handle } c: me { handle } }",
            "GRAPHQL_VALIDATION_FAILED",
            id="aliases",
        ),
        pytest.param(
            "{ me { handle " + "id " * 40 + "} }",  # 46 tokens
            "{ me { handle " + "id " * 45 + "} }",  # 51 tokens
            "GRAPHQL_PARSE_FAILED",  # graphql-core's parser stops at the limit: a syntax error
            id="tokens",
        ),
    ],
)
async def test_query_limits_refuse_only_what_is_over_them(
    tight: httpx.AsyncClient, alice: Actor, at_limit: str, over_limit: str, code: str
) -> None:
    served = await ask(tight, alice, at_limit)
    refused = await ask(tight, alice, over_limit)

    assert "errors" not in served, served
    assert error_codes(refused) == [code], refused
    assert refused["data"] is None


async def test_a_repeated_document_is_validated_once(
    gql: GraphQL, alice: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: a document no other test sends (the validation cache lives as long as the process)
    import strawberry.schema.schema as strawberry_schema

    validated: list[object] = []
    validate = strawberry_schema.validate

    def counting(*args: Any, **kwargs: Any) -> Any:
        validated.append(args[1])
        return validate(*args, **kwargs)

    monkeypatch.setattr(strawberry_schema, "validate", counting)
    query = "{ me { validatedOnce: handle } }"

    # when
    for _ in range(3):
        body = await gql(query, as_=alice)
        assert "errors" not in body, body

    # then: the depth and alias limits (rules added per request) do not defeat the cache
    assert len(validated) == 1


# --- request size -----------------------------------------------------------------------------


def body_of(size: int) -> bytes:
    """A valid GraphQL request of exactly `size` bytes (padded with JSON whitespace)."""
    core = json.dumps({"query": "{ me { handle } }"}).encode()
    return core[:-1] + b" " * (size - len(core)) + b"}"


async def chunks(data: bytes, size: int = 500) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def assert_too_large(response: httpx.Response) -> None:
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/json"
    (error,) = response.json()["errors"]
    assert error["extensions"]["code"] == "REQUEST_TOO_LARGE"
    assert error["extensions"]["requestId"] == response.headers["x-request-id"]


async def test_body_over_the_limit_with_content_length_is_413(
    tight: httpx.AsyncClient, alice: Actor
) -> None:
    headers = {"Authorization": f"Bearer {alice.token}", "Content-Type": "application/json"}

    at_limit = await tight.post("/graphql", content=body_of(LIMIT_BYTES), headers=headers)
    over = await tight.post("/graphql", content=body_of(LIMIT_BYTES + 1), headers=headers)

    assert over.request.headers["content-length"] == str(LIMIT_BYTES + 1)
    assert at_limit.json() == {"data": {"me": {"handle": "alice"}}}
    assert_too_large(over)


async def test_chunked_body_over_the_limit_is_413(tight: httpx.AsyncClient, alice: Actor) -> None:
    headers = {"Authorization": f"Bearer {alice.token}", "Content-Type": "application/json"}

    at_limit = await tight.post("/graphql", content=chunks(body_of(LIMIT_BYTES)), headers=headers)
    over = await tight.post("/graphql", content=chunks(body_of(LIMIT_BYTES + 1)), headers=headers)

    assert "content-length" not in over.request.headers
    assert over.request.headers["transfer-encoding"] == "chunked"
    assert at_limit.json() == {"data": {"me": {"handle": "alice"}}}
    assert_too_large(over)


# --- probes, request ids, the IDE -------------------------------------------------------------


async def test_health_and_readiness_with_the_database_up(client: httpx.AsyncClient) -> None:
    health = await client.get("/api/v1/health")
    ready = await client.get("/api/v1/ready")

    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "checks": {"database": "up", "migrations": "at head"},
    }


async def test_readiness_fails_with_the_database_down(
    app: Any, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    # given: nothing listens on port 1
    up = app.state.database
    app.state.database = open_database("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    try:
        with caplog.at_level(logging.CRITICAL, logger="pantheon.app"):
            ready = await client.get("/api/v1/ready")
            health = await client.get("/api/v1/health")
    finally:
        await app.state.database.dispose()
        app.state.database = up

    assert (ready.status_code, ready.json()["checks"]["database"]) == (503, "down")
    assert health.status_code == 200  # liveness does not depend on the database


async def test_every_response_has_a_request_id(
    client: httpx.AsyncClient, alice: Actor, settings: Settings
) -> None:
    too_big = b"x" * (settings.max_request_bytes + 1)
    responses: Sequence[httpx.Response] = [
        await client.get("/api/v1/health"),
        await client.get("/api/v1/ready"),
        await client.get("/graphql", headers={"Accept": "text/html"}),
        await client.get("/no/such/path"),
        await post(client, alice, "{ me { handle } }"),
        await post(client, alice, "{ me { "),
        await client.post("/graphql", content=too_big, headers={"Content-Type": "text/plain"}),
    ]

    ids = [response.headers.get("x-request-id", "") for response in responses]
    assert all(REQUEST_ID.match(request_id) for request_id in ids), ids
    assert len(set(ids)) == len(ids)
    assert [r.status_code for r in responses] == [200, 200, 200, 404, 200, 200, 413]


async def test_a_sane_incoming_request_id_is_kept(client: httpx.AsyncClient) -> None:
    for incoming, echoed in (("trace-42.abc", True), ("x" * 65, False), ("bad\x7fid", False)):
        response = await client.get("/api/v1/health", headers={"X-Request-ID": incoming})
        returned = response.headers["x-request-id"]
        assert (returned == incoming) is echoed, (incoming, returned)
        if not echoed:
            assert REQUEST_ID.match(returned), returned


async def test_graphiql_is_served_without_external_urls(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", headers={"Accept": "text/html"})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "graphiql" in response.text.lower()
    assert "https://" not in response.text
    assert "http://" not in response.text

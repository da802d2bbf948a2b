"""Traces (docs/observability.md, "Traces"): the span tree of a turn, from an in-memory exporter.

The app is given its own tracing (no process-global provider); every model is served by the
fake OpenAI server, which records the headers each call carried.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from graph.app import create_app
from infra.settings import Settings
from infra.telemetry.tracing import CAPTURE_CONTENT_VARIABLE, Tracing, build_tracing
from tests.conftest import Actor
from tests.fakes.openai_script import FakeResponse
from tests.fakes.openai_server import FakeOpenAIServer
from tests.turns_support import eventually

CREATE = "mutation { createSession(input: {}) { id } }"
RUN = """
mutation Run($input: RunTurnInput!) {
  runTurn(input: $input) { id status }
}"""
MESSAGE = "@writer then @qwen"


@contextlib.asynccontextmanager
async def traced_app(
    settings: Settings, tracing: Tracing | None
) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    application = create_app(settings, migrate_on_start=False, tracing=tracing)
    async with (
        application.router.lifespan_context(application),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=application),
            base_url="http://pantheon.test",
            timeout=30,
        ) as http,
    ):
        yield application, http


async def post(
    http: httpx.AsyncClient,
    actor: Actor,
    query: str,
    variables: dict[str, Any] | None = None,
    **headers: str,
) -> httpx.Response:
    return await http.post(
        "/graphql",
        json={"query": query, "variables": variables or {}},
        headers={"Authorization": f"Bearer {actor.token}", **headers},
    )


async def run_two_agent_turn(
    http: httpx.AsyncClient, alice: Actor, *, wait: bool, **headers: str
) -> httpx.Response:
    created = await post(http, alice, CREATE)
    session = created.json()["data"]["createSession"]["id"]
    variables = {"input": {"sessionId": session, "message": MESSAGE, "waitForCompletion": wait}}
    return await post(http, alice, RUN, variables, **headers)


async def finished_turn_span(exporter: InMemorySpanExporter) -> ReadableSpan:
    async def turn() -> ReadableSpan | None:
        return next((s for s in exporter.get_finished_spans() if s.name == "turn"), None)

    span: ReadableSpan = await eventually(turn)
    return span


def in_trace(spans: Sequence[ReadableSpan], trace_id: int) -> list[ReadableSpan]:
    return [s for s in spans if s.context.trace_id == trace_id]


def one(spans: Sequence[ReadableSpan], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


@pytest.fixture
def script(fake_openai: FakeOpenAIServer) -> FakeOpenAIServer:
    fake_openai.set_default(FakeResponse(content="Writer says hi"), model="writer-large")
    fake_openai.set_default(FakeResponse(content="Qwen says hi"), model="qwen-plus")
    return fake_openai


@pytest.mark.parametrize("wait", [True, False], ids=["waitForCompletion", "background"])
async def test_a_two_agent_turn_is_one_trace_with_an_attempt_span_per_call(
    turn_settings: Settings, alice: Actor, script: FakeOpenAIServer, wait: bool
) -> None:
    exporter = InMemorySpanExporter()
    async with traced_app(turn_settings, build_tracing(exporter, environ={}, batch=False)) as (
        _,
        http,
    ):
        response = await run_two_agent_turn(http, alice, wait=wait)
        assert "errors" not in response.json(), response.json()
        turn = await finished_turn_span(exporter)

    spans = in_trace(exporter.get_finished_spans(), turn.context.trace_id)
    server = one(spans, "POST /graphql")
    operation = one(spans, "mutation runTurn")
    writer, qwen = one(spans, "chat writer-large"), one(spans, "chat qwen-plus")
    # One trace: request → operation → turn → one span per LLM call attempt.
    assert server.parent is None
    assert server.attributes["pantheon.request_id"] == response.headers["x-request-id"]
    assert parent_of(operation) == server.context.span_id
    assert operation.attributes["graphql.operation.type"] == "mutation"
    assert operation.attributes["graphql.operation.name"] == "Run"
    assert operation.attributes["pantheon.request_id"] == response.headers["x-request-id"]
    assert "pantheon.graphql.error_codes" not in operation.attributes
    assert parent_of(turn) == operation.context.span_id
    global_id = response.json()["data"]["runTurn"]["id"]  # "Turn:<uuid>", base64
    assert base64.b64decode(global_id).decode() == f"Turn:{turn.attributes['pantheon.turn.id']}"
    assert turn.attributes["pantheon.turn.mode"] == "MANUAL"
    assert turn.attributes["pantheon.turn.status"] == "COMPLETED"
    assert turn.attributes["pantheon.turn.agent_count"] == 2
    usage = [e for e in turn.events if e.name == "pantheon.usage"]
    assert [e.attributes["pantheon.agent.key"] for e in usage] == ["writer", "qwen"]
    assert all(e.attributes["pantheon.cost_usd"] > 0 for e in usage)
    assert turn.attributes["pantheon.cost_usd"] == pytest.approx(
        sum(e.attributes["pantheon.cost_usd"] for e in usage)
    )
    for span, agent, model in ((writer, "writer", "writer-large"), (qwen, "qwen", "qwen-plus")):
        assert parent_of(span) == turn.context.span_id
        assert span.kind is SpanKind.CLIENT
        attributes = dict(span.attributes or {})
        assert attributes["gen_ai.operation.name"] == "chat"
        assert attributes["gen_ai.provider.name"] == "fake"
        assert attributes["gen_ai.request.model"] == model
        assert attributes["gen_ai.response.model"] == model
        assert attributes["gen_ai.request.max_tokens"] > 0
        assert attributes["gen_ai.usage.input_tokens"] > 0
        assert attributes["gen_ai.usage.output_tokens"] > 0
        assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
        assert attributes["pantheon.call_kind"] == "AGENT_RESPONSE"
        assert attributes["pantheon.agent.key"] == agent
        assert attributes["pantheon.attempt"] == 1
        assert attributes["pantheon.token_source"] == "PROVIDER"
        assert "error.type" not in attributes
        # No message or prompt text unless asked for.
        assert not any("messages" in key for key in attributes)
        assert not any("hi" in str(value) for value in attributes.values())
        # The provider saw this attempt's span as its parent.
        (request,) = script.requests(model=model)
        trace_id = format(span.context.trace_id, "032x")
        span_id = format(span.context.span_id, "016x")
        parent, flags = request.headers["traceparent"].rsplit("-", 1)
        assert parent == f"00-{trace_id}-{span_id}"
        assert int(flags, 16) & 1  # sampled


async def test_message_content_is_recorded_only_when_the_env_flag_asks(
    turn_settings: Settings, alice: Actor, script: FakeOpenAIServer
) -> None:
    exporter = InMemorySpanExporter()
    tracing = build_tracing(exporter, environ={CAPTURE_CONTENT_VARIABLE: "true"}, batch=False)
    async with traced_app(turn_settings, tracing) as (_, http):
        await run_two_agent_turn(http, alice, wait=True)
        await finished_turn_span(exporter)

    writer = one(exporter.get_finished_spans(), "chat writer-large")
    assert MESSAGE in str(writer.attributes["gen_ai.input.messages"])
    assert "Writer says hi" in str(writer.attributes["gen_ai.output.messages"])


async def test_an_inbound_traceparent_is_continued(
    turn_settings: Settings, alice: Actor, script: FakeOpenAIServer
) -> None:
    exporter = InMemorySpanExporter()
    trace_id, parent_id = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    async with traced_app(turn_settings, build_tracing(exporter, environ={}, batch=False)) as (
        _,
        http,
    ):
        await run_two_agent_turn(
            http, alice, wait=True, traceparent=f"00-{trace_id}-{parent_id}-01"
        )
        turn = await finished_turn_span(exporter)

    assert format(turn.context.trace_id, "032x") == trace_id
    server = one(in_trace(exporter.get_finished_spans(), turn.context.trace_id), "POST /graphql")
    assert format(parent_of(server) or 0, "016x") == parent_id
    (request,) = script.requests(model="qwen-plus")
    assert request.headers["traceparent"].startswith(f"00-{trace_id}-")


async def test_an_operation_span_carries_its_error_codes(
    turn_settings: Settings, alice: Actor, script: FakeOpenAIServer
) -> None:
    exporter = InMemorySpanExporter()
    missing = "U2Vzc2lvbjowMDAwMDAwMC0wMDAwLTAwMDAtMDAwMC0wMDAwMDAwMDAwMDA="
    async with traced_app(turn_settings, build_tracing(exporter, environ={}, batch=False)) as (
        _,
        http,
    ):
        body = (
            await post(http, alice, RUN, {"input": {"sessionId": missing, "message": "hi"}})
        ).json()
    codes = [e["extensions"]["code"] for e in body["errors"]]

    operation = one(exporter.get_finished_spans(), "mutation runTurn")
    assert list(operation.attributes["pantheon.graphql.error_codes"]) == codes
    assert operation.attributes["error.type"] == codes[0]


async def test_tracing_off_records_nothing_and_sends_no_traceparent(
    turn_settings: Settings,
    alice: Actor,
    script: FakeOpenAIServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    async with traced_app(turn_settings, None) as (application, http):
        response = await run_two_agent_turn(http, alice, wait=True)
        assert response.json()["data"]["runTurn"]["status"] == "COMPLETED"
        middleware = [m.cls.__name__ for m in application.user_middleware]

    assert "OpenTelemetryMiddleware" not in middleware
    assert "RequestIdOnSpan" not in middleware
    for model in ("writer-large", "qwen-plus"):
        (request,) = script.requests(model=model)
        assert "traceparent" not in request.headers


async def test_each_attempt_is_a_span_and_a_refused_one_says_why(
    turn_settings: Settings, alice: Actor, script: FakeOpenAIServer
) -> None:
    script.script(
        "writer-large",
        FakeResponse(status=429, headers={"retry-after": "0"}),
        FakeResponse(content="Writer says hi"),
    )
    exporter = InMemorySpanExporter()
    async with traced_app(turn_settings, build_tracing(exporter, environ={}, batch=False)) as (
        _,
        http,
    ):
        await run_two_agent_turn(http, alice, wait=True)
        turn = await finished_turn_span(exporter)

    spans = in_trace(exporter.get_finished_spans(), turn.context.trace_id)
    first, second = sorted(
        (s for s in spans if s.name == "chat writer-large"),
        key=lambda s: s.attributes["pantheon.attempt"],
    )
    assert first.attributes["error.type"] == "PROVIDER_RATE_LIMITED"
    assert first.attributes["pantheon.token_source"] == "NONE"
    assert not first.status.is_ok
    assert "error.type" not in second.attributes
    assert second.attributes["pantheon.attempt"] == 2
    # Each attempt sent its own span as the provider request's parent.
    sent = [r.headers["traceparent"].split("-")[2] for r in script.requests(model="writer-large")]
    assert sent == [format(s.context.span_id, "016x") for s in (first, second)]


async def test_a_subscription_over_a_socket_is_traced_without_breaking_the_context(
    turn_settings: Settings,
    alice: Actor,
    script: FakeOpenAIServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from tests.integration.test_subscriptions import PROGRESS, _serve, collect

    exporter = InMemorySpanExporter()
    tracing = build_tracing(exporter, environ={}, batch=False)
    async with traced_app(turn_settings, tracing) as (application, http):
        turn = await run_two_agent_turn(http, alice, wait=False)
        turn_id = turn.json()["data"]["runTurn"]["id"]
        async for url in _serve(application):
            events = await collect(url, alice, PROGRESS, {"id": turn_id})
    assert events[-1]["__typename"] == "TurnFinished"

    operation = one(exporter.get_finished_spans(), "subscription turnProgress")
    assert operation.attributes["graphql.operation.type"] == "subscription"
    assert parent_of(operation) is not None  # inside the socket's server span
    assert "Failed to detach context" not in caplog.text


async def test_health_probes_are_not_traced(
    turn_settings: Settings, alice: Actor, script: FakeOpenAIServer
) -> None:
    exporter = InMemorySpanExporter()
    async with traced_app(turn_settings, build_tracing(exporter, environ={}, batch=False)) as (
        _,
        http,
    ):
        assert (await http.get("/api/v1/health")).status_code == 200
        assert (await http.get("/api/v1/ready")).status_code == 200
        await post(http, alice, "{ me { id } }")

    assert [s.name for s in exporter.get_finished_spans()] == ["query me", "POST /graphql"]

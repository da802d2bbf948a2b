"""The composition root: builds the FastAPI app, its lifespan, and the GraphQL router."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.requests import HTTPConnection
from strawberry.exceptions import ConnectionRejectionError
from strawberry.fastapi import GraphQLRouter
from strawberry.subscriptions import (
    GRAPHQL_TRANSPORT_WS_PROTOCOL,
    GRAPHQL_WS_PROTOCOL,
    MULTIPART_SUBSCRIPTION_PROTOCOL,
)
from strawberry.types.unset import UNSET, UnsetType

from domain.errors import RateLimited
from domain.llm import LLMGateway
from domain.services.users import authenticate, authenticate_client
from graph import startup
from graph.access_log import AccessLogMiddleware
from graph.client_address import client_address
from graph.context import Context
from graph.cost.model import CostModel
from graph.errors import RETRY_AFTER_SECONDS, UNAVAILABLE_MESSAGE
from graph.html_headers import html_response
from graph.http_protocol import GraphQLOverHTTP, unauthenticated
from graph.ide import ASSETS_URL_PREFIX, STATIC_DIR, render_ide_html
from graph.middleware import BodySizeLimitMiddleware, RequestIdMiddleware
from graph.permissions import IsAuthenticated
from graph.rate_limits import rate_limited_response, set_window_headers
from graph.reports.csv_route import register_cost_report_csv
from graph.request_context import bind_commit_probe, note_user
from graph.runtime import Runtime
from graph.schema import build_schema
from graph.sockets.guard import WebSocketGuardMiddleware, guarded_socket
from graph.tracing import RequestIdOnSpan
from infra.db import commits
from infra.events.redis_broker import RedisEventBroker
from infra.faults import infra_fault
from infra.readiness import Readiness
from infra.settings import Settings
from infra.telemetry.metrics import PantheonMetrics
from infra.telemetry.route import register_metrics_route
from infra.telemetry.tracing import Tracing, tracing_from_env

log = logging.getLogger("pantheon.app")


class PantheonRouter(GraphQLOverHTTP, GraphQLRouter[Context, None]):
    async def run(  # type: ignore[override]
        self, request: Any, context: Any = UNSET, root_value: Any = UNSET
    ) -> Any:
        # Every operation over HTTP, introspection included, needs a valid token; only the
        # GraphiQL page loads without one (it then introspects with the token the user types).
        # Sockets authenticate in `on_ws_connect`. (No `await` before `super().run`: see
        # GraphQLOverHTTP.run.)
        if (
            not self.is_websocket_request(request)
            and isinstance(context, Context)
            and context.viewer is None
            and not self.should_render_graphql_ide(self.request_adapter_class(request))
        ):
            return unauthenticated(
                request.headers.get("accept"),
                token_sent=bool(request.headers.get("authorization")),
                message=IsAuthenticated.message,
            )
        return await super().run(request, context, root_value)

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        # Strawberry's page loads GraphiQL from a CDN; ours serves the vendored assets.
        return html_response(render_ide_html())

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        # The socket's token comes in `connection_init` (GraphiQL forwards typed headers as
        # connection params, so the key is matched case-insensitively), else in the upgrade
        # request's header, through the same `authenticate` as HTTP (under the same failure
        # limit); a missing or bad one is refused before any subscription. It is checked here
        # even when the header was checked at the upgrade, so `authenticated_at` is this check's
        # moment: a revocation this process hears of after it closes the socket, one heard of
        # before refuses it.
        params = context.connection_params
        request = context.request
        assert isinstance(request, HTTPConnection)
        authorization = request.headers.get("authorization")
        if isinstance(params, dict):
            for key, value in params.items():
                if isinstance(key, str) and key.lower() == "authorization":
                    authorization = value if isinstance(value, str) else None
        authenticated_at = time.monotonic()
        runtime = context.runtime
        try:
            context.viewer = await authenticate_client(
                runtime.reads,
                runtime.rate_limiter,
                authorization,
                client_address(request, runtime.trusted_proxies),
            )
        except RateLimited as refused:
            if runtime.metrics is not None:
                runtime.metrics.refused(refused.limit)
            raise ConnectionRejectionError(
                {"code": refused.code, "message": refused.message, **refused.extensions}
            ) from refused
        except Exception as error:
            fault = runtime.infra_fault(error)
            if fault is None:
                raise
            # The socket is refused like any request that could not reach the database: one
            # line in the log, a retryable code for the client, no traceback.
            log.warning("socket refused: infrastructure unavailable: %s", fault)
            raise ConnectionRejectionError(
                {"code": "SERVICE_UNAVAILABLE", "message": UNAVAILABLE_MESSAGE}
            ) from None
        if context.viewer is None:
            raise ConnectionRejectionError(
                {"code": "UNAUTHENTICATED", "message": IsAuthenticated.message}
            )
        note_user(context.viewer.id)  # the socket's access-log line names its user
        socket = guarded_socket(request.scope)
        if socket is not None:
            # Over the per-user limit, or revoked meanwhile: the registry closes the socket
            # (1008 / 4403) and the acknowledgement that follows is dropped.
            reads, token = context.runtime.reads, authorization

            async def still_valid() -> bool:
                return await authenticate(reads, token) is not None

            await context.runtime.sockets.admit(
                socket,
                context.viewer.id,
                authenticated_at=authenticated_at,
                still_valid=still_valid,
            )
        return UNSET


async def get_context(connection: HTTPConnection, response: Response) -> Context:
    """Per HTTP request, and once per WebSocket connection (authenticated, and its operations
    counted, later: see `PantheonRouter.on_ws_connect` and graph/rate_limits.py). An HTTP
    request is counted against its user's request limit here; a refusal answers 429."""
    runtime: Runtime = connection.app.state.runtime
    if connection.scope["type"] != "http":
        return Context(runtime=runtime, viewer=None)
    bind_commit_probe(commits.track())  # from here on, this request's commits are noted
    viewer = await authenticate_client(
        runtime.reads,
        runtime.rate_limiter,
        connection.headers.get("authorization"),
        client_address(connection, runtime.trusted_proxies),
    )
    context = Context(runtime=runtime, viewer=viewer)
    if viewer is not None:
        note_user(viewer.id)
        context.request_window = await runtime.rate_limiter.count_request(viewer.id)
        if context.request_window is not None:
            set_window_headers(response.headers, context.request_window)
    return context


def create_app(
    settings: Settings,
    *,
    migrate_on_start: bool | None = None,
    gateway: LLMGateway | None = None,
    tracing: Tracing | None = None,
) -> FastAPI:
    """`migrate_on_start` defaults to the embedded default only: on PostgreSQL, run
    `pantheon migrate` first (under its advisory lock) and let servers just start.
    `tracing` None: as the standard OTEL_* variables say (docs/observability.md); the app
    shuts down only the tracing it made."""
    migrate_first = settings.embedded if migrate_on_start is None else migrate_on_start
    metrics = PantheonMetrics()
    owns_tracing = tracing is None
    tracing = tracing if tracing is not None else tracing_from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        started = await startup.start(
            settings,
            migrate_first=migrate_first,
            gateway=gateway,
            metrics=metrics,
            tracing=tracing,
        )
        app.state.runtime = started.runtime
        app.state.database = started.database
        try:
            yield
        finally:
            try:
                await startup.stop(started, settings)
            finally:
                metrics.process_stopping()
                if owns_tracing and tracing is not None:
                    tracing.shutdown()  # flushes the spans still batched

    app = FastAPI(title="Pantheon", lifespan=lifespan, docs_url=None, redoc_url=None)
    schema = build_schema(
        max_depth=settings.max_query_depth,
        max_aliases=settings.max_aliases,
        max_tokens=settings.max_query_tokens,
        cost_model=cost_model(settings),
        operation_timeout_seconds=settings.operation_timeout_seconds,
        tracer=tracing.tracer if tracing is not None else None,
    )
    router = PantheonRouter(
        schema,
        context_getter=get_context,
        # Strawberry 0.341 serves HTTP multipart subscriptions only when listed here.
        subscription_protocols=[
            GRAPHQL_TRANSPORT_WS_PROTOCOL,
            GRAPHQL_WS_PROTOCOL,
            MULTIPART_SUBSCRIPTION_PROTOCOL,
        ],
        max_subscriptions_per_connection=settings.max_subscriptions_per_connection,
    )
    app.include_router(router, prefix="/graphql")
    app.add_exception_handler(RateLimited, rate_limited_response)
    app.mount(ASSETS_URL_PREFIX, StaticFiles(directory=STATIC_DIR), name="graphql-ide")
    _health_routes(app)
    register_cost_report_csv(app)
    token = settings.metrics_token
    register_metrics_route(app, metrics, token=token.get_secret_value() if token else None)
    app.state.metrics = metrics
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_request_bytes)
    app.add_middleware(
        WebSocketGuardMiddleware, max_message_bytes=settings.max_websocket_message_bytes
    )
    # Inside RequestIdMiddleware, so every access line carries the request id.
    app.add_middleware(AccessLogMiddleware, infra_fault=infra_fault)
    if tracing is not None:
        app.add_middleware(RequestIdOnSpan)  # just inside RequestIdMiddleware, which binds it
    app.add_middleware(RequestIdMiddleware, infra_fault=infra_fault)  # even a refused body
    _cors(app, settings)  # every answer, errors included, carries the CORS headers
    if tracing is not None:
        _trace_requests(app, tracing)
    return app


# Probes and scrapes, not worth a trace each (OTEL_PYTHON_ASGI_EXCLUDED_URLS replaces the list).
UNTRACED_URLS = "/api/v1/health$,/api/v1/ready$,/metrics$"


def _trace_requests(app: FastAPI, tracing: Tracing) -> None:
    """Outermost: the HTTP server span, continuing an inbound `traceparent` (the propagators of
    OTEL_PROPAGATORS, W3C trace context by default). No spans for each body chunk."""
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    excluded = os.environ.get("OTEL_PYTHON_ASGI_EXCLUDED_URLS") or os.environ.get(
        "OTEL_PYTHON_EXCLUDED_URLS", UNTRACED_URLS
    )
    app.add_middleware(
        OpenTelemetryMiddleware,
        tracer_provider=tracing.provider,
        exclude_spans=["receive", "send"],
        excluded_urls=excluded,
    )


# Headers a browser frontend on another origin may read (Retry-After on 429/503, the request id
# to quote in a bug report, the rate limit's state).
EXPOSED_HEADERS = [
    "Retry-After",
    "X-Request-ID",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
]


def _cors(app: FastAPI, settings: Settings) -> None:
    """Only with PANTHEON_CORS_ORIGINS set. Tokens travel in `Authorization`, never in cookies,
    so credentials (cookies) are not allowed."""
    origins = settings.cors_origin_list
    if not origins:
        return
    app.add_middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_methods=["GET", "POST"],
        allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
        expose_headers=EXPOSED_HEADERS,
        allow_credentials=False,
        max_age=600,
    )


# The most attempts (first try + retries) a provider may be configured with (infra/llm/config.py):
# each attempt is a usage row.
MAX_CALL_ATTEMPTS = 10


def cost_model(settings: Settings) -> CostModel:
    """The query cost limit and every list's bound (docs/query_cost.md). Lists that no setting
    bounds (the catalog, a session's summaries, a report's rows) count as one max page."""
    per_page = settings.max_page_size
    return CostModel(
        max_cost=settings.max_query_cost,
        default_page_size=settings.default_page_size,
        max_page_size=per_page,
        list_bounds={
            "Turn.messages": settings.max_agents_per_turn,
            # routing, the agents, and the summary's two calls, each with its attempts
            "Turn.usage": (settings.max_agents_per_turn + 3) * MAX_CALL_ATTEMPTS,
            "AgentMessage.usage": MAX_CALL_ATTEMPTS,
            "Session.agents": settings.max_roster_size,
            "Session.summaries": per_page,
            "Query.agents": per_page,
            "Query.models": per_page,
            "CostReport.rows": per_page,
        },
        default_list_bound=per_page,
    )


def _health_routes(app: FastAPI) -> None:
    """Liveness and readiness (docs/operations.md, *Health and readiness*)."""
    readiness = Readiness()

    @app.get("/api/v1/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/v1/ready")
    async def ready(request: Request) -> JSONResponse:
        state = request.app.state
        broker = state.runtime.broker
        checks = await readiness.checks(
            state.database, broker if isinstance(broker, RedisEventBroker) else None
        )
        if not readiness.passing(checks):
            return JSONResponse(
                {"status": "unavailable", "checks": checks},
                status_code=503,
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        return JSONResponse({"status": "ready", "checks": checks})

"""The composition root: builds the FastAPI app, its lifespan, and the GraphQL router."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
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

from domain.llm import LLMGateway
from domain.services.users import authenticate
from graph import startup
from graph.context import Context
from graph.errors import RETRY_AFTER_SECONDS
from graph.http_protocol import GraphQLOverHTTP
from graph.ide import ASSETS_URL_PREFIX, STATIC_DIR, render_ide_html
from graph.middleware import BodySizeLimitMiddleware, RequestIdMiddleware
from graph.permissions import IsAuthenticated
from graph.reports.csv_route import register_cost_report_csv
from graph.request_context import bind_commit_probe
from graph.runtime import Runtime
from graph.schema import build_schema
from infra.db import commits
from infra.db.faults import database_fault
from infra.settings import Settings

log = logging.getLogger("pantheon.app")


class PantheonRouter(GraphQLOverHTTP, GraphQLRouter[Context, None]):
    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        # Strawberry's page loads GraphiQL from a CDN; ours serves the vendored assets.
        return HTMLResponse(render_ide_html())

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        # The socket's token comes in `connection_init` (GraphiQL forwards typed headers as
        # connection params, so the key is matched case-insensitively), through the same
        # `authenticate` as HTTP; a missing or bad one is refused before any subscription.
        params = context.connection_params
        authorization = None
        if isinstance(params, dict):
            for key, value in params.items():
                if isinstance(key, str) and key.lower() == "authorization":
                    authorization = value if isinstance(value, str) else None
        if authorization is not None:
            context.viewer = await authenticate(context.runtime.reads, authorization)
        if context.viewer is None:
            raise ConnectionRejectionError(
                {"code": "UNAUTHENTICATED", "message": IsAuthenticated.message}
            )
        return UNSET


async def get_context(connection: HTTPConnection) -> Context:
    """Per HTTP request, and once per WebSocket connection (whose token, if not in a header,
    arrives later in `connection_init`: see `PantheonRouter.on_ws_connect`)."""
    runtime: Runtime = connection.app.state.runtime
    bind_commit_probe(commits.track())  # from here on, this request's commits are noted
    viewer = await authenticate(runtime.reads, connection.headers.get("authorization"))
    return Context(runtime=runtime, viewer=viewer)


def create_app(
    settings: Settings,
    *,
    migrate_on_start: bool | None = None,
    gateway: LLMGateway | None = None,
) -> FastAPI:
    """`migrate_on_start` defaults to the embedded default only: on PostgreSQL, run
    `pantheon migrate` first (under its advisory lock) and let servers just start."""
    migrate_first = settings.embedded if migrate_on_start is None else migrate_on_start

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        started = await startup.start(settings, migrate_first=migrate_first, gateway=gateway)
        app.state.runtime = started.runtime
        app.state.database = started.database
        try:
            yield
        finally:
            await startup.stop(started, settings)

    app = FastAPI(title="Pantheon", lifespan=lifespan, docs_url=None, redoc_url=None)
    schema = build_schema(
        max_depth=settings.max_query_depth,
        max_aliases=settings.max_aliases,
        max_tokens=settings.max_query_tokens,
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
    app.mount(ASSETS_URL_PREFIX, StaticFiles(directory=STATIC_DIR), name="graphql-ide")
    _health_routes(app)
    register_cost_report_csv(app)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_request_bytes)
    # outermost: even a refused body gets an id
    app.add_middleware(RequestIdMiddleware, infra_fault=database_fault)
    return app


def _health_routes(app: FastAPI) -> None:
    @app.get("/api/v1/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/v1/ready")
    async def ready(request: Request) -> JSONResponse:
        try:
            await request.app.state.database.ping()
        except Exception as error:
            fault = database_fault(error)
            if fault is None:
                log.exception("readiness check failed")
            else:
                log.warning("not ready: database unavailable: %s", fault)
            return JSONResponse(
                {"status": "unavailable", "database": "down"},
                status_code=503,
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        return JSONResponse({"status": "ready", "database": "up"})

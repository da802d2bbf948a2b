"""The composition root: builds the FastAPI app, its lifespan, and the GraphQL router."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text
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
from graph.cost.model import CostModel
from graph.http_protocol import GraphQLOverHTTP, unauthenticated
from graph.ide import ASSETS_URL_PREFIX, STATIC_DIR, render_ide_html
from graph.middleware import BodySizeLimitMiddleware, RequestIdMiddleware
from graph.permissions import IsAuthenticated
from graph.reports.csv_route import register_cost_report_csv
from graph.runtime import Runtime
from graph.schema import build_schema
from infra.settings import Settings

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
        cost_model=cost_model(settings),
        operation_timeout_seconds=settings.operation_timeout_seconds,
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
    app.add_middleware(RequestIdMiddleware)  # outermost: even a refused body gets an id
    return app


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
    @app.get("/api/v1/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/v1/ready")
    async def ready(request: Request) -> JSONResponse:
        try:
            async with request.app.state.database.reads() as session:
                await session.execute(text("SELECT 1"))
        except Exception:
            log.exception("readiness check failed")
            return JSONResponse({"status": "unavailable", "database": "down"}, status_code=503)
        return JSONResponse({"status": "ready", "database": "up"})

"""The rate limits at the API's edge: an HTTP request refused as a whole answers 429 with
`Retry-After` (and a RATE_LIMITED error naming the limit); an admitted one carries GitHub's
`X-RateLimit-Limit/Remaining/Reset` headers for the caller's request window. Each operation over a
WebSocket (`subscribe`) is counted here too, by a schema extension. The policy itself is
domain/rate_limits.py; the counters are infra/rate_limits.py."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, MutableMapping

from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.extensions import SchemaExtension

from domain.errors import RateLimited
from domain.rate_limits import LimitName, RequestWindow
from graph.errors import error_payload
from graph.http_protocol import JSON, negotiate


def set_window_headers(headers: MutableMapping[str, str], window: RequestWindow) -> None:
    headers["X-RateLimit-Limit"] = str(window.limit)
    headers["X-RateLimit-Remaining"] = str(window.remaining)
    headers["X-RateLimit-Reset"] = str(int(window.reset_at.timestamp()))


async def rate_limited_response(request: Request, error: Exception) -> Response:
    """FastAPI's handler of a RateLimited raised before execution (while building the context)."""
    assert isinstance(error, RateLimited)
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.refused(error.limit)
    payload = error_payload(error.message, error.code, **error.extensions)
    headers = {"Retry-After": str(error.retry_after_seconds)}
    if error.limit == LimitName.REQUESTS:
        policy = request.app.state.runtime.rate_limiter.policy
        headers["X-RateLimit-Limit"] = str(policy.requests_per_minute)
        headers["X-RateLimit-Remaining"] = "0"
    return Response(
        json.dumps(payload, separators=(",", ":")),
        status_code=429,
        media_type=negotiate(request.headers.get("accept")) or JSON,
        headers=headers,
    )


class SocketOperationLimit(SchemaExtension):
    """Counts each operation a WebSocket starts against the user's request limit (HTTP requests
    are counted once each, when their context is built). A refused `subscribe` gets the
    RATE_LIMITED error and nothing else; the socket stays open."""

    async def on_execute(self) -> AsyncIterator[None]:
        context = self.execution_context.context
        if isinstance(getattr(context, "request", None), WebSocket) and context.viewer:
            try:
                window = await context.runtime.rate_limiter.count_request(context.viewer.id)
            except RateLimited as refused:
                # Already coded: a subscription's errors leave before ErrorCodes sees them.
                raise GraphQLError(
                    refused.message,
                    original_error=refused,
                    extensions={"code": refused.code, **refused.extensions},
                ) from refused
            context.request_window = window
        yield

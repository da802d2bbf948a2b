"""The GraphQL side of tracing: one span per operation, and the request id on the HTTP span.

Installed by the app factory only with tracing on (infra/telemetry/tracing.py); with it off
neither the extension nor the middleware exists, so no request pays for them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from graphql import FieldNode, GraphQLError, OperationDefinitionNode
from graphql.utilities import get_operation_ast
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode, Tracer
from starlette.types import ASGIApp, Receive, Scope, Send
from strawberry.extensions import SchemaExtension

from graph.request_context import current_request_id

MASKED_CODE = "INTERNAL_SERVER_ERROR"


class OperationSpan(SchemaExtension):
    """A span around each operation, named by its type and first root field
    (``mutation runTurn``), with its operation name and the codes of its errors. Listed first
    among the schema's extensions so ``ErrorCodes`` has coded the errors when it reads them."""

    def __init__(self, tracer: Tracer, *, execution_context: Any = None) -> None:
        super().__init__(execution_context=execution_context)
        self._tracer = tracer

    def on_operation(self) -> Iterator[None]:
        attributes = {"pantheon.request_id": current_request_id() or ""}
        with self._tracer.start_as_current_span("graphql", attributes=attributes) as span:
            yield
            _describe(span, self.execution_context)


def _describe(span: Span, context: Any) -> None:
    operation = _operation(context)
    kind = operation.operation.value if operation is not None else "graphql"
    roots = _root_fields(operation)
    span.update_name(f"{kind} {roots[0]}" if roots else kind)
    span.set_attribute("graphql.operation.type", kind)
    if context.operation_name:
        span.set_attribute("graphql.operation.name", context.operation_name)
    if roots:
        span.set_attribute("pantheon.graphql.root_fields", roots)
    errors: list[GraphQLError] = list(getattr(context.result, "errors", None) or [])
    codes = list(dict.fromkeys(_code(error) for error in errors))
    if codes:
        span.set_attribute("pantheon.graphql.error_codes", codes)
        span.set_attribute("error.type", codes[0])
    if MASKED_CODE in codes:  # only the unexpected is a failure of ours; a NOT_FOUND is an answer
        span.set_status(Status(StatusCode.ERROR, MASKED_CODE))


def _operation(context: Any) -> OperationDefinitionNode | None:
    document = getattr(context, "graphql_document", None)
    if document is None:
        return None
    try:
        return get_operation_ast(document, context.operation_name)
    except GraphQLError:
        return None


def _root_fields(operation: OperationDefinitionNode | None) -> list[str]:
    if operation is None:
        return []
    return [s.name.value for s in operation.selection_set.selections if isinstance(s, FieldNode)]


def _code(error: GraphQLError) -> str:
    code = (error.extensions or {}).get("code")
    return str(code) if code else "UNCODED"


class RequestIdOnSpan:
    """Puts the request id (graph/request_context.py) on the current HTTP span; sits just
    inside ``RequestIdMiddleware``, which binds it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            trace.get_current_span().set_attribute(
                "pantheon.request_id", current_request_id() or ""
            )
        await self.app(scope, receive, send)

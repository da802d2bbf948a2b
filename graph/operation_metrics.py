"""Counts every GraphQL operation that reached the schema (`pantheon_graphql_operations_total`)
and the rate-limit refusals among them (`pantheon_rate_limited_total`).

Listed before `ErrorCodes`, so its `on_operation` resumes after the errors were coded. Label values
stay bounded: the root field only when the schema's root type has it, else `unknown`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from graphql import FieldNode, GraphQLError, get_operation_ast
from strawberry.extensions import SchemaExtension

from graph.metrics_port import UNKNOWN, GraphMetrics

OK = "ok"
INTROSPECTION_FIELDS = frozenset({"__schema", "__type", "__typename"})


class OperationMetrics(SchemaExtension):
    """A fresh instance per operation. Streamed operations (subscriptions, and anything over
    WebSocket or multipart) send their results through `on_stream_result`: their errors are read
    there, and the count is made in a `finally` because a subscription the client stops ends
    with the stream closed at the `yield`."""

    def __init__(self) -> None:
        self._streamed: list[GraphQLError] | None = None

    def on_stream_result(self, result: Any) -> Iterator[None]:
        yield  # after ErrorCodes coded it
        streamed = self._streamed if self._streamed is not None else []
        streamed.extend(getattr(result, "errors", None) or [])
        self._streamed = streamed

    def on_operation(self) -> Iterator[None]:
        try:
            yield
        finally:
            self._count()

    def _count(self) -> None:
        runtime = getattr(self.execution_context.context, "runtime", None)
        metrics: GraphMetrics | None = getattr(runtime, "metrics", None)
        if metrics is None:
            return
        errors = self._streamed
        if errors is None:
            errors = list(getattr(self.execution_context.result, "errors", None) or [])
        operation_type, root_field = self._operation()
        metrics.operation(operation_type, root_field, _outcome(errors))
        for error in errors:
            extensions = error.extensions or {}
            if extensions.get("code") == "RATE_LIMITED":
                metrics.refused(str(extensions.get("limit", UNKNOWN)))

    def _operation(self) -> tuple[str, str]:
        context = self.execution_context
        document = context.graphql_document
        if document is None:
            return UNKNOWN, UNKNOWN
        operation = get_operation_ast(document, context.operation_name)
        if operation is None:
            return UNKNOWN, UNKNOWN
        kind = operation.operation.value  # query, mutation, subscription
        root_type: Any = context.schema._schema.get_root_type(operation.operation)
        for selection in operation.selection_set.selections:
            if isinstance(selection, FieldNode):
                name = selection.name.value
                known = name in INTROSPECTION_FIELDS or (
                    root_type is not None and name in root_type.fields
                )
                return kind, name if known else UNKNOWN
        return kind, UNKNOWN


def _outcome(errors: list[GraphQLError]) -> str:
    if not errors:
        return OK
    code = (errors[0].extensions or {}).get("code")
    return code if isinstance(code, str) else UNKNOWN

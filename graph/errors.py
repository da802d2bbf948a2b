"""Every GraphQL error leaves with `extensions.code`; this module is the one place that decides it.

Expected failures (domain `PantheonError`s) keep their message and code; parse, validation and
variable-coercion failures get the standard codes; anything else is masked as
INTERNAL_SERVER_ERROR with the request id, and logged with its traceback under that id.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from graphql import GraphQLError, GraphQLSyntaxError
from strawberry.extensions import SchemaExtension

from domain.errors import PantheonError
from graph.request_context import current_request_id

log = logging.getLogger("pantheon.graphql")

MASKED_MESSAGE = "Unexpected error. Quote the request id when reporting it."


class ErrorCodes(SchemaExtension):
    """Assigns codes after the operation ran; a fresh instance serves each operation."""

    def __init__(self) -> None:
        self._executing = False

    def on_execute(self) -> Iterator[None]:
        self._executing = True
        yield

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        errors = getattr(result, "errors", None)
        if result is not None and errors:
            result.errors = [self.coded(error) for error in errors]

    def coded(self, error: GraphQLError) -> GraphQLError:
        if error.extensions and "code" in error.extensions:
            return error
        original = error.original_error
        if isinstance(original, PantheonError):
            field = getattr(original, "field", None)
            extra = {"field": field} if field else {}
            return _with_code(error, original.message, original.code, **extra)
        if original is None or isinstance(original, GraphQLError):
            return _with_code(error, error.message, self._graphql_code(error))
        return masked(error)

    def _graphql_code(self, error: GraphQLError) -> str:
        if isinstance(error, GraphQLSyntaxError):
            return "GRAPHQL_PARSE_FAILED"
        # Validation runs before execution; errors raised once executing without an original
        # exception come from coercing variables, i.e. from the caller's input.
        return "BAD_USER_INPUT" if self._executing else "GRAPHQL_VALIDATION_FAILED"


def masked(error: GraphQLError) -> GraphQLError:
    request_id = current_request_id()
    log.error(
        "unexpected error in %s (request %s)",
        ".".join(str(part) for part in error.path or ()) or "operation",
        request_id,
        exc_info=error.original_error,
    )
    return _with_code(
        error, MASKED_MESSAGE, "INTERNAL_SERVER_ERROR", requestId=request_id, keep_original=False
    )


def _with_code(
    error: GraphQLError,
    message: str,
    code: str,
    *,
    keep_original: bool = True,
    **extra: object,
) -> GraphQLError:
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=error.original_error if keep_original else None,
        extensions={**(error.extensions or {}), "code": code, **extra},
    )


def error_payload(message: str, code: str, **extra: object) -> dict[str, object]:
    """A whole GraphQL response carrying one coded error, for failures outside execution."""
    return {"errors": [{"message": message, "extensions": {"code": code, **extra}}]}

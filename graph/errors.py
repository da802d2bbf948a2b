"""Every GraphQL error leaves with `extensions.code`; this module is the one place that decides it.

Expected failures (domain `PantheonError`s) keep their message and code; parse, validation and
variable-coercion failures get the standard codes; an infrastructure fault the runtime's
`infra_fault` recognises (the database unreachable, its pool exhausted) is SERVICE_UNAVAILABLE,
retryable, logged in one line; anything else is masked as INTERNAL_SERVER_ERROR with the request
id, and logged with its traceback under that id.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from graphql import GraphQLError, GraphQLSyntaxError
from strawberry.extensions import SchemaExtension
from strawberry.schema.exceptions import InvalidOperationTypeError

from domain.errors import PantheonError
from graph.request_context import current_request_id, note_error_code

log = logging.getLogger("pantheon.graphql")

MASKED_MESSAGE = "Unexpected error. Quote the request id when reporting it."
UNAVAILABLE_CODE = "SERVICE_UNAVAILABLE"
UNAVAILABLE_MESSAGE = "The service cannot reach its database right now; retry shortly."
RETRY_AFTER_SECONDS = 5  # what 503 answers put in Retry-After: a pool or a restart clears soon

# Given an exception, a safe one-line description when it is an infrastructure fault, else None.
InfraFault = Callable[[BaseException], str | None]


def no_infra_fault(_error: BaseException) -> str | None:
    return None


# graphql-core ends a message with " Did you mean 'x', 'y', or 'z'?" (graphql.pyutils.did_you_mean).
SUGGESTION = re.compile(r" Did you mean .*\?\Z", re.DOTALL)


class ErrorCodes(SchemaExtension):
    """Assigns codes after the operation ran; a fresh instance serves each operation."""

    def __init__(self) -> None:
        self._executing = False

    def on_execute(self) -> Iterator[None]:
        self._executing = True
        yield

    def on_operation(self) -> Iterator[None]:
        yield
        self._code_errors(self.execution_context.result)

    def on_stream_result(self, result: Any) -> Iterator[None]:
        # Streaming transports (operations over WebSocket, HTTP multipart) send each result as
        # it is yielded, before `on_operation` resumes: code it here first. (Coded errors pass
        # `coded` unchanged, so `on_operation` does not code or log them twice.)
        self._code_errors(result)
        yield

    def _code_errors(self, result: Any) -> None:
        errors = getattr(result, "errors", None)
        if result is not None and errors:
            suggest = _is_admin(self.execution_context.context)
            result.errors = [self.coded(error, suggest=suggest) for error in errors]

    def coded(self, error: GraphQLError, *, suggest: bool = False) -> GraphQLError:
        if error.extensions and "code" in error.extensions:
            return error
        original = error.original_error
        if isinstance(original, PantheonError):
            return _with_code(error, original.message, original.code, **original.extensions)
        if isinstance(original, InvalidOperationTypeError):
            # e.g. a query sent with `Accept: multipart/mixed`, which serves only subscriptions
            return _with_code(error, f"{error.message} over this transport", "BAD_REQUEST")
        if original is None or isinstance(original, GraphQLError):
            # Suggestions map the schema for whoever probes it: only admins get them.
            message = error.message if suggest else SUGGESTION.sub("", error.message)
            return _with_code(error, message, self._graphql_code(error))
        runtime = getattr(self.execution_context.context, "runtime", None)
        fault = getattr(runtime, "infra_fault", no_infra_fault)(original)
        if fault is not None:
            return unavailable(error, fault)
        return masked(error)

    def _graphql_code(self, error: GraphQLError) -> str:
        if isinstance(error, GraphQLSyntaxError):
            return "GRAPHQL_PARSE_FAILED"
        # Validation runs before execution; errors raised once executing without an original
        # exception come from coercing variables, i.e. from the caller's input.
        return "BAD_USER_INPUT" if self._executing else "GRAPHQL_VALIDATION_FAILED"


def _is_admin(context: object) -> bool:
    viewer = getattr(context, "viewer", None)
    return bool(getattr(viewer, "is_admin", False))


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


def unavailable(error: GraphQLError, fault: str) -> GraphQLError:
    request_id = current_request_id()
    log.warning(
        "%s: database unavailable (request %s): %s",
        ".".join(str(part) for part in error.path or ()) or "operation",
        request_id,
        fault,
    )
    return _with_code(
        error, UNAVAILABLE_MESSAGE, UNAVAILABLE_CODE, requestId=request_id, keep_original=False
    )


def unavailable_throughout(response: Mapping[str, object]) -> bool:
    """True when nothing of the operation ran: every error is SERVICE_UNAVAILABLE and every root
    field of `data` failed with one (HTTP then answers 503 with Retry-After)."""
    errors = response.get("errors")
    if not isinstance(errors, list) or not errors:
        return False
    failed_roots: set[object] = set()
    for error in errors:
        extensions = error.get("extensions") if isinstance(error, Mapping) else None
        if not isinstance(extensions, Mapping) or extensions.get("code") != UNAVAILABLE_CODE:
            return False
        path = error.get("path")
        if isinstance(path, list) and path:
            failed_roots.add(path[0])
    data = response.get("data")
    return data is None or (isinstance(data, Mapping) and set(data) <= failed_roots)


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
    note_error_code(code)  # the request's access-log line names it
    return {"errors": [{"message": message, "extensions": {"code": code, **extra}}]}

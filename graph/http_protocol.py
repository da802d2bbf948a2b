"""GraphQL over HTTP (the GraphQL Foundation's spec, as audited by the `graphql-http` package).

Mixed into the Strawberry router, this decides what plain Strawberry leaves open:

- the response media type, negotiated from `Accept`: `application/graphql-response+json` when the
  client prefers it (or names it where a wildcard was the only match for `application/json`),
  `application/json` when it is absent, a wildcard, or preferred; 406 when neither is acceptable;
- under `application/graphql-response+json`, a *request error* (parse, validation or
  variable-coercion failure: no execution started) answers 400 and the body has no `data` key;
  under `application/json` it stays 200 with `"data": null`, as legacy clients expect;
- errors of the HTTP layer (unparseable JSON, missing or mistyped parameters, an unsupported
  `Content-Type`, a mutation over GET) are GraphQL-shaped JSON with `extensions.code`, not
  Strawberry's plain text: 400 BAD_REQUEST, 405 METHOD_NOT_ALLOWED (with `Allow: POST`),
  415 UNSUPPORTED_MEDIA_TYPE, 406 NOT_ACCEPTABLE.

Errors raised while executing (field errors, coded domain errors, masked failures) are never
request errors: they keep `data` and 200 in both media types — except when every root field
failed with SERVICE_UNAVAILABLE (the database unreachable) before anything of the request
committed: nothing ran, so 503 with `Retry-After`.

WebSocket upgrades, the GraphiQL page and any streaming transport Strawberry is configured with
(negotiated by `Accept` too) pass through untouched. See docs/graphql_over_http.md.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from cross_web import HTTPException
from starlette.responses import Response
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.http.parse_content_type import parse_content_type
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET

from graph.errors import RETRY_AFTER_SECONDS, error_payload, unavailable_throughout
from graph.request_context import work_committed

if TYPE_CHECKING:
    from strawberry.fastapi import GraphQLRouter

    _RouterBase = GraphQLRouter[Any, Any]
else:
    _RouterBase = object

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
JSON = "application/json"

# The codes graph/errors.py gives failures that happen before execution starts. (The token limit
# reports GRAPHQL_PARSE_FAILED, the depth and alias limits GRAPHQL_VALIDATION_FAILED.)
# QUERY_TOO_COMPLEX: the query cost limit (graph/cost/model.py) refuses before execution too.
REQUEST_ERROR_CODES = frozenset(
    {"GRAPHQL_PARSE_FAILED", "GRAPHQL_VALIDATION_FAILED", "BAD_USER_INPUT", "QUERY_TOO_COMPLEX"}
)

HTTP_ERROR_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    415: "UNSUPPORTED_MEDIA_TYPE",
}

_response_media_type: ContextVar[str] = ContextVar("graphql_response_media_type", default=JSON)


class GraphQLOverHTTP(_RouterBase):
    """Mix in before Strawberry's router: `class R(GraphQLOverHTTP, GraphQLRouter[...])`."""

    async def run(  # type: ignore[override]
        self, request: Any, context: Any = UNSET, root_value: Any = UNSET
    ) -> Any:
        # No `await` may come before `super().run`: Strawberry's FastAPI router hands the
        # per-request response over through `self.temporal_response`, read at the start of `run`.
        if self.is_websocket_request(request):
            return await super().run(request, context, root_value)
        adapter = self.request_adapter_class(request)
        if self.should_render_graphql_ide(adapter) or self._get_stream_transport_from_headers(
            adapter.headers
        ):
            return await super().run(request, context, root_value)

        media_type = negotiate(adapter.headers.get("accept"))
        if media_type is None:
            return http_error(
                406,
                f"Accept must allow {GRAPHQL_RESPONSE_JSON} or {JSON}",
                JSON,  # nothing acceptable: the spec's default media type
            )
        if adapter.method == "POST" and (refusal := self._refuse_content_type(adapter)):
            return http_error(415, refusal, media_type)

        token = _response_media_type.set(media_type)
        try:
            return await super().run(request, context, root_value)
        except HTTPException as error:
            if isinstance(error.__cause__, InvalidOperationTypeError) and adapter.method == "GET":
                return http_error(
                    405,
                    "GET requests may only run queries; send mutations with POST",
                    media_type,
                    headers={"Allow": "POST"},
                )
            return http_error(error.status_code, error.reason, media_type)
        finally:
            _response_media_type.reset(token)

    def _refuse_content_type(self, adapter: Any) -> str | None:
        raw = adapter.content_type or ""
        content_type, params = parse_content_type(raw) if raw else ("", {})
        charset = params.get("charset", "utf-8").lower()
        accepted = {JSON} | ({"multipart/form-data"} if self.multipart_uploads_enabled else set())
        if content_type not in accepted:
            shown = content_type or "none"
            return f"Content-Type must be {JSON} (got {shown})"
        if content_type == JSON and charset not in ("utf-8", "utf8"):
            return f"{JSON} bodies must be UTF-8 (got charset={charset})"
        return None

    def decode_json(self, data: str | bytes) -> object:
        try:
            # Strictly UTF-8, as JSON must be (a leading BOM is tolerated): json.loads would
            # guess UTF-16/32 and let UTF-8-encoded surrogates through ("surrogatepass").
            text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
        except UnicodeDecodeError:
            raise HTTPException(400, "The request body is not valid UTF-8") from None
        try:
            return super().decode_json(text)
        except RecursionError:  # "[[[[..." a few thousand deep fits any body limit
            raise HTTPException(400, "The request's JSON is nested too deeply") from None

    async def parse_http_body(self, request: Any) -> Any:
        parsed = await super().parse_http_body(request)
        for data in parsed if isinstance(parsed, list) else [parsed]:
            if not isinstance(data, GraphQLRequestData):
                continue
            if not isinstance(data.operation_name, str | None):
                raise HTTPException(
                    400,
                    "The GraphQL operation's `operationName` must be a string or null, "
                    "if provided.",
                )
        return parsed

    async def process_result(self, request: Any, result: ExecutionResult) -> GraphQLHTTPResponse:
        response = await super().process_result(request, result)
        if _response_media_type.get() == GRAPHQL_RESPONSE_JSON and is_request_error(result):
            response.pop("data", None)
        return response

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Any,
    ) -> Response:
        response: Response = super().create_response(response_data, sub_response)
        response.headers["content-type"] = _response_media_type.get()
        if isinstance(response_data, Mapping) and "data" not in response_data:
            response.status_code = 400  # a request error, answered as graphql-response+json
        if (
            isinstance(response_data, Mapping)
            and unavailable_throughout(response_data)
            and not work_committed()  # a commit landed: something ran, a retry could repeat it
        ):
            response.status_code = 503  # nothing ran: the database could not be reached
            response.headers["retry-after"] = str(RETRY_AFTER_SECONDS)
        return response


def is_request_error(result: object) -> bool:
    """True when the operation failed before execution: no `data` is due (spec: request error).

    Errors from execution always carry a `path`; the ones before it never do, and graph/errors.py
    gives them one of REQUEST_ERROR_CODES."""
    if not isinstance(result, ExecutionResult) or result.data is not None or not result.errors:
        return False
    return all(
        error.path is None and (error.extensions or {}).get("code") in REQUEST_ERROR_CODES
        for error in result.errors
    )


def negotiate(accept: str | None) -> str | None:
    """The response media type for an `Accept` header, or None when neither is acceptable.

    The higher quality wins. On a tie, graphql-response+json needs to be named more specifically
    than application/json (so `*/*` and `application/*` keep legacy clients on application/json,
    while `application/graphql-response+json, application/json` gets the new type)."""
    if accept is None or not accept.strip():
        return JSON
    ranges = list(_media_ranges(accept))
    new_q, new_specificity = _quality(GRAPHQL_RESPONSE_JSON, ranges)
    json_q, json_specificity = _quality(JSON, ranges)
    if new_q <= 0 and json_q <= 0:
        return None
    if new_q != json_q:
        return GRAPHQL_RESPONSE_JSON if new_q > json_q else JSON
    if new_specificity > json_specificity or new_specificity == json_specificity == 2:
        return GRAPHQL_RESPONSE_JSON
    return JSON


def _media_ranges(accept: str) -> Iterable[tuple[str, float]]:
    for part in accept.split(","):
        media_range, *params = (piece.strip() for piece in part.split(";"))
        if not media_range:
            continue
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = min(max(float(value.strip()), 0.0), 1.0)
                except ValueError:
                    quality = 0.0
        yield media_range.lower(), quality


def _quality(media_type: str, ranges: list[tuple[str, float]]) -> tuple[float, int]:
    """The quality of the most specific range matching `media_type` (RFC 9110 §12.5.1)."""
    main_type = media_type.split("/")[0]
    best: tuple[int, float] | None = None
    for media_range, quality in ranges:
        if media_range == media_type:
            specificity = 2
        elif media_range == f"{main_type}/*":
            specificity = 1
        elif media_range == "*/*":
            specificity = 0
        else:
            continue
        if best is None or specificity > best[0]:
            best = (specificity, quality)
    if best is None:
        return 0.0, -1
    return best[1], best[0]


def unauthenticated(accept: str | None, *, token_sent: bool, message: str) -> Response:
    """401 for an operation without a valid token (RFC 6750: a bad token says so)."""
    challenge = 'Bearer error="invalid_token"' if token_sent else "Bearer"
    return http_error(
        401, message, negotiate(accept) or JSON, headers={"WWW-Authenticate": challenge}
    )


def http_error(
    status: int, message: str, media_type: str, *, headers: Mapping[str, str] | None = None
) -> Response:
    """A failure of the HTTP layer as a GraphQL response without `data`, with a coded error."""
    payload = error_payload(message, HTTP_ERROR_CODES.get(status, "BAD_REQUEST"))
    return Response(
        json.dumps(payload, separators=(",", ":")),
        status_code=status,
        media_type=media_type,
        headers=dict(headers or {}),
    )

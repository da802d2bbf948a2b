"""Turning what went wrong in one HTTP attempt into an ``AttemptFailure``: code, billing, retry.

| what happened                                 | code                    | retried | billed? |
|-----------------------------------------------|-------------------------|---------|---------|
| no free pooled connection (``PoolTimeout``)   | PROVIDER_POOL_EXHAUSTED | no      | no      |
| connect refused / connect timeout             | UNAVAILABLE / TIMEOUT   | yes     | no      |
| write failed / write timeout                  | UNAVAILABLE / TIMEOUT   | yes     | no      |
| read timeout before the response headers     | PROVIDER_TIMEOUT        | yes     | maybe   |
| read timeout after the headers                | PROVIDER_TIMEOUT        | no      | maybe   |
| connection dropped (before or mid-body)       | PROVIDER_UNAVAILABLE    | yes*    | maybe   |
| HTTP 429                                      | PROVIDER_RATE_LIMITED   | yes     | no      |
| HTTP 5xx (``Retry-After`` honoured)           | PROVIDER_UNAVAILABLE    | yes     | no      |
| HTTP 401 / 403                                | PROVIDER_AUTH           | no      | no      |
| other HTTP 4xx, and 3xx (never followed)      | PROVIDER_BAD_RESPONSE   | no      | no      |
| 200 with a non-JSON body / malformed SSE      | PROVIDER_BAD_RESPONSE   | no      | maybe   |
| stream ``{"error": ...}`` event, rate limit   | PROVIDER_RATE_LIMITED   | yes*    | maybe   |
| stream ``{"error": ...}`` event, auth / key   | PROVIDER_AUTH           | no      | maybe   |
| stream ``{"error": ...}`` event, other        | PROVIDER_UNAVAILABLE    | yes*    | maybe   |

(*) never once a streamed delta was handed to the caller: the caller already showed it. The total
deadline is enforced by the client (PROVIDER_TIMEOUT, not retried).
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from dataclasses import dataclass

import httpx

from domain.llm import LLMErrorCode as Code

_SAFE_IDENT = re.compile(r"[a-z_]{2,40}|\d{3}")


@dataclass(slots=True)
class AttemptFailure(Exception):
    """One failed attempt. ``message`` is safe (no body text); ``detail`` is the provider's own
    wording, for DEBUG logs only, once the caller has scrubbed credentials from it (then
    trimmed it: trimming first could leave part of a key behind)."""

    code: Code
    message: str
    reached_provider: bool
    may_be_billed: bool
    retryable: bool
    retry_after: float | None = None
    detail: str = ""


def from_transport_error(exc: httpx.RequestError, *, headers_received: bool) -> AttemptFailure:
    """Classify an httpx exception raised while sending or reading one attempt."""
    kind = type(exc).__name__
    if isinstance(exc, httpx.PoolTimeout):
        return _fail(Code.PROVIDER_POOL_EXHAUSTED, "no free connection in the pool", False, False)
    if isinstance(exc, httpx.ConnectTimeout):
        return _fail(Code.PROVIDER_TIMEOUT, "connect timed out", False, False, retryable=True)
    if isinstance(exc, httpx.ConnectError):
        return _fail(Code.PROVIDER_UNAVAILABLE, "could not connect", False, False, retryable=True)
    if isinstance(exc, httpx.WriteTimeout | httpx.WriteError):
        code = Code.PROVIDER_TIMEOUT if isinstance(exc, httpx.TimeoutException) else None
        return _fail(
            code or Code.PROVIDER_UNAVAILABLE, f"sending failed ({kind})", True, False, True
        )
    if isinstance(exc, httpx.ReadTimeout):
        # Before the headers the provider may simply be slow to start; after them it is
        # generating, so a retry would pay twice for the same answer.
        where = "mid-response" if headers_received else "waiting for the response"
        return _fail(
            Code.PROVIDER_TIMEOUT, f"read timed out {where}", True, True, not headers_received
        )
    if isinstance(exc, httpx.ReadError | httpx.RemoteProtocolError):
        where = "mid-response" if headers_received else "before responding"
        return _fail(Code.PROVIDER_UNAVAILABLE, f"connection dropped {where}", True, True, True)
    if isinstance(exc, httpx.DecodingError):
        return _fail(Code.PROVIDER_BAD_RESPONSE, "undecodable response body", True, True)
    return _fail(Code.PROVIDER_UNAVAILABLE, f"transport error ({kind})", False, False)


def from_status(status: int, headers: httpx.Headers, body: bytes) -> AttemptFailure:
    """Classify a non-2xx response from its status, headers and (bounded) body."""
    error_type, detail = _error_fields(body)
    label = f"HTTP {status}" + (f" ({error_type})" if error_type else "")
    if status == 429:
        failure = _fail(Code.PROVIDER_RATE_LIMITED, f"rate limited: {label}", True, False, True)
        failure.retry_after = retry_after_seconds(headers)
    elif status >= 500:
        failure = _fail(Code.PROVIDER_UNAVAILABLE, f"server error: {label}", True, False, True)
        failure.retry_after = retry_after_seconds(headers)  # a 503 may say when to come back
    elif status < 400:  # redirects are not followed: a provider URL should not move
        failure = _fail(
            Code.PROVIDER_BAD_RESPONSE, f"unexpected {label}; check base_url", True, False
        )
    elif status in (401, 403):
        failure = _fail(Code.PROVIDER_AUTH, f"authentication refused: {label}", True, False)
    else:
        hint = ""
        if b"stream_options" in body:
            hint = "; the server rejects stream_options: set stream_usage = false for it"
        failure = _fail(Code.PROVIDER_BAD_RESPONSE, f"request refused: {label}{hint}", True, False)
    failure.detail = detail
    return failure


def from_error_event(error: object) -> AttemptFailure:
    """Classify an ``{"error": {...}}`` event received inside a 200 stream."""
    fields = error if isinstance(error, dict) else {"message": str(error)}
    ident = _ident(fields.get("type") or fields.get("code"))
    status = fields.get("code") if isinstance(fields.get("code"), int) else None
    label = f"error event ({ident or 'untyped'})"
    if "rate" in ident or status == 429:
        code = Code.PROVIDER_RATE_LIMITED
    elif "auth" in ident or "api_key" in ident or status in (401, 403):
        code = Code.PROVIDER_AUTH
    else:
        code = Code.PROVIDER_UNAVAILABLE
    retryable = code is not Code.PROVIDER_AUTH
    failure = _fail(code, f"stream failed: {label}", True, True, retryable)
    failure.detail = str(fields.get("message", ""))
    return failure


def deadline_exceeded(total: float) -> AttemptFailure:
    """The call's total deadline ran out (it covers every attempt, so no retry)."""
    message = f"no complete answer within the {total:g}s call deadline"
    return _fail(Code.PROVIDER_TIMEOUT, message, True, True)


def cut_short() -> AttemptFailure:
    """A stream that ended with neither a finish reason nor ``[DONE]``."""
    message = "stream ended before the answer was complete"
    return _fail(Code.PROVIDER_UNAVAILABLE, message, True, True, retryable=True)


def bad_response(message: str) -> AttemptFailure:
    """A 200 response we cannot use (not JSON, malformed SSE, no choices)."""
    return _fail(Code.PROVIDER_BAD_RESPONSE, message, True, True)


def retry_after_seconds(headers: httpx.Headers) -> float | None:
    """``retry-after-ms`` (OpenAI), else ``Retry-After`` in seconds or as an HTTP date."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _fail(
    code: Code, message: str, reached: bool, billed: bool, retryable: bool = False
) -> AttemptFailure:
    return AttemptFailure(
        code=code,
        message=message,
        reached_provider=reached,
        may_be_billed=billed,
        retryable=retryable,
    )


def _error_fields(body: bytes) -> tuple[str, str]:
    """The short error type (safe to show) and the provider's message (DEBUG only)."""
    try:
        payload = json.loads(body)
    except ValueError:
        return "", body.decode("utf-8", "replace")
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict):
        return "", str(error or payload)
    return _ident(error.get("type") or error.get("code")), str(error.get("message", ""))


def _ident(value: object) -> str:
    # Only values shaped like OpenAI's error types ("rate_limit_exceeded") or an HTTP status
    # reach safe messages: a provider could echo anything, a credential included.
    text = str(value) if isinstance(value, str | int) else ""
    return text if _SAFE_IDENT.fullmatch(text) else ""

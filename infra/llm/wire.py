"""The OpenAI chat-completions wire format: request payloads in, completions and chunks out.

Parsing is tolerant of what compatible servers omit (role-only first chunks, ``null`` content,
usage on every chunk) and strict about what makes a body unusable (not JSON, no choices), which
raises ``AttemptFailure`` with PROVIDER_BAD_RESPONSE.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from domain.enums import TokenSource
from domain.llm import LLMRequest, TokenUsage
from infra.llm.classify import bad_response, from_error_event


def build_payload(
    request: LLMRequest, *, stream: bool, stream_usage: bool, json_format: bool
) -> dict[str, Any]:
    """The JSON body of ``POST /chat/completions`` for ``request``."""
    payload: dict[str, Any] = {
        "model": request.model,
        "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        "max_tokens": request.max_output_tokens,
        "stream": stream,
    }
    if request.temperature is not None:
        payload["temperature"] = request.temperature
    if stream and stream_usage:
        payload["stream_options"] = {"include_usage": True}
    if request.json_output and json_format:
        payload["response_format"] = {"type": "json_object"}
    return payload


class Completion(NamedTuple):
    """A whole response, or one stream chunk's part of it (``text`` is then the delta).
    A named tuple: one is built per streamed delta, and tuples are the cheapest to build."""

    text: str
    finish_reason: str | None
    usage: TokenUsage | None
    response_id: str | None
    model: str | None = None  # the model that answered, as the provider names it


def parse_completion(body: bytes) -> Completion:
    """A non-streamed response body."""
    payload = _json_object(body, "response body")
    choice = _first_choice(payload, required=True)
    message = choice.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if content is not None and not isinstance(content, str):
        raise bad_response("response message content is not a string")
    return Completion(
        text=content or "",
        finish_reason=_str_or_none(choice.get("finish_reason")),
        usage=parse_usage(payload.get("usage")),
        response_id=_str_or_none(payload.get("id")),
        model=_str_or_none(payload.get("model")),
    )


def parse_chunk(data: str) -> Completion:
    """One ``data:`` payload of a stream; an ``{"error": ...}`` payload raises its failure."""
    payload = _json_object(data, "stream event")
    if "error" in payload:
        raise from_error_event(payload["error"])
    choice = _first_choice(payload, required=False)
    delta = choice.get("delta")
    content = delta.get("content") if isinstance(delta, dict) else None
    return Completion(
        text=content if isinstance(content, str) else "",
        finish_reason=_str_or_none(choice.get("finish_reason")),
        usage=parse_usage(payload.get("usage")),
        response_id=_str_or_none(payload.get("id")),
        model=_str_or_none(payload.get("model")),
    )


def parse_usage(raw: object) -> TokenUsage | None:
    """Provider usage, or None when absent or all-zero (some proxies send zeros for "unknown")."""
    if not isinstance(raw, dict):
        return None
    prompt, completion = raw.get("prompt_tokens"), raw.get("completion_tokens")
    if not isinstance(prompt, int) or not isinstance(completion, int) or prompt + completion <= 0:
        return None
    return TokenUsage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_tokens=_detail(raw, "prompt_tokens_details", "cached_tokens"),
        reasoning_tokens=_detail(raw, "completion_tokens_details", "reasoning_tokens"),
        source=TokenSource.PROVIDER,
    )


def _json_object(raw: str | bytes, what: str) -> dict[str, Any]:
    try:
        payload = json.loads(raw)
    except ValueError:
        raise bad_response(f"{what} is not JSON") from None
    if not isinstance(payload, dict):
        raise bad_response(f"{what} is not a JSON object")
    return payload


def _first_choice(payload: dict[str, Any], *, required: bool) -> dict[str, Any]:
    choices = payload.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        return choices[0]
    if required or (choices is None and "usage" not in payload):
        raise bad_response("response has no choices")
    return {}  # the usage-only last chunk of a stream has "choices": []


def _detail(raw: dict[str, Any], group: str, key: str) -> int:
    details = raw.get(group)
    value = details.get(key) if isinstance(details, dict) else None
    return value if isinstance(value, int) else 0


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None

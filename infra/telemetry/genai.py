"""One span per LLM call attempt, after the OpenTelemetry GenAI semantic conventions.

``CallRecorder`` (infra/llm/recording.py) starts one when an attempt begins and ends it when the
attempt closes, so every provider shares it. The span is a child of whatever span is current
when the attempt begins (the turn's). Prompt and reply text are recorded only when
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`` (``Tracing.capture_content``).
"""

from __future__ import annotations

import json
from collections.abc import MutableMapping

from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from domain.enums import TokenSource
from domain.llm import Attempt, LLMRequest
from infra.telemetry.tracing import Tracing


class AttemptSpans:
    """Starts and ends the spans of one app's LLM call attempts."""

    __slots__ = ("_capture", "_tracer")

    def __init__(self, tracing: Tracing) -> None:
        self._tracer = tracing.tracer
        self._capture = tracing.capture_content

    def start(self, request: LLMRequest, number: int) -> Span:
        attributes: dict[str, str | int | float] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": request.provider,
            "gen_ai.request.model": request.model,
            "gen_ai.request.max_tokens": request.max_output_tokens,
            "pantheon.call_kind": str(request.call_kind),
            "pantheon.attempt": number,
        }
        if request.temperature is not None:
            attributes["gen_ai.request.temperature"] = request.temperature
        if request.agent_key:
            attributes["pantheon.agent.key"] = request.agent_key
        if self._capture:
            attributes["gen_ai.input.messages"] = json.dumps(
                [
                    {"role": m.role, "parts": [{"type": "text", "content": m.content}]}
                    for m in request.messages
                ]
            )
        return self._tracer.start_span(
            f"chat {request.model}", kind=SpanKind.CLIENT, attributes=attributes
        )

    def end(
        self,
        span: Span,
        attempt: Attempt,
        *,
        text: str,
        finish_reason: str | None,
        response_model: str | None,
    ) -> None:
        usage = attempt.usage
        span.set_attribute("pantheon.token_source", str(_token_source(attempt)))
        if attempt.reached_provider:
            span.set_attribute("gen_ai.usage.input_tokens", usage.prompt_tokens)
            span.set_attribute("gen_ai.usage.output_tokens", usage.completion_tokens)
        if response_model:
            span.set_attribute("gen_ai.response.model", response_model)
        if attempt.provider_request_id:
            span.set_attribute("gen_ai.response.id", attempt.provider_request_id)
        if finish_reason:
            span.set_attribute("gen_ai.response.finish_reasons", [finish_reason])
        if self._capture and text:
            output = {"role": "assistant", "parts": [{"type": "text", "content": text}]}
            if finish_reason:
                output["finish_reason"] = finish_reason
            span.set_attribute("gen_ai.output.messages", json.dumps([output]))
        if attempt.error_code is not None:
            span.set_attribute("error.type", str(attempt.error_code))
            span.set_status(Status(StatusCode.ERROR, str(attempt.error_code)))
        span.end()


def inject_trace_context(span: Span, headers: MutableMapping[str, str]) -> None:
    """Adds the W3C ``traceparent`` (and ``tracestate``) of ``span`` to a provider request, so a
    provider's or gateway's own traces join ours."""
    propagate.inject(headers, context=trace.set_span_in_context(span))


def _token_source(attempt: Attempt) -> TokenSource:
    """As metering will record it (domain/turns/metering.py): a refused attempt bills nothing."""
    if not attempt.reached_provider or not attempt.may_be_billed:
        return TokenSource.NONE
    return attempt.usage.source

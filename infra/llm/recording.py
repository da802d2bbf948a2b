"""Bookkeeping shared by every provider: one ``CallRecorder`` per call turns what happened into
``Attempt`` records, results and errors (and, with tracing on, one span per attempt:
infra/telemetry/genai.py); ``RecordedStream`` exposes a stream and its attempts."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Awaitable, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from domain.llm import (
    NO_USAGE,
    Attempt,
    LLMCallError,
    LLMErrorCode,
    LLMRequest,
    LLMResult,
    TextDelta,
    TokenUsage,
    estimate_prompt_tokens,
    estimate_usage,
)
from infra.telemetry.genai import AttemptSpans, inject_trace_context

if TYPE_CHECKING:
    from opentelemetry.trace import Span


@dataclass(slots=True)
class _OpenAttempt:
    number: int
    started: float
    parts: list[str] = field(default_factory=list)
    request_id: str | None = None
    response_model: str | None = None
    span: Span | None = None


class CallRecorder:
    """Records the attempts of one call. Not shared between calls or tasks. ``spans`` is None
    with tracing off: then no span is ever started."""

    def __init__(
        self,
        request: LLMRequest,
        *,
        spent: list[Attempt] | None = None,
        spans: AttemptSpans | None = None,
    ) -> None:
        self._request = request
        self._spans = spans
        self._started = time.monotonic()
        self._attempts: list[Attempt] = []
        self._spent = spent  # the caller's copy, kept up to date (see LLMGateway.complete)
        self._open: _OpenAttempt | None = None
        self._estimated_prompt: int | None = None

    @property
    def estimated_prompt_tokens(self) -> int:
        """The heuristic's estimate of this call's prompt (computed once, on first use)."""
        if self._estimated_prompt is None:
            self._estimated_prompt = estimate_prompt_tokens(self._request.messages)
        return self._estimated_prompt

    @property
    def attempts(self) -> tuple[Attempt, ...]:
        return tuple(self._attempts)

    @property
    def partial_text(self) -> str:
        """Text received so far in the attempt in progress."""
        return "".join(self._open.parts) if self._open else ""

    def begin(self) -> int:
        """Start the next attempt and return its 1-based number."""
        self._open = _OpenAttempt(number=len(self._attempts) + 1, started=time.monotonic())
        if self._spans is not None:
            self._open.span = self._spans.start(self._request, self._open.number)
        return self._open.number

    def trace_headers(self, headers: MutableMapping[str, str]) -> None:
        """Adds the attempt span's ``traceparent`` to a request's headers (tracing on only)."""
        if self._open is not None and self._open.span is not None:
            inject_trace_context(self._open.span, headers)

    def set_response_model(self, model: str | None) -> None:
        if self._open is not None and model and self._open.response_model is None:
            self._open.response_model = model

    def received(self, text: str) -> None:
        if self._open is not None:
            self._open.parts.append(text)

    def set_request_id(self, request_id: str | None) -> None:
        # The first id wins: the x-request-id header (what support desks ask for) comes first.
        if self._open is not None and request_id and self._open.request_id is None:
            self._open.request_id = request_id

    def succeed(self, *, usage: TokenUsage | None, finish_reason: str | None) -> LLMResult:
        """Close the open attempt as a success; ``usage=None`` means "estimate it"."""
        opened = self._take()
        text = "".join(opened.parts)
        usage = usage or estimate_usage(self._request.messages, text)
        self._close(
            opened,
            succeeded=True,
            code=None,
            reached=True,
            billed=True,
            usage=usage,
            finish_reason=finish_reason,
        )
        return LLMResult(
            text=text,
            finish_reason=finish_reason,
            usage=usage,
            latency_ms=_ms_since(self._started),
            provider_request_id=opened.request_id,
            attempts=self.attempts,
        )

    def fail(self, code: LLMErrorCode, *, reached: bool, billed: bool) -> str:
        """Close the open attempt as failed; returns the text it had received."""
        opened = self._take()
        text = "".join(opened.parts)
        usage = estimate_usage(self._request.messages, text) if reached else NO_USAGE
        self._close(opened, succeeded=False, code=code, reached=reached, billed=billed, usage=usage)
        return text

    def abandon(self) -> None:
        """Record the attempt in progress, if any, as cancelled by the caller."""
        if self._open is not None:
            self.fail(LLMErrorCode.PROVIDER_CANCELLED, reached=True, billed=True)

    def error(self, code: LLMErrorCode, message: str, *, partial_text: str = "") -> LLMCallError:
        return LLMCallError(code, message, attempts=self.attempts, partial_text=partial_text)

    def _take(self) -> _OpenAttempt:
        if self._open is None:
            raise RuntimeError("no attempt in progress")
        opened, self._open = self._open, None
        return opened

    def _close(
        self,
        opened: _OpenAttempt,
        *,
        succeeded: bool,
        code: LLMErrorCode | None,
        reached: bool,
        billed: bool,
        usage: TokenUsage,
        finish_reason: str | None = None,
    ) -> None:
        attempt = Attempt(
            number=opened.number,
            reached_provider=reached,
            may_be_billed=billed,
            succeeded=succeeded,
            error_code=code,
            usage=usage,
            latency_ms=_ms_since(opened.started),
            provider_request_id=opened.request_id,
            estimated_prompt_tokens=self.estimated_prompt_tokens if reached else 0,
        )
        self._attempts.append(attempt)
        if opened.span is not None and self._spans is not None:
            self._spans.end(
                opened.span,
                attempt,
                text="".join(opened.parts),
                finish_reason=finish_reason,
                response_model=opened.response_model,
            )
        if self._spent is not None:
            self._spent.append(attempt)


class RecordedStream:
    """An ``LLMStream``: iterates a provider's generator and exposes its recorder's attempts.

    The generator must call ``recorder.abandon()`` in a ``finally`` so an early ``aclose()`` or a
    cancellation leaves a ``PROVIDER_CANCELLED`` attempt behind for metering.
    """

    __slots__ = ("_agen", "_recorder")

    def __init__(
        self, agen: AsyncGenerator[TextDelta | LLMResult, None], recorder: CallRecorder
    ) -> None:
        self._agen = agen
        self._recorder = recorder

    def __aiter__(self) -> RecordedStream:
        return self

    def __anext__(self) -> Awaitable[TextDelta | LLMResult]:
        # Hand out the generator's own awaitable: no extra coroutine frame per delta.
        return self._agen.__anext__()

    async def aclose(self) -> None:
        await self._agen.aclose()

    async def __aenter__(self) -> RecordedStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @property
    def attempts(self) -> tuple[Attempt, ...]:
        return self._recorder.attempts


def _ms_since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)

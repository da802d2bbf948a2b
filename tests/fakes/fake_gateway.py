"""An in-memory LLM port for unit tests of one-piece calls (routing, summaries).

Each `complete` takes the next scripted outcome: a text to answer, or an `LLMCallError` to raise.
Every request is recorded. Streaming is refused: these callers never stream.
"""

from __future__ import annotations

from domain.enums import TokenSource
from domain.llm import Attempt, LLMCallError, LLMRequest, LLMResult, LLMStream, TokenUsage


def successful_attempt(number: int, prompt_tokens: int) -> Attempt:
    return Attempt(
        number=number,
        reached_provider=True,
        may_be_billed=True,
        succeeded=True,
        error_code=None,
        usage=TokenUsage(
            prompt_tokens=prompt_tokens, completion_tokens=5, source=TokenSource.PROVIDER
        ),
        latency_ms=4,
    )


class CompletionGateway:
    def __init__(
        self, *outcomes: str | LLMCallError, attempts: tuple[Attempt, ...] | None = None
    ) -> None:
        """`attempts`: what every successful call reports; by default one attempt whose prompt
        tokens are 10 x the call's number, so tests can tell the calls apart."""
        self.outcomes = list(outcomes)
        self.attempts = attempts
        self.requests: list[LLMRequest] = []
        self.closed = False

    async def complete(
        self, request: LLMRequest, *, spent: list[Attempt] | None = None
    ) -> LLMResult:
        self.requests.append(request)
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, LLMCallError):
            if spent is not None:
                spent.extend(outcome.attempts)
            raise outcome
        attempts = self.attempts or (successful_attempt(1, 10 * len(self.requests)),)
        if spent is not None:
            spent.extend(attempts)
        return LLMResult(
            text=outcome,
            finish_reason="stop",
            usage=attempts[-1].usage,
            latency_ms=sum(a.latency_ms for a in attempts),
            provider_request_id="req-1",
            attempts=attempts,
        )

    def stream(self, request: LLMRequest) -> LLMStream:
        raise AssertionError("one-piece callers never stream")

    async def aclose(self) -> None:
        self.closed = True

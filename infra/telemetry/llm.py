"""An `LLMGateway` decorator timing every call: duration by outcome, time to first token."""

from __future__ import annotations

import time

from domain.llm import (
    Attempt,
    LLMCallError,
    LLMGateway,
    LLMRequest,
    LLMResult,
    LLMStream,
    TextDelta,
)
from infra.telemetry.metrics import PantheonMetrics

OK = "ok"
CANCELLED = "PROVIDER_CANCELLED"  # closed early or cancelled: the call did not end by itself


class MeteredGateway:
    """Wraps the gateway the runner uses. Labels come from the request: the catalog's provider
    name and the provider's model id (both from the catalog file), and the call kind."""

    def __init__(self, inner: LLMGateway, metrics: PantheonMetrics) -> None:
        self._inner = inner
        self._metrics = metrics

    async def complete(
        self, request: LLMRequest, *, spent: list[Attempt] | None = None
    ) -> LLMResult:
        started = time.perf_counter()
        outcome = CANCELLED
        try:
            result = await self._inner.complete(request, spent=spent)
            outcome = OK
            return result
        except LLMCallError as error:
            outcome = str(error.code)
            raise
        finally:
            self._observe(request, outcome, time.perf_counter() - started)

    def stream(self, request: LLMRequest) -> LLMStream:
        return _MeteredStream(self._inner.stream(request), request, self)

    async def aclose(self) -> None:
        await self._inner.aclose()

    def _observe(self, request: LLMRequest, outcome: str, seconds: float) -> None:
        self._metrics.llm_call_duration.labels(
            request.provider, request.model, request.call_kind.value, outcome
        ).observe(seconds)

    def _first_token(self, request: LLMRequest, seconds: float) -> None:
        self._metrics.llm_first_token.labels(request.provider, request.model).observe(seconds)


class _MeteredStream:
    def __init__(self, inner: LLMStream, request: LLMRequest, gateway: MeteredGateway) -> None:
        self._inner = inner
        self._request = request
        self._gateway = gateway
        self._started: float | None = None  # nothing is sent before the first __anext__
        self._first_seen = False
        self._done = False

    def __aiter__(self) -> _MeteredStream:
        return self

    async def __anext__(self) -> TextDelta | LLMResult:
        if self._started is None:
            self._started = time.perf_counter()
        try:
            item = await self._inner.__anext__()
        except LLMCallError as error:
            self._end(str(error.code))
            raise
        except StopAsyncIteration:
            self._end(OK)
            raise
        except BaseException:
            self._end(CANCELLED)
            raise
        if isinstance(item, TextDelta) and not self._first_seen:
            self._first_seen = True
            self._gateway._first_token(self._request, time.perf_counter() - self._started)
        elif isinstance(item, LLMResult):
            self._end(OK)
        return item

    async def aclose(self) -> None:
        self._end(CANCELLED)
        await self._inner.aclose()

    @property
    def attempts(self) -> tuple[Attempt, ...]:
        return self._inner.attempts

    def _end(self, outcome: str) -> None:
        if self._done or self._started is None:
            return
        self._done = True
        self._gateway._observe(self._request, outcome, time.perf_counter() - self._started)

"""The client for OpenAI-compatible ``/chat/completions`` servers (OpenAI, vLLM, Ollama, ...).

One pooled ``httpx.AsyncClient`` per provider (its pool split in shards: ``sharded_pool``).
Every call has a total deadline covering all its attempts and backoff; each attempt is retried
or not as ``infra.llm.classify`` decides, never once a streamed delta reached the caller.
Streams are read as they arrive (one wait per network read) and closing or cancelling a stream
closes its connection at once. The API key lives only in the client's default headers: it is
scrubbed from every message and log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncGenerator
from typing import Any

import httpx

from domain.llm import Attempt, LLMRequest, LLMResult, TextDelta
from infra.llm.classify import (
    AttemptFailure,
    deadline_exceeded,
    from_status,
    from_transport_error,
)
from infra.llm.config import OpenAIProviderConfig
from infra.llm.openai_stream import DONE, StreamProgress, read_events
from infra.llm.recording import CallRecorder, RecordedStream
from infra.llm.retry import backoff_delay
from infra.llm.sharded_pool import ShardedTransport
from infra.llm.wire import build_payload, parse_chunk, parse_completion
from infra.telemetry.genai import AttemptSpans

logger = logging.getLogger(__name__)

_MAX_ERROR_BODY = 16_384


class OpenAICompatibleClient:
    """An ``LLMGateway`` for one provider. Use as an async context manager or call ``aclose()``.

    ``transport`` is for tests (``httpx.MockTransport``); ``rng`` makes the backoff jitter
    reproducible; ``spans`` (tracing on) traces each attempt and sends its ``traceparent``.
    """

    def __init__(
        self,
        *,
        name: str,
        config: OpenAIProviderConfig,
        api_key: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        rng: random.Random | None = None,
        spans: AttemptSpans | None = None,
    ) -> None:
        self.name = name
        self._spans = spans
        self._config = config
        self._secret = api_key or None
        self._url = f"{config.base_url}/chat/completions"
        self._rng = rng or random.Random()
        self._http = self._build_http(config, transport)

    def _build_http(
        self, config: OpenAIProviderConfig, transport: httpx.AsyncBaseTransport | None
    ) -> httpx.AsyncClient:
        headers = {"user-agent": "pantheon", **config.extra_headers}
        if self._secret:
            headers["authorization"] = f"Bearer {self._secret}"
        t, pool = config.timeouts, config.pool
        limits = httpx.Limits(
            max_connections=pool.max_connections,
            max_keepalive_connections=pool.max_keepalive,
            keepalive_expiry=pool.keepalive_expiry,
        )
        return httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(
                connect=t.connect, read=t.read, write=t.write, pool=pool.pool_timeout
            ),
            transport=transport or ShardedTransport(limits),
            follow_redirects=False,
        )

    async def __aenter__(self) -> OpenAICompatibleClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- complete ---------------------------------------------------------------------------

    async def complete(
        self, request: LLMRequest, *, spent: list[Attempt] | None = None
    ) -> LLMResult:
        recorder = CallRecorder(request, spent=spent, spans=self._spans)
        deadline = self._deadline()
        payload = self._payload(request, stream=False)
        try:
            while True:
                number = recorder.begin()
                try:
                    return await self._complete_once(payload, deadline, recorder)
                except AttemptFailure as failure:
                    await self._after_failure(request, failure, recorder, number, deadline, False)
        finally:
            recorder.abandon()

    async def _complete_once(
        self, payload: dict[str, Any], deadline: float, recorder: CallRecorder
    ) -> LLMResult:
        response = await self._open(payload, deadline, recorder, stream=False)
        try:
            async with asyncio.timeout_at(deadline):
                body = await response.aread()
        except TimeoutError:
            raise deadline_exceeded(self._config.timeouts.total) from None
        except httpx.RequestError as exc:
            raise from_transport_error(exc, headers_received=True) from None
        finally:
            await response.aclose()
        completion = parse_completion(body)
        recorder.set_request_id(completion.response_id)
        recorder.set_response_model(completion.model)
        recorder.received(completion.text)
        return recorder.succeed(usage=completion.usage, finish_reason=completion.finish_reason)

    # --- stream -----------------------------------------------------------------------------

    def stream(self, request: LLMRequest) -> RecordedStream:
        recorder = CallRecorder(request, spans=self._spans)
        return RecordedStream(self._stream(request, recorder), recorder)

    async def _stream(
        self, request: LLMRequest, recorder: CallRecorder
    ) -> AsyncGenerator[TextDelta | LLMResult, None]:
        deadline = self._deadline()
        payload = self._payload(request, stream=True)
        try:
            while True:
                number = recorder.begin()
                progress = StreamProgress()
                try:
                    response = await self._open(payload, deadline, recorder, stream=True)
                    try:
                        async with contextlib.aclosing(self._events(response, deadline)) as reads:
                            async for batch in reads:
                                texts: list[str] = []
                                try:
                                    done = _absorb_read(batch, progress, recorder, texts)
                                finally:  # a bad chunk fails the attempt after those before it
                                    if texts:
                                        yield TextDelta(text="".join(texts))
                                if done:
                                    break
                            else:
                                progress.check_ended_cleanly()
                    finally:
                        await response.aclose()
                except AttemptFailure as failure:
                    yielded = progress.yielded
                    await self._after_failure(request, failure, recorder, number, deadline, yielded)
                    continue
                yield recorder.succeed(usage=progress.usage, finish_reason=progress.finish_reason)
                return
        finally:
            recorder.abandon()  # closed early or cancelled: still report the attempt

    def _events(self, response: httpx.Response, deadline: float) -> AsyncGenerator[str, None]:
        timeouts = self._config.timeouts
        return read_events(
            response, deadline=deadline, read_timeout=timeouts.read, total=timeouts.total
        )

    # --- one attempt's request and the retry decision ---------------------------------------

    async def _open(
        self, payload: dict[str, Any], deadline: float, recorder: CallRecorder, *, stream: bool
    ) -> httpx.Response:
        """Send the request; return the 2xx response (to read and close) or raise its failure."""
        headers = {"accept": "text/event-stream" if stream else "application/json"}
        recorder.trace_headers(headers)
        request = self._http.build_request("POST", self._url, json=payload, headers=headers)
        try:
            async with asyncio.timeout_at(deadline):
                response = await self._http.send(request, stream=True)
        except TimeoutError:
            raise deadline_exceeded(self._config.timeouts.total) from None
        except httpx.RequestError as exc:
            raise from_transport_error(exc, headers_received=False) from None
        recorder.set_request_id(response.headers.get("x-request-id"))
        if response.is_success:
            return response
        try:
            body = await self._error_body(response, deadline)
        finally:
            await response.aclose()
        raise from_status(response.status_code, response.headers, body)

    async def _error_body(self, response: httpx.Response, deadline: float) -> bytes:
        body = b""
        try:
            async with asyncio.timeout_at(deadline):
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) >= _MAX_ERROR_BODY:
                        break
        except (TimeoutError, httpx.RequestError):
            pass  # the status alone classifies the failure
        return body[:_MAX_ERROR_BODY]

    async def _after_failure(
        self,
        request: LLMRequest,
        failure: AttemptFailure,
        recorder: CallRecorder,
        number: int,
        deadline: float,
        yielded: bool,
    ) -> None:
        """Record the failed attempt, then sleep before the next one or raise ``LLMCallError``."""
        partial = recorder.fail(
            failure.code, reached=failure.reached_provider, billed=failure.may_be_billed
        )
        delay = None if yielded else self._retry_delay(failure, number, deadline)
        message = self._scrub(f"provider {self.name!r} model {request.model!r}: {failure.message}")
        outcome = f"retrying in {delay:.2f}s" if delay is not None else "giving up"
        logger.warning(
            "LLM attempt %d/%d failed (%s, %s, persona %s): %s; %s",
            number,
            self._config.retry.max_attempts,
            failure.code,
            request.call_kind,
            request.persona or "-",
            message,
            outcome,
        )
        if failure.detail:
            logger.debug("provider %r said: %.300s", self.name, self._scrub(failure.detail))
        if delay is None:
            suffix = f" (after {number} attempts)" if number > 1 else ""
            raise recorder.error(failure.code, message + suffix, partial_text=partial)
        await asyncio.sleep(delay)

    def _retry_delay(self, failure: AttemptFailure, number: int, deadline: float) -> float | None:
        """Seconds to wait before the next attempt, or None when there is none to make."""
        policy = self._config.retry
        if not failure.retryable or number >= policy.max_attempts:
            return None
        delay = backoff_delay(policy, number, failure.retry_after, self._rng)
        # No point sleeping into the deadline: fail now with the real reason instead.
        return delay if asyncio.get_running_loop().time() + delay < deadline else None

    # --- helpers ----------------------------------------------------------------------------

    def _payload(self, request: LLMRequest, *, stream: bool) -> dict[str, Any]:
        return build_payload(
            request,
            stream=stream,
            stream_usage=self._config.stream_usage,
            json_format=self._config.json_response_format,
        )

    def _deadline(self) -> float:
        return asyncio.get_running_loop().time() + self._config.timeouts.total

    def _scrub(self, text: str) -> str:
        return text.replace(self._secret, "[redacted]") if self._secret else text


def _absorb_read(
    batch: list[str], progress: StreamProgress, recorder: CallRecorder, texts: list[str]
) -> bool:
    """Appends to ``texts`` the text of the chunks one network read brought; True once
    ``[DONE]`` came. The caller hands them on as one delta: chunks that arrived together reach
    it together, so a loaded process does the per-delta work (events, fan-out) once per read
    instead of once per chunk."""
    for data in batch:
        if data == DONE:
            return True
        if text := progress.absorb(parse_chunk(data), recorder):
            texts.append(text)
    return False

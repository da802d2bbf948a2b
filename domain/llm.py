"""The LLM port: what the domain asks of a language-model provider and what it gets back.

Every failed call raises one exception type; its ``code`` says what went wrong::

    LLMCallError                    .code, .message (safe to show), .attempts, .partial_text
    ├── PROVIDER_TIMEOUT            connect/read timeout, or the call's total deadline ran out
    ├── PROVIDER_RATE_LIMITED       HTTP 429, or a rate-limit error event inside a stream
    ├── PROVIDER_UNAVAILABLE        connection refused or dropped, HTTP 5xx, a stream cut short,
    │                               an unknown provider name
    ├── PROVIDER_BAD_RESPONSE       a body that is not JSON, a malformed SSE line, a response
    │                               without choices, or a request the provider refused (other 4xx)
    ├── PROVIDER_AUTH               HTTP 401 / 403
    ├── PROVIDER_POOL_EXHAUSTED     no free connection within the pool timeout: nothing was sent
    └── PROVIDER_CANCELLED          only in an ``Attempt`` record: the caller stopped the call
                                    (``CancelledError`` itself always propagates unchanged)

A call may make several attempts (retries). Each one is reported as an ``Attempt`` so metering can
write one usage row per attempt that reached a provider, successful or not. When the provider
reports no usage the tokens are estimated with ``estimate_usage`` and marked ``ESTIMATED``
(metering corrects the prompt estimate per model: ``domain/calibration.py``).

This module is pure Python: no I/O, no third-party imports.
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from domain.enums import CallKind, TokenSource

__all__ = [
    "NO_USAGE",
    "Attempt",
    "ChatMessage",
    "LLMCallError",
    "LLMErrorCode",
    "LLMGateway",
    "LLMRequest",
    "LLMResult",
    "LLMStream",
    "TextDelta",
    "TokenUsage",
    "estimate_prompt_tokens",
    "estimate_tokens",
    "estimate_usage",
]


class LLMErrorCode(StrEnum):
    """Why an LLM call (or one attempt of it) failed. Compares equal to its string value."""

    PROVIDER_TIMEOUT = "PROVIDER_TIMEOUT"
    PROVIDER_RATE_LIMITED = "PROVIDER_RATE_LIMITED"
    PROVIDER_UNAVAILABLE = "PROVIDER_UNAVAILABLE"
    PROVIDER_BAD_RESPONSE = "PROVIDER_BAD_RESPONSE"
    PROVIDER_AUTH = "PROVIDER_AUTH"
    PROVIDER_POOL_EXHAUSTED = "PROVIDER_POOL_EXHAUSTED"
    PROVIDER_CANCELLED = "PROVIDER_CANCELLED"


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatMessage:
    """One chat message: ``role`` is ``system``, ``user`` or ``assistant``."""

    role: str
    content: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LLMRequest:
    """One call to a model.

    ``provider`` is the catalog's provider name (it picks the client), ``model`` the vendor's own
    model id. ``persona`` (the agent's display name) only feeds the offline provider and logs;
    ``agent_key`` (the agent's key) labels the call's trace span.
    ``json_output`` asks for a JSON answer where the provider supports it; callers still parse
    strictly and keep their fallback.
    """

    provider: str
    model: str
    messages: tuple[ChatMessage, ...]
    max_output_tokens: int
    call_kind: CallKind
    temperature: float | None = None
    persona: str | None = None
    json_output: bool = False
    agent_key: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenUsage:
    """Token counts of one attempt. ``cached_tokens`` and ``reasoning_tokens`` are subsets of
    prompt and completion tokens respectively, kept when the provider reports them."""

    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    source: TokenSource

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


NO_USAGE = TokenUsage(prompt_tokens=0, completion_tokens=0, source=TokenSource.ESTIMATED)
"""The usage of an attempt that never reached a provider."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Attempt:
    """One try at a call, successful or not; metering writes a usage row for each attempt with
    ``reached_provider``.

    ``reached_provider`` is False when nothing was sent (pool exhausted, connection refused).
    ``may_be_billed`` is True when the provider may charge for it: it succeeded, or failed after
    it may have generated tokens (timeout while waiting, stream cut, bad body). ``usage`` is the
    provider's, or an estimate: the prompt plus any text already received.
    ``estimated_prompt_tokens`` is the heuristic's estimate of the prompt whatever ``usage`` says,
    so calibration (``domain/calibration.py``) can compare it with what the provider reported.
    """

    number: int
    reached_provider: bool
    may_be_billed: bool
    succeeded: bool
    error_code: LLMErrorCode | None
    usage: TokenUsage
    latency_ms: int
    provider_request_id: str | None = None
    estimated_prompt_tokens: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class LLMResult:
    """A finished call. ``usage`` and ``provider_request_id`` are those of the successful (last)
    attempt; ``latency_ms`` spans the whole call, retries included; ``attempts`` lists them all."""

    text: str
    finish_reason: str | None
    usage: TokenUsage
    latency_ms: int
    provider_request_id: str | None
    attempts: tuple[Attempt, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class TextDelta:
    """A piece of the reply, yielded by ``LLMStream`` as soon as it arrives."""

    text: str


class LLMCallError(Exception):
    """A call that failed after its retries. ``message`` never contains a credential, prompt or
    model output; ``partial_text`` is what was streamed before the failure (the caller saw it)."""

    def __init__(
        self,
        code: LLMErrorCode,
        message: str,
        *,
        attempts: tuple[Attempt, ...] = (),
        partial_text: str = "",
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.attempts = attempts
        self.partial_text = partial_text


class LLMStream(Protocol):
    """What ``LLMGateway.stream`` returns: ``TextDelta`` items, then exactly one ``LLMResult``,
    or ``LLMCallError`` instead of the result.

    Close it when you stop early (``async with contextlib.aclosing(stream)``): that closes the
    connection at once. ``attempts`` is readable at any time; after an early close or a task
    cancellation it ends with a ``PROVIDER_CANCELLED`` attempt whose usage estimates the prompt
    and the text received, so a cancelled turn can still meter what was spent.
    """

    def __aiter__(self) -> LLMStream: ...

    def __anext__(self) -> Awaitable[TextDelta | LLMResult]: ...

    async def aclose(self) -> None: ...

    @property
    def attempts(self) -> tuple[Attempt, ...]: ...


class LLMGateway(Protocol):
    """The port to every configured provider; routes each request by ``request.provider``."""

    async def complete(
        self, request: LLMRequest, *, spent: list[Attempt] | None = None
    ) -> LLMResult:
        """Answer in one piece. Raises ``LLMCallError``. ``spent``, if given, receives each
        attempt as it ends, one cut short by cancellation included: a caller cancelled mid-call
        (a server stop) has no result or error to read them from, and must still meter them."""
        ...

    def stream(self, request: LLMRequest) -> LLMStream:
        """Answer as a stream of deltas; nothing is sent until the first ``__anext__``."""
        ...

    async def aclose(self) -> None:
        """Close every connection pool. The gateway is unusable afterwards."""
        ...


# --- Token estimation -------------------------------------------------------------------------
#
# Used when a provider reports no usage (and by the offline provider and budgets). tiktoken would
# need to download its tables, so this is a documented heuristic: about 4 characters per token
# for alphabetic scripts (OpenAI's rule of thumb for English), one token per character for CJK,
# kana and hangul (BPE vocabularies rarely merge them), plus the chat-template framing each
# message costs. A rule of thumb, not a tokenizer: expect 20-30% error on real text, more on code.

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 4  # role name and delimiters wrapped around every message
REPLY_PRIMING_TOKENS = 3  # the assistant header every completion starts with
_WIDE_CHARS = re.compile("[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0003ffff]")


def estimate_tokens(text: str) -> int:
    """Estimated tokens in ``text``: ceil(narrow chars / 4) + one per CJK/kana/hangul char."""
    if text.isascii():
        return math.ceil(len(text) / CHARS_PER_TOKEN)
    wide = len(_WIDE_CHARS.findall(text))
    return wide + math.ceil((len(text) - wide) / CHARS_PER_TOKEN)


def estimate_prompt_tokens(messages: Sequence[ChatMessage]) -> int:
    """Estimated prompt tokens of a chat: each message's content plus its framing, plus priming."""
    if not messages:
        return 0
    content = sum(estimate_tokens(message.content) for message in messages)
    return content + MESSAGE_OVERHEAD_TOKENS * len(messages) + REPLY_PRIMING_TOKENS


def estimate_usage(messages: Sequence[ChatMessage], completion_text: str) -> TokenUsage:
    """An ``ESTIMATED`` usage for a prompt and the completion text received for it."""
    return TokenUsage(
        prompt_tokens=estimate_prompt_tokens(messages),
        completion_tokens=estimate_tokens(completion_text),
        source=TokenSource.ESTIMATED,
    )

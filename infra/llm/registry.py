"""Building the application's ``LLMGateway`` from the catalog's ``[providers.<name>]`` tables.

The app's lifespan calls ``build_gateway(catalog.providers)`` at start and ``aclose()`` at
shutdown; the gateway routes each ``LLMRequest`` to the client named by ``request.provider``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, Mapping
from typing import Any

from domain.llm import (
    Attempt,
    LLMCallError,
    LLMErrorCode,
    LLMGateway,
    LLMRequest,
    LLMResult,
    LLMStream,
    TextDelta,
)
from infra.llm.config import OpenAIProviderConfig, ScriptedProviderConfig, parse_providers
from infra.llm.openai_compatible import OpenAICompatibleClient
from infra.llm.recording import CallRecorder, RecordedStream
from infra.llm.scripted import ScriptedProvider
from infra.telemetry.genai import AttemptSpans


def build_gateway(
    providers: Mapping[str, Mapping[str, Any]],
    *,
    environ: Mapping[str, str] | None = None,
    spans: AttemptSpans | None = None,
) -> LLMGateway:
    """One client per provider entry (validated, env overrides applied), behind one router.

    ``environ`` defaults to ``os.environ``; it supplies the overrides and the API keys named by
    ``api_key_env``. Raises ``ProviderConfigError`` naming the first invalid entry. Call it
    inside the running event loop's lifetime (the clients' pools belong to that loop).
    ``spans`` (tracing on) traces every attempt.
    """
    env = os.environ if environ is None else environ
    clients: dict[str, LLMGateway] = {}
    for name, config in parse_providers(providers, env).items():
        clients[name] = _client(name, config, env, spans)
    return ProviderRouter(clients)


def _client(
    name: str,
    config: ScriptedProviderConfig | OpenAIProviderConfig,
    env: Mapping[str, str],
    spans: AttemptSpans | None,
) -> LLMGateway:
    if isinstance(config, ScriptedProviderConfig):
        return ScriptedProvider(seed=config.seed, spans=spans)
    api_key = env.get(config.api_key_env) if config.api_key_env else None
    return OpenAICompatibleClient(name=name, config=config, api_key=api_key or None, spans=spans)


class ProviderRouter:
    """An ``LLMGateway`` that forwards each request to the client of ``request.provider``."""

    def __init__(self, clients: Mapping[str, LLMGateway]) -> None:
        self._clients = dict(clients)

    @property
    def provider_names(self) -> frozenset[str]:
        return frozenset(self._clients)

    async def complete(
        self, request: LLMRequest, *, spent: list[Attempt] | None = None
    ) -> LLMResult:
        client = self._clients.get(request.provider)
        if client is None:
            raise _unknown_provider(request)[1]
        return await client.complete(request, spent=spent)

    def stream(self, request: LLMRequest) -> LLMStream:
        client = self._clients.get(request.provider)
        if client is not None:
            return client.stream(request)
        recorder, error = _unknown_provider(request)
        return RecordedStream(_raising(error), recorder)

    async def aclose(self) -> None:
        """Close every client, even if one of them fails to close."""
        errors = []
        for client in self._clients.values():
            try:
                await client.aclose()
            except Exception as exc:  # keep closing the others; report the first
                errors.append(exc)
        if errors:
            raise errors[0]


def _unknown_provider(request: LLMRequest) -> tuple[CallRecorder, LLMCallError]:
    """The one attempt (nothing sent) and the error of a call to a provider nobody configured."""
    recorder = CallRecorder(request)
    recorder.begin()
    recorder.fail(LLMErrorCode.PROVIDER_UNAVAILABLE, reached=False, billed=False)
    message = f"no provider named {request.provider!r} is configured"
    return recorder, recorder.error(LLMErrorCode.PROVIDER_UNAVAILABLE, message)


async def _raising(error: LLMCallError) -> AsyncGenerator[TextDelta | LLMResult, None]:
    raise error
    yield  # unreachable; makes this an async generator that fails on its first step
